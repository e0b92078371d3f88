/**
 * The cost of online garbage collection to the clients of the node it runs beside: push-50-images
 * and manifest GETs while `berth garbage-collect --online --dry-run` marks and scans a tree of
 * 1,000 repositories back to back, as a ratio to the same workload with no collection, on the same
 * server (the variants alternate order between runs). A dry run does the reading a run does (a
 * real run marks twice and then waits for acks, doing little); it runs as its own process on the
 * same cores, as a scheduled collection would run inside one of the nodes; the timed part starts
 * once the collection is marking.
 *
 * distribution has no online collection: on it both variants run without one (a reference, ≈ 1).
 * BENCH_GC_NICE=<n> runs the collector under `nice -n <n>`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { Conn } from "../lean-client.js";
import { makeImage, pushImage, type SmallImage } from "../registry-ops.js";
import { restartOnS3, s3Unavailable, type S3Server } from "../s3-env.js";
// Alternating per case and server kind: one counter for both kinds gave berth the collection first
// in every round, and with it the colder caches and, in gc-push-50, the blobs not yet stored.
import { variantFirst } from "../server-pair.js";
import { BERTH_MAIN, DISTRIBUTION_BIN, readReapedChildrenCpu, type RunningServer } from "../servers.js";
import type { BenchCase, BenchContext } from "../types.js";
import { imageSets } from "./push-images.js";

const REPOSITORIES = 1000;
const SEED_CONNECTIONS = 16;
const GET_CONNECTIONS = 16;

interface GcState {
  conns: Conn[];
  /** Seconds each dry-run collection that finished during the timed parts took (none when one outlasts them). */
  collectionSeconds: number[];
}

/** 1,000 repositories of one small image each, pushed once per server (not timed). */
async function seedTree(srv: RunningServer): Promise<void> {
  const conns = await Promise.all(Array.from({ length: SEED_CONNECTIONS }, () => Conn.connect(srv.host, srv.port)));
  try {
    let next = 0;
    await Promise.all(
      conns.map(async (conn) => {
        for (let i = next++; i < REPOSITORIES; i = next++) await pushImage(conn, `tree/repo-${i}`, "latest", makeImage([randomBytes(256)], `tree-${i}`));
      }),
    );
  } finally {
    for (const conn of conns) conn.close();
  }
}

/**
 * Runs dry-run collections back to back until stopped; records how long each took. `started`
 * resolves once the first has begun to mark (its "collecting" line): the cost measured is a running
 * collection's, as inside `berth serve`, not the start of a Node process.
 */
function collectLoop(srv: RunningServer, seconds: number[]): { started: Promise<void>; stop(): Promise<void> } {
  let stopped = false;
  let child: ChildProcess | undefined;
  let markStarted: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const loop = (async () => {
    while (!stopped) {
      const t0 = performance.now();
      const collector = [process.execPath, BERTH_MAIN, "garbage-collect", join(srv.dir, "config.yml"), "--online", "--dry-run"];
      // BENCH_GC_NICE=19: the collector at a low CPU priority, as an operator may run the CLI.
      const nice = process.env.BENCH_GC_NICE;
      const argv = nice ? ["nice", "-n", nice, ...collector] : collector;
      child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
      child.stderr!.on("data", (d: Buffer) => {
        if (d.toString("utf8").includes("online gc: collecting")) markStarted();
      });
      const code = await new Promise<number | null>((resolve) => child!.once("exit", resolve));
      markStarted(); // a collection that failed to start must not hold the case up
      if (code === 0) seconds.push((performance.now() - t0) / 1000);
    }
  })();
  return {
    started,
    async stop() {
      stopped = true;
      child?.kill("SIGTERM");
      await loop;
    },
  };
}

async function withCollection<T>(srv: RunningServer, state: GcState, on: boolean, work: () => Promise<T>): Promise<T> {
  if (!on || srv.kind !== "berth") return work();
  const loop = collectLoop(srv, state.collectionSeconds);
  await loop.started;
  try {
    return await work();
  } finally {
    await loop.stop();
  }
}

function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * Each round pushes four blocks of 50 fresh images, A B B A (the order alternating between rounds):
 * one push-50 takes 0.4-0.7 s here, within which the machine's own drift moved single ratios by
 * ±10% (distribution's two variants, identical, measured 0.91-1.04), so a round compares the sum of
 * two blocks with the sum of the other two.
 */
export const gcPush50: BenchCase<GcState> = {
  name: "gc-push-50",
  description: "push-50-images while an online collection marks 1,000 repositories, vs without, wall seconds (two blocks of 50 images each, A B B A)",
  unit: "s",
  higherIsBetter: false,
  baseline: { label: "no collection", target: "≤ 1.20" },
  async prepare(ctx) {
    // Four fresh sets: every block of a round pushes images its server has not stored.
    imageSets(ctx, 4);
  },
  async setup(srv, ctx) {
    await seedTree(srv);
    const n = (ctx.shared.get("push-images") as SmallImage[]).length;
    return { conns: await Promise.all(Array.from({ length: n }, () => Conn.connect(srv.host, srv.port))), collectionSeconds: [] };
  },
  async run(srv, ctx, state) {
    const sets = imageSets(ctx, 4);
    const times = { gc: 0, baseline: 0 };
    const blocks: string[] = [];
    const [a, b] = variantFirst("gc-push-50", srv) ? (["gc", "baseline"] as const) : (["baseline", "gc"] as const);
    for (const [n, which] of [a, b, b, a].entries()) {
      const all = sets[n]!;
      const seconds = await withCollection(srv, state, which === "gc", async () => {
        const t0 = performance.now();
        await Promise.all(all.map((img, i) => pushImage(state.conns[i]!, `bench/${which}-${n}-${i}`, "latest", img)));
        return (performance.now() - t0) / 1000;
      });
      times[which] += seconds;
      blocks.push(`${which} ${seconds.toFixed(3)}`);
    }
    // The value is one push-50's time: the mean of the variant's two blocks.
    return {
      value: times.gc / 2,
      baseline: { value: times.baseline / 2 },
      extra: { repositories: REPOSITORIES, blocks, collectionSeconds: median(state.collectionSeconds) },
    };
  },
  async teardown(state) {
    for (const c of state.conns) c.close();
  },
};

/** GETs of each connection's own repository's manifest for `ms`; how many completed. */
async function getManifests(conns: Conn[], ms: number): Promise<number> {
  const until = performance.now() + ms;
  let requests = 0;
  await Promise.all(
    conns.map(async (conn, i) => {
      const path = `/v2/tree/repo-${i}/manifests/latest`;
      while (performance.now() < until) {
        const res = await conn.request({ method: "GET", path, headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
        if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
        requests++;
      }
    }),
  );
  return requests;
}

export const gcManifestGet: BenchCase<GcState> = {
  name: "gc-manifest-get",
  description: `GET a small manifest by tag on ${GET_CONNECTIONS} connections while an online collection marks 1,000 repositories, vs without (two blocks of 3 s each, A B B A), req/s`,
  unit: "req/s",
  higherIsBetter: true,
  baseline: { label: "no collection", target: "≥ 0.80" },
  async setup(srv) {
    await seedTree(srv);
    const conns = await Promise.all(Array.from({ length: GET_CONNECTIONS }, () => Conn.connect(srv.host, srv.port)));
    // Warm-up (as wrk's in manifest-get-c16): otherwise whichever variant runs first fills the
    // caches for the other, and the comparison measures that.
    await getManifests(conns, 1000);
    return { conns, collectionSeconds: [] };
  },
  async run(srv, _ctx: BenchContext, state) {
    // A B B A, as gc-push-50: with one 3 s block each, distribution's identical variants measured
    // 0.80-0.98 in one run (the machine slowing down across the round).
    const requests = { gc: 0, baseline: 0 };
    const blocks: string[] = [];
    const [a, b] = variantFirst("gc-manifest-get", srv) ? (["gc", "baseline"] as const) : (["baseline", "gc"] as const);
    for (const which of [a, b, b, a]) {
      const n = await withCollection(srv, state, which === "gc", () => getManifests(state.conns, 3000));
      requests[which] += n;
      blocks.push(`${which} ${Math.round(n / 3)}`);
    }
    return {
      value: requests.gc / 6,
      baseline: { value: requests.baseline / 6 },
      extra: { repositories: REPOSITORIES, blocks, collectionSeconds: median(state.collectionSeconds) },
    };
  },
  async teardown(state) {
    for (const c of state.conns) c.close();
  },
};

interface CollectionState {
  /** The S3 root of the run (removed afterwards), on the S3 variant. */
  s3?: S3Server;
}

/** Runs `argv` to its end; its CPU seconds (this process's reaped children) and wall seconds. */
async function timedChild(argv: string[], env?: Record<string, string>): Promise<{ seconds: number; cpuS: number }> {
  const cpu0 = readReapedChildrenCpu();
  const t0 = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString("utf8")).slice(-2000)));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${argv.slice(0, 3).join(" ")} … exited ${code}: ${stderr}`);
  return { seconds, cpuS: readReapedChildrenCpu() - cpu0 };
}

/**
 * How long a collection over 1,000 repositories takes: berth's online dry run (mark and candidate
 * scan, beside the serving registry) at its default pace (storage.maintenance.gc.maxcpu, a quarter
 * of a core) as the value, and unpaced (`--max-cpu 1`) as a figure; distribution's offline
 * `garbage-collect --dry-run` over its own copy of the tree as the reference (it has no online
 * collection). One collection per round; the server is idle meanwhile.
 */
function collectionCase(name: string, onS3: boolean): BenchCase<CollectionState> {
  return {
    name,
    description: `one dry-run collection over ${REPOSITORIES} repositories${onS3 ? " on S3 (radosgw)" : ""}: berth online at its default pace, distribution offline, seconds`,
    unit: "s",
    higherIsBetter: false,
    figures: [
      { key: "unpacedSeconds", label: "berth unpaced (--max-cpu 1), s", higherIsBetter: false },
      { key: "collectorCpuS", label: "collector CPU s", higherIsBetter: false },
    ],
    ...(onS3 ? { unavailable: s3Unavailable } : {}),
    async setup(srv, ctx) {
      const s3 = onS3 ? await restartOnS3(srv, ctx, 0) : undefined;
      await seedTree(srv);
      return s3 ? { s3 } : {};
    },
    async run(srv) {
      const config = join(srv.dir, "config.yml");
      if (srv.kind === "distribution") {
        const env = onS3 ? { AWS_CA_BUNDLE: "" } : undefined;
        const ref = await timedChild([DISTRIBUTION_BIN, "garbage-collect", "--dry-run", config], env);
        return { value: ref.seconds, extra: { collectorCpuS: ref.cpuS, repositories: REPOSITORIES } };
      }
      const collector = [process.execPath, BERTH_MAIN, "garbage-collect", config, "--online", "--dry-run"];
      const paced = await timedChild(collector);
      const unpaced = await timedChild([...collector, "--max-cpu", "1"]);
      return { value: paced.seconds, extra: { unpacedSeconds: unpaced.seconds, collectorCpuS: paced.cpuS, unpacedCpuS: unpaced.cpuS, repositories: REPOSITORIES } };
    },
    async teardown(state) {
      if (state.s3) await state.s3.s3.removeRoot(state.s3.root);
    },
  };
}

export const gcCollection = collectionCase("gc-collection", false);
export const s3GcCollection = collectionCase("s3-gc-collection", true);
