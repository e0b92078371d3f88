import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import { Digest, type DigestAlgorithm } from "../reference/digest.js";
import { listDigests } from "./digest-listing.js";
import {
  manifestRevisionsPath,
  referrerLinkPath,
  referrersIndexedMarkerPath,
  referrersIndexedPath,
  referrersPath,
} from "./paths.js";

const ALGORITHMS: DigestAlgorithm[] = ["sha256", "sha512"];

/** Markers remembered as written; beyond this the oldest are forgotten (and written again when met). */
const REMEMBERED_MARKERS = 10_000;

/**
 * The `_indexed` markers this process wrote, so that putting a manifest again (a new tag for an
 * image already pushed) does not write its marker again: on an object store that is a PUT per
 * tag. Shared by every repository of a registry. A marker another node removed while remembered
 * here is harmless: its revision is then unmarked, and `unindexed()` indexes it again.
 */
export class WrittenMarkers {
  private readonly keys = new Set<string>();

  has(repository: string, revision: Digest): boolean {
    return this.keys.has(markerKey(repository, revision));
  }

  add(repository: string, revision: Digest): void {
    const key = markerKey(repository, revision);
    this.keys.delete(key);
    this.keys.add(key);
    if (this.keys.size > REMEMBERED_MARKERS) this.keys.delete(this.keys.values().next().value!);
  }

  forget(repository: string, revision: Digest): void {
    this.keys.delete(markerKey(repository, revision));
  }
}

function markerKey(repository: string, revision: Digest): string {
  return `${repository}@${revision.toString()}`;
}

/**
 * The referrers index berth keeps beside distribution's layout: for each subject digest, a link per
 * manifest that names it as `subject`. Entries are hints: readers confirm each against the
 * repository's manifest revisions, so an entry left behind (by distribution deleting a manifest,
 * or a crash between two writes) is never served.
 *
 * Coverage: `_referrers/_indexed/<alg>/<hex>` marks a revision whose referrer link (if it has a
 * subject) is written. A revision without a marker was stored by someone who does not keep this
 * index (distribution) or by a berth that stopped between two writes; `unindexed()` finds those
 * with two directory listings and no reads, so the repository can index them (reading each new
 * manifest once) before answering. Invariants every writer keeps:
 *   - the link is written before the marker (a marker never vouches for a missing link);
 *   - the marker is removed before the revision and its link (a crash leaves an unmarked
 *     revision, which is re-indexed, never a marked one without its link).
 * Stale markers and links of deleted revisions are harmless: readers check revisions first, and if
 * the same manifest comes back (a re-push through distribution) its old link and marker are still
 * true, since a digest's content never changes.
 */
export class ReferrerStore {
  constructor(
    private readonly driver: StorageDriver,
    private readonly repository: string,
    private readonly written: WrittenMarkers = new WrittenMarkers(),
  ) {}

  async add(subject: Digest, referrer: Digest): Promise<void> {
    await this.driver.putContent(referrerLinkPath(this.repository, subject, referrer), Buffer.from(referrer.toString()));
  }

  async remove(subject: Digest, referrer: Digest): Promise<void> {
    const link = referrerLinkPath(this.repository, subject, referrer);
    try {
      await this.driver.delete(link.slice(0, -"/link".length));
    } catch (err) {
      if (!isPathNotFound(err)) throw err;
    }
  }

  /** Records that the index covers `revision` (its referrer link, if any, is already written). */
  async markIndexed(revision: Digest): Promise<void> {
    if (this.written.has(this.repository, revision)) return;
    // Not durable: a marker lost in a crash only means that manifest is indexed again.
    await this.driver.putContent(referrersIndexedMarkerPath(this.repository, revision), Buffer.alloc(0), { durable: false });
    this.written.add(this.repository, revision);
  }

  /** Forgets that the index covers `revision`: first step of deleting it. */
  async unmark(revision: Digest): Promise<void> {
    this.written.forget(this.repository, revision);
    try {
      await this.driver.delete(referrersIndexedMarkerPath(this.repository, revision));
    } catch (err) {
      if (!isPathNotFound(err)) throw err;
    }
  }

  /**
   * Revisions of the repository the index does not cover: those under `_manifests/revisions`
   * without a marker. Two listings per algorithm; nothing is read. Sorted, so callers index in a
   * stable order.
   */
  async unindexed(): Promise<Digest[]> {
    const found: Digest[] = [];
    for (const algorithm of ALGORITHMS) {
      const revisions = await this.names(`${manifestRevisionsPath(this.repository)}/${algorithm}`);
      if (revisions.length === 0) continue;
      const marked = new Set(await this.names(referrersIndexedPath(this.repository, algorithm)));
      for (const hex of revisions) {
        if (marked.has(hex)) continue;
        const digest = Digest.tryParse(`${algorithm}:${hex}`);
        if (digest) found.push(digest);
      }
    }
    return found.sort((a, b) => (a.toString() < b.toString() ? -1 : a.toString() > b.toString() ? 1 : 0));
  }

  /** Candidate referrers of `subject`, in no particular order. */
  candidates(subject: Digest): Promise<Digest[]> {
    return listDigests(this.driver, referrersPath(this.repository, subject));
  }

  /** Base names of a directory's children; none when it does not exist. */
  private async names(path: string): Promise<string[]> {
    try {
      return (await this.driver.list(path)).map((child) => child.slice(child.lastIndexOf("/") + 1));
    } catch (err) {
      if (isPathNotFound(err)) return [];
      throw err;
    }
  }
}
