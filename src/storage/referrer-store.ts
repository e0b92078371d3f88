import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import { Digest, isAlgorithm } from "../reference/digest.js";
import { referrerLinkPath, referrersPath } from "./paths.js";

/**
 * The referrers index berth keeps beside distribution's layout: for each subject digest, a link per
 * manifest that names it as `subject`. Entries are hints: readers confirm each against the
 * repository's manifest revisions, so an entry left behind (by distribution deleting a manifest,
 * or a crash between two writes) is never served.
 */
export class ReferrerStore {
  constructor(
    private readonly driver: StorageDriver,
    private readonly repository: string,
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

  /** Candidate referrers of `subject`, in no particular order. */
  async candidates(subject: Digest): Promise<Digest[]> {
    const root = referrersPath(this.repository, subject);
    let algorithms: string[];
    try {
      algorithms = await this.driver.list(root);
    } catch (err) {
      if (isPathNotFound(err)) return [];
      throw err;
    }
    const found: Digest[] = [];
    for (const algorithmPath of algorithms) {
      const algorithm = algorithmPath.slice(algorithmPath.lastIndexOf("/") + 1);
      if (!isAlgorithm(algorithm)) continue;
      let entries: string[];
      try {
        entries = await this.driver.list(algorithmPath);
      } catch (err) {
        if (isPathNotFound(err)) continue;
        throw err;
      }
      for (const entry of entries) {
        const digest = Digest.tryParse(`${algorithm}:${entry.slice(entry.lastIndexOf("/") + 1)}`);
        if (digest) found.push(digest);
      }
    }
    return found;
  }
}
