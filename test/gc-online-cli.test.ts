/**
 * `berth garbage-collect --online` and the scheduled collection of `berth serve`, as an operator
 * runs them: separate processes on one storage root, the protocol's clocks shortened through
 * BERTH_TEST_GC_TIMING (a one-hour grace period; layers are aged by setting their mtimes).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { BERTH_CLI, DEFAULT_TEST_CONFIG, startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { run, describeRun } from "./support/external-program.js";
import { age, assertPullable } from "./support/online-gc.js";
import { debugURL, scrape, valueOf } from "./support/prometheus-text.js";
import { RegistryClient, randomBlob, randomImage, registryTree, waitFor } from "./support/registry-client.js";

const TIMING = { BERTH_TEST_GC_TIMING: "leaseExpireMs=1500,idlePollMs=100,graceMs=3600000,intervalMs=300" };
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function serving(configYaml = DEFAULT_TEST_CONFIG): Promise<{ berth: BerthProcess; root: string; client: RegistryClient; config: string }> {
  const work = await mkdtemp(join(tmpdir(), "berth-gc-cli-"));
  const root = join(work, "data");
  const berth = await startBerth({ root, configYaml, env: TIMING });
  const config = join(work, "config.yml");
  await writeFile(config, DEFAULT_TEST_CONFIG.replaceAll("{{root}}", root));
  cleanups.push(() => rm(work, { recursive: true, force: true }), () => berth.stop());
  return { berth, root, client: new RegistryClient(berth.url), config };
}

function gcOnline(config: string, ...args: string[]) {
  return run(process.execPath, [BERTH_CLI, "garbage-collect", config, "--online", ...args], { env: TIMING, timeoutMs: 120_000 });
}

async function exists(root: string, digest: string): Promise<boolean> {
  const hex = digest.slice("sha256:".length);
  return stat(join(registryTree(root), "blobs", "sha256", hex.slice(0, 2), hex, "data")).then(
    () => true,
    () => false,
  );
}

describe("berth garbage-collect --online", () => {
  it("beside a running registry: deletes the old unreferenced layer, keeps the tagged image, exit 0", async () => {
    const { root, client, config } = await serving();
    const image = await client.pushImage("app", "v1", randomImage({ layers: 2 }));
    const orphan = await client.pushBlob("app", randomBlob(300));
    await age(root, orphan, ["app"]);
    const result = await gcOnline(config);
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stdout, /^Online garbage collection: completed \(run [0-9a-f]{16}\)\.$/m);
    assert.match(result.stdout, /^ {2}blobs deleted: 1 \(300 bytes, 300 B\)$/m);
    assert.match(result.stdout, /^ {2}layer links removed: 1$/m);
    assert.match(result.stdout, /^ {2}serving nodes that took part: 1$/m);
    assert.equal(await exists(root, orphan), false);
    await assertPullable(client, "app", "v1", image.bytes);
  });

  it("--dry-run reports the candidates and deletes nothing", async () => {
    const { root, client, config } = await serving();
    const orphan = await client.pushBlob("app", randomBlob(300));
    await age(root, orphan, ["app"]);
    const result = await gcOnline(config, "--dry-run");
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stdout, /^Online garbage collection: dryrun\.$/m);
    assert.match(result.stdout, /^ {2}candidates: 1 blobs \(300 bytes\), 0 untagged manifests, 1 layer links$/m);
    assert.equal(await exists(root, orphan), true);
  });

  it("--max-cpu paces the collection: the summary says how long it paused, and it still deletes what it should", async () => {
    const { root, client, config } = await serving();
    // Enough repositories that the scan takes many 10 ms windows of CPU.
    for (let i = 0; i < 40; i++) await client.pushImage(`paced/r${i}`, "v1", randomImage({ layers: 1 }));
    const orphan = await client.pushBlob("paced/r0", randomBlob(300));
    await age(root, orphan, ["paced/r0"]);
    const result = await gcOnline(config, "--max-cpu", "0.05");
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stdout, /^ {2}repositories scanned: 40$/m);
    const paused = /^ {2}duration: [\d.]+ s \(([\d.]+) s of it paused to stay under --max-cpu\)$/m.exec(result.stdout);
    assert.ok(paused, result.stdout);
    assert.ok(Number(paused[1]) > 0, result.stdout);
    assert.equal(await exists(root, orphan), false);
  });

  it("runs at nice 10, and SIGTERM stops it: exit 1, the collector lease released at once, and the next collector runs without waiting", async () => {
    const { root, client, config } = await serving();
    for (let i = 0; i < 40; i++) await client.pushImage(`stop/r${i}`, "v1", randomImage({ layers: 1 }));
    // A tenth of the unpaced speed at most: slow enough to be stopped in the middle of its scan.
    const child = spawn(process.execPath, [BERTH_CLI, "garbage-collect", config, "--online", "--dry-run", "--max-cpu", "0.01"], {
      env: { ...process.env, ...TIMING },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    const marking = new Promise<void>((resolve) => {
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString("utf8");
        if (stderr.includes("online gc: collecting")) resolve();
      });
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    await marking;
    // It yields the CPU to the registries: nice 10 (field 19 of /proc/<pid>/stat).
    const procStat = await readFile(`/proc/${child.pid}/stat`, "utf8");
    assert.equal(Number(procStat.slice(procStat.lastIndexOf(")") + 2).split(" ")[16]), 10, "the collector runs at nice 10");
    child.kill("SIGTERM");
    assert.equal(await exited, 1, stderr);
    assert.match(stderr, /berth garbage-collect: stopped by SIGTERM: nothing more was deleted, the run \(if one was under way\) was ended and the collector lease released/);
    await assert.rejects(stat(join(root, "berth", "gc", "lease")), { code: "ENOENT" });
    const next = await gcOnline(config, "--dry-run");
    assert.equal(next.code, 0, describeRun(next));
    assert.match(next.stdout, /^ {2}repositories scanned: 40$/m);
  });

  it("refuses a --max-cpu that is not a share of one core, or without --online, with exit status 2 and nothing deleted", async () => {
    const { root, client, config } = await serving();
    const orphan = await client.pushBlob("app", randomBlob(300));
    await age(root, orphan, ["app"]);
    for (const bad of ["0", "1.5", "25%", "fast"]) {
      const result = await gcOnline(config, "--max-cpu", bad);
      assert.equal(result.code, 2, describeRun(result));
      assert.ok(result.stderr.includes(`--max-cpu: expected a share of one core above 0 and at most 1 (0.25 is a quarter of a core), got ${JSON.stringify(bad)}`), result.stderr);
    }
    const offline = await run(process.execPath, [BERTH_CLI, "garbage-collect", config, "--max-cpu", "0.5"], { env: TIMING, timeoutMs: 60_000 });
    assert.equal(offline.code, 2, describeRun(offline));
    assert.match(offline.stderr, /--max-cpu paces an online collection; give --online too/);
    assert.equal(await exists(root, orphan), true);
  });

  it("refuses with exit status 3 while another collector renews the collector lease", async () => {
    const { root, config } = await serving();
    const lease = join(root, "berth", "gc", "lease");
    await mkdir(join(root, "berth", "gc"), { recursive: true });
    let renewals = 0;
    // Written beside the lease and renamed over it, as the filesystem driver writes: a reader
    // never sees a half-written lease (writeFile in place would truncate it first).
    const renew = async (): Promise<void> => {
      const n = ++renewals;
      await writeFile(`${lease}.${n}`, JSON.stringify({ holder: "elsewhere", pid: 1, host: "other", renewals: n }));
      await rename(`${lease}.${n}`, lease);
    };
    await renew();
    const timer = setInterval(() => void renew(), 100);
    try {
      const result = await gcOnline(config);
      assert.equal(result.code, 3, describeRun(result));
      assert.match(result.stderr, /another online collection holds the collector lease \/berth\/gc\/lease \(holder elsewhere, pid 1 on host other\)/);
    } finally {
      clearInterval(timer);
    }
  });

  it("a collector killed mid-run: the node stops enforcing its run once its lease expires, the next collector abandons it and collects", async () => {
    const { root, client, config } = await serving();
    const image = await client.pushImage("app", "v1", randomImage({ layers: 1 }));
    const orphan = await client.pushBlob("app", randomBlob(300));
    await age(root, orphan, ["app"]);
    const child = spawn(process.execPath, [BERTH_CLI, "garbage-collect", config, "--online"], { env: { ...process.env, ...TIMING }, stdio: "ignore" });
    const runFile = join(root, "berth", "gc", "run");
    await waitFor(async () => (await readFile(runFile, "utf8").catch(() => "")).includes('"phase":"candidates"'), "the run's candidates phase", 60_000);
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    // The dead run is enforced (rescues) until its lease expires, then not at all: pushes go on.
    const during = await client.pushImage("app", "v2", randomImage({ layers: 1 }));
    const result = await gcOnline(config);
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stderr, /was left in phase candidates; abandoning it/);
    assert.match(result.stdout, /^Online garbage collection: completed/m);
    assert.equal(await exists(root, orphan), false);
    await assertPullable(client, "app", "v1", image.bytes);
    await assertPullable(client, "app", "v2", during.bytes);
  });
});

describe("berth serve with storage.maintenance.gc.enabled", () => {
  it("collects on its schedule, logs each run's outcome and counts it in metrics", async () => {
    const { berth, root, client } = await serving(
      testConfig({
        storage: "  maintenance:\n    gc:\n      enabled: true",
        http: "  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true",
      }),
    );
    const image = await client.pushImage("app", "v1", randomImage({ layers: 1 }));
    const orphan = await client.pushBlob("app", randomBlob(300));
    await age(root, orphan, ["app"]);
    await waitFor(async () => !(await exists(root, orphan)), "the scheduled collection to delete the orphan", 60_000);
    await waitFor(() => /online gc: completed: 1 blobs \(300 bytes\)/.test(berth.log()), "the run's log line", 10_000);
    await assertPullable(client, "app", "v1", image.bytes);
    const { samples } = await scrape(`${await debugURL(berth.log)}/metrics`);
    assert.ok((valueOf(samples, "registry_gc_runs_total", { outcome: "completed" }) ?? 0) >= 1);
    assert.equal(valueOf(samples, "registry_gc_blobs_deleted_total"), 1);
    assert.equal(valueOf(samples, "registry_gc_bytes_deleted_total"), 300);
    assert.equal(valueOf(samples, "registry_gc_layer_links_removed_total"), 1);
    assert.ok((valueOf(samples, "registry_gc_last_duration_seconds") ?? -1) >= 0);
  });
});
