import type { Metric, Registry } from "prom-client";

/**
 * Counters, gauges and histograms for the request path, rendered by prom-client's Registry.
 *
 * prom-client hashes the label object on every `inc()`/`observe()`, even on a child from
 * `labels(...)`; these do not. `labels(...)` resolves a child once (callers keep it), and a child
 * is a plain object of numbers that an update changes in place. prom-client's Registry (text page)
 * and AggregatorRegistry (`--workers`, from `get()` sent over the cluster channel) read them as
 * their own: `get()` and `getForPromString()` return what prom-client 15's Counter, Gauge and
 * Histogram return for the same updates, series in the order of their first update, so the page
 * is byte for byte the same (test/metrics-fast.test.ts compares them).
 *
 * Not safe to share between threads (nothing in Node is); an update never allocates.
 */

/** Label values by label name, in the order of the metric's label names (as prom-client keeps them). */
export type LabelSet = Record<string, string | number>;

export interface FastMetricConfig {
  name: string;
  help: string;
  /** Empty or absent: one series without labels, present (at 0) from the start, as in prom-client. */
  labelNames?: readonly string[];
  registers: readonly Registry[];
}

/** A series' place in its metric: it joins the page on its first update (and again after reset()). */
interface SeriesList<S> {
  list(series: S): void;
}

/** What every metric shares: children by label values, and the series that have been updated. */
abstract class FastMetric<S extends { listed: boolean; labels: LabelSet; clear(): void }> implements SeriesList<S> {
  abstract readonly type: "counter" | "gauge" | "histogram";
  /** How AggregatorRegistry combines the workers' series. */
  readonly aggregator = "sum";
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  private readonly children = new Map<string, S>();
  /** Updated series, in the order of their first update (prom-client's hash map order). */
  protected live: S[] = [];

  constructor(config: FastMetricConfig) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames ?? [];
  }

  /** Registers with each registry; called by subclasses once their fields exist. */
  protected register(registers: readonly Registry[]): void {
    if (this.labelNames.length === 0) this.list(this.labels());
    // prom-client's Registry reads only name, type, get() and getForPromString(); its typings
    // name its own classes.
    for (const registry of registers) registry.registerMetric(this as unknown as Metric);
  }

  /**
   * The child for these label values (one per label name, in order), created on first use and the
   * same object after. Keep it: this lookup is the cost the child exists to avoid.
   */
  labels(...values: string[]): S {
    if (values.length !== this.labelNames.length) throw new Error(`${this.name}: ${values.length} label values for labels [${this.labelNames.join(", ")}]`);
    const key = values.join("\u0000");
    let child = this.children.get(key);
    if (child === undefined) {
      const labels: LabelSet = {};
      for (let i = 0; i < values.length; i++) labels[this.labelNames[i]!] = values[i]!;
      child = this.createChild(labels);
      this.children.set(key, child);
    }
    return child;
  }

  list(series: S): void {
    series.listed = true;
    this.live.push(series);
  }

  /**
   * As prom-client's reset(): every series leaves the page until its next update; an unlabelled
   * counter or gauge stays, at 0 (prom-client's histogram drops even that). Children stay valid.
   */
  reset(): void {
    for (const child of this.children.values()) {
      child.clear();
      child.listed = false;
    }
    this.live = [];
    if (this.labelNames.length === 0 && this.type !== "histogram") this.list(this.labels());
  }

  protected abstract createChild(labels: LabelSet): S;
}

/** One counter series. */
export class CounterChild {
  value = 0;
  listed = false;

  constructor(
    readonly labels: LabelSet,
    private readonly metric: SeriesList<CounterChild>,
  ) {}

  /** Adds `by` (default 1); a negative or non-finite amount throws, as a counter only grows. */
  inc(by = 1): void {
    if (!(by >= 0 && by !== Infinity)) throw new RangeError(`counter increment must be finite and not negative: ${by}`);
    if (!this.listed) this.metric.list(this);
    this.value += by;
  }

  clear(): void {
    this.value = 0;
  }
}

export class FastCounter extends FastMetric<CounterChild> {
  readonly type = "counter";

  constructor(config: FastMetricConfig) {
    super(config);
    this.register(config.registers);
  }

  /** The unlabelled series' inc (a metric without label names). */
  inc(by?: number): void {
    this.labels().inc(by);
  }

  async get(): Promise<{ help: string; name: string; type: "counter"; values: { value: number; labels: LabelSet }[]; aggregator: "sum" }> {
    return { help: this.help, name: this.name, type: this.type, values: this.live.map(valueOf), aggregator: this.aggregator };
  }

  protected createChild(labels: LabelSet): CounterChild {
    return new CounterChild(labels, this);
  }
}

/** One gauge series. */
export class GaugeChild {
  value = 0;
  listed = false;

  constructor(
    readonly labels: LabelSet,
    private readonly metric: SeriesList<GaugeChild>,
  ) {}

  inc(by = 1): void {
    if (!this.listed) this.metric.list(this);
    this.value += by;
  }

  dec(by = 1): void {
    if (!this.listed) this.metric.list(this);
    this.value -= by;
  }

  set(value: number): void {
    if (!this.listed) this.metric.list(this);
    this.value = value;
  }

  clear(): void {
    this.value = 0;
  }
}

export class FastGauge extends FastMetric<GaugeChild> {
  readonly type = "gauge";

  constructor(config: FastMetricConfig) {
    super(config);
    this.register(config.registers);
  }

  async get(): Promise<{ help: string; name: string; type: "gauge"; values: { value: number; labels: LabelSet }[]; aggregator: "sum" }> {
    return { help: this.help, name: this.name, type: this.type, values: this.live.map(valueOf), aggregator: this.aggregator };
  }

  protected createChild(labels: LabelSet): GaugeChild {
    return new GaugeChild(labels, this);
  }
}

function valueOf(series: { value: number; labels: LabelSet }): { value: number; labels: LabelSet } {
  return { value: series.value, labels: series.labels };
}

/** One histogram series: a count per bucket (not cumulative; the page adds them up), sum and count. */
export class HistogramChild {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  listed = false;

  constructor(
    readonly labels: LabelSet,
    private readonly bounds: Float64Array,
    private readonly metric: SeriesList<HistogramChild>,
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  /** Counts `value` in the first bucket whose upper bound is ≥ it (above the last, only in +Inf). Non-finite throws. */
  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`histogram observation must be finite: ${value}`);
    if (!this.listed) this.metric.list(this);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) this.counts[i]! += 1;
    this.sum += value;
    this.count += 1;
  }

  clear(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** A sample as prom-client's Histogram hands it to the Registry's text renderer. */
interface PromStringSample {
  labels: LabelSet;
  sharedLabels: LabelSet;
  value: number;
  metricName: string;
  exemplar: null | undefined;
}

/** A sample as prom-client's Histogram.get() returns it (the series' labels after `le`). */
interface HistogramSample {
  value: number;
  metricName: string;
  exemplar: null | undefined;
  labels: LabelSet;
}

export class FastHistogram extends FastMetric<HistogramChild> {
  readonly type = "histogram";
  /** Upper bounds, ascending, without +Inf. */
  readonly buckets: readonly number[];
  private readonly bounds: Float64Array;

  constructor(config: FastMetricConfig & { buckets: readonly number[] }) {
    super(config);
    for (let i = 1; i < config.buckets.length; i++) {
      if (!(config.buckets[i]! > config.buckets[i - 1]!)) throw new Error(`${config.name}: buckets must ascend`);
    }
    if (this.labelNames.includes("le")) throw new Error(`${config.name}: le is the bucket label`);
    this.buckets = [...config.buckets];
    this.bounds = Float64Array.from(config.buckets);
    this.register(config.registers);
  }

  /** The unlabelled series' observe (a metric without label names). */
  observe(value: number): void {
    this.labels().observe(value);
  }

  /** For the text page: bucket samples carry the series' labels as shared labels, as prom-client's do. */
  async getForPromString(): Promise<{ name: string; help: string; type: "histogram"; values: PromStringSample[]; aggregator: "sum" }> {
    const values: PromStringSample[] = [];
    this.samples((le, value, metricName, exemplar, series) => values.push({ labels: le === undefined ? {} : { le }, sharedLabels: series, value, metricName, exemplar }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** For getMetricsAsJSON and `--workers` aggregation: each sample's labels are `le` (if any) then the series'. */
  async get(): Promise<{ name: string; help: string; type: "histogram"; values: HistogramSample[]; aggregator: "sum" }> {
    const values: HistogramSample[] = [];
    this.samples((le, value, metricName, exemplar, series) => values.push({ value, metricName, exemplar, labels: le === undefined ? { ...series } : { le, ...series } }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** Each series' cumulative buckets, +Inf, _sum and _count, in prom-client's order (exemplar null on buckets, absent on the rest). */
  private samples(emit: (le: number | "+Inf" | undefined, value: number, metricName: string, exemplar: null | undefined, series: LabelSet) => void): void {
    const bucket = `${this.name}_bucket`;
    const sum = `${this.name}_sum`;
    const count = `${this.name}_count`;
    for (const series of this.live) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += series.counts[i]!;
        emit(this.buckets[i]!, cumulative, bucket, null, series.labels);
      }
      emit("+Inf", series.count, bucket, null, series.labels);
      emit(undefined, series.sum, sum, undefined, series.labels);
      emit(undefined, series.count, count, undefined, series.labels);
    }
  }

  protected createChild(labels: LabelSet): HistogramChild {
    return new HistogramChild(labels, this.bounds, this);
  }
}
