import { AggregatorRegistry, Registry } from "prom-client";
import type { DebugConfig } from "../config/config.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import type { Registry as RegistryAPI } from "../registry/registry.js";
import type { DebugRoute } from "../server/debug-route.js";
import type { RequestInterceptor } from "../server/request-interceptor.js";
import { registerDefaultCollectors } from "./default-collectors.js";
import { FastHistogram } from "./fast-metrics.js";
import { observeGcDurations } from "./gc-durations.js";
import { HttpMetrics } from "./http-metrics.js";
import { MeteredDriver, TIMED_ACTIONS, distributionDriverName, type ActionTimer, type TimedAction } from "./metered-driver.js";
import { registerRegistryCollectors } from "./registry-collectors.js";
import { RepositoryBytes } from "./repository-bytes.js";

/** prom-client's default buckets, which are Go's prometheus.DefBuckets (distribution's timers). */
const STORAGE_ACTION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Everything `http.debug.prometheus.enabled` installs. This module (and prom-client) is imported
 * only then (src/cli/compose.ts): a registry without metrics has no interceptor, no wrapping driver
 * and no collectors.
 */
export class PrometheusMetrics {
  readonly register = new Registry();
  readonly interceptor: RequestInterceptor;
  private readonly storageAction: FastHistogram;

  /**
   * `worker`: this process is one of `--workers N`; the primary serves the page, aggregating
   * every worker's registry over the cluster channel (prom-client's AggregatorRegistry).
   */
  constructor(config: DebugConfig["prometheus"], worker: boolean) {
    // prom-client's default metrics, then the GC histogram where collectDefaultMetrics put its own.
    // Only when asked: with any GC PerformanceObserver, Node 20 builds an entry with deprecated
    // accessors for every GC and wakes the event loop to deliver it, which cost manifest GETs ~10%
    // of their throughput (docs/benchmarks.md).
    registerDefaultCollectors(this.register);
    if (config.gcDurations) observeGcDurations(this.register);
    this.storageAction = new FastHistogram({
      name: "registry_storage_action_seconds",
      help: "The number of seconds that the storage action takes",
      labelNames: ["driver", "action"],
      buckets: STORAGE_ACTION_BUCKETS,
      registers: [this.register],
    });
    this.interceptor = new HttpMetrics(this.register, config.repositories > 0 ? new RepositoryBytes(this.register, config.repositories) : undefined);
    if (worker) {
      AggregatorRegistry.setRegistries([this.register]);
      // Constructing one starts the worker's answering of the primary's requests.
      new AggregatorRegistry();
    }
  }

  /** The driver, timing what distribution's base driver times. */
  meterDriver(driver: StorageDriver): StorageDriver {
    const name = distributionDriverName(driver.name);
    const timers = {} as Record<TimedAction, ActionTimer>;
    for (const action of TIMED_ACTIONS) timers[action] = this.storageAction.labels(name, action);
    return new MeteredDriver(driver, timers);
  }

  /** Reads the registry's cache, notification and proxy counters at each scrape. */
  watch(registry: RegistryAPI): void {
    registerRegistryCollectors(this.register, () => registry.stats());
  }

  /** The Prometheus page for this process. */
  route(path: string): DebugRoute {
    return exposition(path, this.register.contentType, () => this.register.metrics());
  }
}

/** The page for `--workers N`, served by the primary: every worker's metrics, summed. */
export function aggregatedMetricsRoute(path: string): DebugRoute {
  const aggregator = new AggregatorRegistry();
  return exposition(path, aggregator.contentType, () => aggregator.clusterMetrics());
}

function exposition(path: string, contentType: string, render: () => Promise<string>): DebugRoute {
  return {
    path,
    async handle(_req, res) {
      const text = await render();
      res.writeHead(200, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(text), "Cache-Control": "no-store" });
      res.end(text);
    },
  };
}
