/**
 * Freeing upload body chunks as soon as they are written: the native release itself, the
 * filesystem writer's buffer pool, and which uploads may release their chunks.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { NoBlobDescriptorCache } from "../src/cache/blob-descriptor-cache.js";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { InMemoryDriver } from "../src/driver/inmemory-driver.js";
import type { StorageDriver } from "../src/driver/storage-driver.js";
import { WriteBufferPool } from "../src/driver/write-buffer-pool.js";
import { canReleaseChunks, releaseChunk } from "../src/native/release-buffer.js";
import { Digest } from "../src/reference/digest.js";
import { BlobStore } from "../src/storage/blob-store.js";
import { blobDataPath } from "../src/storage/paths.js";
import { UploadStore, type UploadBody } from "../src/storage/upload-store.js";

const skip = !canReleaseChunks && process.env.CI !== "true" && "native release_buffer addon not built (npm install builds it)";
const MiB = 1024 * 1024;

describe("releaseChunk", { skip }, () => {
  it("frees the memory of chunks that span their whole ArrayBuffer, while they are still referenced", () => {
    const chunks = Array.from({ length: 64 }, () => Buffer.allocUnsafeSlow(MiB).fill(7));
    const before = process.memoryUsage().arrayBuffers;
    for (const chunk of chunks) assert.equal(releaseChunk(chunk), true);
    const freed = before - process.memoryUsage().arrayBuffers;
    assert.ok(freed >= 64 * MiB, `freed ${freed} bytes`);
    for (const chunk of chunks) {
      assert.equal(chunk.length, 0);
      assert.equal(chunk.buffer.byteLength, 0);
    }
  });

  it("leaves views into shared memory alone", () => {
    const whole = Buffer.allocUnsafeSlow(1024).fill(1);
    const slice = whole.subarray(0, 512);
    assert.equal(releaseChunk(slice), false);
    assert.equal(whole.length, 1024);
    assert.equal(slice[0], 1);

    // Node's pool for small Buffers: other Buffers live in the same ArrayBuffer.
    const pooled = Buffer.from("a small buffer from Node's pool");
    assert.equal(releaseChunk(pooled), false);
    assert.equal(pooled.toString(), "a small buffer from Node's pool");

    const shared = new Uint8Array(new SharedArrayBuffer(4096));
    assert.equal(releaseChunk(shared), false);
    assert.equal(shared.length, 4096);
  });
});

describe("WriteBufferPool", () => {
  const KiB = 1024;
  const options = { largeSize: 256 * KiB, smallSize: 64 * KiB, largeBudget: 512 * KiB, maxIdle: 2 };

  it("hands out large buffers up to the budget, then small ones", () => {
    const pool = new WriteBufferPool(options);
    const taken = [pool.take(), pool.take(), pool.take(), pool.take()];
    assert.deepEqual(taken.map((buffer) => buffer.length), [256 * KiB, 256 * KiB, 64 * KiB, 64 * KiB]);
    assert.equal(new Set(taken.map((buffer) => buffer.buffer)).size, 4, "each buffer has its own memory");
    pool.give(taken[0]!);
    assert.equal(pool.take(), taken[0], "a large buffer given back is reused, and counts against the budget again");
    assert.equal(pool.take().length, 64 * KiB);
  });

  it("keeps at most maxIdle buffers of each size and frees the rest", () => {
    const pool = new WriteBufferPool({ ...options, largeBudget: 1024 * KiB });
    const taken = Array.from({ length: 4 }, () => pool.take());
    for (const buffer of taken) pool.give(buffer);
    assert.equal(pool.idle, 2);
    // Those over the limit were freed at once where the addon is built.
    if (canReleaseChunks) assert.deepEqual(taken.map((buffer) => buffer.length), [256 * KiB, 256 * KiB, 0, 0]);
    assert.deepEqual(new Set([pool.take(), pool.take()]), new Set(taken.slice(0, 2)));
    assert.equal(pool.idle, 0);
  });

  it("refuses a buffer it did not hand out", () => {
    const pool = new WriteBufferPool(options);
    assert.throws(() => pool.give(Buffer.alloc(1000)), /not a buffer of this pool/);
    assert.equal(pool.idle, 0);
  });
});

function body(parts: Buffer[], chunksReleasable: boolean): UploadBody {
  return {
    async *[Symbol.asyncIterator]() {
      yield* parts;
    },
    chunksReleasable,
  };
}

/** Chunks of their own memory (as Node's HTTP/1 parser delivers), with a copy of the whole. */
function ownChunks(count: number, size: number): { parts: Buffer[]; data: Buffer } {
  const parts = Array.from({ length: count }, () => {
    const part = Buffer.allocUnsafeSlow(size);
    randomBytes(size).copy(part);
    return part;
  });
  return { parts, data: Buffer.concat(parts) };
}

async function upload(driver: StorageDriver, parts: Buffer[], releasable: boolean, data: Buffer): Promise<void> {
  const store = new UploadStore(driver, new BlobStore(driver, new NoBlobDescriptorCache()));
  const digest = Digest.parse(`sha256:${createHash("sha256").update(data).digest("hex")}`);
  const session = await store.start("team/app");
  await store.append(session, body(parts.slice(0, 10), releasable), { start: 0 });
  const descriptor = await store.complete(session, digest, body(parts.slice(10), releasable), {});
  assert.equal(descriptor.size, data.length);
  assert.ok((await driver.getContent(blobDataPath(digest))).equals(data));
}

describe("upload body chunks", { skip }, () => {
  it("are freed once the filesystem writer has copied them, and the blob holds every byte", async () => {
    const root = await mkdtemp(join(tmpdir(), "berth-release-"));
    try {
      const { parts, data } = ownChunks(20, 65_536);
      await upload(new FilesystemDriver(root), parts, true, data);
      for (const part of parts) assert.equal(part.length, 0);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("are left alone when the body does not own them", async () => {
    const root = await mkdtemp(join(tmpdir(), "berth-release-"));
    try {
      const { parts, data } = ownChunks(20, 65_536);
      await upload(new FilesystemDriver(root), parts, false, data);
      assert.ok(Buffer.concat(parts).equals(data));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("are left alone when the driver's writer keeps them by reference", async () => {
    const { parts, data } = ownChunks(20, 65_536);
    await upload(new InMemoryDriver(), parts, true, data);
    assert.ok(Buffer.concat(parts).equals(data));
  });
});
