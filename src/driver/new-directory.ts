import { mkdir } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import type { DurableFileOps, Placement } from "./durable-file-ops.js";
import { removeTree } from "./remove-tree.js";
import { temporarySuffix } from "./temporary-names.js";

/** populateNewDirectory's answer when another writer made the directory first. */
export const LOST_RACE = Symbol("lost race");

/** Where a stand-in goes, and the directory to sync once it is there (its new parent). */
export interface NewDirectoryPlacement extends Placement {
  parent: string;
}

export interface NewDirectoryWork<T> {
  /**
   * The operation, run in `dir` (inside the hidden stand-in for the directory wanted), which then
   * renames `place.from` onto `place.to` and, to be durable, syncs `place.parent` after that: in
   * one native job where it can (durable-file-ops.ts).
   */
  fill(dir: string, place: NewDirectoryPlacement): Promise<T>;
  /**
   * Undoes what `fill` did outside the stand-in when the placement lost the race (a source moved
   * in goes back, a descriptor closes). Without a result when `fill` itself failed at placing.
   */
  discard(result: T | undefined, dir: string): Promise<void>;
}

/**
 * Makes the missing directory `dir`, with its missing parents up to `root`, appear holding what
 * `work.fill` put in it, or not at all. `mkdir -p` then a write leaves, when killed in between,
 * empty directories that listings show: a tag with no `current/link` is listed by tags/list and
 * answers 404. Here the missing subtree is built under a hidden name beside its highest missing
 * ancestor, filled, and renamed into place in one rename(2), which is atomic. A kill before the
 * rename leaves only the hidden stand-in (see stale-temporaries.ts).
 *
 * Resolves to LOST_RACE when the placement finds the directory made meanwhile by another writer
 * (EEXIST, ENOTEMPTY), or its parent deleted (ENOENT): the stand-in is undone and removed, and the
 * caller runs its operation again in the directory that now exists. Errors of mkdir (EROFS,
 * ENOSPC, EACCES) are thrown as they are; ENOENT means `root` is missing with its parent.
 *
 * Durability: `place.parent` is synced after the placement, and the file inside was synced before;
 * the new directories themselves are not, as `mkdir -p` never synced them: on a journaling
 * filesystem (ext4, xfs) a sync commits every earlier change to the tree with it.
 *
 * Costs, against mkdir -p: the same number of threadpool jobs. The stand-in, the climb to it and
 * the levels below it are one native job (`ops.makeStandIn`) where `mkdir -p` was one call, and
 * the placement rides with the write in its native job. Only the first write into a new
 * directory pays anything; writes into existing directories never come here.
 */
export async function populateNewDirectory<T>(dir: string, root: string, ops: Pick<DurableFileOps, "makeStandIn">, work: NewDirectoryWork<T>): Promise<T | typeof LOST_RACE> {
  const { standIn, top } = await ops.makeStandIn(dir, root, temporarySuffix());
  const inner = join(standIn, relative(top, dir));
  const place: NewDirectoryPlacement = { from: standIn, to: top, parent: dirname(top) };
  try {
    return await work.fill(inner, place);
  } catch (err) {
    const lost = (err as NodeJS.ErrnoException).path === standIn && isLostRace(err);
    // Undone first: should that fail (a moved source that cannot go back), the stand-in stays.
    if (lost) await work.discard(undefined, inner);
    await removeTree(standIn).catch(() => undefined);
    if (lost) return LOST_RACE;
    throw err;
  }
}

/** The directory exists now (EEXIST, ENOTEMPTY: Linux answers either), or its parent was deleted. */
function isLostRace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "EEXIST" || code === "ENOTEMPTY" || code === "ENOENT";
}

/**
 * mkdir -p, for writes that need not survive a crash whole (`durable: false`: an upload's
 * `startedat` and hash states, markers): an empty directory a kill leaves there is harmless, and
 * these are most of a push's new directories. Node's recursive mkdir reports ENOENT when it cannot
 * make a missing parent, whatever the reason (it stats the parent after the failure and reports
 * that): on read-only storage, a full disk or a directory it may not write, a write into a new
 * directory would then look like a missing path. When it says ENOENT, the directories are made one
 * at a time from `root` down, so that the real error (EROFS, ENOSPC, EACCES) is the one thrown;
 * ENOENT then only means a concurrent delete.
 */
export async function makeDirectory(dir: string, root: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ENOTDIR") throw err;
  }
  const below = relative(root, dir);
  let current = root;
  for (const segment of ["", ...(below === "" ? [] : below.split(sep))]) {
    current = segment === "" ? current : join(current, segment);
    try {
      await mkdir(current);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
}
