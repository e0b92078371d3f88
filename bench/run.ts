/**
 * berth vs CNCF distribution benchmark.
 *
 *   npm run bench -- [--rounds N] [--cases a,b] [--quick] [--list]
 *
 * Every case runs against both registries alternately (berth, distribution, berth, ...), each run
 * on a freshly started server with fresh storage. Prints the machine, a table of medians and
 * writes every run to bench/results/<timestamp>.json.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { blobGet } from "./cases/blob-get.js";
import { metricsGet } from "./cases/metrics.js";
import { chunkedUpload, monoUpload } from "./cases/upload.js";
import { mirrorColdPull, mirrorColdPull20, mirrorWarmPull } from "./cases/mirror.js";
import { notifyManifestGet, notifyPush50, notifyQueueMemory, notifySlowReceiver } from "./cases/notifications.js";
import { pushImages } from "./cases/push-images.js";
import { gcCollection, gcManifestGet, gcPush50, s3GcCollection } from "./cases/online-gc.js";
import { S3_CASES } from "./cases/s3.js";
import { skopeoRoundTrip } from "./cases/skopeo.js";
import { headManifest, manifestGet, tagsList } from "./cases/small-requests.js";
import { uiFirstPage } from "./cases/ui-first-page.js";
import { describeMachine, machineInfo } from "./machine.js";
import { settlePageCache } from "./page-cache.js";
import { generateRandomFile, type RandomFile } from "./registry-ops.js";
import { formatSummary, summarize, type RunRecord } from "./report.js";
import { BERTH_MAIN, readMachineBusyCpu, readReapedChildrenCpu, setBerthMain, SERVER_KINDS, startServer, type RunningServer, type ServerKind } from "./servers.js";
import { MiB, type BenchCase, type BenchContext, type Sizes } from "./types.js";

/** The addons binding.gyp builds; a missing one is reported, since berth then runs its fallback. */
const BERTH_ADDONS = ["sha256_state.node", "sendfile_pump.node", "release_buffer.node", "durable_file.node", "cached_read.node", "heap_trim.node", "memory_pressure.node"];

const FULL: Sizes = {
  blobBytes: 1024 * MiB,
  chunkBytes: 16 * MiB,
  wrkSec: 10,
  warmupSec: 2,
  images: 50,
  layersPerImage: 3,
  layerBytes: MiB,
  skopeoLayers: 5,
  skopeoLayerBytes: 24_000_000,
  tags: 100,
  s3Pulls: 3,
  s3Repos: 64,
  s3Tags: 400,
};

const QUICK: Sizes = {
  blobBytes: 64 * MiB,
  chunkBytes: 16 * MiB,
  wrkSec: 2,
  warmupSec: 1,
  images: 50,
  layersPerImage: 3,
  layerBytes: 64 * 1024,
  skopeoLayers: 5,
  skopeoLayerBytes: 2_000_000,
  tags: 100,
  s3Pulls: 1,
  s3Repos: 16,
  s3Tags: 40,
};

export const ALL_CASES: BenchCase<any>[] = [
  monoUpload,
  chunkedUpload,
  blobGet(1),
  blobGet(8),
  manifestGet(1),
  manifestGet(16),
  manifestGet(64),
  headManifest(16),
  tagsList(16),
  pushImages,
  skopeoRoundTrip,
  mirrorColdPull,
  mirrorWarmPull,
  mirrorColdPull20,
  notifyPush50,
  notifyManifestGet(16),
  notifySlowReceiver,
  notifyQueueMemory,
  gcPush50,
  gcManifestGet,
  gcCollection,
  s3GcCollection,
  metricsGet("manifest"),
  metricsGet("blob"),
  uiFirstPage,
  ...S3_CASES,
];

const USAGE = `Usage: npm run bench -- [--rounds N] [--cases a,b] [--quick] [--list]

  --rounds N    rounds per case (each round runs berth then distribution); default 3 (2 with --quick)
  --cases a,b   run only these cases (a name or a prefix, e.g. blob-get,skopeo)
  --quick       small sizes and short wrk runs: a smoke run
  --list        list the cases and exit
  --no-snapshot run berth from dist/src directly instead of a copy taken at start
  --berth-workers N  run berth as \`serve --workers N\` (default: one process, berth's default)
`;

const toMiB = (kib: number): number => kib / 1024;

let current: RunningServer | undefined;
/** ctx.atExit clean-ups, run last-registered first by runAtExit. */
const atExit: Array<() => Promise<void>> = [];
let tmpRootForCleanup: string | undefined;
let snapshotForCleanup: string | undefined;

async function runOne(c: BenchCase<unknown>, kind: ServerKind, round: number, ctx: BenchContext): Promise<RunRecord> {
  const record: RunRecord = { case: c.name, server: kind, round, unit: c.unit, ok: false };
  let srv: RunningServer | undefined;
  let state: unknown;
  let hasState = false;
  try {
    srv = current = await startServer(kind, { tmpRoot: ctx.tmpRoot, berthWorkers: ctx.berthWorkers });
    state = await c.setup?.(srv, ctx);
    hasState = true;
    record.setupPeakRssMiB = toMiB(srv.memory().hwmKiB);
    if (c.settlePageCache) record.pageCache = await settlePageCache(await c.settlePageCache(ctx));
    else if (c.syncBefore) spawnSync("sync");
    srv.resetPeak();
    const cpu0 = srv.cpu().cpu;
    const self0 = process.cpuUsage();
    const child0 = readReapedChildrenCpu();
    const busy0 = readMachineBusyCpu();
    const t0 = performance.now();
    const m = await c.run(srv, ctx, state);
    const wallS = (performance.now() - t0) / 1000;
    const self = process.cpuUsage(self0);
    const childCpu = readReapedChildrenCpu() - child0;
    const cpu1 = srv.cpu().cpu;
    const busy = readMachineBusyCpu() - busy0;
    const mem = srv.memory();
    const selfCpu = (self.user + self.system) / 1e6;
    Object.assign(record, {
      ok: true,
      value: m.value,
      p50Ms: m.p50Ms,
      p99Ms: m.p99Ms,
      wallS,
      serverCpuS: cpu1 - cpu0,
      serverPeakRssMiB: toMiB(mem.hwmKiB),
      serverRssEndMiB: toMiB(mem.rssKiB),
      clientCpuS: selfCpu + childCpu,
      clientSelfCpuS: selfCpu,
      clientChildCpuS: childCpu,
      otherCpuS: Math.max(0, busy - (cpu1 - cpu0) - selfCpu - childCpu),
      baselineValue: m.baseline?.value,
      baselineP50Ms: m.baseline?.p50Ms,
      baselineP99Ms: m.baseline?.p99Ms,
      extra: m.extra,
    });
  } catch (err) {
    record.ok = false;
    record.error = err instanceof Error ? err.message : String(err);
    if (srv) record.extra = { ...(record.extra ?? {}), serverLogTail: srv.logTail() };
  } finally {
    if (hasState) await c.teardown?.(state).catch(() => undefined);
    if (srv) await srv.stop().catch(() => undefined);
    current = undefined;
  }
  return record;
}

async function runAtExit(): Promise<void> {
  for (let fn = atExit.pop(); fn; fn = atExit.pop()) {
    await fn().catch((err: unknown) => process.stderr.write(`clean-up failed: ${err instanceof Error ? err.message : String(err)}\n`));
  }
}

function describeFigures(c: BenchCase<unknown>, r: RunRecord): string {
  const shown = (c.figures ?? []).filter((f) => typeof r.extra?.[f.key] === "number");
  return shown.map((f) => `, ${f.label} ${Number((r.extra![f.key] as number).toPrecision(4))}`).join("");
}

function describeRun(r: RunRecord): string {
  if (!r.ok) return `FAILED: ${r.error}`;
  const lat = r.p99Ms !== undefined ? `  p50 ${r.p50Ms?.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms` : "";
  const digits = r.unit === "s" ? 2 : 1;
  const base =
    r.baselineValue !== undefined
      ? `  (baseline ${r.baselineValue.toFixed(digits)}${r.baselineP99Ms !== undefined ? `, p99 ${r.baselineP99Ms.toFixed(2)} ms` : ""}: ` +
        `ratio ${r.value !== undefined ? (r.value / r.baselineValue).toFixed(3) : "—"})`
      : "";
  return (
    `${r.value?.toFixed(digits)} ${r.unit}${lat}${base}  ` +
    `server CPU ${r.serverCpuS?.toFixed(2)} s, peak RSS ${r.serverPeakRssMiB?.toFixed(0)} MiB (setup ${r.setupPeakRssMiB?.toFixed(0)}), ` +
    `client CPU ${r.clientCpuS?.toFixed(2)} s, other ${r.otherCpuS?.toFixed(2)} s`
  );
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      rounds: { type: "string" },
      cases: { type: "string" },
      quick: { type: "boolean", default: false },
      list: { type: "boolean", default: false },
      "no-snapshot": { type: "boolean", default: false },
      "berth-workers": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.list) {
    for (const c of ALL_CASES) process.stdout.write(`${c.name.padEnd(20)} ${c.description}\n`);
    return 0;
  }
  const quick = values.quick ?? false;
  const rounds = values.rounds !== undefined ? Number(values.rounds) : quick ? 2 : 3;
  if (!Number.isInteger(rounds) || rounds < 1) {
    process.stderr.write(`--rounds must be a positive integer\n${USAGE}`);
    return 2;
  }
  let cases = ALL_CASES;
  if (values.cases) {
    const wanted = values.cases.split(",").map((s) => s.trim()).filter(Boolean);
    const unknown = wanted.filter((w) => !ALL_CASES.some((c) => c.name === w || c.name.startsWith(w)));
    if (unknown.length > 0) {
      process.stderr.write(`unknown case(s): ${unknown.join(", ")}; known: ${ALL_CASES.map((c) => c.name).join(", ")}\n`);
      return 2;
    }
    cases = ALL_CASES.filter((c) => wanted.some((w) => c.name === w || c.name.startsWith(w)));
  }
  const sizes = quick ? QUICK : FULL;
  const berthWorkers = values["berth-workers"] !== undefined ? Number(values["berth-workers"]) : undefined;
  if (berthWorkers !== undefined && !(Number.isInteger(berthWorkers) && berthWorkers >= 1)) {
    process.stderr.write(`--berth-workers must be a positive integer\n${USAGE}`);
    return 2;
  }

  const machine = machineInfo();
  const loadAtStart = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  process.stdout.write(`${describeMachine(machine)}\nload average at start: ${loadAtStart}\n`);
  process.stdout.write(
    `${quick ? "quick run" : "full run"}: ${rounds} round(s), blob ${(sizes.blobBytes / MiB).toFixed(0)} MiB, ` +
      `wrk ${sizes.wrkSec} s (+${sizes.warmupSec} s warm-up), cases: ${cases.map((c) => c.name).join(", ")}\n`,
  );

  const tmpRoot = await mkdtemp(join(tmpdir(), "berth-bench-"));
  tmpRootForCleanup = tmpRoot;
  let blobPromise: Promise<RandomFile> | undefined;
  const ctx: BenchContext = {
    quick,
    sizes,
    tmpRoot,
    berthWorkers,
    shared: new Map(),
    atExit: (fn) => void atExit.push(fn),
    blob: () =>
      (blobPromise ??= (async () => {
        const t0 = performance.now();
        const f = await generateRandomFile(join(tmpRoot, "blob.bin"), sizes.blobBytes);
        process.stdout.write(`generated ${(f.size / MiB).toFixed(0)} MiB random blob ${f.digest.slice(0, 19)}… in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
        return f;
      })()),
  };

  const records: RunRecord[] = [];
  const started = new Date();
  const resultsDir = fileURLToPath(new URL("../../bench/results/", import.meta.url));
  await mkdir(resultsDir, { recursive: true });
  // Run berth from a copy of dist/src taken now, so a rebuild during the benchmark does not change
  // the server between rounds. The copy lives inside the repository (under bench/results/, which
  // is git-ignored) so that its imports still resolve to the repository's node_modules.
  let snapshot: string | undefined;
  if (!values["no-snapshot"]) {
    snapshot = await mkdtemp(join(resultsDir, ".berth-snapshot-"));
    const distSrc = fileURLToPath(new URL("../src/", import.meta.url));
    await cp(distSrc, join(snapshot, "dist", "src"), { recursive: true });
    // berth reads its version from package.json (the S3 driver's User-Agent).
    await cp(fileURLToPath(new URL("../../package.json", import.meta.url)), join(snapshot, "package.json"));
    // The web UI's page is served from src/ui/assets/ (tsc does not copy it into dist/).
    await cp(fileURLToPath(new URL("../../src/ui/assets/", import.meta.url)), join(snapshot, "src", "ui", "assets"), { recursive: true });
    // The native addons load from build/Release next to dist/: without this copy the snapshot
    // would measure berth's pure-Node fallbacks.
    const addons = fileURLToPath(new URL("../../build/Release/", import.meta.url));
    const built = (await readdir(addons).catch(() => [])).filter((name) => name.endsWith(".node"));
    for (const name of built) await cp(join(addons, name), join(snapshot, "build", "Release", name));
    for (const name of BERTH_ADDONS.filter((addon) => !built.includes(addon))) {
      process.stdout.write(`warning: build/Release/${name} is not built; berth runs without it\n`);
    }
    snapshotForCleanup = snapshot;
    setBerthMain(join(snapshot, "dist", "src", "cli", "main.js"));
  }
  process.stdout.write(`berth: ${BERTH_MAIN}${berthWorkers ? ` --workers ${berthWorkers}` : ""}\n\n`);
  try {
    for (const c of cases) {
      const unavailable = c.unavailable?.();
      if (unavailable) {
        process.stdout.write(`${c.name}: skipped: ${unavailable}\n`);
        continue;
      }
      await c.prepare?.(ctx);
      process.stdout.write(`${c.name}: ${c.description}\n`);
      for (let round = 1; round <= rounds; round++) {
        for (const kind of SERVER_KINDS) {
          const r = await runOne(c, kind, round, ctx);
          records.push(r);
          process.stdout.write(`  round ${round} ${kind.padEnd(12)} ${describeRun(r)}${r.ok ? describeFigures(c, r) : ""}\n`);
        }
      }
    }
  } finally {
    await runAtExit();
    await rm(tmpRoot, { recursive: true, force: true });
    tmpRootForCleanup = undefined;
    if (snapshot) await rm(snapshot, { recursive: true, force: true });
  }

  const summaries = summarize(records, cases);
  const maxPeak = (k: ServerKind): number =>
    Math.max(0, ...records.filter((r) => r.server === k).flatMap((r) => [r.serverPeakRssMiB ?? 0, r.setupPeakRssMiB ?? 0]));
  process.stdout.write(`\nMedians of ${rounds} round(s) (${quick ? "quick" : "full"} sizes); ↑ higher is better, ↓ lower is better\n\n`);
  process.stdout.write(`${formatSummary(summaries)}\n\n`);
  process.stdout.write(`max VmHWM across the run: berth ${maxPeak("berth").toFixed(0)} MiB, distribution ${maxPeak("distribution").toFixed(0)} MiB\n`);

  const failed = records.filter((r) => !r.ok);
  if (failed.length > 0) {
    process.stdout.write(`\n${failed.length} run(s) failed:\n`);
    for (const r of failed) process.stdout.write(`  ${r.case} round ${r.round} ${r.server}: ${r.error}\n`);
  }

  const file = join(resultsDir, `${started.toISOString().replace(/[:.]/g, "-")}.json`);
  await writeFile(
    file,
    JSON.stringify(
      {
        started: started.toISOString(),
        finished: new Date().toISOString(),
        machine,
        loadAverageAtStart: loadAtStart,
        options: { quick, rounds, cases: cases.map((c) => c.name), sizes, berthWorkers: berthWorkers ?? null },
        summary: summaries,
        maxPeakRssMiB: { berth: maxPeak("berth"), distribution: maxPeak("distribution") },
        runs: records,
      },
      null,
      2,
    ),
  );
  process.stdout.write(`\nresults: ${file}\n`);
  return failed.length > 0 ? 1 : 0;
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    void (async () => {
      await current?.stop().catch(() => undefined);
      await runAtExit();
      if (tmpRootForCleanup) await rm(tmpRootForCleanup, { recursive: true, force: true }).catch(() => undefined);
      if (snapshotForCleanup) await rm(snapshotForCleanup, { recursive: true, force: true }).catch(() => undefined);
      process.exit(130);
    })();
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
