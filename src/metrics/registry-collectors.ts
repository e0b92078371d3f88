import { STATUS_CODES } from "node:http";
import { Counter, Gauge, type Registry } from "prom-client";
import type { RegistryStats } from "../registry/registry-stats.js";

/**
 * The cache, notification and proxy metrics, read from the registry's own counters
 * (Registry.stats()) when Prometheus scrapes: nothing is counted twice on the request path.
 * Names and labels are distribution's: 2.8's registry_storage_cache_total{type} and 3.x's
 * registry_storage_cache_{requests,hits,errors}_total, 3.x's registry_notifications_* and
 * registry_proxy_*. berth adds what distribution shows only in expvar: dropped events and the
 * last delivery error per endpoint.
 */
export function registerRegistryCollectors(register: Registry, stats: () => RegistryStats): void {
  const registers = [register];
  // One read per scrape, shared by every collector below (they run one after the other).
  let snapshot: RegistryStats = {};
  let takenAt = -1;
  const current = (): RegistryStats => {
    const now = performance.now();
    if (now - takenAt > 100) {
      snapshot = stats();
      takenAt = now;
    }
    return snapshot;
  };

  // --- blob descriptor cache
  new Counter({
    name: "registry_storage_cache_total",
    help: "The number of cache request received",
    labelNames: ["type"],
    registers,
    collect() {
      const cache = current().cache;
      this.reset();
      if (cache === undefined) return;
      this.labels("Request").inc(cache.requests);
      this.labels("Hit").inc(cache.hits);
      this.labels("Miss").inc(cache.misses);
      if (cache.errors > 0) this.labels("Error").inc(cache.errors);
    },
  });
  const cacheCounter = (name: string, help: string, read: (cache: NonNullable<RegistryStats["cache"]>) => number): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        const cache = current().cache;
        this.reset();
        if (cache !== undefined) this.inc(read(cache));
      },
    });
  };
  cacheCounter("registry_storage_cache_requests_total", "The number of cache request received", (c) => c.requests);
  cacheCounter("registry_storage_cache_hits_total", "The number of cache request received", (c) => c.hits);
  cacheCounter("registry_storage_cache_errors_total", "The number of cache request errors", (c) => c.errors);

  // --- notifications
  new Counter({
    name: "registry_notifications_events_total",
    help: "The number of total events",
    labelNames: ["type", "endpoint"],
    registers,
    collect() {
      this.reset();
      for (const e of current().notifications ?? []) {
        this.labels("Events", e.name).inc(e.events);
        this.labels("Successes", e.name).inc(e.delivered);
        this.labels("Failures", e.name).inc(e.failures - e.errors);
        this.labels("Errors", e.name).inc(e.errors);
        this.labels("Dropped", e.name).inc(e.dropped);
      }
    },
  });
  new Gauge({
    name: "registry_notifications_pending_total",
    help: "The gauge of pending events in queue",
    labelNames: ["endpoint"],
    registers,
    collect() {
      this.reset();
      for (const e of current().notifications ?? []) this.labels(e.name).set(e.pending);
    },
  });
  new Counter({
    name: "registry_notifications_status_total",
    help: "The number of status code",
    labelNames: ["code", "endpoint"],
    registers,
    collect() {
      this.reset();
      for (const e of current().notifications ?? []) {
        for (const [status, count] of Object.entries(e.statuses)) this.labels(`${status} ${STATUS_CODES[Number(status)] ?? ""}`, e.name).inc(count);
      }
    },
  });
  new Gauge({
    name: "berth_notifications_last_error_timestamp_seconds",
    help: "When the endpoint's last failed delivery attempt ended, with its error as a label (absent before the first failure).",
    labelNames: ["endpoint", "error"],
    registers,
    collect() {
      this.reset();
      for (const e of current().notifications ?? []) {
        if (e.lastError !== undefined && e.lastErrorAt !== undefined) this.labels(e.name, e.lastError.slice(0, 200)).set(Date.parse(e.lastErrorAt) / 1000);
      }
    },
  });

  // --- pull-through cache
  const proxyCounter = (name: string, help: string, read: (c: NonNullable<RegistryStats["proxy"]>["blob"]) => number): void => {
    new Counter({
      name: `registry_proxy_${name}`,
      help,
      labelNames: ["type"],
      registers,
      collect() {
        const proxy = current().proxy;
        this.reset();
        if (proxy === undefined) return;
        this.labels("blob").inc(read(proxy.blob));
        this.labels("manifest").inc(read(proxy.manifest));
      },
    });
  };
  proxyCounter("requests_total", "The number of total incoming proxy request received", (c) => c.requests);
  proxyCounter("hits_total", "The number of total proxy request hits", (c) => c.hits);
  proxyCounter("misses_total", "The number of total proxy request misses", (c) => c.misses);
  proxyCounter("pulled_bytes_total", "The size of total bytes pulled from the upstream", (c) => c.pulledBytes);
  proxyCounter("pushed_bytes_total", "The size of total bytes pushed to the client", (c) => c.pushedBytes);

  // --- online garbage collection (berth's: distribution has none)
  new Counter({
    name: "registry_gc_runs_total",
    help: "Online garbage collections this node ran, by outcome (completed, nothing, dryrun, refused, failed)",
    labelNames: ["outcome"],
    registers,
    collect() {
      const gc = current().gc;
      this.reset();
      for (const [outcome, count] of Object.entries(gc?.runs ?? {})) this.labels(outcome).inc(count);
    },
  });
  const gcCounter = (name: string, help: string, read: (gc: NonNullable<RegistryStats["gc"]>) => number): void => {
    new Counter({
      name: `registry_gc_${name}`,
      help,
      registers,
      collect() {
        const gc = current().gc;
        this.reset();
        if (gc !== undefined) this.inc(read(gc));
      },
    });
  };
  gcCounter("blobs_deleted_total", "Blobs deleted by online collections this node ran", (gc) => gc.blobsDeleted);
  gcCounter("bytes_deleted_total", "Bytes of blobs deleted by online collections this node ran", (gc) => gc.bytesDeleted);
  gcCounter("manifests_deleted_total", "Untagged manifests deleted by online collections this node ran", (gc) => gc.manifestsDeleted);
  gcCounter("layer_links_removed_total", "Orphaned layer links removed by online collections this node ran", (gc) => gc.layerLinksRemoved);
  gcCounter("rescues_total", "Rescue markers this node wrote for requests that vouched for a collection candidate", (gc) => gc.rescues);
  gcCounter("refused_requests_total", "Vouching requests this node refused during a collection (fenced, or a doomed digest's wait ran out)", (gc) => gc.refusals);
  gcCounter("doomed_answers_total", "Requests this node answered as if a doomed digest were already gone", (gc) => gc.doomedAnswers);
  new Gauge({
    name: "registry_gc_last_duration_seconds",
    help: "How long the last online collection this node ran took",
    registers,
    collect() {
      const seconds = current().gc?.lastDurationSeconds;
      this.reset();
      if (seconds !== undefined) this.set(seconds);
    },
  });
}
