// A/B of one monolithic blob upload (default 512 MiB) to berth builds (args: dist dirs), alternating:
// MB/s, server CPU and main-thread CPU per round. ROUNDS=5 SIZE_MIB=512 node tools/mono-upload-ab.mjs a/dist b/dist
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
const builds = process.argv.slice(2).map((b) => resolve(b));
const B = join(builds[0], "bench") + "/";
const { startServer, setBerthMain } = await import(B + "servers.js");
const { Conn } = await import(B + "lean-client.js");
const { generateRandomFile, pushBlobMonolithic } = await import(B + "registry-ops.js");
const rounds = Number(process.env.ROUNDS ?? 5);
const size = Number(process.env.SIZE_MIB ?? 512) * 1024 * 1024;
const mainThreadCpu = (pid) => {
  const fields = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const tmpRoot = await mkdtemp(join(tmpdir(), "mono-ab-"));
const blob = await generateRandomFile(join(tmpRoot, "blob"), size);
const res = {};
for (let r = 0; r < rounds; r++) {
  const order = r % 2 ? [...builds].reverse() : builds;
  for (const b of order) {
    setBerthMain(join(b, "src/cli/main.js"));
    const srv = await startServer("berth", { tmpRoot });
    const conn = await Conn.connect(srv.host, srv.port);
    spawnSync("sync");
    const file = await open(blob.path, "r");
    const m0 = mainThreadCpu(srv.pid), c0 = srv.cpu().cpu, t0 = performance.now();
    await pushBlobMonolithic(conn, "bench/mono", blob.digest, { file, start: 0, length: size });
    const wall = (performance.now() - t0) / 1000, cpu = srv.cpu().cpu - c0, main = mainThreadCpu(srv.pid) - m0;
    await file.close();
    conn.close();
    await srv.stop();
    const mbs = size / 1e6 / wall;
    (res[b] ??= []).push({ mbs, cpu, main });
    console.log(r, b, mbs.toFixed(0), "MB/s cpu", cpu.toFixed(2), "main thread", main.toFixed(2));
  }
}
const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
for (const [b, v] of Object.entries(res)) console.log(b, "MB/s", med(v.map((x) => x.mbs)).toFixed(0), "cpu", med(v.map((x) => x.cpu)).toFixed(2), "main thread", med(v.map((x) => x.main)).toFixed(2));
await rm(tmpRoot, { recursive: true, force: true });
