import type { StorageDriver } from "../driver/storage-driver.js";
import { deleteIfPresent, isPathNotFound, listOrEmpty } from "../driver/storage-driver.js";
import { RegistryError } from "../errcode/registry-error.js";
import { listLayerLinks, listRepositories, listRevisionLinks, isSoundLink } from "../gc/storage-scan.js";
import { manifestReferences } from "../gc/manifest-references.js";
import type { Logger } from "../log/logger.js";
import { Digest } from "../reference/digest.js";
import type { StorageRegistry } from "../registry/storage-registry.js";
import { blobDataPath, repositoryPath, uploadsRootPath } from "../storage/paths.js";
import type { ProxyMaintenance } from "./proxy-registry.js";
import type { PulledKind, PullRecords } from "./pull-records.js";
import type { Upstream } from "./upstream.js";

/** What one expiry run removed. */
export interface ExpiryResult {
  manifests: number;
  layerLinks: number;
  blobs: number;
  bytes: number;
  repositories: number;
}

const MAX_INTERVAL_MS = 15 * 60_000;
const MIN_INTERVAL_MS = 1_000;
/** After a fill for an upstream with a size limit, how soon the limit is enforced. */
const SIZE_CHECK_DELAY_MS = 1_000;

/** A cached blob of one repository, with when it was last pulled (directly or through a manifest). */
interface CachedBlob {
  repository: string;
  digest: Digest;
  pulledAt: number;
}

/**
 * Expiry of the pull-through cache, counted from the last pull: a manifest not pulled within its
 * upstream's TTL is removed with its tags, and a blob link when neither the blob itself nor any
 * manifest of its repository that is still cached has been pulled within it. The bytes of a blob
 * go only once no repository at all links it, so a layer shared by several cached images stays
 * while any of them is within its TTL, and a local repository that mounted a cached blob keeps it.
 * With a size limit, the least recently pulled blobs of the upstream's repositories go first until
 * it is met.
 *
 * Times are read from the pull records in storage, so a changed TTL applies to everything already
 * cached, a restart forgets nothing, and several nodes sharing storage agree; runs are idempotent,
 * so nodes running them at once only repeat each other's work. Deletion goes through the storage
 * layer itself: it does not need storage.delete.enabled, which governs clients.
 */
export class CacheExpiry implements ProxyMaintenance {
  private timer: NodeJS.Timeout | undefined;
  private sizeTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private runAgain = false;
  private stopped = false;
  private readonly intervalMs: number | undefined;

  constructor(
    private readonly driver: StorageDriver,
    private readonly local: StorageRegistry,
    /** Longest prefix first, as the registry resolves them. */
    private readonly upstreams: Upstream[],
    private readonly records: PullRecords,
    private readonly log: Logger,
  ) {
    const ttls = upstreams.map((u) => u.config.ttlMs).filter((ttl) => ttl > 0);
    const sized = upstreams.some((u) => u.config.maxSizeBytes !== undefined);
    // A quarter of the shortest TTL: nothing outlives its TTL by much more than that.
    if (ttls.length > 0) this.intervalMs = Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, Math.min(...ttls) / 4));
    else if (sized) this.intervalMs = MAX_INTERVAL_MS;
  }

  start(): void {
    if (this.intervalMs === undefined) return;
    // The first run at a random point of the first interval, so restarted nodes do not run in step.
    this.schedule(Math.random() * this.intervalMs);
  }

  /** A fill grew the cache: enforce size limits soon rather than at the next interval. */
  grew(upstream: Upstream): void {
    if (upstream.config.maxSizeBytes === undefined || this.sizeTimer || this.stopped) return;
    this.sizeTimer = setTimeout(() => {
      this.sizeTimer = undefined;
      void this.runGuarded();
    }, SIZE_CHECK_DELAY_MS);
    this.sizeTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.sizeTimer) clearTimeout(this.sizeTimer);
    await this.running;
  }

  /** One run now (also what the timer does). */
  async run(now = Date.now()): Promise<ExpiryResult> {
    const result: ExpiryResult = { manifests: 0, layerLinks: 0, blobs: 0, bytes: 0, repositories: 0 };
    const unlinked = new Set<string>();
    const byUpstream = new Map<Upstream, string[]>();
    for (const repository of await listRepositories(this.driver)) {
      const upstream = this.upstreams.find((u) => u.serves(repository));
      if (!upstream) continue;
      const repositories = byUpstream.get(upstream);
      if (repositories) repositories.push(repository);
      else byUpstream.set(upstream, [repository]);
    }
    for (const [upstream, repositories] of byUpstream) {
      const remaining: CachedBlob[] = [];
      /** Repositories that keep a manifest or a blob after this run. */
      const occupied = new Set<string>();
      for (const repository of repositories) {
        const kept = await this.expireRepository(repository, upstream.config.ttlMs, now, result, unlinked);
        remaining.push(...kept.blobs);
        if (kept.manifests > 0) occupied.add(repository);
      }
      const evicted = upstream.config.maxSizeBytes === undefined ? new Set<CachedBlob>() : await this.enforceSize(upstream.config.maxSizeBytes, remaining, result, unlinked);
      for (const blob of remaining) if (!evicted.has(blob)) occupied.add(blob.repository);
      // Storage has the last word (another node may have cached something meanwhile).
      for (const repository of repositories) if (!occupied.has(repository) && (await this.removeIfEmpty(repository))) result.repositories++;
    }
    await this.deleteUnlinkedBlobs(unlinked, result);
    if (result.manifests + result.layerLinks + result.blobs > 0) this.log.info({ ...result }, "pull-through cache expiry removed content");
    return result;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.runGuarded().finally(() => this.schedule(this.intervalMs ?? MAX_INTERVAL_MS));
    }, delayMs);
    this.timer.unref();
  }

  /**
   * One run at a time. A run asked for while one is in progress happens after it: the one in
   * progress may have listed storage before what prompted the request (a fill that grew the cache).
   */
  private runGuarded(): Promise<void> {
    if (this.running) {
      this.runAgain = true;
      return this.running;
    }
    this.running = this.run()
      .then(() => undefined)
      .catch((err: unknown) => this.log.error({ err }, "pull-through cache expiry failed; it runs again later"))
      .finally(() => {
        this.running = undefined;
        if (this.runAgain && !this.stopped) {
          this.runAgain = false;
          void this.runGuarded();
        }
      });
    return this.running;
  }

  /**
   * Removes what a repository has not served within `ttlMs`; returns the blobs it keeps, each with
   * its last pull, and how many manifests it keeps. Content found without a record (cached before records existed, or a record
   * lost) is recorded as pulled now: it gets a whole TTL, never an immediate deletion.
   */
  private async expireRepository(
    repository: string,
    ttlMs: number,
    now: number,
    result: ExpiryResult,
    unlinked: Set<string>,
  ): Promise<{ blobs: CachedBlob[]; manifests: number }> {
    const repo = this.local.repository(repository);
    const revisions = (await listRevisionLinks(this.driver, repository)).filter(isSoundLink);
    const layers = (await listLayerLinks(this.driver, repository)).filter(isSoundLink);
    const manifestRecords = await this.records.all(repository, "manifests");
    const blobRecords = await this.records.all(repository, "blobs");
    const pulledAt = (kind: PulledKind, digest: Digest): number => {
      const record = (kind === "manifests" ? manifestRecords : blobRecords).get(digest.toString());
      if (record) return record.pulledAt;
      this.records.touch(repository, kind, digest);
      return now;
    };
    const expired = (time: number): boolean => ttlMs > 0 && now - time >= ttlMs;

    // Manifests still within the TTL, and what they keep: an index keeps its children.
    const manifestTimes = new Map(revisions.map((link) => [link.digest.toString(), pulledAt("manifests", link.digest)]));
    const live = new Map<string, number>();
    const blobTimes = new Map<string, number>();
    const visit = async (digest: string, time: number): Promise<void> => {
      if ((live.get(digest) ?? -1) >= time || !manifestTimes.has(digest)) return;
      live.set(digest, time);
      let references;
      try {
        references = manifestReferences(await this.driver.getContent(blobDataPath(Digest.parse(digest))));
      } catch {
        return; // unreadable: it keeps nothing; expiry only ever removes what it can account for
      }
      for (const blob of references.blobs) blobTimes.set(blob, Math.max(blobTimes.get(blob) ?? 0, time));
      for (const child of references.children) await visit(child, time);
    };
    for (const [digest, time] of manifestTimes) if (!expired(time)) await visit(digest, time);

    for (const link of revisions) {
      const key = link.digest.toString();
      if (live.has(key)) continue;
      await this.ignoreGone(() => repo.removeManifest(link.digest));
      await this.records.remove(repository, "manifests", link.digest);
      unlinked.add(key);
      result.manifests++;
    }
    const kept: CachedBlob[] = [];
    for (const link of layers) {
      const key = link.digest.toString();
      const time = Math.max(pulledAt("blobs", link.digest), blobTimes.get(key) ?? 0);
      if (!expired(time)) {
        kept.push({ repository, digest: link.digest, pulledAt: time });
        continue;
      }
      await this.unlinkLayer(repository, link.digest, unlinked);
      result.layerLinks++;
    }
    return { blobs: kept, manifests: live.size };
  }

  /**
   * Unlinks the least recently pulled blobs of an upstream until the bytes they hold fit
   * `maxBytes`; returns the ones it unlinked.
   */
  private async enforceSize(maxBytes: number, blobs: CachedBlob[], result: ExpiryResult, unlinked: Set<string>): Promise<Set<CachedBlob>> {
    const evicted = new Set<CachedBlob>();
    const sizes = new Map<string, number>();
    const links = new Map<string, number>();
    for (const blob of blobs) {
      const key = blob.digest.toString();
      links.set(key, (links.get(key) ?? 0) + 1);
      if (sizes.has(key)) continue;
      try {
        sizes.set(key, (await this.driver.stat(blobDataPath(blob.digest))).size);
      } catch (err) {
        if (!isPathNotFound(err)) throw err;
        sizes.set(key, 0);
      }
    }
    let total = [...sizes.values()].reduce((a, b) => a + b, 0);
    for (const blob of [...blobs].sort((a, b) => a.pulledAt - b.pulledAt)) {
      if (total <= maxBytes) break;
      const key = blob.digest.toString();
      await this.unlinkLayer(blob.repository, blob.digest, unlinked);
      evicted.add(blob);
      result.layerLinks++;
      const left = (links.get(key) ?? 1) - 1;
      links.set(key, left);
      if (left === 0) total -= sizes.get(key) ?? 0;
    }
    return evicted;
  }

  private async unlinkLayer(repository: string, digest: Digest, unlinked: Set<string>): Promise<void> {
    await this.ignoreGone(() => this.local.repository(repository).unlinkBlob(digest));
    await this.records.remove(repository, "blobs", digest);
    unlinked.add(digest.toString());
  }

  /**
   * Deletes the bytes of what was unlinked, unless a repository (mirrored or local) still links
   * it: read after the unlinking, from storage, so links written by any node count.
   */
  private async deleteUnlinkedBlobs(unlinked: Set<string>, result: ExpiryResult): Promise<void> {
    if (unlinked.size === 0) return;
    const linked = new Set<string>();
    for (const repository of await listRepositories(this.driver)) {
      for (const link of await listLayerLinks(this.driver, repository)) if (link.target) linked.add(link.target.toString());
      for (const link of await listRevisionLinks(this.driver, repository)) if (link.target) linked.add(link.target.toString());
    }
    for (const key of unlinked) {
      if (linked.has(key)) continue;
      const digest = Digest.parse(key);
      let size = 0;
      try {
        size = (await this.driver.stat(blobDataPath(digest))).size;
        await this.local.deleteBlobData(digest);
      } catch (err) {
        if (isPathNotFound(err)) continue;
        throw err;
      }
      result.blobs++;
      result.bytes += size;
    }
  }

  /** A mirrored repository left with no manifests, layers or uploads disappears from the catalog. */
  private async removeIfEmpty(repository: string): Promise<boolean> {
    const [revisions, layers] = await Promise.all([listRevisionLinks(this.driver, repository), listLayerLinks(this.driver, repository)]);
    if (revisions.length > 0 || layers.length > 0) return false;
    if ((await listOrEmpty(this.driver, uploadsRootPath(repository))).length > 0) return false;
    await deleteIfPresent(this.driver, repositoryPath(repository));
    return true;
  }

  /** Another node (or a client) removed it first: the goal is reached all the same. */
  private async ignoreGone(work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
    } catch (err) {
      if (err instanceof RegistryError && (err.code === "MANIFEST_UNKNOWN" || err.code === "BLOB_UNKNOWN")) return;
      throw err;
    }
  }
}
