import type { StorageDriver } from "../driver/storage-driver.js";
import { deleteIfPresent, isPathNotFound } from "../driver/storage-driver.js";
import { RegistryError } from "../errcode/registry-error.js";
import { Digest } from "../reference/digest.js";
import type { Logger } from "../log/logger.js";
import { tagCurrentLinkPath, tagIndexEntryLinkPath, tagIndexPath, tagPath, tagsRootPath } from "./paths.js";
import { availableParallelism } from "node:os";
import { mapConcurrent } from "./map-concurrent.js";

/**
 * A repository's tags: `current/link` names the manifest a tag points to; `index/` keeps every
 * digest it ever pointed to (distribution's history, which its garbage collector reads).
 *
 * A tag is listed when anything is stored under `tags/<tag>/`, and resolves when `current/link`
 * is there. So that the two agree whatever moment a kill strikes, without reading every tag's
 * link to list them, `current/link` is the first part of a tag written and the last removed; the
 * filesystem driver makes a new directory appear with its first file (populateNewDirectory) and
 * renames a directory away before removing it.
 */
export class TagStore {
  constructor(
    private readonly driver: StorageDriver,
    private readonly repository: string,
    private readonly log: Logger,
    /** Tags resolved at once by `tagsOf` (storage.tag.concurrencylimit). */
    private readonly lookupConcurrency = DEFAULT_TAG_LOOKUP_CONCURRENCY,
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

  /**
   * Points the tag at a manifest: `current/link` first, then the index entry. A kill in between
   * leaves a tag that resolves with its history one entry short. Nothing reads the index to find
   * what a tag points to: distribution's garbage collector (and src/gc/mark.ts) marks from current
   * links, and only deletes index entries, so a missing one costs nothing. The other order (as
   * distribution writes) left a listed tag that answered 404.
   */
  async tag(tag: string, digest: Digest): Promise<void> {
    const link = Buffer.from(digest.toString());
    await this.driver.putContent(tagCurrentLinkPath(this.repository, tag), link);
    await this.driver.putContent(tagIndexEntryLinkPath(this.repository, tag, digest), link);
  }

  /**
   * MANIFEST_UNKNOWN when the tag does not exist. The index goes first and `current/link` with the
   * rest after: an object store deletes key by key, and a kill between the keys must not leave
   * index entries listed without the link that makes the tag resolve.
   */
  async untag(tag: string): Promise<void> {
    try {
      await deleteIfPresent(this.driver, tagIndexPath(this.repository, tag));
      await this.driver.delete(tagPath(this.repository, tag));
    } catch (err) {
      if (isPathNotFound(err)) throw new RegistryError("MANIFEST_UNKNOWN", undefined, { tag });
      throw err;
    }
  }

  /** Every tag name, sorted lexically. Empty when the repository has none. */
  async all(): Promise<string[]> {
    let children: string[];
    try {
      children = await this.driver.list(tagsRootPath(this.repository));
    } catch (err) {
      if (isPathNotFound(err)) return [];
      throw err;
    }
    return children.map((child) => child.slice(child.lastIndexOf("/") + 1)).sort(compareStrings);
  }

  /**
   * Tags whose current link names `digest`, sorted: every tag's link is read, `lookupConcurrency`
   * at a time (distribution's tag lookup when a manifest is deleted by digest).
   */
  async tagsOf(digest: Digest): Promise<string[]> {
    const tags = await this.all();
    const found = await mapConcurrent(tags, this.lookupConcurrency, async (tag) => {
      try {
        return (await this.resolve(tag)).equals(digest) ? tag : undefined;
      } catch (err) {
        if (!(err instanceof RegistryError)) throw err;
        return undefined;
      }
    });
    return found.filter((tag): tag is string => tag !== undefined);
  }
}

/** distribution's default for storage.tag.concurrencylimit: GOMAXPROCS, the number of CPUs. */
export const DEFAULT_TAG_LOOKUP_CONCURRENCY = availableParallelism();

/** Code-unit order, as distribution and the spec's "lexical order" mean it (not locale order). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
