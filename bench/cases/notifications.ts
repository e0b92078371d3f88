/**
 * The cost of webhook notifications (distribution's `notifications:` section): each case runs a
 * workload on a registry with one endpoint configured and, in the same run, on a fresh registry of
 * the same kind configured the other way (its baseline): without the endpoint, or with a fast
 * receiver instead of a slow one. The value is the with-endpoint figure; the report adds the
 * ratio to the baseline for berth (the target: within 10%) and for distribution (reference).
 *
 * The order of the two alternates from run to run (a case's first run measures the endpoint
 * first), and after a run with a live endpoint the case waits until everything is delivered before
 * the other one starts, so delivery never competes with the other measurement. The harness's
 * server (`srv`: CPU, memory) is the one with the endpoint; the baseline server is started beside
 * it, and its CPU is in `extra` (the harness counts it as "other CPU").
 *
 * The receiver (bench/notify-receiver.ts) is a child process: a raw TCP server that answers 200,
 * at once or after a delay, counting events. A dead endpoint is a free port nothing listens on.
 */
import { fork, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Conn, expectStatus } from "../lean-client.js";
import type { ReceiverStats } from "../notify-receiver.js";
import { makeImage, MANIFEST_ACCEPT, pushBlobMonolithic, pushImage, pushManifest, type SmallImage } from "../registry-ops.js";
import { startPair, stopPair, trackChild, untrackChild, variantFirst } from "../server-pair.js";
import { freePort, readProcCpu, type RunningServer } from "../servers.js";
import type { BenchCase, BenchContext } from "../types.js";
import { combineHalves as combine, runWrk, type WrkResult } from "../wrk.js";
import { imageSets, pushImages } from "./push-images.js";
import { sharedSmallImage } from "./small-requests.js";

const RECEIVER_JS = fileURLToPath(new URL("../notify-receiver.js", import.meta.url));
const ENDPOINT = "bench";
/** The slow receiver answers each event after this long. */
const SLOW_MS = 5_000;
/** Longest wait for a queue to drain after a run with a live endpoint. */
const DRAIN_CAP_MS = 300_000;
const MANIFEST_REPO = "bench/app";
const MANIFEST_PATH = `/v2/${MANIFEST_REPO}/manifests/latest`;
const MiB_PER_KiB = 1 / 1024;

// ---------------------------------------------------------------------------------------------
// Receiver child process

class Receiver {
  private waiting: Array<(s: ReceiverStats) => void> = [];
  private exited = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly delayMs: number,
  ) {
    child.on("message", (msg: ReceiverStats) => {
      if (msg?.type === "stats") this.waiting.shift()?.(msg);
    });
    child.once("exit", () => {
      this.exited = true;
      for (const w of this.waiting.splice(0)) w({ type: "stats", requests: -1, events: -1, bytes: 0, errors: 0, connections: 0, lastAt: 0 });
    });
  }

  static async start(delayMs: number): Promise<Receiver> {
    const child = fork(RECEIVER_JS, [String(delayMs)], { execArgv: [], stdio: ["ignore", "ignore", "inherit", "ipc"] });
    trackChild(child);
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("notification receiver did not start")), 10_000);
        child.once("message", (msg: { type?: string; port?: number }) => {
          clearTimeout(timer);
          if (msg?.type === "listening" && msg.port) resolve(msg.port);
          else reject(new Error(`notification receiver: unexpected ${JSON.stringify(msg)}`));
        });
        child.once("exit", (code) => reject(new Error(`notification receiver exited (${code})`)));
      });
      return new Receiver(child, port, delayMs);
    } catch (err) {
      child.kill("SIGKILL");
      untrackChild(child);
      throw err;
    }
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/events`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  stats(): Promise<ReceiverStats> {
    if (this.exited) return Promise.reject(new Error("notification receiver exited"));
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.send({ type: "stats" });
    });
  }

  cpuS(): number {
    try {
      return readProcCpu(this.pid).cpu;
    } catch {
      return 0;
    }
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGKILL");
    await gone;
    untrackChild(this.child);
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

function notificationsYaml(url: string, timeout = "1s"): string {
  // distribution's own keys and defaults (timeout 1s, threshold 10, backoff 1s), accepted by both.
  return ["notifications:", "  endpoints:", `    - name: ${ENDPOINT}`, `      url: ${url}`, `      timeout: ${timeout}`, "      threshold: 10", "      backoff: 1s", ""].join("\n");
}

interface Pair {
  /** The harness's server, restarted with the endpoint. */
  notify: RunningServer;
  /** The same kind, configured the other way (`baselineYaml`), on its own storage. */
  baseline: RunningServer;
  receivers: Receiver[];
}

async function startNotifyPair(srv: RunningServer, ctx: BenchContext, notifyYaml: string, receivers: Receiver[], baselineYaml?: string): Promise<Pair> {
  const pair = await startPair(srv, ctx, { extraYaml: notifyYaml }, receivers, baselineYaml === undefined ? undefined : { extraYaml: baselineYaml });
  return { notify: pair.variant, baseline: pair.baseline, receivers };
}

function stopNotifyPair(pair: Pair): Promise<void> {
  return stopPair({ variant: pair.notify, baseline: pair.baseline, companions: pair.receivers });
}

export interface QueueStatus {
  pending: number;
  delivered: number;
  failures: number;
  dropped: number;
  statuses?: Record<string, number>;
  lastError?: string;
}

/** berth's view of the endpoint's queue (GET /debug/status); undefined for distribution. */
async function berthQueue(srv: RunningServer): Promise<QueueStatus | undefined> {
  if (srv.kind !== "berth") return undefined;
  const conn = await Conn.connect(srv.host, srv.port);
  try {
    const res = expectStatus(await conn.request({ method: "GET", path: "/debug/status" }), 200, "GET /debug/status");
    const body = JSON.parse(res.body.toString("utf8")) as { notifications?: { endpoints?: Array<QueueStatus & { name: string }> } };
    const ep = body.notifications?.endpoints?.find((e) => e.name === ENDPOINT);
    if (!ep) throw new Error(`GET /debug/status has no endpoint ${ENDPOINT}: ${res.body.toString("utf8").slice(0, 300)}`);
    return ep;
  } finally {
    conn.close();
  }
}

interface Drain {
  /** From the call until everything was delivered (ms). */
  ms: number;
  timedOut: boolean;
  events: number;
}

/**
 * Waits until the endpoint has everything: for berth, until /debug/status shows nothing pending;
 * for distribution (no such view), until the receiver has at least `expected` events (or, without
 * one, any) and no more arrive for 300 ms.
 */
async function waitDrained(srv: RunningServer, receiver: Receiver, expected: number | undefined, capMs = DRAIN_CAP_MS): Promise<Drain> {
  const t0 = performance.now();
  const epoch0 = performance.timeOrigin + t0;
  let last = -1;
  let lastChange = t0;
  for (;;) {
    const now = performance.now();
    // berth: pending 0, and the receiver quiet for a moment as well (before 0d7986a the count
    // could read 0 while a delivered batch was being deleted and the next one waited).
    const empty = srv.kind === "berth" ? (await berthQueue(srv))!.pending === 0 : true;
    const s = await receiver.stats();
    if (s.events !== last) {
      last = s.events;
      lastChange = now;
    }
    const enough = expected === undefined || s.events >= expected;
    const quietMs = srv.kind === "berth" ? 100 : 300;
    if (empty && enough && now - lastChange >= quietMs) return { ms: Math.max(0, s.lastAt - epoch0), timedOut: false, events: s.events };
    if (now - t0 > capMs) return { ms: now - t0, timedOut: true, events: (await receiver.stats()).events };
    await new Promise((r) => setTimeout(r, 25));
  }
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

// ---------------------------------------------------------------------------------------------
// notify-push-50

/** Keep-alive connections to each server of a pair. */
interface PairConns {
  notify: Conn[];
  baseline: Conn[];
}

interface PushState {
  pair: Pair;
  conns: PairConns;
}

/** `n` connections to each server of the pair; none is left open when one fails. */
async function connectBoth(pair: Pair, n: number): Promise<PairConns> {
  const conns: PairConns = { notify: [], baseline: [] };
  try {
    for (let i = 0; i < n; i++) conns.notify.push(await Conn.connect(pair.notify.host, pair.notify.port));
    for (let i = 0; i < n; i++) conns.baseline.push(await Conn.connect(pair.baseline.host, pair.baseline.port));
  } catch (err) {
    for (const c of [...conns.notify, ...conns.baseline]) c.close();
    throw err;
  }
  return conns;
}

function pushEventsExpected(ctx: BenchContext): number {
  // Per image: a push event per blob (layers + config) and one for the manifest.
  return ctx.sizes.images * (ctx.sizes.layersPerImage + 2);
}

/**
 * Each round pushes four blocks of 50 fresh images, A B B A (the order alternating between rounds),
 * as gc-push-50: one push-50 takes 0.4-0.8 s, within which the machine's own drift moves single
 * ratios by ±10%. Each server gets two sets it has not stored; after each block with the endpoint
 * its events are delivered before the next block starts.
 */
export const notifyPush50: BenchCase<PushState> = {
  name: "notify-push-50",
  description: "push-50-images with one webhook endpoint (a fast local receiver) vs without, wall seconds (two blocks of 50 images each, A B B A)",
  unit: "s",
  higherIsBetter: false,
  baseline: { label: "no endpoint", target: "≤ 1.10" },
  prepare: async (ctx) => {
    imageSets(ctx, 2);
  },
  async setup(srv, ctx) {
    const receiver = await Receiver.start(0);
    const pair = await startNotifyPair(srv, ctx, notificationsYaml(receiver.url), [receiver]);
    try {
      return { pair, conns: await connectBoth(pair, imageSets(ctx, 1)[0]!.length) };
    } catch (err) {
      await stopNotifyPair(pair);
      throw err;
    }
  },
  async run(srv, ctx, state) {
    const sets = imageSets(ctx, 2);
    const { pair, conns } = state;
    const receiver = pair.receivers[0]!;
    const [a, b] = variantFirst("notify-push-50", srv) ? (["notify", "baseline"] as const) : (["baseline", "notify"] as const);
    const out: Record<string, unknown> = { order: `${a},${b},${b},${a}` };
    const times: Record<"notify" | "baseline", number> = { notify: 0, baseline: 0 };
    const pushed: Record<"notify" | "baseline", number> = { notify: 0, baseline: 0 };
    const blocks: string[] = [];
    const notify = { cpuPush: 0, cpuWithDelivery: 0, deliveredAfterPushMs: [] as number[], receiverCpu: 0 };
    let baselineCpu = 0;
    const events0 = (await receiver.stats()).events;
    for (const which of [a, b, b, a]) {
      const server = pair[which];
      const set = sets[pushed[which]++]!;
      spawnSync("sync");
      const cpu0 = server.cpu().cpu;
      const rcpu0 = receiver.cpuS();
      const t0 = performance.now();
      await Promise.all(set.map((img, i) => pushImage(conns[which][i]!, `bench/img-${pushed[which]}-${i}`, "latest", img)));
      const seconds = (performance.now() - t0) / 1000;
      times[which] += seconds;
      blocks.push(`${which} ${seconds.toFixed(3)}`);
      const cpuPush = server.cpu().cpu - cpu0;
      if (which === "baseline") {
        baselineCpu += cpuPush;
        continue;
      }
      notify.cpuPush += cpuPush;
      const drain = await waitDrained(server, receiver, events0 + pushed.notify * pushEventsExpected(ctx));
      if (drain.timedOut) throw new Error(`the endpoint did not get every event within ${DRAIN_CAP_MS / 1000} s: ${drain.events} events`);
      notify.cpuWithDelivery += server.cpu().cpu - cpu0;
      notify.deliveredAfterPushMs.push(Math.round(drain.ms));
      notify.receiverCpu += receiver.cpuS() - rcpu0;
    }
    Object.assign(out, {
      blocks,
      notifyServerCpuS: round3(notify.cpuPush / 2),
      notifyServerCpuWithDeliveryS: round3(notify.cpuWithDelivery / 2),
      deliveredAfterPushMs: notify.deliveredAfterPushMs,
      receiverCpuS: round3(notify.receiverCpu / 2),
      receiver: await receiver.stats(),
      queue: await berthQueue(pair.notify),
      baselineServerCpuS: round3(baselineCpu / 2),
    });
    // The value is one push-50's time: the mean of the variant's two blocks.
    return { value: times.notify / 2, baseline: { value: times.baseline / 2 }, extra: out };
  },
  async teardown(state) {
    for (const c of [...state.conns.notify, ...state.conns.baseline]) c.close();
    await stopNotifyPair(state.pair);
  },
};

// ---------------------------------------------------------------------------------------------
// notify-manifest-get

/** Pushes the small image as bench/app:latest and checks one GET of its manifest. */
async function seedManifest(server: RunningServer, img: SmallImage): Promise<void> {
  const conn = await Conn.connect(server.host, server.port);
  try {
    await pushImage(conn, MANIFEST_REPO, "latest", img);
    const res = expectStatus(await conn.request({ method: "GET", path: MANIFEST_PATH, headers: { Accept: MANIFEST_ACCEPT } }), 200, `GET ${MANIFEST_PATH}`);
    if (res.headers.get("docker-content-digest") !== img.manifestDigest || !res.body.equals(img.manifest)) {
      throw new Error(`GET ${MANIFEST_PATH}: not the pushed manifest`);
    }
  } finally {
    conn.close();
  }
}

async function wrkManifest(server: RunningServer, connections: number, seconds: number, dir: string): Promise<WrkResult> {
  const r = await runWrk({ url: `${server.url}${MANIFEST_PATH}`, method: "GET", headers: { Accept: MANIFEST_ACCEPT }, connections, durationSec: seconds, dir });
  const errors = r.errors.connect + r.errors.read + r.errors.write + r.errors.status + r.errors.timeout;
  if (errors > 0) throw new Error(`wrk GET ${MANIFEST_PATH}: ${JSON.stringify(r.errors)} errors in ${r.requests} requests`);
  if (r.requests === 0) throw new Error(`wrk GET ${MANIFEST_PATH}: no requests completed`);
  return r;
}

export function notifyManifestGet(connections: number): BenchCase<Pair> {
  const name = connections === 16 ? "notify-manifest-get" : `notify-manifest-get-c${connections}`;
  return {
    name,
    description: `manifest-get-c${connections} (wrk) with one webhook endpoint (a fast local receiver; a pull event per GET) vs without`,
    unit: "req/s",
    higherIsBetter: true,
    latency: true,
    baseline: { label: "no endpoint", target: "≥ 0.90" },
    async setup(srv, ctx) {
      const receiver = await Receiver.start(0);
      const pair = await startNotifyPair(srv, ctx, notificationsYaml(receiver.url), [receiver]);
      try {
        const img = sharedSmallImage(ctx);
        for (const server of [pair.notify, pair.baseline]) {
          await seedManifest(server, img);
          await wrkManifest(server, connections, ctx.sizes.warmupSec, ctx.tmpRoot);
        }
        // The warm-up's events are delivered before the timed part starts.
        const drain = await waitDrained(pair.notify, receiver, undefined);
        if (drain.timedOut) throw new Error(`the warm-up's events were not delivered within ${DRAIN_CAP_MS / 1000} s`);
      } catch (err) {
        await stopNotifyPair(pair);
        throw err;
      }
      return pair;
    },
    async run(srv, ctx, pair) {
      const receiver = pair.receivers[0]!;
      const first = variantFirst(name, srv);
      const [a, b] = first ? (["notify", "baseline"] as const) : (["baseline", "notify"] as const);
      const out: Record<string, unknown> = { endpointFirst: first, order: `${a},${b},${b},${a}`, connections };
      // A B B A in halves, as metrics-*: one block per variant moved the ratio by ±20% with the
      // machine's own speed (the baseline alone measured 10,300 and 15,500 req/s in one run).
      const halfSec = Math.max(1, Math.round(ctx.sizes.wrkSec / 2));
      const runs: Record<"notify" | "baseline", WrkResult[]> = { notify: [], baseline: [] };
      const notify = { cpuLoad: 0, cpuDrain: 0, receivedDuringLoad: 0, delivered: 0, drainMs: 0, pendingAtEnd: [] as Array<number | undefined> };
      let baselineCpu = 0;
      const rcpu0 = receiver.cpuS();
      for (const which of [a, b, b, a]) {
        const server = pair[which];
        const events0 = (await receiver.stats()).events;
        const cpu0 = server.cpu().cpu;
        const r = await wrkManifest(server, connections, halfSec, ctx.tmpRoot);
        runs[which].push(r);
        const cpuLoad = server.cpu().cpu - cpu0;
        if (which === "baseline") {
          baselineCpu += cpuLoad;
          continue;
        }
        notify.cpuLoad += cpuLoad;
        notify.receivedDuringLoad += (await receiver.stats()).events - events0;
        notify.pendingAtEnd.push((await berthQueue(server))?.pending);
        // Delivered before the next block, so that delivery never competes with the baseline.
        const cpuDrain0 = server.cpu().cpu;
        const drain = await waitDrained(server, receiver, events0 + r.requests);
        if (drain.timedOut) throw new Error(`the endpoint did not get every event within ${DRAIN_CAP_MS / 1000} s of the load`);
        notify.cpuDrain += server.cpu().cpu - cpuDrain0;
        notify.delivered += drain.events - events0;
        notify.drainMs += drain.ms;
      }
      const n = combine(runs.notify);
      const bl = combine(runs.baseline);
      Object.assign(out, {
        notifyRequests: n.requests,
        notifyServerCpuS: round3(notify.cpuLoad),
        notifyServerCpuUsPerRequest: Math.round((notify.cpuLoad / n.requests) * 1e6),
        eventsDeliveredDuringLoad: notify.receivedDuringLoad,
        pendingAtEndOfLoad: notify.pendingAtEnd,
        drainMs: Math.round(notify.drainMs),
        drainServerCpuS: round3(notify.cpuDrain),
        eventsDelivered: notify.delivered,
        serverCpuUsPerRequestWithDelivery: Math.round(((notify.cpuLoad + notify.cpuDrain) / n.requests) * 1e6),
        receiverCpuS: round3(receiver.cpuS() - rcpu0),
        halfRps: { notify: runs.notify.map((r) => Math.round(r.rps)), baseline: runs.baseline.map((r) => Math.round(r.rps)) },
        queueAfterDrain: await berthQueue(pair.notify),
        baselineRequests: bl.requests,
        baselineServerCpuS: round3(baselineCpu),
        baselineServerCpuUsPerRequest: Math.round((baselineCpu / bl.requests) * 1e6),
        baselineP50Ms: bl.p50Ms,
      });
      return { value: n.rps, p50Ms: n.p50Ms, p99Ms: n.p99Ms, baseline: { value: bl.rps, p50Ms: bl.p50Ms, p99Ms: bl.p99Ms }, extra: out };
    },
    teardown: stopNotifyPair,
  };
}

// ---------------------------------------------------------------------------------------------
// notify-slow-receiver

/** Concurrent pushers: enough to overlap requests, few enough that a latency is a request's own. */
const SLOW_CLIENTS = 5;
/** The images are pushed in this many blocks, alternating between the slow and the fast server. */
const SLOW_BLOCKS = 5;

interface Latencies {
  imageMs: number[];
  blobPutMs: number[];
  manifestPutMs: number[];
  wallS: number;
}

/** Pushes `images` with SLOW_CLIENTS connections taking the next image as they finish, timing each step. */
async function timedPushes(conns: Conn[], images: SmallImage[], prefix: string): Promise<Latencies> {
  const lat: Latencies = { imageMs: [], blobPutMs: [], manifestPutMs: [], wallS: 0 };
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    conns.map(async (conn) => {
      for (let i = next++; i < images.length; i = next++) {
        const img = images[i]!;
        const repo = `${prefix}-${i}`;
        const ti = performance.now();
        for (const blob of [...img.layers, { data: img.config, digest: img.configDigest }]) {
          const head = await conn.request({ method: "HEAD", path: `/v2/${repo}/blobs/${blob.digest}` });
          expectStatus(head, 404, `HEAD /v2/${repo}/blobs/${blob.digest}`);
          const tb = performance.now();
          await pushBlobMonolithic(conn, repo, blob.digest, blob.data);
          lat.blobPutMs.push(performance.now() - tb);
        }
        const tm = performance.now();
        await pushManifest(conn, repo, "latest", img.manifest);
        const done = performance.now();
        lat.manifestPutMs.push(done - tm);
        lat.imageMs.push(done - ti);
      }
    }),
  );
  lat.wallS = (performance.now() - t0) / 1000;
  return lat;
}

type SlowState = PushState;

export const notifySlowReceiver: BenchCase<SlowState> = {
  name: "notify-slow-receiver",
  description: `the push-50 images, ${SLOW_CLIENTS} clients at a time in ${SLOW_BLOCKS} blocks alternating between a registry whose endpoint answers each event after ${SLOW_MS / 1000} s and one with a fast endpoint; median image push ms, manifest PUT p50/p99`,
  unit: "ms",
  higherIsBetter: false,
  latency: true,
  baseline: { label: "fast receiver", target: "≤ 1.10" },
  prepare: (ctx) => pushImages.prepare!(ctx),
  async setup(srv, ctx) {
    // timeout 10s: the slow receiver's answers arrive (late) rather than every attempt failing.
    const slow = await Receiver.start(SLOW_MS);
    const fast = await Receiver.start(0).catch(async (err: unknown) => {
      await slow.stop();
      throw err;
    });
    const pair = await startNotifyPair(srv, ctx, notificationsYaml(slow.url, "10s"), [slow, fast], notificationsYaml(fast.url, "10s"));
    try {
      // One image first, so the slow endpoint's dispatcher is inside a 5-second request when the
      // timed pushes start (and the fast one has delivered).
      const seed = makeImage([randomBytes(1024)], "slow-seed");
      for (const server of [pair.notify, pair.baseline]) {
        const conn = await Conn.connect(server.host, server.port);
        try {
          await pushImage(conn, "bench/seed", "latest", seed);
        } finally {
          conn.close();
        }
      }
      await waitDrained(pair.baseline, fast, 3);
      return { pair, conns: await connectBoth(pair, SLOW_CLIENTS) };
    } catch (err) {
      await stopNotifyPair(pair);
      throw err;
    }
  },
  async run(srv, ctx, state) {
    const all = ctx.shared.get("push-images") as SmallImage[];
    const { pair, conns } = state;
    const [slow, fast] = pair.receivers as [Receiver, Receiver];
    const first = variantFirst("notify-slow-receiver", srv);
    const out: Record<string, unknown> = { endpointFirst: first, clients: SLOW_CLIENTS, images: all.length, blocks: SLOW_BLOCKS };
    const lat: Record<"notify" | "baseline", Latencies> = {
      notify: { imageMs: [], blobPutMs: [], manifestPutMs: [], wallS: 0 },
      baseline: { imageMs: [], blobPutMs: [], manifestPutMs: [], wallS: 0 },
    };
    const cpu = { notify: 0, baseline: 0 };
    const perBlock = Math.ceil(all.length / SLOW_BLOCKS);
    let fastExpected = 3; // the seed image's events
    let fastDrainMs = 0;
    // Blocks of images alternate between the two servers (ABBAABBA…), so both sample the same
    // stretches of whatever else the machine is doing.
    for (let block = 0; block < SLOW_BLOCKS; block++) {
      const images = all.slice(block * perBlock, (block + 1) * perBlock);
      const slowFirst = (block % 2 === 0) === first;
      for (const which of slowFirst ? (["notify", "baseline"] as const) : (["baseline", "notify"] as const)) {
        const server = pair[which];
        spawnSync("sync");
        const cpu0 = server.cpu().cpu;
        const l = await timedPushes(conns[which], images, `bench/b${block}-img`);
        cpu[which] += server.cpu().cpu - cpu0;
        lat[which].imageMs.push(...l.imageMs);
        lat[which].blobPutMs.push(...l.blobPutMs);
        lat[which].manifestPutMs.push(...l.manifestPutMs);
        lat[which].wallS += l.wallS;
        if (which === "baseline") {
          // The fast endpoint is drained before the next block, so its delivery overlaps nothing.
          fastExpected += images.length * (ctx.sizes.layersPerImage + 2);
          const drain = await waitDrained(server, fast, fastExpected);
          if (drain.timedOut) throw new Error(`the fast endpoint did not get every event within ${DRAIN_CAP_MS / 1000} s`);
          fastDrainMs = Math.max(fastDrainMs, drain.ms);
        }
      }
    }
    const summary = (which: "notify" | "baseline"): Record<string, unknown> => {
      const l = lat[which];
      return {
        wallS: round3(l.wallS),
        serverCpuS: round3(cpu[which]),
        imageP50Ms: round3(percentile(l.imageMs, 50)),
        imageP99Ms: round3(percentile(l.imageMs, 99)),
        blobPutP50Ms: round3(percentile(l.blobPutMs, 50)),
        blobPutP99Ms: round3(percentile(l.blobPutMs, 99)),
        manifestPutP50Ms: round3(percentile(l.manifestPutMs, 50)),
        manifestPutP99Ms: round3(percentile(l.manifestPutMs, 99)),
      };
    };
    out.slow = { ...summary("notify"), eventsReceived: (await slow.stats()).events, queue: await berthQueue(pair.notify) };
    out.fast = { ...summary("baseline"), longestDeliveryAfterBlockMs: Math.round(fastDrainMs), eventsReceived: (await fast.stats()).events, queue: await berthQueue(pair.baseline) };
    const n = lat.notify;
    const b = lat.baseline;
    return {
      value: percentile(n.imageMs, 50),
      p50Ms: percentile(n.manifestPutMs, 50),
      p99Ms: percentile(n.manifestPutMs, 99),
      baseline: { value: percentile(b.imageMs, 50), p50Ms: percentile(b.manifestPutMs, 50), p99Ms: percentile(b.manifestPutMs, 99) },
      extra: out,
    };
  },
  async teardown(state) {
    for (const c of [...state.conns.notify, ...state.conns.baseline]) c.close();
    await stopNotifyPair(state.pair);
  },
};

// ---------------------------------------------------------------------------------------------
// notify-queue-memory

const MEMORY_CONNECTIONS = 16;
/**
 * Warm-up requests: GETs of a tag that does not exist (404), which run the request path without
 * recording an event, so the queue holds only the timed part's events (and the seed's four).
 */
const MEMORY_WARMUP_REQUESTS = 2_000;
const MISSING_PATH = `/v2/${MANIFEST_REPO}/manifests/no-such-tag`;
/** berth's default `maxevents`: the full-size case fills the queue to it. */
const MAX_EVENTS = 100_000;

/** `total` GETs of `path` over MEMORY_CONNECTIONS keep-alive connections, as fast as they answer. */
async function manifestGets(server: RunningServer, total: number, path = MANIFEST_PATH, want = 200): Promise<{ seconds: number; errors: number; firstError?: string }> {
  const conns: Conn[] = [];
  for (let i = 0; i < MEMORY_CONNECTIONS; i++) conns.push(await Conn.connect(server.host, server.port));
  let left = total;
  let errors = 0;
  let firstError: string | undefined;
  const req = { method: "GET", path, headers: { Accept: MANIFEST_ACCEPT }, discard: true };
  const t0 = performance.now();
  try {
    await Promise.all(
      conns.map(async (conn) => {
        while (left > 0) {
          left--;
          try {
            const res = await conn.request(req);
            if (res.status !== want) {
              errors++;
              firstError ??= `status ${res.status}`;
            }
          } catch (err) {
            errors++;
            firstError ??= err instanceof Error ? err.message : String(err);
            if (errors > 100) return;
          }
        }
      }),
    );
  } finally {
    for (const c of conns) c.close();
  }
  return { seconds: (performance.now() - t0) / 1000, errors, firstError };
}

interface OutboxSize {
  files: number;
  bytes: number;
  /** Allocated on disk (st_blocks × 512). */
  diskBytes: number;
}

/** Files and bytes under `dir`; entries that vanish while it counts (berth drops batches meanwhile) are skipped. */
async function treeSize(dir: string): Promise<OutboxSize> {
  const total: OutboxSize = { files: 0, bytes: 0, diskBytes: 0 };
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return total;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    const st = await lstat(p).catch(() => undefined);
    if (!st) continue;
    total.diskBytes += st.blocks * 512;
    if (e.isDirectory()) {
      const sub = await treeSize(p);
      total.files += sub.files;
      total.bytes += sub.bytes;
      total.diskBytes += sub.diskBytes;
    } else {
      total.files++;
      total.bytes += st.size;
    }
  }
  return total;
}

function memoryEvents(ctx: BenchContext): number {
  return ctx.quick ? 20_000 : MAX_EVENTS;
}

/** Full size only: berth's queue is then pushed this far past maxevents, after both variants. */
const BEYOND_MAX_EVENTS = 50_000;

export const notifyQueueMemory: BenchCase<Pair> = {
  name: "notify-queue-memory",
  description: "RSS after 100,000 manifest GETs (20,000 with --quick), each a pull event queued for a dead endpoint (connection refused) vs no endpoint, MiB; then berth 50,000 past maxevents",
  unit: "MiB",
  higherIsBetter: false,
  baseline: { label: "no endpoint", target: "≤ 1.10" },
  async setup(srv, ctx) {
    const dead = await freePort(); // nothing listens there: connection refused
    const pair = await startNotifyPair(srv, ctx, notificationsYaml(`http://127.0.0.1:${dead}/events`), []);
    try {
      const img = sharedSmallImage(ctx);
      for (const server of [pair.notify, pair.baseline]) {
        await seedManifest(server, img);
        const warm = await manifestGets(server, MEMORY_WARMUP_REQUESTS, MISSING_PATH, 404);
        if (warm.errors > 0) throw new Error(`warm-up: ${warm.errors} errors; first: ${warm.firstError}`);
      }
    } catch (err) {
      await stopNotifyPair(pair);
      throw err;
    }
    return pair;
  },
  async run(srv, ctx, pair) {
    const total = memoryEvents(ctx);
    const first = variantFirst("notify-queue-memory", srv);
    const out: Record<string, unknown> = { endpointFirst: first, requests: total, warmupRequests: MEMORY_WARMUP_REQUESTS };
    const after: Record<"notify" | "baseline", number> = { notify: NaN, baseline: NaN };
    for (const which of first ? (["notify", "baseline"] as const) : (["baseline", "notify"] as const)) {
      const server = pair[which];
      const before = server.memory().rssKiB * MiB_PER_KiB;
      const queueBefore = await berthQueue(server).catch(() => undefined);
      server.resetPeak();
      const cpu0 = server.cpu().cpu;
      const r = await manifestGets(server, total);
      if (r.errors > 0) throw new Error(`${which}: ${r.errors} errors in ${total} GETs; first: ${r.firstError}`);
      const cpu = server.cpu().cpu - cpu0;
      const rightAfter = server.memory();
      // Let the dispatcher run its limits (it checks them between attempts, every backoff).
      await new Promise((res) => setTimeout(res, 2_500));
      const settled = server.memory();
      after[which] = settled.rssKiB * MiB_PER_KiB;
      const v: Record<string, unknown> = {
        rssBeforeMiB: round3(before),
        rssRightAfterMiB: round3(rightAfter.rssKiB * MiB_PER_KiB),
        rssAfterMiB: round3(after[which]),
        rssDeltaMiB: round3(after[which] - before),
        peakRssMiB: round3(Math.max(rightAfter.hwmKiB, settled.hwmKiB) * MiB_PER_KiB),
        seconds: round3(r.seconds),
        rps: Math.round(total / r.seconds),
        serverCpuS: round3(cpu),
      };
      if (which === "notify") {
        v.queueBefore = queueBefore;
        v.queue = await berthQueue(server);
        if (server.kind === "berth") v.outbox = await treeSize(join(server.dir, "storage", "berth", "notifications"));
      }
      out[which] = v;
    }
    // Past maxevents (full size, berth): the queue should stay at maxevents, dropping the oldest.
    if (!ctx.quick && srv.kind === "berth") {
      const r = await manifestGets(pair.notify, BEYOND_MAX_EVENTS);
      if (r.errors > 0) throw new Error(`past maxevents: ${r.errors} errors; first: ${r.firstError}`);
      const rightAfter = await berthQueue(pair.notify);
      const mem = pair.notify.memory();
      await new Promise((res) => setTimeout(res, 2_500));
      out.beyondMaxEvents = {
        requests: BEYOND_MAX_EVENTS,
        rps: Math.round(BEYOND_MAX_EVENTS / r.seconds),
        rssMiB: round3(mem.rssKiB * MiB_PER_KiB),
        peakRssMiB: round3(mem.hwmKiB * MiB_PER_KiB),
        queueRightAfter: rightAfter,
        queueAfter: await berthQueue(pair.notify),
        rssAfterMiB: round3(pair.notify.memory().rssKiB * MiB_PER_KiB),
        outbox: await treeSize(join(pair.notify.dir, "storage", "berth", "notifications")),
      };
    }
    return { value: after.notify, baseline: { value: after.baseline }, extra: out };
  },
  teardown: stopNotifyPair,
};

