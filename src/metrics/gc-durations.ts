import { PerformanceObserver, constants, type PerformanceEntry } from "node:perf_hooks";
import type { Registry } from "prom-client";
import { FastHistogram, type HistogramChild } from "./fast-metrics.js";

/** prom-client's default GC buckets (lib/metrics/gc.js), so dashboards built on them keep working. */
export const GC_DURATION_BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5];

/** prom-client's `kind` label values, by Node's GC kind constant. */
const KIND_NAMES: ReadonlyArray<readonly [number, string]> = [
  [constants.NODE_PERFORMANCE_GC_MAJOR, "major"],
  [constants.NODE_PERFORMANCE_GC_MINOR, "minor"],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, "incremental"],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, "weakcb"],
];

/**
 * `nodejs_gc_duration_seconds{kind}`, as prom-client's default collector names and buckets it,
 * observed into a FastHistogram by this module's own PerformanceObserver (prom-client's is never
 * started: see default-collectors.ts). Unlike prom-client's, which reads only the first entry of
 * each batch the observer delivers, every GC is counted; the kind is read from `entry.detail`.
 *
 * Node itself still builds each GC entry with deprecated accessors (DEP0152) while any `gc`
 * observer is active; that per-GC cost is Node's and the same for any observer.
 * Returns a function that stops observing (idempotent).
 */
export function observeGcDurations(register: Registry): () => void {
  const histogram = new FastHistogram({
    name: "nodejs_gc_duration_seconds",
    help: "Garbage collection duration by kind, one of major, minor, incremental or weakcb.",
    labelNames: ["kind"],
    buckets: GC_DURATION_BUCKETS,
    registers: [register],
  });
  // Resolved on the first GC of each kind, then indexed by the kind constant.
  const byKind: (HistogramChild | undefined)[] = [];
  const names = new Map(KIND_NAMES);
  const childOf = (kind: number): HistogramChild => (byKind[kind] ??= histogram.labels(names.get(kind) ?? String(kind)));

  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) childOf(gcKind(entry)).observe(entry.duration / 1000);
  });
  observer.observe({ entryTypes: ["gc"] });
  return () => observer.disconnect();
}

function gcKind(entry: PerformanceEntry): number {
  // Node ≥ 16 puts the kind in `detail` (@types/node 20 does not declare it on PerformanceEntry).
  const detail = (entry as PerformanceEntry & { detail?: { kind?: unknown } | null }).detail;
  return typeof detail?.kind === "number" ? detail.kind : -1;
}
