/**
 * src/metrics/fast-metrics.ts renders exactly what prom-client's own Counter, Gauge and Histogram
 * render for the same updates (text page, getMetricsAsJSON, --workers aggregation), and the GC
 * histogram that replaces prom-client's collector is there, by kind.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { FastCounter, FastGauge, FastHistogram } from "../src/metrics/fast-metrics.js";
import { registerDefaultCollectors } from "../src/metrics/default-collectors.js";
import { observeGcDurations } from "../src/metrics/gc-durations.js";
import { PrometheusMetrics } from "../src/metrics/prometheus-metrics.js";

const SIZE_BUCKETS = Array.from({ length: 22 }, (_, i) => 1024 * 2 ** i);
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60];

/** The same metrics and updates, once on prom-client's classes and once on the fast ones. */
function populate(register: Registry, fast: boolean, seed: number): void {
  const registers = [register];
  const counterConfig = { name: "t_requests_total", help: "Requests \\ with \"quotes\"\nand a newline.", labelNames: ["handler", "code", "method"], registers };
  const gaugeConfig = { name: "t_in_flight", help: "In flight.", labelNames: ["handler"], registers };
  const durationConfig = { name: "t_duration_seconds", help: "Durations.", labelNames: ["handler", "method"], buckets: DURATION_BUCKETS, registers };
  const sizeConfig = { name: "t_size_bytes", help: "Sizes.", labelNames: ["handler"], buckets: SIZE_BUCKETS, registers };
  const plainConfig = { name: "t_upload_seconds", help: "Unlabelled.", buckets: [0.1, 1, 10], registers };
  const totalConfig = { name: "t_total", help: "Unlabelled counter.", registers };
  const untouchedConfig = { name: "t_untouched_bytes", help: "Children made, never updated.", labelNames: ["repository"], buckets: [1, 2], registers };

  const counter = fast ? new FastCounter(counterConfig) : new Counter(counterConfig);
  const gauge = fast ? new FastGauge(gaugeConfig) : new Gauge(gaugeConfig);
  const duration = fast ? new FastHistogram(durationConfig) : new Histogram(durationConfig);
  const size = fast ? new FastHistogram(sizeConfig) : new Histogram(sizeConfig);
  const plain = fast ? new FastHistogram(plainConfig) : new Histogram(plainConfig);
  const total = fast ? new FastCounter(totalConfig) : new Counter(totalConfig);
  const untouched = fast ? new FastHistogram(untouchedConfig) : new Histogram(untouchedConfig);
  untouched.labels("never");

  // Children resolved before any update, in another order than their first updates.
  const blobSize = size.labels("blob");
  const manifestSize = size.labels("manifest");
  for (const handler of ["base", "manifest", "blob"]) gauge.labels(handler).set(0);
  let x = seed;
  const random = (): number => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 500; i++) {
    const handler = i % 3 === 0 ? "manifest" : "blob";
    const method = i % 5 === 0 ? "head" : "get";
    gauge.labels(handler).inc();
    counter.labels(handler, i % 7 === 0 ? "404" : "200", method).inc();
    duration.labels(handler, method).observe(random() ** 4 * 80);
    (handler === "blob" ? blobSize : manifestSize).observe(Math.floor(random() ** 3 * 2 ** 32));
    gauge.labels(handler).dec();
    if (i % 50 === 0) plain.observe(random() * 20);
  }
  counter.labels("catalog", "200", "get").inc(0);
  duration.labels("tags", "get").observe(0.005);
  duration.labels("tags", "get").observe(60);
  total.inc(3);
  total.inc(0.5);
}

async function both(seed = 1): Promise<{ prom: Registry; fast: Registry }> {
  const prom = new Registry();
  const fast = new Registry();
  populate(prom, false, seed);
  populate(fast, true, seed);
  return { prom, fast };
}

describe("fast metrics render as prom-client's", () => {
  it("GET /metrics text is byte for byte prom-client's for the same updates", async () => {
    const { prom, fast } = await both();
    const expected = await prom.metrics();
    assert.ok(expected.includes('t_size_bytes_bucket{le="2147483648",handler="blob"}'), "the fixture reaches the last size bucket");
    assert.equal(await fast.metrics(), expected);
  });

  it("getMetricsAsJSON is prom-client's (what a --workers worker sends the primary)", async () => {
    const { prom, fast } = await both();
    assert.deepStrictEqual(JSON.parse(JSON.stringify(await fast.getMetricsAsJSON())), JSON.parse(JSON.stringify(await prom.getMetricsAsJSON())));
    assert.deepStrictEqual(await fast.getMetricsAsJSON(), await prom.getMetricsAsJSON());
  });

  it("--workers aggregation of two workers' series sums them as for prom-client's", async () => {
    const [a, b] = [await both(1), await both(2)];
    const wire = async (r: Registry): Promise<unknown> => JSON.parse(JSON.stringify(await r.getMetricsAsJSON())) as unknown;
    const expected = await AggregatorRegistry.aggregate([await wire(a.prom), await wire(b.prom)] as never).metrics();
    assert.equal(await AggregatorRegistry.aggregate([await wire(a.fast), await wire(b.fast)] as never).metrics(), expected);
  });

  it("reset() empties the page as prom-client's does, and cached children count again after it", async () => {
    const { prom, fast } = await both();
    prom.resetMetrics();
    fast.resetMetrics();
    assert.equal(await fast.metrics(), await prom.metrics());
    (prom.getSingleMetric("t_size_bytes") as Histogram).labels("blob").observe(5000);
    (fast.getSingleMetric("t_size_bytes") as unknown as FastHistogram).labels("blob").observe(5000);
    assert.equal(await fast.metrics(), await prom.metrics());
  });

  it("a counter refuses a negative or non-finite increment and a histogram a non-finite value", () => {
    const register = new Registry();
    const counter = new FastCounter({ name: "c_total", help: "c", labelNames: ["a"], registers: [register] });
    assert.throws(() => counter.labels("x").inc(-1), RangeError);
    assert.throws(() => counter.labels("x").inc(Number.NaN), RangeError);
    const histogram = new FastHistogram({ name: "h", help: "h", buckets: [1], registers: [register] });
    assert.throws(() => histogram.observe(Number.POSITIVE_INFINITY), TypeError);
    assert.throws(() => counter.labels("x", "y"), /label values/);
  });
});

describe("nodejs_gc_duration_seconds from berth's own observer", () => {
  it("counts GCs by kind (major, minor, ...) after an allocation burst", async () => {
    const register = new Registry();
    const stop = observeGcDurations(register);
    try {
      let text = "";
      for (let round = 0; round < 50 && !/nodejs_gc_duration_seconds_count\{kind="minor"\} [1-9]/.test(text); round++) {
        let keep: unknown[] = [];
        for (let i = 0; i < 200_000; i++) {
          keep.push({ i, s: `x${i}` });
          if (keep.length > 1000) keep = [];
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
        text = await register.metrics();
      }
      assert.match(text, /# TYPE nodejs_gc_duration_seconds histogram/);
      assert.match(text, /nodejs_gc_duration_seconds_bucket\{le="0.001",kind="minor"\} \d+/);
      assert.match(text, /nodejs_gc_duration_seconds_bucket\{le="\+Inf",kind="minor"\} [1-9]/);
      for (const line of text.split("\n").filter((l) => l.includes("kind="))) assert.match(line, /kind="(major|minor|incremental|weakcb)"/);
    } finally {
      stop();
    }
  });

  it("PrometheusMetrics has prom-client's default metrics, in its order, with berth's GC histogram in place of prom-client's", async () => {
    const reference = new Registry();
    collectDefaultMetrics({ register: reference });
    const left = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];
    const expected = reference.getMetricsAsArray().map((m) => m.name).filter((name) => !left.includes(name));

    const defaults = new Registry();
    registerDefaultCollectors(defaults);
    assert.deepEqual(
      defaults.getMetricsAsArray().map((m) => m.name),
      expected.filter((name) => name !== "nodejs_gc_duration_seconds"),
    );

    const metrics = new PrometheusMetrics({ enabled: true, path: "/metrics", repositories: 0, gcDurations: true }, false);
    const names = metrics.register.getMetricsAsArray().map((m) => m.name);
    assert.deepEqual(names.slice(0, expected.length), expected);
    assert.ok(metrics.register.getSingleMetric("nodejs_gc_duration_seconds") instanceof FastHistogram);
    // Off by default (http.debug.prometheus.gcdurations): no GC observer at all.
    const lean = new PrometheusMetrics({ enabled: true, path: "/metrics", repositories: 0, gcDurations: false }, false);
    assert.equal(lean.register.getSingleMetric("nodejs_gc_duration_seconds"), undefined);
  });
});
