import { after, describe, it } from "node:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { InMemoryDriver } from "../src/driver/inmemory-driver.js";
import type { StorageDriver } from "../src/driver/storage-driver.js";
import { NoBlobDescriptorCache } from "../src/cache/blob-descriptor-cache.js";
import { createResumableSha256, resumableSha256Available, unmarshalSha256 } from "../src/hash/resumable-sha256.js";
import { nativeFileOps } from "../src/native/durable-file.js";
import { Digest } from "../src/reference/digest.js";
import { BlobStore } from "../src/storage/blob-store.js";
import { blobDataPath, uploadHashStatePath, uploadHashStatesPath } from "../src/storage/paths.js";
import { UploadStore } from "../src/storage/upload-store.js";

/** Counts bytes read back through `reader`: a resumed upload should read none. */
function countingDriver(inner: StorageDriver): { driver: StorageDriver; readBytes: () => number } {
  let read = 0;
  const driver = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === "reader") {
        return async (path: string, offset?: number, end?: number) => {
          const stream = await target.reader(path, offset, end);
          stream.on("data", (chunk: Buffer) => (read += chunk.length));
          return stream;
        };
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { driver, readBytes: () => read };
}

/** A fresh UploadStore is what another process (or node) sharing the storage would have. */
function otherProcess(driver: StorageDriver): UploadStore {
  return new UploadStore(driver, new BlobStore(driver, new NoBlobDescriptorCache()));
}

async function* chunks(...parts: Buffer[]): AsyncIterable<Buffer> {
  yield* parts;
}

const sha256 = (data: Buffer): Digest => Digest.parse(`sha256:${createHash("sha256").update(data).digest("hex")}`);

/**
 * Both kinds of writer: the in-memory one, hashed on the event loop, and the filesystem one, which
 * hashes in its native write jobs (FileWriter.hashWhileWriting) when the addon is built.
 */
const drivers: [string, () => Promise<StorageDriver>][] = [
  ["in-memory driver", async () => new InMemoryDriver()],
  ["filesystem driver", async () => new FilesystemDriver(await mkdtemp(join(tmpdir(), "berth-upload-store-")))],
];
const roots: string[] = [];
after(async () => {
  await Promise.all(roots.map((root) => rm(root, { recursive: true, force: true })));
});

for (const [driverName, makeDriver] of drivers) {
  const newDriver = async (): Promise<StorageDriver> => {
    const driver = await makeDriver();
    if (driver instanceof FilesystemDriver) roots.push(driver.rootDirectory);
    return driver;
  };
describe(`UploadStore (${driverName})`, () => {
  it("finishes an upload whose chunks arrived at three different processes without re-reading it", { skip: !resumableSha256Available && process.env.CI !== "true" && "native addon not built" }, async () => {
    const { driver, readBytes } = countingDriver(await newDriver());
    const data = randomBytes(3 * 100_003);
    const session = await otherProcess(driver).start("team/app");
    await otherProcess(driver).append(session, chunks(data.subarray(0, 100_003)), { start: 0 });
    await otherProcess(driver).append(session, chunks(data.subarray(100_003, 200_006)), { start: 100_003 });
    const descriptor = await otherProcess(driver).complete(session, sha256(data), chunks(data.subarray(200_006)), { start: 200_006 });
    assert.equal(descriptor.size, data.length);
    assert.equal(readBytes(), 0);
    assert.deepEqual(await driver.getContent(blobDataPath(sha256(data))), data);
  });

  it("saves distribution's hash state after each chunk, named by offset", { skip: !resumableSha256Available && process.env.CI !== "true" && "native addon not built" }, async () => {
    const driver = await newDriver();
    const store = otherProcess(driver);
    const session = await store.start("team/app");
    await store.append(session, chunks(Buffer.from("hello ")));
    const state = await driver.getContent(uploadHashStatePath("team/app", session.id, "sha256", 6));
    assert.equal(state.length, 108);
    assert.equal(state.subarray(0, 4).toString("binary"), "sha\x03");
  });

  it("re-reads the bytes when no hash state was saved (an upload distribution started)", async () => {
    const inner = await newDriver();
    const { driver, readBytes } = countingDriver(inner);
    const data = randomBytes(50_000);
    const session = await otherProcess(driver).start("team/app");
    await otherProcess(driver).append(session, chunks(data.subarray(0, 20_000)));
    await inner.delete(uploadHashStatesPath("team/app", session.id, "sha256")).catch(() => undefined);
    await otherProcess(driver).complete(session, sha256(data), chunks(data.subarray(20_000)));
    assert.ok(readBytes() >= 20_000);
    assert.deepEqual(await inner.getContent(blobDataPath(sha256(data))), data);
  });

  it("ignores and removes a hash state that claims more bytes than the upload holds", async () => {
    const inner = await newDriver();
    const data = randomBytes(10_000);
    const session = await otherProcess(inner).start("team/app");
    await otherProcess(inner).append(session, chunks(data.subarray(0, 4_000)));
    // As if a crash lost bytes after their state was saved: the state says 9000, the data holds 4000.
    const bogus = uploadHashStatePath("team/app", session.id, "sha256", 9_000);
    await inner.putContent(bogus, Buffer.alloc(108));
    await otherProcess(inner).complete(session, sha256(data), chunks(data.subarray(4_000)));
    await assert.rejects(inner.stat(bogus));
    assert.deepEqual(await inner.getContent(blobDataPath(sha256(data))), data);
  });

  it("refuses a digest the bytes do not have and removes the upload", async () => {
    const driver = await newDriver();
    const store = otherProcess(driver);
    const session = await store.start("team/app");
    await assert.rejects(store.complete(session, sha256(Buffer.from("other")), chunks(Buffer.from("actual"))), { code: "DIGEST_INVALID" });
    await assert.rejects(store.open("team/app", session.id), { code: "BLOB_UPLOAD_UNKNOWN" });
    await assert.rejects(driver.stat(blobDataPath(sha256(Buffer.from("actual")))));
  });
});
}

describe("UploadStore on the filesystem driver: hashing in the writer's jobs", { skip: nativeFileOps?.writeHashed === undefined && process.env.CI !== "true" && "native durable_file addon not built" }, () => {
  let root: string;
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("the writer takes a hash state before its first write only", async () => {
    root = await mkdtemp(join(tmpdir(), "berth-upload-hash-"));
    const driver = new FilesystemDriver(root);
    const state = createResumableSha256();
    assert.ok(state);
    const fresh = await driver.writer("/a/data", false);
    assert.equal(fresh.hashWhileWriting?.(state.nativeState), true);
    assert.equal(fresh.hashWhileWriting?.(state.nativeState), false, "one state per writer");
    await fresh.write(Buffer.from("abc"));
    await fresh.commit();
    assert.equal(state.hexDigest(), createHash("sha256").update("abc").digest("hex"));
    const used = await driver.writer("/b/data", false);
    await used.write(Buffer.from("x"));
    assert.equal(used.hashWhileWriting?.(createResumableSha256()!.nativeState), false, "bytes already written were not hashed");
    await used.cancel();
    const viaNode = await new FilesystemDriver(root, { nativeFileOps: false }).writer("/c/data", false);
    assert.equal(viaNode.hashWhileWriting?.(createResumableSha256()!.nativeState), false, "node:fs writes cannot hash");
    await viaNode.cancel();
  });

  it("a monolithic upload of several write buffers in uneven chunks is stored under its digest without re-reading", async () => {
    const inner = new FilesystemDriver(await mkdtemp(join(tmpdir(), "berth-upload-hash-")));
    roots.push(inner.rootDirectory);
    const { driver, readBytes } = countingDriver(inner);
    const data = randomBytes(3 * 1024 * 1024 + 12_345);
    const parts: Buffer[] = [];
    for (let at = 0, size = 1; at < data.length; at += size, size = (size * 7 + 13) % 200_000 + 1) parts.push(data.subarray(at, at + size));
    const store = otherProcess(driver);
    const session = await store.start("team/app");
    const descriptor = await store.complete(session, sha256(data), chunks(...parts));
    assert.equal(descriptor.size, data.length);
    assert.equal(readBytes(), 0);
    assert.deepEqual(await inner.getContent(blobDataPath(sha256(data))), data);
  });

  it("a chunked upload continued by the same process and then by another saves each state and finishes without re-reading", async () => {
    const inner = new FilesystemDriver(await mkdtemp(join(tmpdir(), "berth-upload-hash-")));
    roots.push(inner.rootDirectory);
    const { driver, readBytes } = countingDriver(inner);
    const data = randomBytes(700_001);
    const store = otherProcess(driver);
    const session = await store.start("team/app");
    await store.append(session, chunks(data.subarray(0, 300_000)), { start: 0 });
    await store.append(session, chunks(data.subarray(300_000, 600_000)), { start: 300_000 });
    const saved = unmarshalSha256(await inner.getContent(uploadHashStatePath("team/app", session.id, "sha256", 600_000)));
    assert.equal(saved?.hexDigest(), createHash("sha256").update(data.subarray(0, 600_000)).digest("hex"));
    await otherProcess(driver).complete(session, sha256(data), chunks(data.subarray(600_000)), { start: 600_000 });
    assert.equal(readBytes(), 0);
    assert.deepEqual(await inner.getContent(blobDataPath(sha256(data))), data);
  });

  it("refuses a digest the bytes do not have: DIGEST_INVALID, the upload removed, nothing stored", async () => {
    const driver = new FilesystemDriver(await mkdtemp(join(tmpdir(), "berth-upload-hash-")));
    roots.push(driver.rootDirectory);
    const store = otherProcess(driver);
    const session = await store.start("team/app");
    const actual = randomBytes(600_000);
    await assert.rejects(store.complete(session, sha256(Buffer.from("other")), chunks(actual)), { code: "DIGEST_INVALID" });
    await assert.rejects(store.open("team/app", session.id), { code: "BLOB_UPLOAD_UNKNOWN" });
    await assert.rejects(driver.stat(blobDataPath(sha256(actual))));
    await assert.rejects(driver.stat(blobDataPath(sha256(Buffer.from("other")))));
  });
});
