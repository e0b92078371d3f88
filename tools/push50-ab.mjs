// A/B of push-50: server CPU (all threads, and berth's main thread alone) and wall for berth builds
// (args: dist dirs) and distribution, alternating. ROUNDS=7 node tools/push50-ab.mjs /work/main/dist dist
// Imports the bench's modules from the first dist dir given.
import { spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { readFileSync } from "node:fs";
const B = join(resolve(process.argv[2] ?? "dist"), "bench") + "/";
// The event loop's thread: its CPU in seconds (utime + stime, clock ticks of 10 ms).
const mainThreadCpu = (pid) => {
  const fields = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const { startServer, setBerthMain } = await import(B + "servers.js");
const { Conn } = await import(B + "lean-client.js");
const { makeImage, pushImage } = await import(B + "registry-ops.js");
const rounds = Number(process.env.ROUNDS ?? 5);
const builds = process.argv.slice(2).map((b) => resolve(b));
const imgs = [];
for (let i = 0; i < 50; i++) imgs.push(makeImage([0, 1, 2].map(() => randomFillSync(Buffer.allocUnsafe(1 << 20))), `push-${i}`));
const tmpRoot = await mkdtemp(join(tmpdir(), "ab-"));
const res = {};
for (let r = 0; r < rounds; r++) {
  const order = [...builds, "distribution"];
  if (r % 2) order.reverse();
  for (const b of order) {
    if (b !== "distribution") setBerthMain(join(b, "src/cli/main.js"));
    const srv = await startServer(b === "distribution" ? "distribution" : "berth", { tmpRoot });
    const conns = [];
    for (let i = 0; i < 50; i++) conns.push(await Conn.connect(srv.host, srv.port));
    spawnSync("sync");
    const m0 = mainThreadCpu(srv.pid);
    const c00 = srv.cpu(), c0 = c00.cpu, t0 = performance.now();
    await Promise.all(imgs.map((img, i) => pushImage(conns[i], `bench/img-${i}`, "latest", img)));
    const wall = (performance.now() - t0) / 1000, c11 = srv.cpu(), cpu = c11.cpu - c0, main = mainThreadCpu(srv.pid) - m0;
    console.log("user", (c11.user - c00.user).toFixed(2), "sys", (c11.system - c00.system).toFixed(2), "main thread", main.toFixed(2));
    for (const c of conns) c.close();
    await srv.stop();
    (res[b] ??= []).push({ wall, cpu, main });
    console.log(r, b, wall.toFixed(3), cpu.toFixed(2));
  }
}
const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
for (const [b, v] of Object.entries(res)) console.log(b, "wall", med(v.map((x) => x.wall)).toFixed(3), "cpu", med(v.map((x) => x.cpu)).toFixed(2), "main thread", med(v.map((x) => x.main)).toFixed(2));
const d = res.distribution;
for (const b of builds) console.log(b, "wall ratio", (med(res[b].map((x) => x.wall)) / med(d.map((x) => x.wall))).toFixed(2));
await rm(tmpRoot, { recursive: true, force: true });
