/**
 * A closed-loop load generator on the lean client: `connections` keep-alive connections, each
 * sending its next request as soon as the previous answer is complete, for `durationSec`.
 * Used where wrk cannot go: wrk waits for a body after a HEAD response with a Content-Length.
 */
import { Conn } from "./lean-client.js";

export interface LoadOptions {
  host: string;
  port: number;
  method: string;
  path: string;
  headers?: Record<string, string>;
  connections: number;
  durationSec: number;
  expectStatus?: number;
}

export interface LoadResult {
  requests: number;
  durationS: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  errors: { status: number; io: number };
  firstError?: string;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const conns: Conn[] = [];
  for (let i = 0; i < opts.connections; i++) conns.push(await Conn.connect(opts.host, opts.port));
  let lat = new Float64Array(1 << 16);
  let n = 0;
  let statusErrors = 0;
  let ioErrors = 0;
  let firstError: string | undefined;
  const want = opts.expectStatus ?? 200;
  const request = { method: opts.method, path: opts.path, headers: opts.headers, discard: true };
  const start = performance.now();
  const deadline = start + opts.durationSec * 1000;
  await Promise.all(
    conns.map(async (conn) => {
      for (let t0 = performance.now(); t0 < deadline; ) {
        try {
          const res = await conn.request(request);
          if (res.status !== want) {
            statusErrors++;
            firstError ??= `${opts.method} ${opts.path}: status ${res.status}`;
          }
        } catch (err) {
          ioErrors++;
          firstError ??= err instanceof Error ? err.message : String(err);
          if (ioErrors > 100) return;
        }
        const t1 = performance.now();
        if (n === lat.length) {
          const bigger = new Float64Array(lat.length * 2);
          bigger.set(lat);
          lat = bigger;
        }
        lat[n++] = t1 - t0;
        t0 = t1;
      }
    }),
  );
  const durationS = (performance.now() - start) / 1000;
  for (const c of conns) c.close();
  const sorted = lat.subarray(0, n).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return {
    requests: n,
    durationS,
    rps: n / durationS,
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    meanMs: n ? sum / n : 0,
    maxMs: n ? sorted[n - 1]! : 0,
    errors: { status: statusErrors, io: ioErrors },
    firstError,
  };
}
