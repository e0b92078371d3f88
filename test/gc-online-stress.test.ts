/**
 * A short round of tools/gc-stress.ts: two berth processes on one filesystem root collect back to
 * back while pushers, taggers and deleters run (`npm run stress:gc` runs the long one, and --s3
 * the three-node round on Ceph). Nothing acknowledged may be lost, nothing old and unreferenced left.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { filesystemStorage, formatFigures, runGcStress } from "../tools/gc-stress.js";
import { S3Driver } from "../src/driver/s3/s3-driver.js";
import { cephSkipReason, s3DriverConfig, startCephS3 } from "./support/ceph-s3.js";
import { describeRun, requireProgram, run } from "./support/external-program.js";

const distribution = requireProgram("docker-registry");

describe("online gc under load on the filesystem", () => {
  it("two nodes on one filesystem root: every acknowledged tag pulls, nothing unreferenced past the grace period remains", async () => {
    let distributionSummary: string | undefined;
    const figures = await runGcStress({
      storage: filesystemStorage,
      seconds: 15,
      nodes: 2,
      graceMs: 2000,
      // distribution 2.8's own collector, on the tree berth collected online: it finds nothing to delete.
      afterwards: distribution.skip ? undefined : async (storage) => {
            distributionSummary = await distributionDryRun(storage.root!);
          },
    });
    const report = formatFigures(figures, "the filesystem");
    assert.equal(figures.violations, 0, report);
    assert.equal(figures.leftovers, 0, report);
    assert.deepEqual(figures.problems, [], report);
    assert.ok(figures.pushesAcknowledged > 0, report);
    assert.ok(figures.collectionsCompleted > 0 && figures.blobsReclaimed > 0, report);
    if (!distribution.skip) assert.match(distributionSummary ?? "", /\d+ blobs marked, 0 blobs and 0 manifests eligible for deletion/);
  });
});

describe("online gc under load on S3", { skip: cephSkipReason() }, () => {
  it("three nodes on one Ceph bucket: every acknowledged tag pulls, nothing unreferenced past the grace period remains", async () => {
    const ceph = await startCephS3();
    try {
      const root = `/gc-stress-${Date.now()}`;
      const driver = new S3Driver(ceph.driverOptions({ rootdirectory: root }));
      const figures = await runGcStress({ storage: () => ({ yaml: s3DriverConfig(ceph, root), driver }), seconds: 15, nodes: 3, graceMs: 2000 });
      const report = formatFigures(figures, "S3 (Ceph)");
      assert.equal(figures.violations, 0, report);
      assert.equal(figures.leftovers, 0, report);
      assert.deepEqual(figures.problems, [], report);
      assert.ok(figures.pushesAcknowledged > 0 && figures.collectionsCompleted > 0, report);
    } finally {
      await ceph.stop();
    }
  });
});

/** `docker-registry garbage-collect --dry-run --delete-untagged` on `root`: its summary line. */
async function distributionDryRun(root: string): Promise<string> {
  const work = await mkdtemp(join(tmpdir(), "berth-gc-dist-"));
  try {
    const config = join(work, "config.yml");
    await writeFile(config, `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n`);
    const result = await run(distribution.path!, ["garbage-collect", "--dry-run", "--delete-untagged", config], { timeoutMs: 120_000 });
    assert.equal(result.code, 0, describeRun(result));
    return result.stdout.split("\n").filter((line) => line.includes("eligible for deletion")).join("\n");
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
