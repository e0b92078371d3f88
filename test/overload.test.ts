/**
 * Overload: the quick mode of tools/overload.ts. One berth, a probe GETting a manifest by tag
 * throughout, under idle and stalled connections, slow readers of a large blob, uploads at one
 * byte per second, and many concurrent uploads of the same blob.
 *
 * Behaviour only, no time limits: the machines this runs on are shared and their latencies are
 * figures for docs/reliability.md (`npm run overload`), not pass marks.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { QUICK_OPTIONS, formatSummary, runOverload, type OverloadSummary, type ScenarioName } from "../tools/overload.js";

const MiB = 1024 * 1024;

// A liveness guard, not a figure: the quick run takes ~25 s; a hang must fail here.
const HANG_GUARD = { timeout: 180_000 };

describe("overload (quick): idle connections, slow readers, 1 byte/s uploads, same-blob uploads", () => {
  let summary: OverloadSummary;
  let report: string;
  const scenario = (name: ScenarioName) => {
    const result = summary.results.find((r) => r.name === name);
    assert.ok(result, `scenario ${name} ran:\n${report}`);
    return result;
  };

  before(async () => {
    summary = await runOverload({ ...QUICK_OPTIONS, log: (line) => process.stderr.write(`# ${line}\n`) });
    report = formatSummary(summary);
    process.stderr.write(`${report.replace(/^/gm, "# ")}\n`);
  }, HANG_GUARD);

  it("GET /v2/<name>/manifests/<tag> is answered 200 with the right digest throughout every scenario", () => {
    assert.deepEqual(
      summary.results.map((r) => r.name),
      [...QUICK_OPTIONS.scenarios],
      report,
    );
    for (const r of summary.results) {
      assert.ok(r.probe.requests > 0, `${r.name}: the probe got answers:\n${report}`);
      assert.equal(r.probe.errors, 0, `${r.name}: probe failures ${r.probe.errorSamples.join("; ")}:\n${report}`);
    }
  });

  it("concurrent monolithic uploads of the same blob are all 201 with its digest, and the blob is served intact", () => {
    const r = scenario("same-blob");
    assert.deepEqual(r.problems, [], report);
    assert.equal(r.counts["201 with the digest"], QUICK_OPTIONS.sameBlobUploads, report);
    assert.equal(r.counts["served intact"], "yes", report);
  });

  it("slow readers of a large blob are served without berth buffering the blob for each of them", () => {
    const r = scenario("slow-readers");
    assert.equal(r.counts["answered 200"], QUICK_OPTIONS.slowReaders, report);
    // The readers take ~16 KiB/s each, a few hundred KiB in all during the run, while berth could
    // read the blob from disk far faster. A server that read ahead without backpressure would hold
    // most of the blob per reader (16 MiB × 10 = 160 MiB); one that streams holds a socket's buffer
    // per reader. A quarter of blob × readers (40 MiB) of growth over the scenario's starting RSS
    // is far above streaming's cost (a few MiB, and GC noise) and far below buffering's.
    const bound = (QUICK_OPTIONS.bigBlobBytes * QUICK_OPTIONS.slowReaders) / 4 / MiB;
    const growth = r.memory.peakMiB - r.memory.startMiB;
    assert.ok(growth < bound, `RSS grew ${growth.toFixed(0)} MiB with slow readers (bound ${bound} MiB):\n${report}`);
  });

  it("the scenarios' own clients ran without harness failures, and berth is alive at the end", () => {
    for (const r of summary.results) assert.deepEqual(r.problems, [], `${r.name}:\n${report}`);
    assert.equal(summary.berthAlive, true, report);
  });
});
