/**
 * Overload figures: berth keeps answering other clients within a bounded latency, and its memory
 * stays bounded, while hostile or unlucky clients hold it busy.
 *
 *   npm run overload -- [--quick] [--scenario NAME]…
 *
 * One `berth serve` (filesystem storage, the test configuration's defaults, so berth's own
 * timeouts: headers 30 s, keep-alive idle 5 s, socket inactivity 300 s) per run. First pushed: a
 * small image tagged `latest` and a large blob (256 MiB; 16 MiB quick). Then, for each scenario, a
 * probe client GETs the manifest by tag, one request after another on its own kept-alive
 * connection, checking status 200 and the digest of every body, while the harness samples berth's
 * VmRSS and VmHWM from /proc every 100 ms:
 *
 *   baseline     the probe alone;
 *   idle         2,000 (quick: 300) TCP connections held open: a third silent, a third having sent
 *                half a request line and stalled, a third after one complete keep-alive request;
 *                counts how many berth closed, and when;
 *   slow-readers 50 (quick: 10) clients GET the large blob and read it at ~16 KiB/s (a raw socket
 *                paused between reads, so the kernel's buffers fill and berth sees backpressure);
 *   trickle      50 (quick: 10) PATCH uploads sending one byte per second (chunked encoding);
 *   same-blob    50 (quick: 10) concurrent monolithic uploads of the same 32 MiB (quick: 4 MiB)
 *                blob: every one must be 201 with the right digest, the blob served intact after.
 *
 * Prints a table per scenario: probe p50/p99/max, requests, errors, RSS start/peak/end, and the
 * scenario's own counts. Exits 1 when a probe request failed, an upload of the same blob failed,
 * the blob was not served intact, or berth died.
 */
import { createHash, randomBytes } from "node:crypto";
import { Agent, request as httpRequest } from "node:http";
import { connect, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { startBerth, testConfig, type BerthProcess } from "../test/support/berth-process.js";
import { OCI_LAYER, OCI_MANIFEST, digestOf, descriptorOf, json, RegistryClient } from "../test/support/registry-client.js";
import { readProcMemory, resetPeakRss } from "../bench/servers.js";
import { runIfMain } from "./campaign-cli.js";

export const SCENARIOS = ["baseline", "idle", "slow-readers", "trickle", "same-blob"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface OverloadOptions {
  scenarios: readonly ScenarioName[];
  /** How long the probe runs in each scenario (same-blob: at least this, and until the uploads end). */
  probeSeconds: number;
  /** How long the idle connections are held (past berth's 30 s header timeout in the full mode). */
  idleSeconds: number;
  idleConnections: number;
  bigBlobBytes: number;
  slowReaders: number;
  /** Bytes per second each slow reader takes. */
  slowReadRate: number;
  trickleUploaders: number;
  sameBlobUploads: number;
  sameBlobBytes: number;
  log: (line: string) => void;
}

const MiB = 1024 * 1024;

export const FULL_OPTIONS: Omit<OverloadOptions, "log"> = {
  scenarios: SCENARIOS,
  probeSeconds: 20,
  idleSeconds: 40,
  idleConnections: 2000,
  bigBlobBytes: 256 * MiB,
  slowReaders: 50,
  slowReadRate: 16 * 1024,
  trickleUploaders: 50,
  sameBlobUploads: 50,
  sameBlobBytes: 32 * MiB,
};

export const QUICK_OPTIONS: Omit<OverloadOptions, "log"> = {
  scenarios: SCENARIOS,
  probeSeconds: 3,
  idleSeconds: 7,
  idleConnections: 300,
  bigBlobBytes: 16 * MiB,
  slowReaders: 10,
  slowReadRate: 16 * 1024,
  trickleUploaders: 10,
  sameBlobUploads: 10,
  sameBlobBytes: 4 * MiB,
};

export interface ProbeFigures {
  requests: number;
  errors: number;
  /** The first few failures, for the report. */
  errorSamples: string[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface MemoryFigures {
  startMiB: number;
  /** The highest VmRSS sampled (every 100 ms), and VmHWM when it could be reset at the start. */
  peakMiB: number;
  endMiB: number;
}

export interface ScenarioResult {
  name: ScenarioName;
  probe: ProbeFigures;
  memory: MemoryFigures;
  /** Scenario-specific counts, in the order they are printed. */
  counts: Record<string, number | string>;
  /** Failures of the scenario's own clients that break a promise (same-blob uploads, the blob's bytes). */
  problems: string[];
}

export interface OverloadSummary {
  options: Omit<OverloadOptions, "log">;
  results: ScenarioResult[];
  berthAlive: boolean;
  durationMs: number;
}

const REPO = "overload/app";
const TAG = "latest";
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// --- the probe and the memory sampler

/** Sequential manifest GETs by tag on one kept-alive connection until `stop()`. */
function startProbe(berth: BerthProcess, manifestDigest: string): { stop(): Promise<ProbeFigures> } {
  const base = new URL(berth.url);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const latencies: number[] = [];
  const errorSamples: string[] = [];
  let errors = 0;
  let running = true;
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const started = process.hrtime.bigint();
      const fail = (why: string): void => {
        errors++;
        if (errorSamples.length < 5) errorSamples.push(why);
        resolve();
      };
      const req = httpRequest(
        { host: base.hostname, port: base.port, path: `/v2/${REPO}/manifests/${TAG}`, agent, headers: { Accept: OCI_MANIFEST } },
        (res) => {
          const hash = createHash("sha256");
          res.on("data", (chunk: Buffer) => hash.update(chunk));
          res.on("error", (err) => fail(`response: ${err.message}`));
          res.on("end", () => {
            const ms = Number(process.hrtime.bigint() - started) / 1e6;
            const digest = `sha256:${hash.digest("hex")}`;
            if (res.statusCode !== 200) fail(`status ${res.statusCode}`);
            else if (digest !== manifestDigest) fail(`digest ${digest}`);
            else {
              latencies.push(ms);
              resolve();
            }
          });
        },
      );
      // A probe request that hangs is a failure, not a figure.
      req.setTimeout(30_000, () => req.destroy(new Error("no answer within 30 s")));
      req.on("error", (err) => fail(`request: ${err.message}`));
      req.end();
    });
  const loop = (async () => {
    while (running) await once();
  })();
  return {
    async stop() {
      running = false;
      await loop;
      agent.destroy();
      const sorted = [...latencies].sort((a, b) => a - b);
      const at = (q: number): number => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!);
      return { requests: latencies.length + errors, errors, errorSamples, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: sorted.at(-1) ?? NaN };
    },
  };
}

/** Samples the process's VmRSS every 100 ms until `stop()`. */
function startSampler(pid: number): { stop(): MemoryFigures } {
  const hwmReset = resetPeakRss(pid);
  const start = readProcMemory(pid).rssKiB;
  let peak = start;
  let last = start;
  const timer = setInterval(() => {
    try {
      last = readProcMemory(pid).rssKiB;
      peak = Math.max(peak, last);
    } catch {
      // gone: the liveness check reports it
    }
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      try {
        const now = readProcMemory(pid);
        last = now.rssKiB;
        peak = Math.max(peak, last, hwmReset ? now.hwmKiB : 0);
      } catch {
        // gone
      }
      return { startMiB: start / 1024, peakMiB: peak / 1024, endMiB: last / 1024 };
    },
  };
}

// --- raw connections

function openSocket(berth: BerthProcess): Promise<Socket> {
  const base = new URL(berth.url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: base.hostname, port: Number(base.port) });
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

/** A socket's fate: open, closed by the server (an end or a reset we did not cause), and when. */
interface Tracked {
  socket: Socket;
  openedAt: number;
  closedAt?: number;
  response: string;
}

function track(socket: Socket): Tracked {
  const tracked: Tracked = { socket, openedAt: Date.now(), response: "" };
  socket.on("data", (chunk: Buffer) => {
    if (tracked.response.length < 256) tracked.response += chunk.toString("latin1");
  });
  socket.on("error", () => undefined);
  socket.on("close", () => (tracked.closedAt ??= Date.now()));
  return tracked;
}

/** The status line of the first answer on a connection, e.g. "408", or "" when none came. */
function statusOf(tracked: Tracked): string {
  return /^HTTP\/1\.1 (\d{3})/.exec(tracked.response)?.[1] ?? "";
}

function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

// --- the scenarios

interface Context {
  berth: BerthProcess;
  options: OverloadOptions;
  bigBlob: { digest: string; size: number };
}

type Scenario = (ctx: Context, counts: Record<string, number | string>, problems: string[]) => Promise<void>;

const scenarios: Record<ScenarioName, Scenario> = {
  async baseline(ctx) {
    await sleep(ctx.options.probeSeconds * 1000);
  },

  async idle(ctx, counts) {
    const { berth, options } = ctx;
    const kinds = ["silent", "half-line", "kept-alive"] as const;
    const groups: Record<(typeof kinds)[number], Tracked[]> = { silent: [], "half-line": [], "kept-alive": [] };
    for (let i = 0; i < options.idleConnections; i++) {
      const kind = kinds[i % 3]!;
      let socket: Socket;
      try {
        socket = await openSocket(berth);
      } catch {
        counts["connect failures"] = Number(counts["connect failures"] ?? 0) + 1;
        continue;
      }
      const tracked = track(socket);
      if (kind === "half-line") socket.write("GET /v2/_cata");
      if (kind === "kept-alive") socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${berth.hostPort}\r\n\r\n`);
      groups[kind].push(tracked);
    }
    const opened = Date.now();
    counts["opened"] = kinds.reduce((n, kind) => n + groups[kind].length, 0);
    counts["opening took s"] = ((opened - Math.min(...kinds.flatMap((k) => groups[k].map((t) => t.openedAt)))) / 1000).toFixed(1);
    await sleep(options.idleSeconds * 1000);
    for (const kind of kinds) {
      const closed = groups[kind].filter((t) => t.closedAt !== undefined);
      counts[`${kind}: still open`] = groups[kind].length - closed.length;
      counts[`${kind}: closed by berth`] = closed.length;
      if (closed.length > 0) counts[`${kind}: median close after s`] = (median(closed.map((t) => t.closedAt! - t.openedAt)) / 1000).toFixed(1);
      const statuses = new Map<string, number>();
      for (const t of closed) statuses.set(statusOf(t) || "none", (statuses.get(statusOf(t) || "none") ?? 0) + 1);
      if (kind !== "kept-alive" && closed.length > 0) counts[`${kind}: answer before close`] = [...statuses].map(([s, n]) => `${s}×${n}`).join(" ");
    }
    for (const kind of kinds) for (const t of groups[kind]) t.socket.destroy();
  },

  async "slow-readers"(ctx, counts) {
    const { berth, options, bigBlob } = ctx;
    const readers: { tracked: Tracked; bytes: number }[] = [];
    for (let i = 0; i < options.slowReaders; i++) {
      const socket = await openSocket(berth);
      const tracked = track(socket);
      const reader = { tracked, bytes: 0 };
      readers.push(reader);
      socket.on("data", (chunk: Buffer) => {
        reader.bytes += chunk.length;
        // Take ~rate bytes per second: after each read, wait as long as those bytes are worth.
        socket.pause();
        setTimeout(() => socket.resume(), (chunk.length / options.slowReadRate) * 1000).unref();
      });
      socket.write(`GET /v2/${REPO}/blobs/${bigBlob.digest} HTTP/1.1\r\nHost: ${berth.hostPort}\r\nConnection: close\r\n\r\n`);
    }
    await sleep(options.probeSeconds * 1000);
    const read = readers.map((r) => r.bytes);
    counts["readers"] = readers.length;
    counts["answered 200"] = readers.filter((r) => statusOf(r.tracked) === "200").length;
    counts["still reading"] = readers.filter((r) => r.tracked.closedAt === undefined).length;
    counts["cut by berth"] = readers.filter((r) => r.tracked.closedAt !== undefined && r.bytes < bigBlob.size).length;
    counts["MiB read, all readers"] = (read.reduce((a, b) => a + b, 0) / MiB).toFixed(1);
    counts["KiB/s per reader (median)"] = (median(read) / 1024 / options.probeSeconds).toFixed(0);
    for (const r of readers) r.tracked.socket.destroy();
  },

  async trickle(ctx, counts) {
    const { berth, options } = ctx;
    const client = new RegistryClient(berth.url);
    const uploads: Tracked[] = [];
    const locations: string[] = [];
    const timers: NodeJS.Timeout[] = [];
    let sent = 0;
    for (let i = 0; i < options.trickleUploaders; i++) {
      const { location } = await client.startUpload(REPO);
      locations.push(location);
      const target = new URL(location);
      const socket = await openSocket(berth);
      const tracked = track(socket);
      uploads.push(tracked);
      socket.write(
        `PATCH ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${berth.hostPort}\r\n` +
          "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
      );
      timers.push(
        setInterval(() => {
          if (tracked.closedAt !== undefined) return;
          socket.write("1\r\nx\r\n");
          sent++;
        }, 1000),
      );
    }
    await sleep(options.probeSeconds * 1000);
    for (const timer of timers) clearInterval(timer);
    counts["uploaders"] = uploads.length;
    counts["bytes sent"] = sent;
    counts["still open"] = uploads.filter((t) => t.closedAt === undefined).length;
    counts["closed by berth"] = uploads.filter((t) => t.closedAt !== undefined).length;
    counts["answered before the end"] = uploads.filter((t) => statusOf(t) !== "").length;
    for (const t of uploads) t.socket.destroy();
    // A cut-off upload keeps what reached berth: its status (Range: 0-<last>) says how much.
    await sleep(500);
    let kept = 0;
    for (const location of locations) {
      const status = await client.send(location);
      const range = /^0-(\d+)$/.exec(status.headers.get("range") ?? "");
      if (status.status === 204 && range) kept += Number(range[1]) + 1;
    }
    counts["bytes kept by the cut uploads"] = kept;
  },

  async "same-blob"(ctx, counts, problems) {
    const { berth, options } = ctx;
    const blob = randomBytes(options.sameBlobBytes);
    const digest = digestOf(blob);
    const base = new URL(berth.url);
    const upload = (): Promise<{ status: number; digest: string }> =>
      new Promise((resolve) => {
        const req = httpRequest(
          {
            host: base.hostname,
            port: base.port,
            method: "POST",
            path: `/v2/${REPO}/blobs/uploads/?digest=${digest}`,
            agent: false,
            headers: { "Content-Type": "application/octet-stream", "Content-Length": String(blob.length) },
          },
          (res) => {
            res.resume();
            res.on("end", () => resolve({ status: res.statusCode ?? 0, digest: String(res.headers["docker-content-digest"] ?? "") }));
            res.on("error", () => resolve({ status: 0, digest: "" }));
          },
        );
        req.setTimeout(120_000, () => req.destroy(new Error("no answer within 120 s")));
        req.on("error", () => resolve({ status: 0, digest: "" }));
        req.end(blob);
      });
    const started = Date.now();
    let answeredAt = 0;
    const [answers] = await Promise.all([
      Promise.all(Array.from({ length: options.sameBlobUploads }, upload)).then((all) => {
        answeredAt = Date.now();
        return all;
      }),
      sleep(options.probeSeconds * 1000),
    ]);
    counts["uploads"] = answers.length;
    counts["201 with the digest"] = answers.filter((a) => a.status === 201 && a.digest === digest).length;
    counts["all answered in s"] = ((answeredAt - started) / 1000).toFixed(1);
    const statuses = new Map<number, number>();
    for (const a of answers) statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
    if (Number(counts["201 with the digest"]) !== answers.length) {
      problems.push(`same-blob uploads: ${[...statuses].map(([s, n]) => `${s}×${n}`).join(" ")}, not all 201 with ${digest}`);
    }
    const served = await new RegistryClient(berth.url).get(`/v2/${REPO}/blobs/${digest}`);
    const intact = served.response.status === 200 && digestOf(served.bytes) === digest;
    counts["served intact"] = intact ? "yes" : "no";
    if (!intact) problems.push(`same-blob: GET answered ${served.response.status} with ${served.bytes.length} bytes hashing to ${digestOf(served.bytes)}`);
  },
};

// --- the run

/** A small image tagged `latest`, and the large blob in the same repository. */
async function seed(berth: BerthProcess, bigBlobBytes: number): Promise<{ manifestDigest: string; bigBlob: { digest: string; size: number } }> {
  const client = new RegistryClient(berth.url);
  const config = json({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } });
  const layer = randomBytes(1024);
  await client.pushBlob(REPO, config);
  await client.pushBlob(REPO, layer);
  const manifest = json({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: descriptorOf("application/vnd.oci.image.config.v1+json", config),
    layers: [descriptorOf(OCI_LAYER, layer)],
  });
  await client.pushManifest(REPO, TAG, manifest, OCI_MANIFEST);
  const big = randomBytes(bigBlobBytes);
  const bigDigest = await client.pushBlob(REPO, big);
  return { manifestDigest: digestOf(manifest), bigBlob: { digest: bigDigest, size: big.length } };
}

function alive(berth: BerthProcess): boolean {
  return berth.child.exitCode === null && berth.child.signalCode === null;
}

export async function runOverload(options: OverloadOptions): Promise<OverloadSummary> {
  const started = Date.now();
  const berth = await startBerth({ configYaml: testConfig() });
  const results: ScenarioResult[] = [];
  try {
    const pid = berth.child.pid!;
    const { manifestDigest, bigBlob } = await seed(berth, options.bigBlobBytes);
    options.log(`berth pid ${pid} at ${berth.url}; image and a ${(bigBlob.size / MiB).toFixed(0)} MiB blob pushed`);
    for (const name of options.scenarios) {
      if (!alive(berth)) break;
      // Let the previous scenario's sockets and garbage settle before the next starts.
      await sleep(1000);
      const counts: Record<string, number | string> = {};
      const problems: string[] = [];
      const sampler = startSampler(pid);
      const probe = startProbe(berth, manifestDigest);
      try {
        await scenarios[name]({ berth, options, bigBlob }, counts, problems);
      } catch (err) {
        problems.push(`${name}: the harness failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      const probeFigures = await probe.stop();
      const memory = sampler.stop();
      const result: ScenarioResult = { name, probe: probeFigures, memory, counts, problems };
      results.push(result);
      options.log(formatResult(result));
    }
    return { options, results, berthAlive: alive(berth), durationMs: Date.now() - started };
  } finally {
    if (!alive(berth)) options.log(`berth died; log tail:\n${berth.log().slice(-2000)}`);
    await berth.stop();
  }
}

export function failed(summary: OverloadSummary): boolean {
  return !summary.berthAlive || summary.results.some((r) => r.probe.errors > 0 || r.probe.requests === 0 || r.problems.length > 0);
}

function formatResult(r: ScenarioResult): string {
  const ms = (v: number): string => v.toFixed(1);
  const mib = (v: number): string => v.toFixed(0);
  const counts = Object.entries(r.counts)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  return (
    `${r.name}: probe p50 ${ms(r.probe.p50Ms)} ms, p99 ${ms(r.probe.p99Ms)} ms, max ${ms(r.probe.maxMs)} ms, ` +
    `${r.probe.requests} requests, ${r.probe.errors} errors${r.probe.errorSamples.length ? ` (${r.probe.errorSamples.join("; ")})` : ""}; ` +
    `RSS ${mib(r.memory.startMiB)} → peak ${mib(r.memory.peakMiB)} → ${mib(r.memory.endMiB)} MiB; ${counts}` +
    (r.problems.length ? `\n  PROBLEMS: ${r.problems.join("; ")}` : "")
  );
}

/** A Markdown table of the run, as docs/reliability.md keeps it. */
export function formatSummary(summary: OverloadSummary): string {
  const rows = summary.results.map(
    (r) =>
      `| ${r.name} | ${r.probe.p50Ms.toFixed(1)} | ${r.probe.p99Ms.toFixed(1)} | ${r.probe.maxMs.toFixed(1)} | ${r.probe.requests} | ${r.probe.errors} | ` +
      `${r.memory.startMiB.toFixed(0)} / ${r.memory.peakMiB.toFixed(0)} / ${r.memory.endMiB.toFixed(0)} | ` +
      `${Object.entries(r.counts)
        .map(([k, v]) => `${k} ${v}`)
        .join("; ")} |`,
  );
  return [
    "| scenario | probe p50 ms | p99 ms | max ms | requests | errors | RSS start / peak / end MiB | counts |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    `berth alive at the end: ${summary.berthAlive ? "yes" : "NO"}; ${(summary.durationMs / 1000).toFixed(0)} s in all`,
    ...summary.results.flatMap((r) => r.problems.map((p) => `problem: ${p}`)),
  ].join("\n");
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { quick: { type: "boolean" }, scenario: { type: "string", multiple: true } } });
  const chosen = values.scenario ?? [...SCENARIOS];
  for (const name of chosen) {
    if (!(SCENARIOS as readonly string[]).includes(name)) throw new Error(`--scenario: one of ${SCENARIOS.join(", ")}, got ${JSON.stringify(name)}`);
  }
  const options: OverloadOptions = {
    ...(values.quick ? QUICK_OPTIONS : FULL_OPTIONS),
    scenarios: chosen as ScenarioName[],
    log: (line) => process.stderr.write(`${line}\n`),
  };
  const summary = await runOverload(options);
  process.stdout.write(`${formatSummary(summary)}\n`);
  return failed(summary) ? 1 : 0;
}

runIfMain(import.meta.url, main);
