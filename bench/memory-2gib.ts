/**
 * Memory check: berth alone, one 2 GiB blob pushed monolithically and in chunks, then pulled,
 * with the server's VmRSS sampled every 100 ms. Target: peak RSS < 150 MiB.
 *
 *   node dist/bench/memory-2gib.js [--size-mib 2048] [--target-mib 150] [--chunk-mib 16] [--s3]
 *
 * With `--s3`, berth stores on a Ceph radosgw started for the check (sized for the blobs;
 * redirects off, so the pulls go through berth) instead of the filesystem: memstore, or a
 * file-backed bluestore OSD when memstore would need more than half of the machine's memory (a
 * 5 GiB check: memstore keeps every object in RAM, about three times the blob at the peak).
 *
 * Exits 1 when the peak is over the target or a request fails.
 */
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Conn, expectStatus, HttpError } from "./lean-client.js";
import { generateRandomFile, pushBlobChunked, pushBlobMonolithic, type RandomFile } from "./registry-ops.js";
import { startCephS3, type CephS3 } from "../test/support/ceph-s3.js";
import { s3StorageYaml } from "./s3-env.js";
import { readProcMemory, startServer, type RunningServer } from "./servers.js";
import { MB, MiB } from "./types.js";

interface Phase {
  name: string;
  seconds: number;
  mbps: number;
  peakRssMiB: number;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      "size-mib": { type: "string", default: "2048" },
      "target-mib": { type: "string", default: "150" },
      "chunk-mib": { type: "string", default: "16" },
      s3: { type: "boolean", default: false },
    },
    strict: true,
  });
  const size = Number(values["size-mib"]) * MiB;
  const target = Number(values["target-mib"]);
  const chunk = Number(values["chunk-mib"]) * MiB;
  const tmpRoot = await mkdtemp(join(tmpdir(), "berth-mem-"));
  let srv: RunningServer | undefined;
  let ceph: CephS3 | undefined;
  let sampler: NodeJS.Timeout | undefined;
  try {
    process.stdout.write(`generating two ${(size / MiB).toFixed(0)} MiB random blobs…\n`);
    const monoBlob = await generateRandomFile(join(tmpRoot, "mono.bin"), size);
    const chunkedBlob = await generateRandomFile(join(tmpRoot, "chunked.bin"), size);

    let storageYaml: string | undefined;
    if (values.s3) {
      // Each blob is held twice while its upload is copied into place; memstore keeps it all in RAM.
      const osdGiB = Math.ceil((4 * size) / (1024 * MiB)) + 2;
      const backend = osdGiB * 1024 * MiB > totalmem() / 2 ? "bluestore" : "memstore";
      ceph = await startCephS3({ bucket: "berth-memory", env: { RGW_FRONTEND_OPTS: "tcp_nodelay=1", CEPH_OSD_SIZE_GB: String(osdGiB), CEPH_OSD_BACKEND: backend } });
      storageYaml = s3StorageYaml(ceph, ceph.endpoint, "/memory-check");
      process.stdout.write(`storage: Ceph radosgw at ${ceph.endpoint} (${backend}, ${osdGiB} GiB)\n`);
    }
    srv = await startServer("berth", { tmpRoot, ...(storageYaml === undefined ? {} : { storageYaml }) });
    const pid = srv.pid;
    const startRss = readProcMemory(pid).rssKiB / 1024;
    let phasePeak = 0;
    let overallPeak = startRss;
    let samples = 0;
    const sample = (): void => {
      try {
        const rss = readProcMemory(pid).rssKiB / 1024;
        samples++;
        if (rss > phasePeak) phasePeak = rss;
        if (rss > overallPeak) overallPeak = rss;
      } catch {
        // the process is gone: the phase will fail on its own
      }
    };
    sampler = setInterval(sample, 100);

    const phases: Phase[] = [];
    const phase = async (name: string, bytes: number, fn: () => Promise<void>): Promise<void> => {
      phasePeak = 0;
      sample();
      const t0 = performance.now();
      await fn();
      const seconds = (performance.now() - t0) / 1000;
      sample();
      phases.push({ name, seconds, mbps: bytes / MB / seconds, peakRssMiB: phasePeak });
      process.stdout.write(`  ${name.padEnd(34)} ${seconds.toFixed(1).padStart(6)} s ${(bytes / MB / seconds).toFixed(0).padStart(6)} MB/s   peak RSS ${phasePeak.toFixed(1)} MiB\n`);
    };

    const conn = await Conn.connect(srv.host, srv.port, { readBuffer: MiB });
    const pull = async (c: Conn, blob: RandomFile, repo: string): Promise<void> => {
      const path = `/v2/${repo}/blobs/${blob.digest}`;
      const res = expectStatus(await c.request({ method: "GET", path, discard: true }), 200, `GET ${path}`);
      if (res.bodyLength !== blob.size) throw new HttpError(`GET ${path}: ${res.bodyLength} bytes, want ${blob.size}`, path, res);
    };
    process.stdout.write(`berth pid ${pid}, RSS at start ${startRss.toFixed(1)} MiB\n`);
    await phase("push monolithic (POST + PUT)", size, async () => {
      const file = await open(monoBlob.path, "r");
      try {
        await pushBlobMonolithic(conn, "bench/mono", monoBlob.digest, { file, start: 0, length: size });
      } finally {
        await file.close();
      }
    });
    await phase(`push chunked (${(chunk / MiB).toFixed(0)} MiB PATCHes + PUT)`, size, async () => {
      const file = await open(chunkedBlob.path, "r");
      try {
        await pushBlobChunked(conn, "bench/chunked", chunkedBlob.digest, file, size, chunk);
      } finally {
        await file.close();
      }
    });
    await phase("pull (GET, 1 client)", size, () => pull(conn, monoBlob, "bench/mono"));
    const conns = await Promise.all([1, 2, 3, 4].map(() => Conn.connect(srv!.host, srv!.port, { readBuffer: MiB })));
    await phase("pull (GET both blobs, 4 clients)", 4 * size, async () => {
      await Promise.all(conns.map((c, i) => (i % 2 ? pull(c, chunkedBlob, "bench/chunked") : pull(c, monoBlob, "bench/mono"))));
    });
    for (const c of [conn, ...conns]) c.close();

    clearInterval(sampler);
    sampler = undefined;
    const hwm = readProcMemory(pid).hwmKiB / 1024;
    const peak = Math.max(overallPeak, hwm);
    process.stdout.write(
      `\npeak RSS: ${peak.toFixed(1)} MiB (max of ${samples} VmRSS samples every 100 ms: ${overallPeak.toFixed(1)} MiB; VmHWM: ${hwm.toFixed(1)} MiB)\n` +
        `target < ${target} MiB: ${peak < target ? "PASS" : "FAIL"}\n`,
    );
    return peak < target ? 0 : 1;
  } catch (err) {
    process.stderr.write(`memory check failed: ${err instanceof Error ? err.message : String(err)}\n`);
    if (srv) process.stderr.write(`server log tail:\n${srv.logTail()}\n`);
    return 1;
  } finally {
    if (sampler) clearInterval(sampler);
    await srv?.stop().catch(() => undefined);
    await ceph?.stop().catch(() => undefined);
    await rm(tmpRoot, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  },
);
