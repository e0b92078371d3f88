import type { CacheStats } from "../cache/blob-descriptor-cache.js";
import type { EndpointStatus } from "../notifications/endpoint-dispatcher.js";
import type { ProxyStats } from "../proxy/proxy-stats.js";
import type { OnlineGcStats } from "../gc/online/gc-stats.js";

/**
 * Counters the registry's components keep of their own, read when metrics are scraped
 * (src/metrics/). Each part is absent when its component is not configured. Reading them costs a
 * few object copies; keeping them, an increment where the component already does the work.
 */
export interface RegistryStats {
  /** The blob descriptor cache (storage.cache.blobdescriptor). */
  cache?: CacheStats;
  /** Each notification endpoint's queue and deliveries. */
  notifications?: EndpointStatus[];
  /** The pull-through cache. */
  proxy?: ProxyStats;
  /** Online garbage collection: this node's runs, rescues and refusals. */
  gc?: OnlineGcStats;
}
