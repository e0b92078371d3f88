/**
 * Returning memory once the process is quiet: the policy (when the JavaScript heap is reduced and
 * the C heap trimmed) over a scripted event-loop load, and the native reduction and trim themselves
 * on memory this process frees.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, it } from "node:test";
import type { EventLoopUtilization } from "node:perf_hooks";
import { canTrimHeap, trimHeap } from "../src/native/heap-trim.js";
import { canReduceHeap, reduceHeap } from "../src/native/memory-pressure.js";
import { IdleMemoryReturn } from "../src/process/idle-memory-return.js";

/** An IdleMemoryReturn whose event loop reports the scripted utilisations, one per check. */
function scripted(canReduce = true): {
  policy: IdleMemoryReturn;
  load: (utilization: number) => Promise<void>;
  trims: number[];
  /** The trim count when each heap reduction was asked for. */
  reductions: number[];
  answer: { value: boolean | Error };
} {
  let next = 0;
  const trims: number[] = [];
  const reductions: number[] = [];
  const answer: { value: boolean | Error } = { value: true };
  const policy = new IdleMemoryReturn({
    reduceHeap: () => {
      if (canReduce) reductions.push(trims.length);
      return canReduce;
    },
    // The first call of a check reads "now", the second the share since the last check.
    utilization: (previous?: EventLoopUtilization) => ({ idle: 0, active: 0, utilization: previous === undefined ? 0 : next }),
    trim: async (minFreeBytes) => {
      trims.push(minFreeBytes);
      if (answer.value instanceof Error) throw answer.value;
      return answer.value;
    },
  });
  return {
    policy,
    trims,
    reductions,
    answer,
    load: async (utilization) => {
      next = utilization;
      await policy.check();
    },
  };
}

describe("idle memory return: when it trims", () => {
  it("reduces the JavaScript heap after two quiet intervals following work, trims the C heap at the next, and not again until more work", async () => {
    const { load, trims, reductions, policy } = scripted();
    await load(0.9);
    await load(0.95);
    await load(0.05);
    assert.equal(reductions.length + trims.length, 0, "one quiet interval may still hold the end of the burst");
    await load(0.01);
    assert.deepEqual(reductions, [0], "the heap is reduced first, before any trim");
    assert.equal(trims.length, 0, "the C heap waits for what that collection frees");
    await load(0.01);
    assert.equal(trims.length, 1);
    assert.ok(trims[0]! > 0, "a minimum of free memory is asked for");
    for (let i = 0; i < 5; i++) await load(0.01);
    assert.equal(trims.length, 1, "nothing was done since: no second trim");
    assert.equal(reductions.length, 1, "nor a second reduction");
    await load(0.6);
    await load(0.1);
    await load(0.1);
    await load(0.1);
    assert.equal(trims.length, 2);
    assert.deepEqual(reductions, [0, 1]);
    assert.equal(policy.trims, 2);
    assert.equal(policy.heapReductions, 2);
  });

  it("never acts under load, and a busy interval between quiet ones starts the count again", async () => {
    const { load, trims, reductions } = scripted();
    for (let i = 0; i < 10; i++) await load(0.5);
    assert.equal(trims.length + reductions.length, 0);
    await load(0.1);
    await load(0.5);
    await load(0.1);
    assert.equal(trims.length + reductions.length, 0);
    await load(0.1);
    assert.equal(reductions.length, 1);
    // Busy again between the reduction and the trim: the burst goes on, and the next quiet spell
    // reduces the heap again before trimming.
    await load(0.7);
    await load(0.1);
    await load(0.1);
    assert.equal(trims.length, 0);
    assert.equal(reductions.length, 2);
    await load(0.1);
    assert.equal(trims.length, 1);
  });

  it("acts after the start's own work once quiet", async () => {
    const { load, trims, reductions } = scripted();
    await load(0);
    await load(0);
    await load(0);
    assert.equal(reductions.length, 1);
    assert.equal(trims.length, 1);
  });

  it("without the heap reduction (addon not built), trims at the second quiet check as before", async () => {
    const { load, trims, policy } = scripted(false);
    await load(0.9);
    await load(0);
    await load(0);
    assert.equal(trims.length, 1);
    assert.equal(policy.heapReductions, 0);
  });

  it("counts a trim that found too little free, or failed, as skipped", async () => {
    const { load, policy, answer } = scripted();
    for (const value of [false, new Error("no")]) {
      answer.value = value;
      await load(0.9);
      await load(0);
      await load(0);
      await load(0);
    }
    assert.equal(policy.trims, 0);
    assert.equal(policy.skipped, 2);
  });
});

function rssAnonKiB(): number {
  const line = readFileSync("/proc/self/status", "utf8").split("\n").find((l) => l.startsWith("RssAnon:"));
  return Number(line?.split(/\s+/)[1]);
}

describe("idle memory return: the native trim", { skip: !canTrimHeap && process.env.CI !== "true" && "native heap_trim addon not built (npm install builds it)" }, () => {
  it("is built (CI)", () => {
    assert.ok(canTrimHeap, "the native heap_trim addon must be built (npm install runs node-gyp)");
  });

  it("returns memory freed below memory still in use, and leaves the heap alone below the minimum", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    // 4,096 buffers of 16 KiB from the C heap; every eighth is kept, so what is freed lies between
    // blocks in use, where glibc's own trimming of the heap's top never reaches.
    const kept: Buffer[] = [];
    let all: Buffer[] | undefined = [];
    for (let i = 0; i < 4096; i++) {
      const b = Buffer.allocUnsafeSlow(16 * 1024).fill(i & 0xff);
      all.push(b);
      if (i % 8 === 7) kept.push(b);
    }
    all = undefined;
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(await trimHeap(Number.MAX_SAFE_INTEGER), false, "less free than the minimum asked: no trim");
    const before = rssAnonKiB();
    assert.equal(await trimHeap(0), true);
    const after = rssAnonKiB();
    // 3,584 freed buffers are 56 MiB; at least half of it must leave the process's resident memory.
    assert.ok(before - after >= 28 * 1024, `RssAnon ${before} KiB before the trim, ${after} KiB after`);
    assert.equal(kept.length, 512);
    assert.ok(kept.every((b, j) => b[0] === ((j * 8 + 7) & 0xff) && b[16 * 1024 - 1] === b[0]), "kept buffers are intact");
  });
});

describe("idle memory return: the native heap reduction", { skip: !canReduceHeap && process.env.CI !== "true" && "native memory_pressure addon not built (npm install builds it)" }, () => {
  it("is built (CI)", () => {
    assert.ok(canReduceHeap, "the native memory_pressure addon must be built (npm install runs node-gyp)");
  });

  it("gives back the old generation's pages that dead objects held, without a collection asked for by a flag", async () => {
    const oldSpace = (): number => getHeapSpaceStatistics().find((space) => space.space_name === "old_space")!.space_size;
    // ~150 MiB of small objects kept long enough to be promoted to the old generation, then dropped.
    let kept: Array<{ id: number; name: string }[]> | undefined = [];
    for (let i = 0; i < 300; i++) {
      kept.push(Array.from({ length: 5_000 }, (_, j) => ({ id: j, name: `object ${i}/${j}` })));
      if (i % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
    }
    const grown = oldSpace();
    kept = undefined;
    assert.ok(grown > 40 * 1024 * 1024, `the old generation grew to ${grown} bytes`);
    assert.equal(reduceHeap(), true);
    // The collection runs in steps on the event loop: give it turns until the pages are back.
    let now = grown;
    for (let i = 0; i < 100 && now > grown / 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      now = oldSpace();
    }
    assert.ok(now <= grown / 2, `old generation ${grown} bytes before, ${now} after`);
  });
});
