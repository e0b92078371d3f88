/**
 * The cost of Prometheus metrics (`http.debug.prometheus`): GETs of a manifest and of a small blob
 * on a registry with metrics on and, in the same run, on a fresh registry of the same kind without
 * them (the baseline). The value is the figure with metrics; the report adds the ratio to the
 * baseline for berth (the target: within 5%) and for distribution (reference). Each round runs the
 * two in halves, A B B A, the order alternating from round to round, so that the machine's speed
 * drifting during a round (this is a shared VM) weighs on both alike.
 *
 * After the run with metrics, the case scrapes the debug listener and checks that the requests
 * were counted (`registry_http_requests_total` of the handler grew by at least the requests wrk
 * completed), so a configuration that silently turned metrics off cannot pass for a cheap one.
 */
import { Conn, expectStatus } from "../lean-client.js";
import { MANIFEST_ACCEPT, pushImage, type SmallImage } from "../registry-ops.js";
import { startPair, stopPair, variantFirst, type ServerPair } from "../server-pair.js";
import { freePort, type RunningServer } from "../servers.js";
import type { BenchCase } from "../types.js";
import { combineHalves as combine, runWrk, type WrkResult } from "../wrk.js";
import { sharedSmallImage } from "./small-requests.js";

const REPO = "bench/app";
const CONNECTIONS = 16;

type Target = "manifest" | "blob";

interface State {
  pair: ServerPair;
  debugPort: number;
  path: string;
  headers: Record<string, string>;
}

function debugYaml(port: number): string {
  // distribution's keys, accepted by both.
  return ["debug:", `  addr: 127.0.0.1:${port}`, "  prometheus:", "    enabled: true", "    path: /metrics"].join("\n");
}

function targetOf(target: Target, img: SmallImage): { path: string; headers: Record<string, string> } {
  return target === "manifest"
    ? { path: `/v2/${REPO}/manifests/latest`, headers: { Accept: MANIFEST_ACCEPT } }
    : { path: `/v2/${REPO}/blobs/${img.layers[0]!.digest}`, headers: {} };
}

async function wrkGet(server: RunningServer, state: State, seconds: number, dir: string): Promise<WrkResult> {
  const r = await runWrk({ url: `${server.url}${state.path}`, method: "GET", headers: state.headers, connections: CONNECTIONS, durationSec: seconds, dir });
  const errors = r.errors.connect + r.errors.read + r.errors.write + r.errors.status + r.errors.timeout;
  if (errors > 0) throw new Error(`wrk GET ${state.path}: ${JSON.stringify(r.errors)} errors in ${r.requests} requests`);
  if (r.requests === 0) throw new Error(`wrk GET ${state.path}: no requests completed`);
  return r;
}

/** Sum of `registry_http_requests_total` samples of `handler` with method GET, from a scrape. */
function countedGets(exposition: string, handler: string): number {
  let sum = 0;
  for (const line of exposition.split("\n")) {
    if (!line.startsWith("registry_http_requests_total{")) continue;
    const labels = line.slice(line.indexOf("{") + 1, line.lastIndexOf("}"));
    if (!labels.includes(`handler="${handler}"`) || !/method="get"/i.test(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

async function scrape(host: string, port: number): Promise<{ text: string; ms: number }> {
  const conn = await Conn.connect(host, port);
  try {
    const t0 = performance.now();
    const res = expectStatus(await conn.request({ method: "GET", path: "/metrics" }), 200, "GET /metrics");
    return { text: res.body.toString("utf8"), ms: performance.now() - t0 };
  } finally {
    conn.close();
  }
}

export function metricsGet(target: Target): BenchCase<State> {
  const name = `metrics-${target}-get`;
  return {
    name,
    description: `${target === "manifest" ? "manifest GET" : "1 KiB blob GET"}, c${CONNECTIONS} (wrk), with Prometheus metrics on (http.debug.prometheus) vs off`,
    unit: "req/s",
    higherIsBetter: true,
    latency: true,
    baseline: { label: "metrics off", target: "≥ 0.95" },
    async setup(srv, ctx) {
      const img = sharedSmallImage(ctx);
      const debugPort = await freePort();
      const pair = await startPair(srv, ctx, { httpYaml: debugYaml(debugPort) }, []);
      const state: State = { pair, debugPort, ...targetOf(target, img) };
      try {
        for (const server of [pair.variant, pair.baseline]) {
          const conn = await Conn.connect(server.host, server.port);
          try {
            await pushImage(conn, REPO, "latest", img);
          } finally {
            conn.close();
          }
          await wrkGet(server, state, ctx.sizes.warmupSec, ctx.tmpRoot);
        }
      } catch (err) {
        await stopPair(pair);
        throw err;
      }
      return state;
    },
    async run(srv, ctx, state) {
      const first = variantFirst(name, srv) ? "metrics" : "baseline";
      const second = first === "metrics" ? "baseline" : "metrics";
      const out: Record<string, unknown> = { order: `${first},${second},${second},${first}`, connections: CONNECTIONS };
      // ABBA in halves: a drift of the machine's speed during the round weighs on both alike.
      const halfSec = Math.max(1, Math.round(ctx.sizes.wrkSec / 2));
      const runs: Record<"metrics" | "baseline", WrkResult[]> = { metrics: [], baseline: [] };
      const cpu = { metrics: 0, baseline: 0 };
      let counted = 0;
      let scraped = { text: "", ms: 0 };
      for (const which of [first, second, second, first] as const) {
        const server = which === "metrics" ? state.pair.variant : state.pair.baseline;
        const before = which === "metrics" ? countedGets((await scrape(server.host, state.debugPort)).text, target) : 0;
        const cpu0 = server.cpu().cpu;
        const r = await wrkGet(server, state, halfSec, ctx.tmpRoot);
        cpu[which] += server.cpu().cpu - cpu0;
        runs[which].push(r);
        if (which === "metrics") {
          scraped = await scrape(server.host, state.debugPort);
          const n = countedGets(scraped.text, target) - before;
          if (n < r.requests) throw new Error(`${srv.kind}: the scrape counted ${n} GETs of handler="${target}", wrk completed ${r.requests}: metrics are not on`);
          counted += n;
        }
      }
      const m = combine(runs.metrics);
      const b = combine(runs.baseline);
      Object.assign(out, {
        metricsServerCpuUsPerRequest: Math.round((cpu.metrics / m.requests) * 1e6),
        baselineServerCpuUsPerRequest: Math.round((cpu.baseline / b.requests) * 1e6),
        halfRps: { metrics: runs.metrics.map((r) => Math.round(r.rps)), baseline: runs.baseline.map((r) => Math.round(r.rps)) },
        counted,
        scrapeBytes: Buffer.byteLength(scraped.text),
        scrapeMs: Math.round(scraped.ms * 10) / 10,
      });
      return { value: m.rps, p50Ms: m.p50Ms, p99Ms: m.p99Ms, baseline: { value: b.rps, p50Ms: b.p50Ms, p99Ms: b.p99Ms }, extra: out };
    },
    teardown: (state) => stopPair(state.pair),
  };
}
