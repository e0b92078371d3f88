/**
 * berth and distribution on S3: both registries on the same Ceph radosgw (bench/s3-env.ts), each
 * run on its own root directory in the bucket, through a proxy that counts every S3 request (and,
 * for `s3-push-latency`, delays each by 20 ms before forwarding it: an object store farther away
 * than loopback). Both have the in-memory blob descriptor cache, redirects off
 * (`storage.redirect.disable`: blobs are served through the registry) and upload purging off.
 *
 * - `s3-pull`: the skopeo case's five-layer image (~120 MB) pulled as docker does (manifest by
 *   tag, then config and layers three at a time), bytes discarded; sizes and Docker-Content-Digest
 *   checked. MB/s, and server CPU per MB against distribution's.
 * - `s3-push`, `s3-push-latency`: the same image pushed as docker does: each blob HEAD, POST, one
 *   PATCH with the whole blob streamed, PUT ?digest=; the five layers at once, then the config,
 *   then the manifest by tag. Wall seconds and S3 requests.
 * - `s3-repos`: 8 clients create repositories, each with its own small image (a 1 KiB layer, a
 *   config, a manifest) pushed the same way. Repositories per second, S3 requests per repository.
 * - `s3-tags`: 8 clients put one manifest (pushed in setup) under new tags of one repository.
 *   Tags per second, S3 requests per tag, after an untimed warm-up of 4× as many tags in a
 *   repository of their own (whose rate is reported too).
 *
 * Each run's S3 requests are those the proxy saw during the timed part (the registry's background
 * work included: berth refreshes its lease every 30 s). The Ceph daemons' CPU during the timed part
 * is in the JSON (`cephCpuS`): the object store's share of the work each registry asks for.
 */
import { createHash, randomBytes, randomFillSync } from "node:crypto";
import { Conn, expectStatus, HttpError } from "../lean-client.js";
import { makeImage, MANIFEST_ACCEPT, pushImageStreamed, pushManifest, type SmallImage } from "../registry-ops.js";
import { byOperation, restartOnS3, s3Unavailable, type S3Server } from "../s3-env.js";
import type { RunningServer } from "../servers.js";
import { MB, MiB, type BenchCase, type BenchContext, type Figure, type Measurement } from "../types.js";

const IMAGE_KEY = "s3-image";
const SMALL_KEY = "s3-small-images";
/** Concurrent blob downloads of a pull, as docker's max-concurrent-downloads default. */
const PULL_CONNS = 3;
/** Concurrent layer uploads of a push, as docker's max-concurrent-uploads default. */
const PUSH_CONNS = 5;
/** Clients of s3-repos and s3-tags. */
const CLIENTS = 8;
/** Untimed tags put before s3-tags' timed ones, as a multiple of them. */
const TAG_WARM_UP = 4;
/** Latency of s3-push-latency, added by the proxy to every S3 request. */
const LATENCY_MS = 20;

interface State extends S3Server {
  conns: Conn[];
}

interface TagState extends State {
  /** The warm-up's rate: the first tags after a start. */
  warmUpTagsPerS: number;
}

/** The skopeo case's sizes: five random layers (5 × 24 MB full, 5 × 2 MB quick). */
function bigImage(ctx: BenchContext): SmallImage {
  let img = ctx.shared.get(IMAGE_KEY) as SmallImage | undefined;
  if (!img) {
    const layers: Buffer[] = [];
    for (let i = 0; i < ctx.sizes.skopeoLayers; i++) layers.push(randomFillSync(Buffer.allocUnsafe(ctx.sizes.skopeoLayerBytes)));
    img = makeImage(layers, "s3");
    ctx.shared.set(IMAGE_KEY, img);
  }
  return img;
}

function blobBytes(img: SmallImage): number {
  return img.config.length + img.layers.reduce((s, l) => s + l.data.length, 0);
}

async function connect(srv: RunningServer, n: number, readBuffer?: number): Promise<Conn[]> {
  const conns: Conn[] = [];
  for (let i = 0; i < n; i++) conns.push(await Conn.connect(srv.host, srv.port, readBuffer ? { readBuffer } : {}));
  return conns;
}

/** Server and Ceph CPU and the proxy's requests over a timed part. */
function meter(srv: RunningServer, state: State): () => { requests: number; operations: Record<string, number>; serverCpuS: number; cephCpuS: number } {
  state.log.take();
  const cpu0 = srv.cpu().cpu;
  const ceph0 = state.s3.cephCpuS();
  return () => {
    const requests = state.log.take();
    return { requests: requests.length, operations: byOperation(requests), serverCpuS: srv.cpu().cpu - cpu0, cephCpuS: state.s3.cephCpuS() - ceph0 };
  };
}

async function teardown(state: State): Promise<void> {
  for (const c of state.conns) c.close();
  await state.s3.removeRoot(state.root);
}

/** One pull as docker does it: the manifest by tag, then config and layers over the connections. Returns bytes. */
async function pull(conns: Conn[], repo: string, tag: string, img: SmallImage): Promise<number> {
  const path = `/v2/${repo}/manifests/${tag}`;
  const m = expectStatus(await conns[0]!.request({ method: "GET", path, headers: { Accept: MANIFEST_ACCEPT } }), 200, `GET ${path}`);
  const digest = `sha256:${createHash("sha256").update(m.body).digest("hex")}`;
  if (digest !== img.manifestDigest) throw new HttpError(`GET ${path}: manifest ${digest}, want ${img.manifestDigest}`, path, m);
  const manifest = JSON.parse(m.body.toString("utf8")) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
  const queue = [manifest.config, ...manifest.layers];
  let bytes = m.bodyLength;
  await Promise.all(
    conns.map(async (conn) => {
      for (let d = queue.shift(); d; d = queue.shift()) {
        const blob = `/v2/${repo}/blobs/${d.digest}`;
        const res = expectStatus(await conn.request({ method: "GET", path: blob, discard: true }), 200, `GET ${blob}`);
        if (res.bodyLength !== d.size) throw new HttpError(`GET ${blob}: ${res.bodyLength} bytes, want ${d.size}`, blob, res);
        const got = res.headers.get("docker-content-digest");
        if (got !== undefined && got !== d.digest) throw new HttpError(`GET ${blob}: Docker-Content-Digest ${got}`, blob, res);
        bytes += res.bodyLength;
      }
    }),
  );
  return bytes;
}

const REQUESTS: Figure = { key: "s3Requests", label: "S3 requests", higherIsBetter: false };

export const s3Pull: BenchCase<State> = {
  name: "s3-pull",
  description: "S3 (radosgw, redirects off): pull a five-layer image as docker does (3 connections), bytes discarded, MB/s",
  unit: "MB/s",
  higherIsBetter: true,
  target: "≥ 1.5",
  unavailable: s3Unavailable,
  figures: [
    { key: "cpuMsPerMB", label: "server CPU ms per MB", higherIsBetter: false, target: "≤ 1.0" },
    { key: "serverCpuS", label: "server CPU s", higherIsBetter: false },
    { key: "s3RequestsPerPull", label: "S3 requests per pull", higherIsBetter: false },
    { key: "cephCpuS", label: "Ceph CPU s", higherIsBetter: false },
  ],
  async prepare(ctx) {
    bigImage(ctx);
  },
  async setup(srv, ctx) {
    const s3 = await restartOnS3(srv, ctx, 0);
    const conns = await connect(srv, PULL_CONNS, MiB);
    try {
      await pushImageStreamed(conns, "bench/pull", "latest", bigImage(ctx));
    } catch (err) {
      for (const c of conns) c.close();
      throw err;
    }
    return { ...s3, conns };
  },
  async run(srv, ctx, state) {
    const img = bigImage(ctx);
    const done = meter(srv, state);
    const t0 = performance.now();
    let bytes = 0;
    for (let i = 0; i < ctx.sizes.s3Pulls; i++) bytes += await pull(state.conns, "bench/pull", "latest", img);
    const seconds = (performance.now() - t0) / 1000;
    const m = done();
    return {
      value: bytes / MB / seconds,
      extra: {
        seconds,
        bytes,
        pulls: ctx.sizes.s3Pulls,
        s3Requests: m.requests,
        s3RequestsPerPull: m.requests / ctx.sizes.s3Pulls,
        s3Operations: m.operations,
        serverCpuS: m.serverCpuS,
        cpuMsPerMB: (m.serverCpuS * 1000) / (bytes / MB),
        cephCpuS: m.cephCpuS,
      },
    };
  },
  teardown,
};

function pushCase(name: string, delayMs: number): BenchCase<State> {
  return {
    name,
    description:
      `S3 (radosgw${delayMs ? `, +${delayMs} ms per S3 request` : ""}): push a five-layer image as docker does ` +
      "(HEAD, POST, one streamed PATCH, PUT ?digest= per blob; layers at once, then config and manifest), wall seconds",
    unit: "s",
    higherIsBetter: false,
    target: "≤ 0.7",
    unavailable: s3Unavailable,
    figures: [
      { ...REQUESTS, target: "≤ 0.6" },
      { key: "serverCpuS", label: "server CPU s", higherIsBetter: false },
      { key: "cephCpuS", label: "Ceph CPU s", higherIsBetter: false },
    ],
    async prepare(ctx) {
      bigImage(ctx);
    },
    async setup(srv, ctx) {
      const s3 = await restartOnS3(srv, ctx, delayMs);
      return { ...s3, conns: await connect(srv, PUSH_CONNS) };
    },
    async run(srv, ctx, state): Promise<Measurement> {
      const img = bigImage(ctx);
      const done = meter(srv, state);
      const t0 = performance.now();
      await pushImageStreamed(state.conns, "bench/push", "latest", img);
      const seconds = (performance.now() - t0) / 1000;
      const m = done();
      return {
        value: seconds,
        extra: {
          bytes: blobBytes(img),
          mbPerS: blobBytes(img) / MB / seconds,
          delayMs,
          s3Requests: m.requests,
          s3Operations: m.operations,
          serverCpuS: m.serverCpuS,
          cephCpuS: m.cephCpuS,
        },
      };
    },
    teardown,
  };
}

export const s3Push = pushCase("s3-push", 0);
export const s3PushLatency = pushCase("s3-push-latency", LATENCY_MS);

/** Distinct small images, one per repository of s3-repos. */
function smallImages(ctx: BenchContext): SmallImage[] {
  let all = ctx.shared.get(SMALL_KEY) as SmallImage[] | undefined;
  if (!all) {
    all = Array.from({ length: ctx.sizes.s3Repos }, (_, i) => makeImage([randomBytes(1024)], `s3-repo-${i}`));
    ctx.shared.set(SMALL_KEY, all);
  }
  return all;
}

/** Runs `task(i, conn)` for i in [0, n), CLIENTS at a time, each client on its own connection. */
async function onClients(conns: Conn[], n: number, task: (i: number, conn: Conn) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    conns.map(async (conn) => {
      for (let i = next++; i < n; i = next++) await task(i, conn);
    }),
  );
}

export const s3Repos: BenchCase<State> = {
  name: "s3-repos",
  description: `S3 (radosgw): ${CLIENTS} clients create repositories, each with its own small image (1 KiB layer, config, manifest; pushed as docker does), repositories/s`,
  unit: "repos/s",
  higherIsBetter: true,
  target: "≥ 2",
  unavailable: s3Unavailable,
  figures: [
    { key: "s3RequestsPerRepo", label: "S3 requests per repository", higherIsBetter: false },
    { key: "cpuMsPerRepo", label: "server CPU ms per repository", higherIsBetter: false },
    { key: "cephCpuS", label: "Ceph CPU s", higherIsBetter: false },
  ],
  async prepare(ctx) {
    smallImages(ctx);
  },
  async setup(srv, ctx) {
    const s3 = await restartOnS3(srv, ctx, 0);
    return { ...s3, conns: await connect(srv, CLIENTS) };
  },
  async run(srv, ctx, state) {
    const all = smallImages(ctx);
    const done = meter(srv, state);
    const t0 = performance.now();
    await onClients(state.conns, all.length, (i, conn) => pushImageStreamed([conn], `bench/repo-${i}`, "latest", all[i]!));
    const seconds = (performance.now() - t0) / 1000;
    const m = done();
    return {
      value: all.length / seconds,
      extra: {
        seconds,
        repositories: all.length,
        s3Requests: m.requests,
        s3RequestsPerRepo: m.requests / all.length,
        s3Operations: m.operations,
        serverCpuS: m.serverCpuS,
        cpuMsPerRepo: (m.serverCpuS * 1000) / all.length,
        cephCpuS: m.cephCpuS,
      },
    };
  },
  teardown,
};

export const s3Tags: BenchCase<TagState> = {
  name: "s3-tags",
  description: `S3 (radosgw): ${CLIENTS} clients put one manifest under new tags of one repository, tags/s`,
  unit: "tags/s",
  higherIsBetter: true,
  target: "≥ 2",
  unavailable: s3Unavailable,
  figures: [
    { key: "s3RequestsPerTag", label: "S3 requests per tag", higherIsBetter: false, target: "≤ 1.0" },
    { key: "cpuMsPerTag", label: "server CPU ms per tag", higherIsBetter: false },
    { key: "cephCpuS", label: "Ceph CPU s", higherIsBetter: false },
    { key: "warmUpTagsPerS", label: `warm-up tags/s (the first ${TAG_WARM_UP}× as many after a start, untimed)`, higherIsBetter: true },
  ],
  async prepare(ctx) {
    smallImages(ctx);
  },
  async setup(srv, ctx) {
    const s3 = await restartOnS3(srv, ctx, 0);
    const conns = await connect(srv, CLIENTS);
    const warmUp = TAG_WARM_UP * ctx.sizes.s3Tags;
    let warmUpSeconds: number;
    try {
      const image = smallImages(ctx)[0]!;
      await pushImageStreamed(conns.slice(0, 1), "bench/tags", "latest", image);
      // Untimed, the same for both servers, in a repository of its own: the timed tags are a
      // running registry's, not the first ones after a start (berth's first 400 took 1.2-1.4 ms
      // of CPU each, the JIT still compiling; 0.5-0.6 ms after 1,600).
      await pushImageStreamed(conns.slice(0, 1), "bench/tags-warm-up", "latest", image);
      const t0 = performance.now();
      await onClients(conns, warmUp, async (i, conn) => {
        await pushManifest(conn, "bench/tags-warm-up", `warm-${i}`, image.manifest);
      });
      warmUpSeconds = (performance.now() - t0) / 1000;
    } catch (err) {
      for (const c of conns) c.close();
      throw err;
    }
    return { ...s3, conns, warmUpTagsPerS: warmUp / warmUpSeconds };
  },
  async run(srv, ctx, state) {
    const manifest = smallImages(ctx)[0]!.manifest;
    const n = ctx.sizes.s3Tags;
    const done = meter(srv, state);
    const t0 = performance.now();
    await onClients(state.conns, n, async (i, conn) => {
      await pushManifest(conn, "bench/tags", `tag-${String(i).padStart(4, "0")}`, manifest);
    });
    const seconds = (performance.now() - t0) / 1000;
    const m = done();
    return {
      value: n / seconds,
      extra: {
        seconds,
        tags: n,
        s3Requests: m.requests,
        s3RequestsPerTag: m.requests / n,
        s3Operations: m.operations,
        serverCpuS: m.serverCpuS,
        cpuMsPerTag: (m.serverCpuS * 1000) / n,
        cephCpuS: m.cephCpuS,
        warmUpTagsPerS: state.warmUpTagsPerS,
      },
    };
  },
  teardown,
};

export const S3_CASES = [s3Pull, s3Push, s3PushLatency, s3Repos, s3Tags];
