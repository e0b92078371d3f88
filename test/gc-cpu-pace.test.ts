/**
 * The pace of online collections (src/gc/online/cpu-pace.ts): a collector that would take a whole
 * core is held to its share, and a paced driver hands every call and every walked entry through it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InMemoryDriver } from "../src/driver/inmemory-driver.js";
import { CpuPace, pacedDriver } from "../src/gc/online/cpu-pace.js";

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** Busy for `ms` of CPU time (not wall time: on a loaded machine the two differ). */
function burn(ms: number): void {
  const until = cpuMs() + ms;
  while (cpuMs() < until);
}

describe("CpuPace", () => {
  it("holds a CPU-bound loop to its share of one core", async () => {
    const pace = new CpuPace(0.2);
    const cpu0 = cpuMs();
    const t0 = performance.now();
    // 400 ms of CPU in 2 ms steps, asking for a turn before each, as the collector does per storage call.
    for (let i = 0; i < 200; i++) {
      await pace.turn();
      burn(2);
    }
    const cpu = cpuMs() - cpu0;
    const wall = performance.now() - t0;
    // Each 10 ms window is followed by the pause that brings it back to the share; the last window
    // has no pause after it, and the test runner's own work counts too: hence the margin.
    assert.ok(cpu / wall <= 0.3, `used ${cpu.toFixed(0)} ms of CPU in ${wall.toFixed(0)} ms of wall time`);
    assert.ok(pace.pausedMs > 0);
  });

  it("never pauses at a share of 1", async () => {
    const pace = new CpuPace(1);
    for (let i = 0; i < 60; i++) {
      assert.equal(pace.turn(), undefined);
      burn(2);
    }
    assert.equal(pace.pausedMs, 0);
  });

  it("refuses a share outside (0, 1]", () => {
    assert.throws(() => new CpuPace(0), RangeError);
    assert.throws(() => new CpuPace(1.5), RangeError);
    assert.throws(() => new CpuPace(Number.NaN), RangeError);
  });
});

describe("pacedDriver", () => {
  it("paces every call and every entry of a walk, and changes nothing of what the driver answers", async () => {
    const driver = new InMemoryDriver();
    for (let i = 0; i < 40; i++) await driver.putContent(`/tree/${String(i).padStart(2, "0")}/data`, Buffer.from(`blob ${i}`));
    const pace = new CpuPace(0.1);
    const paced = pacedDriver(driver, pace);
    const seen: string[] = [];
    await paced.walk("/tree", (info) => {
      if (info.isDir) return;
      seen.push(info.path);
      burn(3);
    });
    assert.deepEqual(seen, Array.from({ length: 40 }, (_, i) => `/tree/${String(i).padStart(2, "0")}/data`));
    assert.ok(pace.pausedMs > 0, "a walk that burns 120 ms at a tenth of a core pauses");
    assert.equal((await paced.getContent("/tree/07/data")).toString(), "blob 7");
    assert.deepEqual(await paced.list("/tree/07"), ["/tree/07/data"]);
    await paced.delete("/tree/07");
    await assert.rejects(paced.stat("/tree/07/data"), { name: "PathNotFoundError" });
    assert.equal(paced.name, driver.name);
  });
});
