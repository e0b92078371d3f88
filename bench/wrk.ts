/**
 * Runs wrk (one thread, keep-alive connections) with a Lua script whose `done` function prints
 * the summary and the latency percentiles as one JSON line.
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface WrkOptions {
  url: string;
  method?: "GET" | "HEAD";
  headers?: Record<string, string>;
  connections: number;
  threads?: number;
  durationSec: number;
  /** Directory for the Lua script. */
  dir: string;
}

export interface WrkResult {
  requests: number;
  durationS: number;
  rps: number;
  bytes: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
}

function luaString(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function script(opts: WrkOptions): string {
  const lines = [`wrk.method = ${luaString(opts.method ?? "GET")}`];
  for (const [k, v] of Object.entries(opts.headers ?? {})) lines.push(`wrk.headers[${luaString(k)}] = ${luaString(v)}`);
  lines.push(
    "done = function(summary, latency, requests)",
    "  local e = summary.errors",
    '  io.write(string.format("WRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"bytes\\":%d,' +
      '\\"p50\\":%d,\\"p90\\":%d,\\"p99\\":%d,\\"mean\\":%.1f,\\"max\\":%d,' +
      '\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d}\\n",',
    "    summary.requests, summary.duration, summary.bytes,",
    "    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,",
    "    e.connect, e.read, e.write, e.status, e.timeout))",
    "end",
    "",
  );
  return lines.join("\n");
}

export async function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const scriptPath = join(opts.dir, `wrk-${process.pid}-${Date.now()}.lua`);
  await writeFile(scriptPath, script(opts));
  const threads = opts.threads ?? 1;
  const args = [
    `-t${threads}`,
    `-c${Math.max(opts.connections, threads)}`,
    `-d${opts.durationSec}s`,
    "--timeout",
    "10s",
    "-s",
    scriptPath,
    opts.url,
  ];
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
  const line = stdout.split("\n").find((l) => l.startsWith("WRKJSON "));
  if (code !== 0 || !line) throw new Error(`wrk ${args.join(" ")} failed (exit ${code}):\n${stdout}\n${stderr}`);
  const j = JSON.parse(line.slice(8)) as Record<string, number>;
  const n = (k: string): number => j[k] ?? 0;
  const durationS = n("duration_us") / 1e6;
  return {
    requests: n("requests"),
    durationS,
    rps: n("requests") / durationS,
    bytes: n("bytes"),
    p50Ms: n("p50") / 1000,
    p90Ms: n("p90") / 1000,
    p99Ms: n("p99") / 1000,
    meanMs: n("mean") / 1000,
    maxMs: n("max") / 1000,
    errors: { connect: n("connect"), read: n("read"), write: n("write"), status: n("status"), timeout: n("timeout") },
  };
}

/** Runs of one side of a paired case (A B B A halves) as one: requests over time, the halves' mean latency percentiles. */
export function combineHalves(halves: WrkResult[]): { requests: number; rps: number; p50Ms: number; p99Ms: number } {
  const requests = halves.reduce((sum, r) => sum + r.requests, 0);
  const seconds = halves.reduce((sum, r) => sum + r.durationS, 0);
  const mean = (pick: (r: WrkResult) => number): number => halves.reduce((sum, r) => sum + pick(r), 0) / halves.length;
  return { requests, rps: requests / seconds, p50Ms: mean((r) => r.p50Ms), p99Ms: mean((r) => r.p99Ms) };
}
