/** Small-request cases driven by wrk: manifest GET / HEAD by tag, tags list. */
import { randomBytes } from "node:crypto";
import { Conn, expectStatus, HttpError } from "../lean-client.js";
import { makeImage, MANIFEST_ACCEPT, pushImage, pushManifest, type SmallImage } from "../registry-ops.js";
import type { RunningServer } from "../servers.js";
import type { BenchCase, BenchContext } from "../types.js";
import { runLoad } from "../load.js";
import { runWrk } from "../wrk.js";

const REPO = "bench/app";

interface Target {
  url: string;
  method: "GET" | "HEAD";
  headers: Record<string, string>;
}

type LoadGen = "wrk" | "lean";

/**
 * wrk is the load generator (it costs the least client CPU) except for HEAD, where wrk waits for
 * a body that never comes: HEAD runs on the in-process lean client. BENCH_LOADGEN=lean forces the
 * lean client everywhere (to compare the two generators).
 */
function loadGen(method: "GET" | "HEAD"): LoadGen {
  return method === "HEAD" || process.env.BENCH_LOADGEN === "lean" ? "lean" : "wrk";
}

interface LoadRun {
  rps: number;
  requests: number;
  durationS: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
}

async function drive(srv: RunningServer, target: Target, connections: number, durationSec: number, dir: string): Promise<LoadRun> {
  if (loadGen(target.method) === "wrk") {
    const r = await runWrk({ ...target, connections, durationSec, dir });
    const errors = r.errors.connect + r.errors.read + r.errors.write + r.errors.status + r.errors.timeout;
    if (errors > 0) throw new Error(`wrk ${target.method} ${target.url}: ${JSON.stringify(r.errors)} errors in ${r.requests} requests`);
    if (r.requests === 0) throw new Error(`wrk ${target.method} ${target.url}: no requests completed`);
    return r;
  }
  const path = target.url.slice(srv.url.length);
  const r = await runLoad({ host: srv.host, port: srv.port, method: target.method, path, headers: target.headers, connections, durationSec });
  if (r.errors.status + r.errors.io > 0) {
    throw new Error(`${target.method} ${path}: ${r.errors.status} bad statuses, ${r.errors.io} I/O errors in ${r.requests} requests; first: ${r.firstError}`);
  }
  if (r.requests === 0) throw new Error(`${target.method} ${path}: no requests completed`);
  return r;
}

/** The 1 KiB-layer image every small-request case (and notify-manifest-get) pushes, made once per run. */
export function sharedSmallImage(ctx: BenchContext): SmallImage {
  let img = ctx.shared.get("small-image") as SmallImage | undefined;
  if (!img) {
    img = makeImage([randomBytes(1024)], "small");
    ctx.shared.set("small-image", img);
  }
  return img;
}

async function seed(srv: RunningServer, ctx: BenchContext, tags: number): Promise<SmallImage> {
  const img = sharedSmallImage(ctx);
  const conn = await Conn.connect(srv.host, srv.port);
  try {
    await pushImage(conn, REPO, "latest", img);
    for (let i = 0; i < tags; i++) await pushManifest(conn, REPO, `tag-${String(i).padStart(3, "0")}`, img.manifest);
  } finally {
    conn.close();
  }
  return img;
}

function wrkCase(opts: {
  name: string;
  description: string;
  method: "GET" | "HEAD";
  path: string;
  connections: number;
  tags: (ctx: BenchContext) => number;
  check: (status: number, headers: Map<string, string>, body: Buffer, img: SmallImage, ctx: BenchContext) => string | null;
}): BenchCase<Target> {
  return {
    name: opts.name,
    description: opts.description,
    unit: "req/s",
    higherIsBetter: true,
    latency: true,
    async setup(srv, ctx) {
      const img = await seed(srv, ctx, opts.tags(ctx));
      const headers = { Accept: MANIFEST_ACCEPT };
      // One checked request first: wrk only counts statuses >= 400 as errors.
      const conn = await Conn.connect(srv.host, srv.port);
      try {
        const res = expectStatus(await conn.request({ method: opts.method, path: opts.path, headers }), 200, `${opts.method} ${opts.path}`);
        const problem = opts.check(res.status, res.headers, res.body, img, ctx);
        if (problem) throw new HttpError(`${opts.method} ${opts.path}: ${problem}`, opts.path, res);
      } finally {
        conn.close();
      }
      const target: Target = { url: `${srv.url}${opts.path}`, method: opts.method, headers };
      // Warm-up (JIT, caches, connection setup), not timed.
      await drive(srv, target, opts.connections, ctx.sizes.warmupSec, ctx.tmpRoot);
      return target;
    },
    async run(srv, ctx, target) {
      const r = await drive(srv, target, opts.connections, ctx.sizes.wrkSec, ctx.tmpRoot);
      return {
        value: r.rps,
        p50Ms: r.p50Ms,
        p99Ms: r.p99Ms,
        extra: {
          loadGenerator: loadGen(target.method),
          requests: r.requests,
          seconds: r.durationS,
          p90Ms: r.p90Ms,
          meanMs: r.meanMs,
          maxMs: r.maxMs,
          connections: opts.connections,
        },
      };
    },
  };
}

const manifestPath = `/v2/${REPO}/manifests/latest`;

function checkManifest(status: number, headers: Map<string, string>, _body: Buffer, img: SmallImage): string | null {
  const digest = headers.get("docker-content-digest");
  return digest === img.manifestDigest ? null : `status ${status}, Docker-Content-Digest ${digest}, want ${img.manifestDigest}`;
}

export function manifestGet(connections: number): BenchCase<Target> {
  return wrkCase({
    name: `manifest-get-c${connections}`,
    description: `GET a small OCI manifest by tag, ${connections} keep-alive connection${connections > 1 ? "s" : ""} (wrk)`,
    method: "GET",
    path: manifestPath,
    connections,
    tags: () => 0,
    check: (status, headers, body, img) =>
      checkManifest(status, headers, body, img) ?? (body.equals(img.manifest) ? null : "body is not the pushed manifest"),
  });
}

export function headManifest(connections: number): BenchCase<Target> {
  return wrkCase({
    name: `head-manifest-c${connections}`,
    description: `HEAD the manifest by tag, ${connections} keep-alive connections (lean client: wrk hangs on HEAD)`,
    method: "HEAD",
    path: manifestPath,
    connections,
    tags: () => 0,
    check: checkManifest,
  });
}

export function tagsList(connections: number): BenchCase<Target> {
  return wrkCase({
    name: `tags-list-c${connections}`,
    description: `GET /v2/<name>/tags/list of a repository with ~100 tags, ${connections} keep-alive connections (wrk)`,
    method: "GET",
    path: `/v2/${REPO}/tags/list`,
    connections,
    tags: (ctx) => ctx.sizes.tags,
    check: (_status, _headers, body, _img, ctx) => {
      const tags = (JSON.parse(body.toString("utf8")) as { tags?: string[] }).tags ?? [];
      return tags.length === ctx.sizes.tags + 1 ? null : `listed ${tags.length} tags, want ${ctx.sizes.tags + 1}`;
    },
  });
}
