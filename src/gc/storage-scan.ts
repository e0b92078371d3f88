import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import { Digest } from "../reference/digest.js";
import { BLOBS_ROOT, REPOSITORIES_ROOT, layersRootPath, manifestRevisionsPath, tagCurrentLinkPath, tagsRootPath } from "../storage/paths.js";
import { compareStrings } from "../storage/tag-store.js";
import { STORAGE_CONCURRENCY, mapConcurrent } from "../storage/map-concurrent.js";

/**
 * Read-only enumerations of distribution's layout for the collector: repositories, their link
 * files, their tags, and the global blobs. Nothing here interprets what it finds beyond the layout;
 * entries it cannot read are returned as such, for the caller to keep and report.
 */

/** One `<root>/<alg>/<hex>/link` file (a layer link or a manifest revision link). */
export interface LinkEntry {
  /** The link's directory, `<root>/<alg>/<hex>`: what deleting the link removes. */
  dir: string;
  /** The digest the path names, or undefined when it is not a digest berth supports. */
  digest: Digest | undefined;
  /** The digest the link file holds, or undefined when it is not one. */
  target: Digest | undefined;
  /** When the link file was last written, by the storage's clock (online collection ages links by it). */
  modTime: Date;
}

/** A link is sound when its path and its content name the same supported digest. */
export function isSoundLink(link: LinkEntry): link is LinkEntry & { digest: Digest; target: Digest } {
  return link.digest !== undefined && link.target !== undefined && link.digest.equals(link.target);
}

/**
 * Every repository name, sorted: a directory under `repositories/` that holds `_manifests` or
 * `_layers` (distribution 2.8 recognises repositories by `_layers`, its catalog by `_manifests`;
 * the collector takes both, so no repository's references are missed). Directories starting with
 * "_" are never descended.
 */
export async function listRepositories(driver: StorageDriver): Promise<string[]> {
  const names = new Set<string>();
  const prefix = REPOSITORIES_ROOT.length + 1;
  try {
    await driver.walk(REPOSITORIES_ROOT, (info) => {
      if (!info.isDir) return;
      const base = info.path.slice(info.path.lastIndexOf("/") + 1);
      if (base === "_manifests" || base === "_layers") {
        names.add(info.path.slice(prefix, -(base.length + 1)));
        return "skip";
      }
      if (base.startsWith("_")) return "skip";
    });
  } catch (err) {
    if (!isPathNotFound(err)) throw err;
  }
  return [...names].sort(compareStrings);
}

export function listRevisionLinks(driver: StorageDriver, repository: string): Promise<LinkEntry[]> {
  return listLinks(driver, manifestRevisionsPath(repository));
}

export function listLayerLinks(driver: StorageDriver, repository: string): Promise<LinkEntry[]> {
  return listLinks(driver, layersRootPath(repository));
}

async function listLinks(driver: StorageDriver, root: string): Promise<LinkEntry[]> {
  const files: string[] = [];
  const modTimes = new Map<string, Date>();
  try {
    await driver.walk(root, (info) => {
      if (info.isDir) return;
      const parts = info.path.slice(root.length + 1).split("/");
      if (parts.length === 3 && parts[2] === "link") {
        files.push(info.path);
        modTimes.set(info.path, info.modTime);
      }
    });
  } catch (err) {
    if (isPathNotFound(err)) return [];
    throw err;
  }
  const links = await mapConcurrent(files, STORAGE_CONCURRENCY, async (file): Promise<LinkEntry | undefined> => {
    const [algorithm, hex] = file.slice(root.length + 1).split("/") as [string, string];
    let content: string;
    try {
      content = (await driver.getContent(file)).toString("utf8").trim();
    } catch (err) {
      if (isPathNotFound(err)) return undefined; // removed since the walk saw it
      throw err;
    }
    return {
      dir: file.slice(0, -"/link".length),
      digest: Digest.tryParse(`${algorithm}:${hex}`),
      target: Digest.tryParse(content),
      modTime: modTimes.get(file)!,
    };
  });
  return links.filter((link): link is LinkEntry => link !== undefined);
}

export interface RepositoryTags {
  /** Every tag name (a directory under `_manifests/tags`), sorted. */
  names: string[];
  /** Tag → the manifest its `current/link` names. Tags without a current link are not tags. */
  current: Map<string, Digest>;
  /** Tags whose current link exists but does not hold a supported digest. */
  unreadable: string[];
}

export async function readTags(driver: StorageDriver, repository: string): Promise<RepositoryTags> {
  const result: RepositoryTags = { names: [], current: new Map(), unreadable: [] };
  try {
    result.names = (await driver.list(tagsRootPath(repository)))
      .map((child) => child.slice(child.lastIndexOf("/") + 1))
      .sort(compareStrings);
  } catch (err) {
    if (isPathNotFound(err)) return result;
    throw err;
  }
  const contents = await mapConcurrent(result.names, STORAGE_CONCURRENCY, async (tag) => {
    try {
      return await driver.getContent(tagCurrentLinkPath(repository, tag));
    } catch (err) {
      if (isPathNotFound(err)) return undefined; // a tag without a current link is no tag
      throw err;
    }
  });
  for (const [i, tag] of result.names.entries()) {
    const content = contents[i];
    if (content === undefined) continue;
    const digest = Digest.tryParse(content.toString("utf8").trim());
    if (digest) result.current.set(tag, digest);
    else result.unreadable.push(tag);
  }
  return result;
}

/** A `data` file under `blobs/`. */
export interface StoredBlob {
  /** `blobs/<alg>/<hex[0:2]>/<hex>`: what deleting the blob removes. */
  dir: string;
  /** Undefined when the path is not a blob of a digest berth supports: such files are kept. */
  digest: Digest | undefined;
  size: number;
  /** When the data was written, by the storage's clock. */
  modTime: Date;
}

/** Visits every `data` file under `blobs/`, in lexical order. Nothing is visited when `blobs/` is absent. */
export async function walkBlobs(driver: StorageDriver, visit: (blob: StoredBlob) => void): Promise<void> {
  try {
    await driver.walk(BLOBS_ROOT, (info) => {
      if (info.isDir || !info.path.endsWith("/data")) return;
      const parts = info.path.slice(BLOBS_ROOT.length + 1).split("/");
      const dir = info.path.slice(0, -"/data".length);
      let digest: Digest | undefined;
      if (parts.length === 4) {
        const [algorithm, prefix, hex] = parts as [string, string, string];
        const parsed = Digest.tryParse(`${algorithm}:${hex}`);
        if (parsed && parsed.hex.slice(0, 2) === prefix) digest = parsed;
      }
      visit({ dir, digest, size: info.size, modTime: info.modTime });
    });
  } catch (err) {
    if (!isPathNotFound(err)) throw err;
  }
}
