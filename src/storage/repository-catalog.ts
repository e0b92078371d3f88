import { InvalidPathError, assertValidPath, compareWalkOrder, isPathNotFound, type StorageDriver } from "../driver/storage-driver.js";
import { REPOSITORIES_ROOT } from "./paths.js";

/** A page of the catalog: names in catalog order, and whether more follow. */
export interface CatalogPage {
  names: string[];
  more: boolean;
}

/**
 * One page of the catalog: at most `limit` repository names after `after` (from the first when
 * undefined), in catalog order.
 *
 * A repository is a directory under `repositories/` holding `_manifests`, found as distribution
 * finds it: by walking the tree, never descending into directories starting with "_". Catalog
 * order is the order in which that walk meets each `<name>/_manifests` (distribution's order on the
 * filesystem): segment by segment, so "a", "a/b", "a-b". A page resumes the walk right after
 * `<after>/_manifests`, so it costs the page, not the registry before it; it ends as soon as it
 * has one name more than the page holds (which is how it knows that more follow).
 */
export async function catalogPage(driver: StorageDriver, after: string | undefined, limit: number): Promise<CatalogPage> {
  if (limit <= 0) return { names: [], more: false };
  const names: string[] = [];
  let more = false;
  const position = after === undefined ? undefined : `${REPOSITORIES_ROOT}/${after}/_manifests`;
  // `last` comes from the client: a string that is no storage path (say "../x") is still a place
  // in the order, found by comparing rather than by starting the walk there.
  const startAfter = position !== undefined && isValidPath(position) ? position : undefined;
  const compareFrom = startAfter === undefined ? position : undefined;
  try {
    await driver.walk(
      REPOSITORIES_ROOT,
      (info) => {
        if (!info.isDir) return;
        const base = info.path.slice(info.path.lastIndexOf("/") + 1);
        if (base === "_manifests") {
          if (compareFrom !== undefined && compareWalkOrder(info.path, compareFrom) <= 0) return "skip";
          if (names.length === limit) {
            more = true;
            return "stop";
          }
          names.push(info.path.slice(REPOSITORIES_ROOT.length + 1, -"/_manifests".length));
          return "skip";
        }
        if (base.startsWith("_")) return "skip";
      },
      { startAfter },
    );
  } catch (err) {
    if (!isPathNotFound(err)) throw err;
  }
  return { names, more };
}

function isValidPath(path: string): boolean {
  try {
    assertValidPath(path);
    return true;
  } catch (err) {
    if (err instanceof InvalidPathError) return false;
    throw err;
  }
}
