import type { StorageDriver } from "../driver/storage-driver.js";
import { deleteIfPresent, isPathNotFound } from "../driver/storage-driver.js";
import type { Logger } from "../log/logger.js";
import type { Digest } from "../reference/digest.js";
import { listDigests } from "../storage/digest-listing.js";
import { proxyPullRecordPath, proxyPullRecordsPath } from "../storage/paths.js";

export type PulledKind = "manifests" | "blobs";

/** Writes remembered per process before the map is emptied (it only spares storage writes). */
const MAX_REMEMBERED = 100_000;

/**
 * When each cached manifest and blob of a mirrored repository was last pulled, kept in storage so
 * that every node sharing it sees the same bookkeeping and a restart loses none of it. A record
 * holds the time as RFC 3339 text.
 *
 * A process rewrites a record only when it last wrote it more than `resolutionMs` ago:
 * expiry counts from the last pull with that resolution, and a busy mirror writes each record at
 * most once per interval per node rather than on every pull. (Deciding from the stored time would
 * cost a read per pull.)
 */
export class PullRecords {
  /** When this process last wrote each record, epoch milliseconds. */
  private readonly known = new Map<string, number>();

  constructor(
    private readonly driver: StorageDriver,
    private readonly resolutionMs: number,
    private readonly log: Logger,
    /** A read-only registry records nothing (and expires nothing). */
    private readonly readOnly = false,
  ) {}

  /** Records a pull (at `now`). Never fails the pull: a lost record only makes expiry come sooner. */
  touch(repository: string, kind: PulledKind, digest: Digest, now = Date.now()): void {
    if (this.readOnly) return;
    const path = proxyPullRecordPath(repository, kind, digest);
    const last = this.known.get(path);
    if (last !== undefined && now - last < this.resolutionMs) return;
    if (this.known.size >= MAX_REMEMBERED) this.known.clear();
    this.known.set(path, now);
    this.driver.putContent(path, Buffer.from(new Date(now).toISOString()), { durable: false }).catch((err: unknown) => {
      this.known.delete(path);
      this.log.warn({ err, repository, digest: digest.toString() }, "could not record a pull for cache expiry");
    });
  }

  /** Every record of a repository's manifests or blobs: digest → last pull. */
  async all(repository: string, kind: PulledKind): Promise<Map<string, { digest: Digest; pulledAt: number }>> {
    const records = new Map<string, { digest: Digest; pulledAt: number }>();
    for (const digest of await listDigests(this.driver, proxyPullRecordsPath(repository, kind))) {
      const pulledAt = await this.read(proxyPullRecordPath(repository, kind, digest));
      if (pulledAt !== undefined) records.set(digest.toString(), { digest, pulledAt });
    }
    return records;
  }

  /** The last recorded pull, epoch milliseconds; undefined when none is recorded. */
  pulledAt(repository: string, kind: PulledKind, digest: Digest): Promise<number | undefined> {
    return this.read(proxyPullRecordPath(repository, kind, digest));
  }

  async remove(repository: string, kind: PulledKind, digest: Digest): Promise<void> {
    const path = proxyPullRecordPath(repository, kind, digest);
    this.known.delete(path);
    await deleteIfPresent(this.driver, path);
  }

  private async read(path: string): Promise<number | undefined> {
    try {
      const time = Date.parse((await this.driver.getContent(path)).toString("utf8").trim());
      return Number.isNaN(time) ? undefined : time;
    } catch (err) {
      if (isPathNotFound(err)) return undefined;
      throw err;
    }
  }
}
