import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import { RegistryError } from "../errcode/registry-error.js";
import { Digest } from "../reference/digest.js";
import type { Logger } from "../log/logger.js";
import { mapConcurrent, STORAGE_CONCURRENCY } from "./map-concurrent.js";
import { tagCurrentLinkPath, tagIndexEntryLinkPath, tagPath, tagsRootPath } from "./paths.js";

/**
 * A repository's tags: `current/link` names the manifest a tag points to; `index/` keeps every
 * digest it ever pointed to (distribution's history, which its garbage collector reads).
 */
export class TagStore {
  constructor(
    private readonly driver: StorageDriver,
    private readonly repository: string,
    private readonly log: Logger,
  ) {}

  /** MANIFEST_UNKNOWN when the tag does not exist (or its link is unreadable). */
  async resolve(tag: string): Promise<Digest> {
    let content: Buffer;
    try {
      content = await this.driver.getContent(tagCurrentLinkPath(this.repository, tag));
    } catch (err) {
      if (isPathNotFound(err)) throw new RegistryError("MANIFEST_UNKNOWN", undefined, { tag });
      throw err;
    }
    const digest = Digest.tryParse(content.toString("utf8").trim());
    if (!digest) {
      this.log.warn({ repository: this.repository, tag }, "ignoring corrupt tag link");
      throw new RegistryError("MANIFEST_UNKNOWN", undefined, { tag });
    }
    return digest;
  }

  /** Points the tag at a manifest; the index entry is written first so history is never behind. */
  async tag(tag: string, digest: Digest): Promise<void> {
    const link = Buffer.from(digest.toString());
    await this.driver.putContent(tagIndexEntryLinkPath(this.repository, tag, digest), link);
    await this.driver.putContent(tagCurrentLinkPath(this.repository, tag), link);
  }

  /** MANIFEST_UNKNOWN when the tag does not exist. */
  async untag(tag: string): Promise<void> {
    try {
      await this.driver.delete(tagPath(this.repository, tag));
    } catch (err) {
      if (isPathNotFound(err)) throw new RegistryError("MANIFEST_UNKNOWN", undefined, { tag });
      throw err;
    }
  }

  /**
   * Every tag name, sorted lexically. Empty when the repository has none. A tag directory without
   * its `current/link` is left out: a crash in the middle of tagging (directories made, links not
   * yet written) or of untagging (a recursive delete) leaves one, and it is no tag (resolving it
   * answers MANIFEST_UNKNOWN). Costs one stat per tag.
   */
  async all(): Promise<string[]> {
    const names = await this.directoryNames();
    const present = await mapConcurrent(names, STORAGE_CONCURRENCY, (tag) =>
      answersFound(() => this.driver.stat(tagCurrentLinkPath(this.repository, tag), { fileOnly: true })),
    );
    return names.filter((_, i) => present[i]);
  }

  /** The names of the directories under `tags/`, sorted lexically; tags or remains of one. */
  private async directoryNames(): Promise<string[]> {
    let children: string[];
    try {
      children = await this.driver.list(tagsRootPath(this.repository));
    } catch (err) {
      if (isPathNotFound(err)) return [];
      throw err;
    }
    return children.map((child) => child.slice(child.lastIndexOf("/") + 1)).sort(compareStrings);
  }

  /** Tags whose current link names `digest`. */
  async tagsOf(digest: Digest): Promise<string[]> {
    // resolve() reads each current link, and skips the remains of a tag that has none.
    const tags = await this.directoryNames();
    const matches: string[] = [];
    for (const tag of tags) {
      try {
        if ((await this.resolve(tag)).equals(digest)) matches.push(tag);
      } catch (err) {
        if (!(err instanceof RegistryError)) throw err;
      }
    }
    return matches;
  }
}

/** True when `stat` finds a file, false when the path is not found; other failures propagate. */
async function answersFound(stat: () => Promise<{ isDir: boolean }>): Promise<boolean> {
  try {
    return !(await stat()).isDir;
  } catch (err) {
    if (isPathNotFound(err)) return false;
    throw err;
  }
}

/** Code-unit order, as distribution and the spec's "lexical order" mean it (not locale order). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
