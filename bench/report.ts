import type { ServerKind } from "./servers.js";
import type { Figure } from "./types.js";

export interface RunRecord {
  case: string;
  server: ServerKind;
  round: number;
  unit: string;
  ok: boolean;
  error?: string;
  value?: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Wall seconds of the timed part, as seen by the harness. */
  wallS?: number;
  serverCpuS?: number;
  /** VmHWM during the timed part (reset after setup), MiB. */
  serverPeakRssMiB?: number;
  /** VmHWM at the end of the untimed setup, MiB. */
  setupPeakRssMiB?: number;
  serverRssEndMiB?: number;
  /** Client CPU: this process (process.cpuUsage) plus reaped children (wrk, skopeo). */
  clientCpuS?: number;
  clientSelfCpuS?: number;
  clientChildCpuS?: number;
  /**
   * Machine-wide busy CPU during the timed part minus server and client CPU: other processes and
   * interrupt time. Large values flag a run disturbed by something else on the machine.
   */
  otherCpuS?: number;
  /** Cases with a baseline (BenchCase.baseline): the same workload measured the other way in this run. */
  baselineValue?: number;
  baselineP50Ms?: number;
  baselineP99Ms?: number;
  /** How the timed part's page cache was settled (cases with settlePageCache). */
  pageCache?: "dropped" | "synced";
  extra?: Record<string, unknown>;
}

export function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface CaseSummary {
  case: string;
  unit: string;
  higherIsBetter: boolean;
  latency: boolean;
  runs: Record<ServerKind, number>;
  failures: Record<ServerKind, number>;
  value: Record<ServerKind, number | undefined>;
  p50Ms: Record<ServerKind, number | undefined>;
  p99Ms: Record<ServerKind, number | undefined>;
  serverCpuS: Record<ServerKind, number | undefined>;
  serverPeakRssMiB: Record<ServerKind, number | undefined>;
  clientCpuS: Record<ServerKind, number | undefined>;
  otherCpuS: Record<ServerKind, number | undefined>;
  ratio?: number;
  p99Ratio?: number;
  /** The target of `ratio`, when the case has one. */
  target?: string;
  /** The case's further figures: medians per server kind and their ratio. */
  figures?: FigureSummary[];
  /** Cases with a baseline: what it is, the target of value/baseline, medians and median per-run ratios. */
  baselineLabel?: string;
  baselineTarget?: string;
  baseline?: Record<ServerKind, number | undefined>;
  baselineP99Ms?: Record<ServerKind, number | undefined>;
  /** Median over runs of value / baseline (each run pairs the two). */
  vsBaseline?: Record<ServerKind, number | undefined>;
  /** Median over runs of p99 / baseline p99. */
  p99VsBaseline?: Record<ServerKind, number | undefined>;
}

export interface FigureSummary {
  label: string;
  higherIsBetter: boolean;
  target?: string;
  value: Record<ServerKind, number | undefined>;
  ratio?: number;
}

function pick(records: RunRecord[], kind: ServerKind, f: (r: RunRecord) => number | undefined): number | undefined {
  return median(records.filter((r) => r.server === kind && r.ok).map(f).filter((x): x is number => x !== undefined));
}

export function summarize(
  records: RunRecord[],
  cases: { name: string; unit: string; higherIsBetter: boolean; latency?: boolean; baseline?: { label: string; target?: string }; target?: string; figures?: Figure[] }[],
): CaseSummary[] {
  const out: CaseSummary[] = [];
  for (const c of cases) {
    const rs = records.filter((r) => r.case === c.name);
    if (rs.length === 0) continue;
    const per = <T>(f: (k: ServerKind) => T): Record<ServerKind, T> => ({ berth: f("berth"), distribution: f("distribution") });
    const s: CaseSummary = {
      case: c.name,
      unit: c.unit,
      higherIsBetter: c.higherIsBetter,
      latency: c.latency ?? false,
      runs: per((k) => rs.filter((r) => r.server === k).length),
      failures: per((k) => rs.filter((r) => r.server === k && !r.ok).length),
      value: per((k) => pick(rs, k, (r) => r.value)),
      p50Ms: per((k) => pick(rs, k, (r) => r.p50Ms)),
      p99Ms: per((k) => pick(rs, k, (r) => r.p99Ms)),
      serverCpuS: per((k) => pick(rs, k, (r) => r.serverCpuS)),
      serverPeakRssMiB: per((k) => pick(rs, k, (r) => r.serverPeakRssMiB)),
      clientCpuS: per((k) => pick(rs, k, (r) => r.clientCpuS)),
      otherCpuS: per((k) => pick(rs, k, (r) => r.otherCpuS)),
    };
    if (s.value.berth !== undefined && s.value.distribution) s.ratio = s.value.berth / s.value.distribution;
    if (s.p99Ms.berth !== undefined && s.p99Ms.distribution) s.p99Ratio = s.p99Ms.berth / s.p99Ms.distribution;
    if (c.target !== undefined) s.target = c.target;
    if (c.figures) {
      s.figures = c.figures.map((f) => {
        const value = per((k) => pick(rs, k, (r) => (typeof r.extra?.[f.key] === "number" ? (r.extra[f.key] as number) : undefined)));
        const fs: FigureSummary = { label: f.label, higherIsBetter: f.higherIsBetter, target: f.target, value };
        if (value.berth !== undefined && value.distribution) fs.ratio = value.berth / value.distribution;
        return fs;
      });
    }
    if (c.baseline) {
      s.baselineLabel = c.baseline.label;
      s.baselineTarget = c.baseline.target;
      s.baseline = per((k) => pick(rs, k, (r) => r.baselineValue));
      s.baselineP99Ms = per((k) => pick(rs, k, (r) => r.baselineP99Ms));
      s.vsBaseline = per((k) => pick(rs, k, (r) => (r.value !== undefined && r.baselineValue ? r.value / r.baselineValue : undefined)));
      s.p99VsBaseline = per((k) => pick(rs, k, (r) => (r.p99Ms !== undefined && r.baselineP99Ms ? r.p99Ms / r.baselineP99Ms : undefined)));
    }
    out.push(s);
  }
  return out;
}

function fmt(x: number | undefined, digits?: number): string {
  if (x === undefined || Number.isNaN(x)) return "—";
  const d = digits ?? (Math.abs(x) >= 1000 ? 0 : Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

function table(header: string[], rows: string[][], rightAlignFrom = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    "| " + cells.map((c, i) => (i >= rightAlignFrom ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" | ") + " |";
  const sep = "|" + widths.map((w, i) => (i >= rightAlignFrom ? "-".repeat(w + 1) + ":" : "-".repeat(w + 2))).join("|") + "|";
  return [line(header), sep, ...rows.map(line)].join("\n");
}

/** Markdown tables of medians: performance (with ratios), then resources. */
export function formatSummary(summaries: CaseSummary[]): string {
  const perf = summaries.map((s) => {
    const fail = s.failures.berth || s.failures.distribution ? ` (failed: berth ${s.failures.berth}, dist ${s.failures.distribution})` : "";
    return [
      s.case + fail,
      `${s.unit}${s.higherIsBetter ? " ↑" : " ↓"}`,
      fmt(s.value.berth),
      fmt(s.value.distribution),
      fmt(s.ratio, 2),
      s.target ?? "",
      s.latency ? fmt(s.p50Ms.berth, 2) : "",
      s.latency ? fmt(s.p50Ms.distribution, 2) : "",
      s.latency ? fmt(s.p99Ms.berth, 2) : "",
      s.latency ? fmt(s.p99Ms.distribution, 2) : "",
      s.latency ? fmt(s.p99Ratio, 2) : "",
    ];
  });
  const res = summaries.map((s) => [
    s.case,
    fmt(s.serverCpuS.berth, 2),
    fmt(s.serverCpuS.distribution, 2),
    fmt(s.serverPeakRssMiB.berth, 0),
    fmt(s.serverPeakRssMiB.distribution, 0),
    fmt(s.clientCpuS.berth, 2),
    fmt(s.clientCpuS.distribution, 2),
    fmt(s.otherCpuS.berth, 2),
    fmt(s.otherCpuS.distribution, 2),
  ]);
  const figures = summaries.flatMap((s) =>
    (s.figures ?? []).map((f) => [
      s.case,
      `${f.label}${f.higherIsBetter ? " ↑" : " ↓"}`,
      fmt(f.value.berth),
      fmt(f.value.distribution),
      fmt(f.ratio, 2),
      f.target ?? "",
    ]),
  );
  const withBaseline = summaries.filter((s) => s.baselineLabel !== undefined);
  const vsBaseline = withBaseline.map((s) => [
    s.case,
    `${s.unit}${s.higherIsBetter ? " ↑" : " ↓"}`,
    s.baselineLabel!,
    fmt(s.value.berth),
    fmt(s.baseline?.berth),
    fmt(s.vsBaseline?.berth, 2),
    s.baselineTarget ?? "",
    s.latency ? fmt(s.p99VsBaseline?.berth, 2) : "",
    fmt(s.value.distribution),
    fmt(s.baseline?.distribution),
    fmt(s.vsBaseline?.distribution, 2),
    s.latency ? fmt(s.p99VsBaseline?.distribution, 2) : "",
  ]);
  return [
    table(
      ["case", "unit", "berth", "distribution", "berth/dist", "target", "p50 ms berth", "p50 ms dist", "p99 ms berth", "p99 ms dist", "p99 berth/dist"],
      perf,
      2,
    ),
    "",
    table(
      ["case", "server CPU s berth", "server CPU s dist", "peak RSS MiB berth", "peak RSS MiB dist", "client CPU s (berth run)", "client CPU s (dist run)", "other CPU s (berth run)", "other CPU s (dist run)"],
      res,
    ),
    ...(figures.length === 0
      ? []
      : ["", "Further figures of the cases (medians over runs):", "", table(["case", "figure", "berth", "distribution", "berth/dist", "target"], figures, 2)]),
    ...(withBaseline.length === 0
      ? []
      : [
          "",
          "Against each case's baseline, measured in the same runs (ratio: median of per-run value / baseline):",
          "",
          table(
            ["case", "unit", "baseline", "berth", "berth baseline", "berth ratio", "target", "berth p99 ratio", "dist", "dist baseline", "dist ratio", "dist p99 ratio"],
            vsBaseline,
            3,
          ),
        ]),
  ].join("\n");
}
