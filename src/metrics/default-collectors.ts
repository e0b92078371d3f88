import { createRequire } from "node:module";
import { collectDefaultMetrics, type Registry } from "prom-client";

/** A collector module of prom-client's (lib/metrics/*.js): registers its metrics on `register`. */
type DefaultCollector = (register: Registry, config: object) => void;

/** What collectDefaultMetrics passes when given no options. */
const DEFAULT_CONFIG = { eventLoopMonitoringPrecision: 10 };

/** Gauges named like counters, which promtool refuses; nodejs_active_{handles,requests,resources} (by type) hold the same numbers. */
const LEFT_OUT = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

const require = createRequire(import.meta.url);

/**
 * prom-client's default metrics (process_*, nodejs_*) except its GC collector, registered in
 * collectDefaultMetrics' order. collectDefaultMetrics cannot leave one out, and removing
 * nodejs_gc_duration_seconds afterwards would leave its PerformanceObserver running for nothing;
 * so each collector module is called here by the names prom-client lists
 * (collectDefaultMetrics.metricsList), which tracks whatever the pinned prom-client version has.
 * gc-durations.ts provides the GC histogram.
 */
export function registerDefaultCollectors(register: Registry): void {
  for (const name of collectDefaultMetrics.metricsList) {
    if (name === "gc") continue;
    const collector = require(`prom-client/lib/metrics/${name}.js`) as DefaultCollector;
    collector(register, DEFAULT_CONFIG);
  }
  for (const name of LEFT_OUT) register.removeSingleMetric(name);
}
