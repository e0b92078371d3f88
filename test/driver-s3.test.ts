import assert from "node:assert/strict";
import { createHash, randomBytes, randomInt } from "node:crypto";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, ListObjectsV2Command, ListPartsCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { PENDING_SUFFIX, S3Driver, type S3DriverOptions } from "../src/driver/s3/s3-driver.js";
import { PathNotFoundError, compareWalkOrder, type WriterOptions } from "../src/driver/storage-driver.js";
import { createDriver, describeStorage } from "../src/cli/compose.js";
import { ConfigError } from "../src/config/config.js";
import { describeConfig, MASK, parseConfig } from "../src/config/load-config.js";
import { cephSkipReason, s3DriverConfig, startCephS3, type CephS3 } from "./support/ceph-s3.js";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { describeRun, run } from "./support/external-program.js";
import { digestOf, randomBlob, RegistryClient, uniqueName } from "./support/registry-client.js";
import { runDriverSuite } from "./driver-suite.js";

/**
 * The shared driver suite and S3-specific tests, against a real S3 server (Ceph radosgw) that this
 * file starts and stops. Every driver gets a fresh root directory (key prefix).
 */

const MiB = 1024 * 1024;
const MEMORY_PROBE = "BERTH_S3_MEMORY_PROBE";
const probeInput = process.env[MEMORY_PROBE];
if (probeInput === undefined) defineTests();
else await memoryProbe(probeInput);

/** An SDK client of the test's S3 server, to look at the bucket past the driver. */
let inspector: S3Client | undefined;

function inspect(): S3Client {
  assert.ok(inspector, "the S3 server was not started");
  return inspector;
}

function defineTests(): void {
  const skip = cephSkipReason();
  let ceph: CephS3 | undefined;

  if (skip === false) {
    before(async () => {
      ceph = await startCephS3();
      inspector = ceph.client();
    });
    after(async () => {
      inspector?.destroy();
      await ceph?.stop();
    });
  }

  function cephServer(): CephS3 {
    assert.ok(ceph, "the S3 server was not started");
    return ceph;
  }

  /** Tests of the shared suite this driver cannot pass, with the reason. None. */
  const SUITE_SKIPS: Record<string, string> = {};

  if (skip === false) {
    runDriverSuite(
      "s3",
      async () => {
        const driver = new S3Driver(cephServer().driverOptions());
        return { driver, cleanup: async () => driver.transport.destroy() };
      },
      { skip: SUITE_SKIPS },
    );
  } else {
    describe("s3 storage driver", { skip }, () => {
      it("runs the shared driver suite against radosgw", () => undefined);
    });
  }

  describe("s3 storage driver specifics", { skip }, () => {
    const drivers: S3Driver[] = [];
    const make = (overrides: Partial<S3DriverOptions> = {}): S3Driver => {
      const driver = new S3Driver(cephServer().driverOptions(overrides));
      drivers.push(driver);
      return driver;
    };

    after(() => {
      for (const driver of drivers) driver.transport.destroy();
    });

    it("stat of the root reaches S3 (the storage health check): a tree answers a directory, an empty root PathNotFound, refused credentials an error", async () => {
      const empty = make({ rootdirectory: `/stat-root-${Date.now()}` });
      await assert.rejects(empty.stat("/"), (err: unknown) => err instanceof PathNotFoundError);
      await empty.putContent("/docker/x", Buffer.from("x"));
      assert.equal((await empty.stat("/")).isDir, true);
      const refused = make({ rootdirectory: "/stat-root-refused", secretkey: "not-the-secret" });
      await assert.rejects(refused.stat("/"), (err: unknown) => !(err instanceof PathNotFoundError));
    });

    it("keeps memory bounded while streaming ~40 MiB in uneven small writes", async () => {
      // In a fresh process, so that the RSS baseline is not inflated by earlier tests' heap.
      const options = cephServer().driverOptions({ chunksize: 5 * MiB });
      const result = await run(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url)], {
        env: { [MEMORY_PROBE]: JSON.stringify({ options, path: "/memory/data", total: 40 * MiB + 12_345 }) },
        timeoutMs: 120_000,
      });
      assert.equal(result.code, 0, describeRun(result));
      const report = JSON.parse(result.stdout.trim().split("\n").at(-1)!) as MemoryReport;
      process.stderr.write(
        `# s3 writer memory: ${(report.total / MiB).toFixed(1)} MiB in ${report.writes} writes of 1 B–256 KiB, chunksize 5 MiB: ` +
          `baseline RSS ${(report.baselineRss / MiB).toFixed(1)} MiB, peak RSS growth ${(report.rssGrowth / MiB).toFixed(1)} MiB, ` +
          `peak arrayBuffers growth ${(report.bufferGrowth / MiB).toFixed(1)} MiB\n`,
      );
      // Two 5 MiB parts (one uploading, one filling) plus the SDK's and sockets' own buffers: well
      // below the 40 MiB written (measured: ~11 MiB of buffers, ~12 MiB of RSS).
      assert.ok(report.bufferGrowth < 14 * MiB, `arrayBuffers grew by ${report.bufferGrowth} bytes`);
      assert.ok(report.rssGrowth < 20 * MiB, `RSS grew by ${report.rssGrowth} bytes`);
      const driver = new S3Driver(options);
      drivers.push(driver);
      assert.equal((await driver.stat("/memory/data")).size, report.total);
      assert.equal(await sha256(await driver.reader("/memory/data")), report.sha256);
      await driver.delete("/memory");
    });

    it("keeps chunks under 5 MiB across close and reopen sessions", async () => {
      const driver = make({ chunksize: 5 * MiB });
      const path = "/small/_uploads/id/data";
      // Sessions that each add less than a part, some crossing a part boundary, some exactly filling one.
      const sizes = [1, 700_000, 3 * MiB, 2 * MiB + 17, 0, 5 * MiB - (1 + 700_000 + 3 * MiB + 2 * MiB + 17 - 5 * MiB), 4 * MiB, 123, 1];
      const sessions: Buffer[] = [];
      let expected = 0;
      for (const [i, size] of sizes.entries()) {
        const writer = await driver.writer(path, i > 0);
        assert.equal(writer.size, expected, `session ${i} starts at ${expected}`);
        const bytes = randomBytes(size);
        // Within a session, several writes.
        for (let offset = 0; offset < size; offset += 99_999) await writer.write(bytes.subarray(offset, offset + 99_999));
        sessions.push(bytes);
        expected += size;
        assert.equal(writer.size, expected);
        await writer.close();
        // Nothing is visible at the path before commit, and the side object is hidden from listings
        // (which find no directory at all when the bytes are all in parts and there is no side object).
        await assert.rejects(driver.stat(path), PathNotFoundError);
        assert.deepEqual(await driver.list("/small/_uploads/id").catch(() => []), []);
      }
      const keys = await rawKeys(driver, "/small");
      // A side object per close that moved the upload on, each named after the parts its tail
      // follows (and the upload): the last one holds the tail, the earlier ones are stale and left
      // to the commit (or the directory's removal).
      const side = `small/_uploads/id/data${PENDING_SUFFIX}`;
      assert.equal(keys[0], `${side}~0~none`, "the first sessions' tail: no part, no upload");
      assert.deepEqual(keys.map((key) => key.replace(/~[^~]+$/, "")), [`${side}~0`, `${side}~1`, `${side}~2`], "the tail waits in the side object");
      const last = await driver.writer(path, true);
      assert.equal(last.size, expected);
      await last.commit();
      assert.ok((await driver.getContent(path)).equals(Buffer.concat(sessions)));
      assert.deepEqual(await rawKeys(driver, "/small"), ["small/_uploads/id/data"], "commit removes the side object");
      assert.equal(await openUploads(driver, "small/"), 0);

      // Appending to the committed object (13 MiB: copied server-side as the first parts) continues it.
      const more = await driver.writer(path, true);
      assert.equal(more.size, expected);
      const tail = randomBytes(MiB);
      await more.write(tail);
      await more.commit();
      assert.ok((await driver.getContent(path)).equals(Buffer.concat([...sessions, tail])));
      await driver.delete("/small");
    });

    it("a writer without append shadows the committed object even when closed empty", async () => {
      const driver = make();
      await driver.putContent("/shadow/data", Buffer.from("committed"));
      await (await driver.writer("/shadow/data", false)).close();
      const resumed = await driver.writer("/shadow/data", true);
      assert.equal(resumed.size, 0);
      await resumed.write(Buffer.from("new"));
      await resumed.commit();
      assert.equal((await driver.getContent("/shadow/data")).toString(), "new");
      // Appending to a small committed object (under 5 MiB: read back as the head of the next part).
      const appended = await driver.writer("/shadow/data", true);
      assert.equal(appended.size, 3);
      await appended.write(Buffer.from("er"));
      await appended.commit();
      assert.equal((await driver.getContent("/shadow/data")).toString(), "newer");
      assert.deepEqual(await rawKeys(driver, "/shadow"), ["shadow/data"]);
      await driver.delete("/shadow");
    });

    it("continues a committed object of several parts by copying it server-side", async () => {
      const driver = make({ chunksize: 5 * MiB });
      const commands = recordCommands(driver);
      const first = randomBytes(11 * MiB + 3);
      await driver.putContent("/append/data", first);
      commands.length = 0;
      const writer = await driver.writer("/append/data", true);
      assert.equal(writer.size, first.length);
      const second = randomBytes(100);
      await writer.write(second);
      await writer.close();
      const reopened = await driver.writer("/append/data", true);
      assert.equal(reopened.size, first.length + 100);
      await reopened.commit();
      const sent = [...commands];
      assert.ok((await driver.getContent("/append/data")).equals(Buffer.concat([first, second])));
      const key = `${driver.options.root}/append/data`;
      assert.ok(sent.includes(`UploadPartCopy ${key}`), sent.join(", "));
      assert.ok(!sent.includes(`GetObject ${key}`), "the object is not downloaded");
      await driver.delete("/append");
    });

    it("ignores a side object whose bytes a later part already holds (a crash mid-session)", async () => {
      const driver = make({ chunksize: 5 * MiB });
      const path = "/crash/data";
      const first = randomBytes(MiB);
      const writer = await driver.writer(path, false);
      await writer.write(first);
      await writer.close(); // the 1 MiB tail waits in the side object
      const second = randomBytes(4 * MiB + 100);
      const crashed = await driver.writer(path, true);
      await crashed.write(second); // part 1 = side object's bytes + 4 MiB; 100 bytes stay in memory
      await waitFor(async () => (await partsOf(driver, path)) === 1);
      // The process dies here: no close(). The side object still says "no upload, 0 parts".
      const resumed = await driver.writer(path, true);
      assert.equal(resumed.size, 5 * MiB, "the part counts, the stale side object does not");
      await resumed.commit();
      assert.ok((await driver.getContent(path)).equals(Buffer.concat([first, second]).subarray(0, 5 * MiB)));
      assert.deepEqual(await rawKeys(driver, "/crash"), ["crash/data"]);
      await driver.delete("/crash");
    });

    describe("a writer whose caller requires a marker file beside it (an upload's startedat)", () => {
      const marker = (dir: string): WriterOptions => ({ whileExists: `${dir}/startedat` });

      it("resumes from one listing and the side object, also after a close at a part boundary", async () => {
        const driver = make({ chunksize: 5 * MiB });
        const commands = recordCommands(driver);
        const dir = "/marker/_uploads/boundary";
        await driver.putContent(`${dir}/startedat`, Buffer.from("2026-12-03T00:00:00Z"));
        const sessions = [randomBytes(5 * MiB), randomBytes(3 * MiB), randomBytes(2 * MiB), randomBytes(77)];
        let expected = 0;
        for (const [i, bytes] of sessions.entries()) {
          commands.length = 0;
          const writer = await driver.writer(`${dir}/data`, true, marker(dir));
          assert.equal(writer.size, expected, `session ${i} starts at ${expected}`);
          // The state comes from the listing (and the side object), never from a search for uploads.
          assert.ok(!commands.some((command) => command.startsWith("ListMultipartUploads")), commands.join("\n"));
          await writer.write(bytes);
          expected += bytes.length;
          await (i === sessions.length - 1 ? writer.commit() : writer.close());
        }
        assert.ok((await driver.getContent(`${dir}/data`)).equals(Buffer.concat(sessions)));
        await driver.delete("/marker/_uploads/boundary", { directory: true });
        assert.equal(await openUploads(driver, "marker/"), 0);
      });

      it("a commit with nothing written after the side object's tail copies it server-side, never reading it", async () => {
        const driver = make({ chunksize: 5 * MiB });
        const commands = recordCommands(driver);
        const root = driver.options.root ? `${driver.options.root}/` : "";
        for (const [name, size] of [["parts", 6 * MiB + 333], ["small", 1000]] as const) {
          const dir = `/marker/_uploads/${name}`;
          await driver.putContent(`${dir}/startedat`, Buffer.from("2026-12-03T00:00:00Z"));
          const bytes = randomBytes(size);
          const writer = await driver.writer(`${dir}/data`, true, marker(dir));
          await writer.write(bytes);
          await writer.close();
          commands.length = 0;
          const finishing = await driver.writer(`${dir}/data`, true, marker(dir));
          assert.equal(finishing.size, size);
          await finishing.commit({ directoryRemovedNext: true });
          const ops = commands.map((command) => command.split(" ")[0]);
          assert.ok(!ops.includes("GetObject") && !ops.includes("UploadPart") && !ops.includes("PutObject"), commands.join("\n"));
          const side = commands.find((command) => command.includes(`${PENDING_SUFFIX}~`));
          assert.equal(side, undefined, `the side object is not read: ${commands.join("\n")}`);
          if (name === "parts") {
            // One part of 5 MiB, then the tail as the last part: an UploadPartCopy of the side object.
            assert.deepEqual(ops, ["ListObjectsV2", "ListParts", "UploadPartCopy", "CompleteMultipartUpload"], commands.join("\n"));
          } else {
            // No upload: the side object is copied to the path.
            assert.deepEqual(commands, ["ListObjectsV2", `CopyObject ${root}${dir.slice(1)}/data`], commands.join("\n"));
          }
          assert.ok((await driver.getContent(`${dir}/data`)).equals(bytes));
          await driver.delete(dir, { directory: true });
        }
        assert.equal(await openUploads(driver, "marker/"), 0);
      });

      it("commitAt puts a tail, in memory or in the side object, at another path in one request, and declines once parts exist", async () => {
        const driver = make({ chunksize: 5 * MiB });
        const commands = recordCommands(driver);
        const root = driver.options.root ? `${driver.options.root}/` : "";
        const dir = "/marker/_uploads/placed";
        await driver.putContent(`${dir}/startedat`, Buffer.from("2026-12-03T00:00:00Z"));
        // In memory: the PUT that brings the whole blob.
        const whole = randomBytes(3000);
        const writer = await driver.writer(`${dir}/data`, true, marker(dir));
        await writer.write(whole);
        commands.length = 0;
        assert.equal(await writer.commitAt!("/placed/one/data"), true);
        assert.deepEqual(commands, [`PutObject ${root}placed/one/data`]);
        assert.ok((await driver.getContent("/placed/one/data")).equals(whole));
        await assert.rejects(driver.stat(`${dir}/data`), PathNotFoundError, "nothing at the writer's own path");
        // In the side object: a PATCH, then a PUT without a body.
        const closed = await driver.writer(`${dir}/data`, false, marker(dir));
        const tail = randomBytes(4000);
        await closed.write(tail);
        await closed.close();
        commands.length = 0;
        const finishing = await driver.writer(`${dir}/data`, true, marker(dir));
        assert.equal(await finishing.commitAt!("/placed/two/data"), true);
        assert.deepEqual(commands, [`ListObjectsV2`, `CopyObject ${root}placed/two/data`]);
        assert.ok((await driver.getContent("/placed/two/data")).equals(tail));
        // Parts: only the writer's own key can complete the upload.
        const big = await driver.writer(`${dir}/data`, false, marker(dir));
        const bytes = randomBytes(6 * MiB);
        await big.write(bytes);
        assert.equal(await big.commitAt!("/placed/three/data"), false);
        await assert.rejects(driver.stat("/placed/three/data"), PathNotFoundError);
        await big.commit();
        assert.ok((await driver.getContent(`${dir}/data`)).equals(bytes));
        await driver.delete(dir, { directory: true });
        await driver.delete("/placed");
        assert.equal(await openUploads(driver, "marker/"), 0);
      });

      it("continues an upload an older berth left, its side object's tags in its metadata", async () => {
        const driver = make({ chunksize: 5 * MiB });
        const root = driver.options.root ? `${driver.options.root}/` : "";
        const dir = "/marker/_uploads/legacy";
        await driver.putContent(`${dir}/startedat`, Buffer.from("2026-12-03T00:00:00Z"));
        const tail = randomBytes(70_000);
        await inspect().send(
          new PutObjectCommand({ Bucket: driver.options.bucket, Key: `${root}${dir.slice(1)}/data${PENDING_SUFFIX}`, Body: tail, Metadata: { "berth-upload-id": "none", "berth-parts": "0" } }),
        );
        const writer = await driver.writer(`${dir}/data`, true, marker(dir));
        assert.equal(writer.size, tail.length, "the legacy side object's tail");
        const more = randomBytes(6 * MiB);
        await writer.write(more);
        await writer.close();
        const finishing = await driver.writer(`${dir}/data`, true, marker(dir));
        assert.equal(finishing.size, tail.length + more.length);
        await finishing.commit();
        assert.ok((await driver.getContent(`${dir}/data`)).equals(Buffer.concat([tail, more])));
        await driver.delete(dir, { directory: true });
        assert.deepEqual(await rawKeys(driver, dir), []);
      });

      it("answers PathNotFoundError naming the marker when it is gone, and writes nothing", async () => {
        const driver = make({ chunksize: 5 * MiB });
        const dir = "/marker/_uploads/gone";
        await assert.rejects(driver.writer(`${dir}/data`, true, marker(dir)), (err: unknown) => err instanceof PathNotFoundError && err.path === `${dir}/startedat`);
        assert.deepEqual(await rawKeys(driver, dir), []);
      });

      it("continues the committed object when a commit's side object outlived it (a crash before the directory's removal)", async () => {
        const driver = make({ chunksize: 5 * MiB });
        const dir = "/marker/_uploads/committed";
        await driver.putContent(`${dir}/startedat`, Buffer.from("2026-12-03T00:00:00Z"));
        const first = randomBytes(6 * MiB);
        const writer = await driver.writer(`${dir}/data`, true, marker(dir));
        await writer.write(first);
        await writer.close();
        const finishing = await driver.writer(`${dir}/data`, true, marker(dir));
        await finishing.commit({ directoryRemovedNext: true });
        assert.ok((await rawKeys(driver, dir)).some((key) => key.startsWith(`${dir.slice(1)}/data${PENDING_SUFFIX}~1~`)), "the side object is left to the directory's removal");
        // The process dies before removing the directory: the side object names a completed upload.
        const after = await driver.writer(`${dir}/data`, true, marker(dir));
        assert.equal(after.size, first.length, "the committed object, not the side object's upload");
        await after.commit();
        assert.ok((await driver.getContent(`${dir}/data`)).equals(first));
        await driver.delete(dir, { directory: true });
      });

      it("takes the parts over a side object a later part already holds (a crash mid-session)", async () => {
        const driver = make({ chunksize: 5 * MiB });
        const dir = "/marker/_uploads/crash";
        await driver.putContent(`${dir}/startedat`, Buffer.from("2026-12-03T00:00:00Z"));
        const first = randomBytes(6 * MiB); // part 1 of 5 MiB and a 1 MiB side object, naming the upload
        const writer = await driver.writer(`${dir}/data`, true, marker(dir));
        await writer.write(first);
        await writer.close();
        const second = randomBytes(4 * MiB + 100);
        const crashed = await driver.writer(`${dir}/data`, true, marker(dir));
        await crashed.write(second); // part 2 = the side object's 1 MiB + 4 MiB; 100 bytes stay in memory
        await waitFor(async () => (await partsOf(driver, `${dir}/data`)) === 2);
        const resumed = await driver.writer(`${dir}/data`, true, marker(dir));
        assert.equal(resumed.size, 10 * MiB, "the parts count, the stale side object does not");
        await resumed.commit();
        assert.ok((await driver.getContent(`${dir}/data`)).equals(Buffer.concat([first, second]).subarray(0, 10 * MiB)));
        await driver.delete(dir, { directory: true });
      });
    });

    it("cancel aborts the multipart upload and removes the side object", async () => {
      const driver = make({ chunksize: 5 * MiB });
      const writer = await driver.writer("/cancel/data", false);
      await writer.write(randomBytes(6 * MiB));
      await writer.close();
      assert.equal(await openUploads(driver, "cancel/"), 1);
      const again = await driver.writer("/cancel/data", true);
      assert.equal(again.size, 6 * MiB);
      await again.cancel();
      assert.equal(await openUploads(driver, "cancel/"), 0);
      assert.deepEqual(await rawKeys(driver, "/cancel"), []);
      // A cancelled upload is gone for a later writer too (Ceph answers ListParts on it with NoSuchKey).
      const fresh = await driver.writer("/cancel/data", true);
      assert.equal(fresh.size, 0);
      await fresh.cancel();
    });

    it("delete of an upload directory aborts its multipart uploads", async () => {
      const driver = make({ chunksize: 5 * MiB });
      const writer = await driver.writer("/abandoned/_uploads/id/data", false);
      await writer.write(randomBytes(5 * MiB + 10));
      await writer.close();
      await driver.putContent("/abandoned/_uploads/id/startedat", Buffer.from("2024-01-01T00:00:00Z"));
      assert.equal(await openUploads(driver, "abandoned/"), 1);
      await driver.delete("/abandoned/_uploads/id");
      assert.equal(await openUploads(driver, "abandoned/"), 0);
      assert.deepEqual(await rawKeys(driver, "/abandoned"), []);
    });

    it("a removal after its writers settled looks for no multipart uploads; removeTemporaries aborts those left with nothing beside them", async () => {
      const options = cephServer().driverOptions({ chunksize: 5 * MiB });
      const driver = new S3Driver(options, { leftoverUploadMinAgeMs: 0 });
      const careful = new S3Driver(options);
      drivers.push(driver, careful);
      // A writer killed after its first part: its upload is open, and no side object names it.
      const killed = await driver.writer("/left/_uploads/killed/data", false);
      await killed.write(randomBytes(5 * MiB + 10));
      await waitFor(async () => (await partsOf(driver, "/left/_uploads/killed/data")) === 1);
      await driver.putContent("/left/_uploads/killed/startedat", Buffer.from("2024-01-01T00:00:00Z"));
      // A resumable upload: closed, its directory in use.
      const live = await driver.writer("/left/_uploads/live/data", false);
      await live.write(randomBytes(5 * MiB + 10));
      await live.close();
      await driver.putContent("/left/_uploads/live/startedat", Buffer.from("2024-01-01T00:00:00Z"));
      // A multipart copy cut short beside the object a later copy stored.
      await driver.putContent("/left/blob/data", Buffer.from("stored"));
      const recorded = recordCommands(driver);
      // What UploadStore does once the blob is stored: its writers settled.
      await driver.delete("/left/_uploads/killed", { directory: true, durable: false, writersSettled: true });
      assert.deepEqual(recorded.map((command) => command.split(" ")[0]), ["ListObjectsV2", "DeleteObjects"]);
      assert.equal(await openUploads(driver, "left/_uploads/killed/"), 1, "the killed writer's upload is left for removeTemporaries");
      const root = driver.options.root ? `${driver.options.root}/` : "";
      const stray = await inspect().send(new CreateMultipartUploadCommand({ Bucket: driver.options.bucket, Key: `${root}left/blob/data` }));
      assert.ok(stray.UploadId);

      // Not yet a day old: nothing is aborted under the default age.
      assert.equal(await careful.removeTemporaries(new Date(Date.now() + 60_000)), 0);
      assert.equal(await openUploads(driver, "left/"), 3);
      // Started after the cut-off: kept.
      assert.equal(await driver.removeTemporaries(new Date(Date.now() - 60_000)), 0);
      recorded.length = 0;
      assert.equal(await driver.removeTemporaries(new Date(Date.now() + 60_000)), 2);
      assert.equal(await openUploads(driver, "left/_uploads/killed/"), 0);
      assert.equal(await openUploads(driver, "left/blob/"), 0);
      assert.equal(await openUploads(driver, "left/_uploads/live/"), 1, "an upload whose directory is in use is resumable");
      assert.equal(recorded.filter((command) => command.startsWith("AbortMultipartUpload")).length, 2, recorded.join("\n"));
      const resumed = await driver.writer("/left/_uploads/live/data", true);
      assert.equal(resumed.size, 5 * MiB + 10);
      await resumed.cancel();
      assert.ok((await driver.getContent("/left/blob/data")).equals(Buffer.from("stored")));
      await driver.delete("/left");
      assert.equal(await openUploads(driver, "left/"), 0);
    });

    it("moves an object above multipartcopythresholdsize with a multipart copy", async () => {
      const driver = make({ multipartcopythresholdsize: 5 * MiB, multipartcopychunksize: 5 * MiB, multipartcopymaxconcurrency: 3 });
      const content = randomBytes(17 * MiB + 5);
      await driver.putContent("/move/source", content);
      const recorded = recordCommands(driver);
      await driver.move("/move/source", "/move/dest");
      const commands = recorded.map((command) => command.split(" ")[0]);
      const copies = commands.filter((name) => name === "UploadPartCopy").length;
      assert.equal(copies, 3, `parts copied: ${commands.join(", ")}`);
      for (const download of ["GetObject", "UploadPart", "PutObject", "CopyObject"]) {
        assert.ok(!commands.includes(download), `move used ${download}`);
      }
      assert.ok((await driver.getContent("/move/dest")).equals(content));
      await assert.rejects(driver.stat("/move/source"), PathNotFoundError);

      // Below the threshold: one CopyObject.
      await driver.putContent("/move/small", randomBytes(1000));
      recorded.length = 0;
      await driver.move("/move/small", "/move/small-dest");
      assert.deepEqual(recorded.map((command) => command.split(" ")[0]), ["HeadObject", "CopyObject", "DeleteObject"]);
      await driver.delete("/move");
    });

    it("lists, walks and deletes more than 1000 keys, page by page", async () => {
      const driver = make();
      // Directories with "." and "-" siblings ("d0001/f", "d0001.t", "d0001-u"): S3 lists each
      // directory's keys after its siblings, so the walk reorders across two pages of 1000.
      const names = Array.from({ length: 1234 }, (_, i) => {
        const base = `d${String(Math.floor(i / 3)).padStart(4, "0")}`;
        return i % 3 === 0 ? `${base}/f` : i % 3 === 1 ? `${base}.t` : `${base}-u`;
      });
      await mapLimit(names, 32, (name) => driver.putContent(`/many/${name}`, Buffer.from(name)));
      await driver.putContent("/many-sibling", Buffer.from("stays"));
      const commands = recordCommands(driver);
      const listed = await driver.list("/many");
      assert.equal(listed.length, names.length);
      assert.deepEqual(listed.sort(), names.map((name) => `/many/${name.replace(/\/f$/, "")}`).sort());
      assert.equal(commands.filter((name) => name === "ListObjectsV2").length, 2, "two pages of 1000");
      const walked: string[] = [];
      await driver.walk("/many", (info) => void walked.push(`${info.path}${info.isDir ? "/" : ""}`));
      assert.deepEqual(walked, lexicalWalk(names).map((entry) => `/many/${entry}`));
      commands.length = 0;
      await driver.delete("/many");
      assert.equal(commands.filter((name) => name === "DeleteObjects").length, 2, "two batches: 1000 + 234");
      await assert.rejects(driver.stat("/many"), PathNotFoundError);
      assert.equal((await driver.getContent("/many-sibling")).toString(), "stays");
      await driver.delete("/many-sibling");
    });

    it("walks in lexical order with small pages, whatever S3's key order", async () => {
      // "/" sorts after "-" and "." in S3 keys; pages of 3 keys exercise every lookahead path.
      const options = cephServer().driverOptions();
      const driver = new S3Driver(options, { listPageSize: 3 });
      drivers.push(driver);
      const tree = [
        "a-b/c", "a.b", "a/x", "a/y-z/q", "a/y.z", "a/y/w", "ab", "b/c/d", "b-1", "b.2/x", "b/c-e",
        "c.d/e", "c/d.e", "c/d/e", "c-d", "d/e/f/g/h", "d/e/f-g", "d/e-f/g", "d.e",
        ...Array.from({ length: 12 }, (_, i) => `e/${i % 3 === 0 ? "x" : i % 3 === 1 ? "x-" : "x."}${i}/leaf`),
      ];
      await mapLimit(tree, 16, (name) => driver.putContent(`/walk/${name}`, Buffer.from(name)));
      const expected = lexicalWalk(tree).map((entry) => `/walk/${entry}`);
      const visited: string[] = [];
      await driver.walk("/walk", (info) => void visited.push(`${info.path}${info.isDir ? "/" : ""}`));
      assert.deepEqual(visited, expected.map((entry) => entry));

      // Skipping directories, including one met ahead of S3's order ("a" before "a-b").
      const skipped: string[] = [];
      await driver.walk("/walk", (info) => {
        skipped.push(info.path);
        return info.isDir && (info.path === "/walk/a" || info.path === "/walk/d/e" || info.path === "/walk/e") ? "skip" : undefined;
      });
      const expectSkipped = expected
        .map((entry) => entry.replace(/\/$/, ""))
        .filter((entry) => !/^\/walk\/(a\/|d\/e\/|e\/)/.test(entry));
      assert.deepEqual(skipped, expectSkipped);

      // Resumed after every path, and after names that exist only as "-"/"." prefixes of others.
      for (const start of [...expected.map((entry) => entry.replace(/\/$/, "")), "/walk/a-a", "/walk/a/y-", "/walk/b.1", "/walk/e/x-"]) {
        assert.deepEqual(await walkAfter(driver, "/walk", start), entriesAfter(expected, start), `after ${start}`);
      }
      await driver.delete("/walk");
    });

    it("walks random trees like the lexical order of their paths, at every page size", async () => {
      const alphabet = ["a", "b", "-", ".", "_", ":", "0"];
      const name = (): string => {
        let out = alphabet[randomInt(2)]!; // a name starts with a letter, so never "." or ".."
        for (let i = randomInt(3); i > 0; i--) out += alphabet[randomInt(alphabet.length)];
        return out;
      };
      const files = new Set<string>();
      while (files.size < 40) {
        const path = Array.from({ length: 1 + randomInt(3) }, name).join("/");
        // A path cannot be both a file and a directory.
        const clash = [...files].some((other) => other.startsWith(`${path}/`) || path.startsWith(`${other}/`));
        if (!clash) files.add(path);
      }
      const tree = [...files];
      const options = cephServer().driverOptions();
      const writer = new S3Driver(options);
      drivers.push(writer);
      await mapLimit(tree, 16, (path) => writer.putContent(`/random/${path}`, Buffer.from(path)));
      const expected = lexicalWalk(tree).map((entry) => `/random/${entry}`);
      for (const listPageSize of [1, 3, 1000]) {
        const driver = new S3Driver(options, { listPageSize });
        drivers.push(driver);
        const visited: string[] = [];
        await driver.walk("/random", (info) => void visited.push(`${info.path}${info.isDir ? "/" : ""}`));
        assert.deepEqual(visited, expected, `page size ${listPageSize}; tree ${JSON.stringify(tree)}`);
        // Resumed after every path (every third one at one key per page: each is a walk).
        const starts = expected.map((entry) => entry.replace(/\/$/, "")).filter((_, i) => listPageSize > 1 || i % 3 === 0);
        for (const start of starts) {
          assert.deepEqual(await walkAfter(driver, "/random", start), entriesAfter(expected, start), `page size ${listPageSize}; after ${start}; tree ${JSON.stringify(tree)}`);
        }
      }
      await writer.delete("/random");
    });

    it("redirectURL is a presigned URL that fetch() can read; a tampered one is refused", async () => {
      const driver = make();
      const content = randomBytes(123_456);
      await driver.putContent("/redirect/blob", content);
      const url = await driver.redirectURL("/redirect/blob", "GET");
      assert.ok(url !== undefined);
      assert.match(url, /X-Amz-Expires=1200/);
      const response = await fetch(url);
      assert.equal(response.status, 200);
      assert.ok(Buffer.from(await response.arrayBuffer()).equals(content));

      const head = await fetch((await driver.redirectURL("/redirect/blob", "HEAD"))!, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), String(content.length));

      const signature = /X-Amz-Signature=([0-9a-f]+)/.exec(url)![1]!;
      const flipped = `${signature[0] === "0" ? "1" : "0"}${signature.slice(1)}`;
      const tampered = await fetch(url.replace(signature, flipped));
      assert.equal(tampered.status, 403);
      await tampered.arrayBuffer();
      const otherKey = await fetch(url.replace("/redirect/blob", "/redirect/other"));
      assert.equal(otherKey.status, 403);
      await otherKey.arrayBuffer();
      await driver.delete("/redirect");
    });

    it("uses distribution's key layout under rootdirectory", async () => {
      const driver = make({ rootdirectory: "/nested/root/" });
      await driver.putContent("/docker/registry/v2/x", Buffer.from("layout"));
      const keys = await rawKeys(driver, "/", "nested/");
      assert.deepEqual(keys, ["nested/root/docker/registry/v2/x"]);
      assert.deepEqual(await driver.list("/"), ["/docker"]);
      await driver.delete("/");
      await assert.rejects(driver.list("/"), PathNotFoundError);
    });

    it("rejects a chunksize under 5 MiB", () => {
      assert.throws(() => new S3Driver({ bucket: "b", region: "us-east-1", chunksize: 5 * MiB - 1 }), /chunksize/);
    });
  });

  describe("berth on S3", { skip }, () => {
    const processes: BerthProcess[] = [];
    const drivers: S3Driver[] = [];
    const rootdirectory = `/berth-e2e-${randomBytes(4).toString("hex")}`;
    const start = async (extraStorage?: string): Promise<RegistryClient> => {
      const berth = await startBerth({ configYaml: s3ConfigYaml(cephServer(), rootdirectory, extraStorage) });
      processes.push(berth);
      return new RegistryClient(berth.url);
    };

    after(async () => {
      for (const berth of processes) await berth.stop();
      for (const driver of drivers) driver.transport.destroy();
    });

    it("pushes blobs and pulls them through a 307 to a presigned URL", async () => {
      const client = await start();
      const name = uniqueName("s3");
      const small = randomBlob(1000);
      // Chunks under 5 MiB, each PATCH its own writer session: the tails wait in side objects.
      const large = randomBytes(12 * MiB + 5);
      const smallDigest = await client.pushBlob(name, small);
      const largeDigest = await client.pushBlob(name, large, { chunkSize: 4 * MiB + 1 });
      const image = await client.pushImage(name, "v1");
      for (const [digest, bytes] of [[smallDigest, small], [largeDigest, large], [digestOf(image.config), image.config]] as const) {
        const get = await client.send(`/v2/${name}/blobs/${digest}`);
        assert.equal(get.status, 307, `GET ${digest}`);
        assert.equal(get.headers.get("docker-content-digest"), digest);
        const location = get.headers.get("location")!;
        assert.ok(location.startsWith(`${cephServer().endpoint}/${cephServer().bucket}/`), location);
        assert.match(location, /X-Amz-Signature=/);
        const direct = await fetch(location);
        assert.equal(direct.status, 200);
        assert.ok(Buffer.from(await direct.arrayBuffer()).equals(bytes), `bytes of ${digest} from S3`);
        // A client that follows redirects gets the bytes in one call.
        const followed = await fetch(client.url(`/v2/${name}/blobs/${digest}`));
        assert.equal(followed.status, 200);
        assert.ok(Buffer.from(await followed.arrayBuffer()).equals(bytes));
        const head = await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" });
        assert.equal(head.status, 307, `HEAD ${digest}`);
      }
      const manifest = await client.get(`/v2/${name}/manifests/v1`, { Accept: image.mediaType });
      assert.equal(manifest.response.status, 200);
      assert.ok(manifest.bytes.equals(image.bytes));
      // Stored in distribution's layout under the root directory, and nothing left of the uploads.
      const driver = new S3Driver(cephServer().driverOptions({ rootdirectory }));
      drivers.push(driver);
      const hex = largeDigest.slice("sha256:".length);
      assert.equal((await driver.stat(`/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`)).size, large.length);
      await assert.rejects(driver.list(`/docker/registry/v2/repositories/${name}/_uploads`), PathNotFoundError);
      assert.equal(await openUploads(driver, "docker/"), 0, "no multipart upload left open");
    });

    it(
      "reports the size of an upload in progress",
      async () => {
        const client = await start();
        const name = uniqueName("s3");
        const { location } = await client.startUpload(name);
        const patched = await client.patchChunk(location, randomBlob(1000), 0);
        assert.equal(patched.status, 202);
        assert.equal(patched.headers.get("range"), "0-999");
        const status = await client.send(client.url(patched.headers.get("location")!));
        assert.equal(status.status, 204);
        assert.equal(status.headers.get("range"), "0-999");
      },
    );

    it("finishes an upload whose hash state is gone by committing it and reading it back", async () => {
      const client = await start();
      const name = uniqueName("s3");
      const blob = randomBlob(6 * MiB + 17);
      const { location, uuid } = await client.startUpload(name);
      const patched = await client.patchChunk(location, blob, 0);
      assert.equal(patched.status, 202);
      const driver = new S3Driver(cephServer().driverOptions({ rootdirectory }));
      drivers.push(driver);
      await driver.delete(`/docker/registry/v2/repositories/${name}/_uploads/${uuid}/hashstates`);
      const digest = digestOf(blob);
      const finished = await client.send(`${client.url(patched.headers.get("location")!)}&digest=${digest}`, { method: "PUT" });
      assert.equal(finished.status, 201);
      const hex = digest.slice("sha256:".length);
      assert.equal((await driver.stat(`/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`)).size, blob.length);
      const pulled = await fetch(`${client.url(`/v2/${name}/blobs/${digest}`)}`);
      assert.ok(Buffer.from(await pulled.arrayBuffer()).equals(blob));
    });

    it("serves the bytes itself with storage.redirect.disable", async () => {
      const client = await start("  redirect:\n    disable: true");
      const name = uniqueName("s3");
      const blob = randomBlob(70_000);
      const digest = await client.pushBlob(name, blob, { chunkSize: 30_000 });
      const { response, bytes } = await client.get(`/v2/${name}/blobs/${digest}`);
      assert.equal(response.status, 200);
      assert.ok(bytes.equals(blob));
      const range = await client.get(`/v2/${name}/blobs/${digest}`, { Range: "bytes=10-19" });
      assert.equal(range.response.status, 206);
      assert.ok(range.bytes.equals(blob.subarray(10, 20)));
    });
  });


  describe("storage.s3 configuration", () => {
    const YAML = `version: 0.1
storage:
  s3:
    accesskey: AKIA0000
    secretkey: topsecret
    region: eu-west-1
    regionendpoint: http://127.0.0.1:7480
    bucket: registry
    rootdirectory: /prefix
    forcepathstyle: true
    chunksize: 6291456
    multipartcopymaxconcurrency: 8
    v4auth: true
  delete:
    enabled: true
`;
    const parse = (yaml: string, env: NodeJS.ProcessEnv = {}) => parseConfig(yaml, env, "test.yml");
    const configError = (run: () => unknown, key: string, fragment: string): void => {
      assert.throws(run, (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.key, key, err.message);
        assert.ok(err.message.includes(fragment), err.message);
        return true;
      });
    };

    it("reads distribution's keys, with its defaults", async () => {
      const { config, warnings } = parse(YAML);
      assert.deepEqual(warnings, []);
      assert.deepEqual(config.storage.driver, {
        kind: "s3",
        bucket: "registry",
        region: "eu-west-1",
        regionEndpoint: "http://127.0.0.1:7480",
        accessKey: "AKIA0000",
        secretKey: "topsecret",
        sessionToken: undefined,
        rootDirectory: "/prefix",
        forcePathStyle: true,
        encrypt: false,
        keyId: undefined,
        secure: true,
        skipVerify: false,
        chunkSize: 6 * MiB,
        multipartCopyChunkSize: 32 * MiB,
        multipartCopyMaxConcurrency: 8,
        multipartCopyThresholdSize: 32 * MiB,
        storageClass: "STANDARD",
        objectAcl: undefined,
        userAgent: undefined,
        useDualStack: false,
        accelerate: false,
        logLevel: "off",
      });
      assert.equal(config.storage.redirectDisabled, false, "redirects are on by default");
      const driver = await createDriver(config);
      assert.ok(driver instanceof S3Driver);
      assert.equal(driver.options.root, "prefix");
      assert.equal(driver.options.chunkSize, 6 * MiB);
      driver.transport.destroy();
      assert.equal(describeStorage(config), "s3 bucket registry at http://127.0.0.1:7480, root /prefix");
    });

    it("takes REGISTRY_STORAGE_S3_* overrides, and leaves credentials to the AWS chain when absent", () => {
      const { config } = parse("version: 0.1\nstorage:\n  inmemory:\n", {
        REGISTRY_STORAGE: "s3",
        REGISTRY_STORAGE_S3_BUCKET: "from-env",
        REGISTRY_STORAGE_S3_REGION: "us-east-1",
        REGISTRY_STORAGE_S3_ENCRYPT: "true",
        REGISTRY_STORAGE_REDIRECT_DISABLE: "true",
      });
      assert.equal(config.storage.driver.kind, "s3");
      if (config.storage.driver.kind !== "s3") return;
      assert.equal(config.storage.driver.bucket, "from-env");
      assert.equal(config.storage.driver.encrypt, true);
      assert.equal(config.storage.driver.accessKey, undefined);
      assert.equal(config.storage.redirectDisabled, true);
    });

    it("masks the secret key when describing the configuration", () => {
      const described = describeConfig(parse(YAML).config) as { storage: { s3: Record<string, unknown> } };
      assert.equal(described.storage.s3["accesskey"], "AKIA0000");
      assert.equal(described.storage.s3["secretkey"], MASK);
      assert.ok(!JSON.stringify(described).includes("topsecret"));
    });

    it("refuses what the driver could not run with, naming the key", () => {
      configError(() => parse("version: 0.1\nstorage:\n  s3:\n    region: r\n"), "storage.s3.bucket", "required");
      configError(() => parse("version: 0.1\nstorage:\n  s3:\n    bucket: b\n"), "storage.s3.region", "required");
      configError(() => parse(YAML.replace("chunksize: 6291456", "chunksize: 1048576")), "storage.s3.chunksize", "between 5242880 and");
      configError(() => parse(YAML.replace("    secretkey: topsecret\n", "")), "storage.s3.secretkey", "go together");
      configError(() => parse(YAML.replace("forcepathstyle: true", "forcepathstyle: maybe")), "storage.s3.forcepathstyle", "expected a boolean");
      configError(() => parse(YAML.replace("v4auth: true", "loglevel: verbose")), "storage.s3.loglevel", "expected one of off, debug, debugwithsigning");
      const { warnings } = parse(YAML.replace("v4auth: true", "v4auth: false\n    usedualstack: true\n    accelerate: true"));
      assert.deepEqual(warnings.sort(), [
        "storage.s3.accelerate: ignored with storage.s3.regionendpoint (it chooses one of AWS's own endpoints)",
        "storage.s3.usedualstack: ignored with storage.s3.regionendpoint (it chooses one of AWS's own endpoints)",
        "storage.s3.v4auth: false is ignored; berth always signs requests with AWS Signature Version 4",
      ]);
    });

    it("useragent, usedualstack, accelerate and loglevel (any case, as distribution) reach the driver; accelerate refuses a bucket that cannot be a host name", () => {
      const aws = YAML.replace("    regionendpoint: http://127.0.0.1:7480\n", "");
      const { config, warnings } = parse(aws.replace("v4auth: true", "useragent: fleet/1\n    usedualstack: true\n    accelerate: true\n    loglevel: DebugWithSigning"));
      assert.deepEqual(warnings, []);
      assert.equal(config.storage.driver.kind, "s3");
      if (config.storage.driver.kind !== "s3") return;
      assert.equal(config.storage.driver.userAgent, "fleet/1");
      assert.equal(config.storage.driver.useDualStack, true);
      assert.equal(config.storage.driver.accelerate, true);
      assert.equal(config.storage.driver.logLevel, "debugwithsigning");
      const fromEnv = parse(aws, { REGISTRY_STORAGE_S3_LOGLEVEL: "debug" }).config.storage.driver;
      assert.equal(fromEnv.kind === "s3" ? fromEnv.logLevel : undefined, "debug");
      configError(() => parse(aws.replace("bucket: registry", "bucket: my.registry").replace("v4auth: true", "accelerate: true")), "storage.s3.accelerate", "cannot use S3 Transfer Acceleration");
    });
  });
}

interface MemoryReport {
  total: number;
  writes: number;
  baselineRss: number;
  rssGrowth: number;
  bufferGrowth: number;
  sha256: string;
}

/**
 * The child process of the memory test: streams `total` random bytes in uneven writes through one
 * writer and reports the peak growth of RSS and of ArrayBuffer memory (sampled after a full GC, so
 * that only live memory counts), and the bytes' SHA-256.
 */
async function memoryProbe(input: string): Promise<void> {
  const { options, path, total } = JSON.parse(input) as { options: S3DriverOptions; path: string; total: number };
  const gc = (globalThis as { gc?: () => void }).gc;
  assert.ok(gc, "run with --expose-gc");
  const driver = new S3Driver(options);
  await driver.putContent(`${path}-warm-up`, Buffer.from("warm"));
  await driver.delete(`${path}-warm-up`);
  const hash = createHash("sha256");
  gc();
  const baseline = process.memoryUsage();
  let peakRss = baseline.rss;
  let peakArrayBuffers = baseline.arrayBuffers;
  const writer = await driver.writer(path, false);
  let written = 0;
  let writes = 0;
  while (written < total) {
    // Uneven writes between 1 byte and 256 KiB, as a client's TCP reads would arrive.
    const chunk = randomBytes(Math.min(total - written, randomInt(3) === 0 ? randomInt(1, 100) : randomInt(1, 256 * 1024)));
    hash.update(chunk);
    await writer.write(chunk);
    written += chunk.length;
    if (++writes % 16 === 0) {
      gc();
      const usage = process.memoryUsage();
      peakRss = Math.max(peakRss, usage.rss);
      peakArrayBuffers = Math.max(peakArrayBuffers, usage.arrayBuffers);
    }
  }
  await writer.commit();
  driver.transport.destroy();
  const report: MemoryReport = {
    total,
    writes,
    baselineRss: baseline.rss,
    rssGrowth: peakRss - baseline.rss,
    bufferGrowth: peakArrayBuffers - baseline.arrayBuffers,
    sha256: hash.digest("hex"),
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** A berth configuration storing on the test's S3 server. */
function s3ConfigYaml(s3: CephS3, rootdirectory: string, extraStorage?: string): string {
  return testConfig({ driver: s3DriverConfig(s3, rootdirectory), storage: extraStorage });
}

/** The S3 operations the driver sends from now on, as "<operation> <key>". */
function recordCommands(driver: S3Driver): string[] {
  const names: string[] = [];
  driver.transport.observe(({ operation, key }) => void names.push(key === undefined ? operation : `${operation} ${key}`));
  return names;
}

/** Every key under a driver path, including hidden side objects, relative to the bucket. */
async function rawKeys(driver: S3Driver, path: string, prefixOverride?: string): Promise<string[]> {
  const root = driver.options.root;
  const prefix = prefixOverride ?? (path === "/" ? (root ? `${root}/` : "") : `${root ? `${root}/` : ""}${path.slice(1)}`);
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await inspect().send(
      new ListObjectsV2Command({ Bucket: driver.options.bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) keys.push(object.Key!.slice(root && prefixOverride === undefined ? root.length + 1 : 0));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys;
}

async function partsOf(driver: S3Driver, path: string): Promise<number> {
  const key = `${driver.options.root ? `${driver.options.root}/` : ""}${path.slice(1)}`;
  const uploads = await inspect().send(new ListMultipartUploadsCommand({ Bucket: driver.options.bucket, Prefix: key }));
  const upload = (uploads.Uploads ?? []).find((candidate) => candidate.Key === key);
  if (upload === undefined) return 0;
  const parts = await inspect().send(
    new ListPartsCommand({ Bucket: driver.options.bucket, Key: key, UploadId: upload.UploadId }),
  );
  return (parts.Parts ?? []).length;
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("timed out waiting for a condition");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function openUploads(driver: S3Driver, relativePrefix: string): Promise<number> {
  const root = driver.options.root;
  const out = await inspect().send(
    new ListMultipartUploadsCommand({ Bucket: driver.options.bucket, Prefix: `${root ? `${root}/` : ""}${relativePrefix}` }),
  );
  return (out.Uploads ?? []).length;
}

/** A walk resumed after `start`; directories end in "/". */
async function walkAfter(driver: S3Driver, path: string, start: string): Promise<string[]> {
  const visited: string[] = [];
  await driver.walk(path, (info) => void visited.push(`${info.path}${info.isDir ? "/" : ""}`), { startAfter: start });
  return visited;
}

/** The entries of a walk (directories ending in "/") that come after `start`, leaving out what is under it. */
function entriesAfter(walk: string[], start: string): string[] {
  return walk.filter((entry) => {
    const path = entry.replace(/\/$/, "");
    return compareWalkOrder(path, start) > 0 && !path.startsWith(`${start}/`);
  });
}

/** The depth-first walk of a set of file paths, children in lexical order; directories end in "/". */
function lexicalWalk(files: string[]): string[] {
  interface Node {
    children: Map<string, Node>;
    file: boolean;
  }
  const root: Node = { children: new Map(), file: false };
  for (const file of files) {
    let node = root;
    for (const segment of file.split("/")) {
      let child = node.children.get(segment);
      if (!child) node.children.set(segment, (child = { children: new Map(), file: false }));
      node = child;
    }
    node.file = true;
  }
  const out: string[] = [];
  const visit = (node: Node, prefix: string): void => {
    for (const name of [...node.children.keys()].sort()) {
      const child = node.children.get(name)!;
      const path = prefix === "" ? name : `${prefix}/${name}`;
      out.push(child.children.size > 0 ? `${path}/` : path);
      visit(child, path);
    }
  };
  visit(root, "");
  return out;
}

async function sha256(stream: Readable): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of stream) hash.update(chunk as Uint8Array);
  return hash.digest("hex");
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}
