/**
 * Pull-through cache (mirror): pulls of a five-layer image through the registry under test,
 * configured with distribution's shorthand `proxy: remoteurl:` pointing at an upstream.
 *
 * The upstream is the same for both sides: a distribution (docker-registry) process with fresh
 * storage, started per run, holding the image pushed during setup. The harness starts the
 * registry under test with the plain config before setup; setup stops it and starts the same
 * kind again with the proxy section, then points the harness's RunningServer at the mirror, so
 * the server CPU and memory the harness reads are the mirror's.
 *
 * A pull is what a client does: GET the manifest by tag, then config and layers over three
 * connections at a time (docker's default concurrency), every body hashed as it streams and
 * checked against its digest and size, so a broken mirror cannot look fast. With 20 clients one
 * hashes and the others check sizes: hashing 20 copies in this one process would measure it. The
 * cold cases also wait (after the pull, not in the reported time) until the mirror's storage holds
 * every blob: the CPU the harness reports then includes filling the cache.
 */
import { createHash, randomFillSync } from "node:crypto";
import { stat } from "node:fs/promises";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { Conn } from "../lean-client.js";
import { makeImage, pushImage, type SmallImage } from "../registry-ops.js";
import { startServer, type RunningServer } from "../servers.js";
import type { BenchCase, BenchContext } from "../types.js";

const KEY = "mirror-image";
const REPO = "bench/mirror";
const TAG = "latest";
/** Concurrent blob downloads per client, as docker's max-concurrent-downloads default. */
const PER_CLIENT = 3;
const ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");
const CACHE_WAIT_MS = 60_000;

interface State {
  upstream: RunningServer;
  mirror: { host: string; port: number; storage: string };
  agents: Agent[];
}

interface Descriptor {
  digest: string;
  size: number;
}

/** Upstreams still running, killed if the benchmark exits (Ctrl-C) before their teardown. */
const liveUpstreams = new Set<RunningServer>();
let exitHook = false;

function image(ctx: BenchContext): SmallImage {
  return ctx.shared.get(KEY) as SmallImage;
}

function imageBytes(img: SmallImage): number {
  return img.manifest.length + img.config.length + img.layers.reduce((s, l) => s + l.data.length, 0);
}

/**
 * GET `path`; fails unless the body is `want`: hashed as it arrives and checked byte for byte, or,
 * with `hashBody` false, checked for its size only (the bytes counted and discarded).
 */
function getVerified(
  agent: Agent,
  target: State["mirror"],
  path: string,
  want: Descriptor | undefined,
  keep: boolean,
  headers: Record<string, string> = {},
  hashBody = true,
): Promise<{ body: Buffer | undefined; digest: string; size: number }> {
  return new Promise((resolve, reject) => {
    const what = `GET ${path}`;
    const req = request({ agent, host: target.host, port: target.port, path, method: "GET", headers }, (res) => {
      const hash = createHash("sha256");
      const parts: Buffer[] = [];
      let size = 0;
      let ended = false;
      res.on("data", (chunk: Buffer) => {
        if (hashBody) hash.update(chunk);
        size += chunk.length;
        if (keep || res.statusCode !== 200) parts.push(chunk);
      });
      res.once("error", (err) => reject(new Error(`${what}: ${err.message}`)));
      res.once("close", () => {
        if (!ended) reject(new Error(`${what}: connection closed after ${size} bytes`));
      });
      res.once("end", () => {
        ended = true;
        if (res.statusCode !== 200) {
          return reject(new Error(`${what}: expected 200, got ${res.statusCode} ${Buffer.concat(parts).subarray(0, 500).toString("utf8")}`));
        }
        const digest = hashBody ? `sha256:${hash.digest("hex")}` : (want?.digest ?? "");
        if (want && (digest !== want.digest || size !== want.size)) {
          return reject(new Error(`${what}: got ${size} bytes of ${digest}, want ${want.size} bytes of ${want.digest}`));
        }
        resolve({ body: keep ? Buffer.concat(parts) : undefined, digest, size });
      });
    });
    req.once("error", (err) => reject(new Error(`${what}: ${err.message}`)));
    req.end();
  });
}

/**
 * One client's pull: the manifest by tag, then config and layers, PER_CLIENT at a time. Returns
 * bytes. `hashBlobs` false checks blob sizes only: with 20 clients in one benchmark process,
 * hashing 20 copies of the image would make the client, not the registry, what is measured (one
 * client still hashes everything, so a mirror serving wrong bytes still fails the run).
 */
async function pull(agent: Agent, target: State["mirror"], img: SmallImage, hashBlobs = true): Promise<number> {
  const m = await getVerified(agent, target, `/v2/${REPO}/manifests/${TAG}`, { digest: img.manifestDigest, size: img.manifest.length }, true, { Accept: ACCEPT });
  const manifest = JSON.parse(m.body!.toString("utf8")) as { config: Descriptor; layers: Descriptor[] };
  const queue = [manifest.config, ...manifest.layers];
  let bytes = m.size;
  const worker = async (): Promise<void> => {
    for (let d = queue.shift(); d; d = queue.shift()) {
      const got = await getVerified(agent, target, `/v2/${REPO}/blobs/${d.digest}`, d, false, {}, hashBlobs);
      bytes += got.size; // after the await: `bytes += await …` would read bytes before it
    }
  };
  await Promise.all(Array.from({ length: PER_CLIENT }, worker));
  return bytes;
}

function blobDataPath(storage: string, digest: string): string {
  const hex = digest.slice("sha256:".length);
  return join(storage, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
}

/** Waits until the mirror's storage holds every blob of the image (manifest included) at its full size. */
async function waitCached(storage: string, img: SmallImage): Promise<number> {
  const blobs: Descriptor[] = [
    { digest: img.manifestDigest, size: img.manifest.length },
    { digest: img.configDigest, size: img.config.length },
    ...img.layers.map((l) => ({ digest: l.digest, size: l.data.length })),
  ];
  const t0 = performance.now();
  for (;;) {
    const sizes = await Promise.all(blobs.map((b) => stat(blobDataPath(storage, b.digest)).then((s) => s.size, () => -1)));
    const missing = blobs.filter((b, i) => sizes[i] !== b.size);
    if (missing.length === 0) return performance.now() - t0;
    if (performance.now() - t0 > CACHE_WAIT_MS) {
      throw new Error(`the mirror did not store ${missing.map((b) => b.digest.slice(0, 19)).join(", ")} within ${CACHE_WAIT_MS / 1000} s of the pull`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

function proxyYaml(upstream: RunningServer): string {
  return ["proxy:", `  remoteurl: ${upstream.url}`, "  ttl: 168h", ""].join("\n");
}

function newAgents(n: number): Agent[] {
  return Array.from({ length: n }, () => new Agent({ keepAlive: true, maxSockets: PER_CLIENT }));
}

export function mirrorPull(opts: { name: string; clients: number; warm: boolean }): BenchCase<State> {
  const { clients, warm } = opts;
  const who = clients === 1 ? "one client" : `${clients} concurrent clients`;
  return {
    name: opts.name,
    description: warm
      ? `pull-through cache: ${who} pulls a five-layer image already pulled once (warm cache), digests verified, wall ms`
      : `pull-through cache: ${who} pull${clients === 1 ? "s" : ""} a five-layer image nothing has pulled yet (cold cache), digests verified${clients === 1 ? "" : " by one client, sizes by all"}, wall ms`,
    unit: "ms",
    higherIsBetter: false,
    async prepare(ctx) {
      if (ctx.shared.has(KEY)) return;
      const layers: Buffer[] = [];
      for (let i = 0; i < ctx.sizes.skopeoLayers; i++) layers.push(randomFillSync(Buffer.allocUnsafe(ctx.sizes.skopeoLayerBytes)));
      ctx.shared.set(KEY, makeImage(layers, "mirror"));
    },
    async setup(srv, ctx) {
      const img = image(ctx);
      if (!exitHook) {
        exitHook = true;
        process.once("exit", () => {
          for (const u of liveUpstreams) {
            try {
              process.kill(u.pid, "SIGKILL");
            } catch {
              // gone already
            }
          }
        });
      }
      const upstream = await startServer("distribution", { tmpRoot: ctx.tmpRoot });
      liveUpstreams.add(upstream);
      let agents: Agent[] = [];
      try {
        const conn = await Conn.connect(upstream.host, upstream.port);
        try {
          await pushImage(conn, REPO, TAG, img);
        } finally {
          conn.close();
        }
        // Replace the plain server the harness started with the same kind configured as a mirror.
        await srv.stop();
        const mirror = await startServer(srv.kind, { tmpRoot: ctx.tmpRoot, berthWorkers: ctx.berthWorkers, extraYaml: proxyYaml(upstream) });
        Object.assign(srv, mirror);
        const target = { host: mirror.host, port: mirror.port, storage: join(mirror.dir, "storage") };
        agents = newAgents(clients);
        if (warm) {
          await pull(agents[0]!, target, img);
          await waitCached(target.storage, img);
        }
        return { upstream, mirror: target, agents };
      } catch (err) {
        for (const a of agents) a.destroy();
        const tail = upstream.logTail().trim();
        await upstream.stop().catch(() => undefined);
        liveUpstreams.delete(upstream);
        const msg = err instanceof Error ? err.message : String(err);
        throw new Error(tail ? `${msg}\nupstream log:\n${tail}` : msg);
      }
    },
    async run(_srv, ctx, state) {
      const img = image(ctx);
      const up0 = state.upstream.cpu().cpu;
      const t0 = performance.now();
      const bytes = await Promise.all(state.agents.map((agent, i) => pull(agent, state.mirror, img, i === 0)));
      const ms = performance.now() - t0;
      // Cold: the pull is done; let the cache finish filling so its CPU is in the run.
      const cachedAfterMs = warm ? undefined : await waitCached(state.mirror.storage, img);
      return {
        value: ms,
        extra: {
          clients,
          bytes: bytes.reduce((a, b) => a + b, 0),
          imageBytes: imageBytes(img),
          cachedAfterMs,
          upstreamCpuS: state.upstream.cpu().cpu - up0,
        },
      };
    },
    async teardown(state) {
      for (const a of state.agents) a.destroy();
      await state.upstream.stop();
      liveUpstreams.delete(state.upstream);
    },
  };
}

export const mirrorColdPull = mirrorPull({ name: "mirror-cold-pull", clients: 1, warm: false });
export const mirrorWarmPull = mirrorPull({ name: "mirror-warm-pull", clients: 1, warm: true });
export const mirrorColdPull20 = mirrorPull({ name: "mirror-cold-pull-20", clients: 20, warm: false });
