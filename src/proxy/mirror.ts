import type { ProxyConfig } from "../config/config.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import type { Logger } from "../log/logger.js";
import type { StorageRegistry } from "../registry/storage-registry.js";
import type { StoredManifest } from "../storage/manifest-store.js";
import type { Digest } from "../reference/digest.js";
import { BlobFills } from "./blob-fill.js";
import { CacheExpiry } from "./cache-expiry.js";
import { ProxyRegistry } from "./proxy-registry.js";
import { ProxyCounters } from "./proxy-stats.js";
import { PullRecords } from "./pull-records.js";
import { SingleFlight } from "./single-flight.js";
import { Upstream } from "./upstream.js";
import type { UpstreamExchangeObserver } from "./upstream-client.js";

const HOUR_MS = 3_600_000;

/**
 * The pull-through cache over a registry kept in storage: its upstreams, the bookkeeping of
 * pulls in that storage, and the expiry that reads it (none of either when read-only).
 */
export function createMirror(local: StorageRegistry, driver: StorageDriver, config: ProxyConfig, readOnly: boolean, log: Logger, observer?: UpstreamExchangeObserver): ProxyRegistry {
  const upstreams = config.upstreams.map((upstream) => new Upstream(upstream, log, observer));
  // A tenth of the shortest TTL (at most an hour): the resolution of "last pulled".
  const ttls = config.upstreams.map((u) => u.ttlMs).filter((ttl) => ttl > 0);
  const resolutionMs = Math.min(HOUR_MS, ...ttls.map((ttl) => ttl / 10));
  const records = new PullRecords(driver, resolutionMs, log, readOnly);
  const expiry = new CacheExpiry(driver, local, upstreams, records, log);
  const maintenance = readOnly ? { start: () => undefined, stop: () => Promise.resolve() } : expiry;
  const shared = {
    fills: new BlobFills(),
    records,
    stats: new ProxyCounters(),
    manifestFetches: new SingleFlight<StoredManifest>(),
    storingManifests: new Map<string, StoredManifest>(),
    tagChecks: new SingleFlight<Digest | undefined>(),
    grew: (upstream: Upstream) => expiry.grew(upstream),
    log,
  };
  return new ProxyRegistry(local, upstreams, shared, maintenance, log);
}
