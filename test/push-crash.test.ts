/**
 * Pushes survive `kill -9`: the crash campaign of tools/push-crash.ts in its quick form. Each
 * round runs berth as a real process, a few clients pushing (monolithic, chunked, single-shot),
 * mounting, tagging and deleting, kills berth with SIGKILL at a random request, restarts it on
 * the same storage (kept across the rounds) and audits everything every round acknowledged: served
 * complete under the right digest, HEAD agreeing with GET, nothing served under a digest its bytes
 * do not have, interrupted uploads resumed or answered 404 BLOB_UPLOAD_UNKNOWN, and in storage every
 * blob's data hashing to its path and every link naming stored data. On the filesystem, on S3
 * (Ceph), with serve --workers 2, and on a disk that loses its unsynced writes at each kill.
 *
 * The full campaign (200 rounds) is `npm run crash:push`.
 */
import assert from "node:assert/strict";
import { open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { cephSkipReason, startCephS3, type CephS3 } from "./support/ceph-s3.js";
import { createPowerCutDisk, powerCutSkipReason } from "./support/power-cut.js";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { failed, formatSummary, runCampaign, violations, type CampaignOptions } from "../tools/push-crash.js";

async function campaign(options: Partial<CampaignOptions> & Pick<CampaignOptions, "rounds">): Promise<void> {
  const seed = Math.floor(Math.random() * 2 ** 32);
  const settings = { driver: "filesystem" as const, workers: 1, clients: 3, opsPerClient: 10, powerLoss: false, seed, ...options };
  const summary = await runCampaign({ ...settings, log: (line) => process.stderr.write(`# ${line}\n`) });
  const report = formatSummary(summary, settings);
  process.stderr.write(`${report.replace(/^/gm, "# ")}\n`);
  assert.equal(summary.rounds, options.rounds);
  assert.equal(summary.kills, options.rounds);
  assert.ok(summary.acknowledged > 0, `the workload was acknowledged at all:\n${report}`);
  assert.equal(summary.unexpectedAnswers, 0, `5xx answers, or refusals of valid requests:\n${report}`);
  assert.equal(summary.auditViolations, 0, `the API served something the ledger does not allow:\n${report}`);
  assert.equal(summary.storageViolations, 0, `storage holds a wrong blob or a dangling link:\n${report}`);
  assert.equal(summary.cutsUnproven, 0, `a power cut did not drop unsynced writes:\n${report}`);
  assert.equal(violations(summary), 0, report);
  assert.equal(failed(summary), false, report);
}

// A liveness guard, not a figure: a round that hangs after its kill must fail here, not stall the run.
const HANG_GUARD = { timeout: 300_000 };

describe("pushes: kill -9 at a random moment, then a restart on the same storage", () => {
  it("on the filesystem, every acknowledged push of every round is served complete and nothing is served wrong", HANG_GUARD, async () => {
    await campaign({ rounds: 5 });
  });

  it("with serve --workers 2, every worker and the primary killed", HANG_GUARD, async () => {
    await campaign({ rounds: 2, workers: 2 });
  });

  describe("on S3 (Ceph radosgw)", { skip: cephSkipReason() }, () => {
    let s3: CephS3;
    before(async () => {
      s3 = await startCephS3();
    });
    after(async () => {
      await s3?.stop();
    });

    it("every acknowledged push of every round is served complete and nothing is served wrong", HANG_GUARD, async () => {
      await campaign({ rounds: 3, driver: "s3", clients: 2, opsPerClient: 8, s3 });
    });
  });
});

describe("pushes: a power cut at a random moment (unsynced writes lost), then a restart", { skip: powerCutSkipReason() }, () => {
  it("the simulated cut drops a file written without fsync and keeps one written with fsync", async () => {
    const disk = await createPowerCutDisk({ sizeMiB: 64 });
    try {
      const content = Buffer.alloc(100_000, 7);
      const synced = join(disk.mountpoint, "synced");
      const unsynced = join(disk.mountpoint, "unsynced");
      for (const [path, sync] of [[synced, true], [unsynced, false]] as const) {
        const handle = await open(path, "w");
        await handle.write(content);
        if (sync) await handle.sync();
        await handle.close();
      }
      const dir = await open(disk.mountpoint, "r");
      await dir.sync();
      await dir.close();
      // Written after the last fsync: the journal never committed it.
      const late = join(disk.mountpoint, "late");
      const handle = await open(late, "w");
      await handle.write(content);
      await handle.close();
      assert.equal((await stat(late)).size, content.length, "written before the cut");

      const report = await disk.cut();
      assert.ok(report.proven, report.detail);
      assert.deepEqual(await readFile(synced), content, "the fsynced file survives the cut whole");
      const lateSize = await stat(late).then((info) => info.size, () => undefined);
      assert.ok(lateSize === undefined, `the file created after the last commit is gone (found ${lateSize} bytes)`);
      // Created before the directory's fsync, its data never synced: the name survives, the bytes do not.
      assert.equal((await stat(unsynced)).size, 0, "the unsynced file's data is lost");
    } finally {
      await disk.close();
    }
  });

  it("a delete the filesystem driver answered survives the cut: a file, and a directory tree", async () => {
    const disk = await createPowerCutDisk({ sizeMiB: 64 });
    try {
      const root = join(disk.mountpoint, "registry");
      const driver = new FilesystemDriver(root);
      await driver.putContent("/r/_layers/sha256/aa/link", Buffer.from("sha256:aa"));
      await driver.putContent("/r/_layers/sha256/bb/link", Buffer.from("sha256:bb"));
      await driver.putContent("/r/_manifests/tags/t/current/link", Buffer.from("sha256:cc"));
      await driver.putContent("/r/_manifests/tags/t/index/sha256/cc/link", Buffer.from("sha256:cc"));
      await driver.delete("/r/_layers/sha256/aa/link");
      await driver.delete("/r/_manifests/tags/t");
      // Nothing synced after the deletes: only their own syncs can keep them.
      const report = await disk.cut();
      assert.ok(report.proven, report.detail);
      const after = new FilesystemDriver(root);
      assert.deepEqual(await after.list("/r/_layers/sha256/aa"), [], "the deleted link stays deleted");
      assert.deepEqual(await after.list("/r/_layers/sha256/bb"), ["/r/_layers/sha256/bb/link"]);
      assert.deepEqual(await after.list("/r/_manifests/tags"), [], "the deleted tag stays deleted");
    } finally {
      await disk.close();
    }
  });

  it("every acknowledged push survives the cut and nothing is served wrong", HANG_GUARD, async () => {
    await campaign({ rounds: 3, powerLoss: true });
  });
});
