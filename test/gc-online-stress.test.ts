/**
 * A short round of tools/gc-stress.ts: two berth processes on one filesystem root collect back to
 * back while pushers, taggers and deleters run (`npm run stress:gc` runs the long one, and --s3
 * the three-node round on Ceph). Nothing acknowledged may be lost, nothing old and unreferenced left.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { filesystemStorage, formatFigures, runGcStress } from "../tools/gc-stress.js";

describe("online gc under load", () => {
  it("two nodes on one filesystem root: every acknowledged tag pulls, nothing unreferenced past the grace period remains", async () => {
    const figures = await runGcStress({ storage: filesystemStorage, seconds: 15, nodes: 2, graceMs: 2000 });
    const report = formatFigures(figures, "the filesystem");
    assert.equal(figures.violations, 0, report);
    assert.equal(figures.leftovers, 0, report);
    assert.deepEqual(figures.problems, [], report);
    assert.ok(figures.pushesAcknowledged > 0, report);
    assert.ok(figures.collectionsCompleted > 0 && figures.blobsReclaimed > 0, report);
  });
});
