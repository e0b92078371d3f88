/**
 * berth's referrers index catching up with a tree it did not write alone (distribution, or a berth
 * stopped between two writes), and the checks on content read back from storage. In process, on
 * the in-memory driver, with every storage call counted: the common case must read no manifest
 * it has already indexed. test/compat-distribution.test.ts runs the same against distribution.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { NoBlobDescriptorCache } from "../src/cache/blob-descriptor-cache.js";
import { InMemoryDriver } from "../src/driver/inmemory-driver.js";
import type { StorageDriver } from "../src/driver/storage-driver.js";
import { RegistryError } from "../src/errcode/registry-error.js";
import { createLogger } from "../src/log/logger.js";
import { Digest } from "../src/reference/digest.js";
import { StorageRegistry as Registry } from "../src/registry/storage-registry.js";
import type { Repository } from "../src/registry/repository.js";
import { BlobContentMismatchError, BlobStore } from "../src/storage/blob-store.js";
import { storedMediaType } from "../src/storage/manifest-store.js";
import { blobDataPath, manifestRevisionLinkPath, referrerLinkPath, referrersIndexedMarkerPath } from "../src/storage/paths.js";

const NAME = "team/app";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

interface Counted {
  driver: StorageDriver;
  /** Paths read with getContent since the last reset. */
  reads: string[];
  writes: string[];
  reset(): void;
}

function counting(inner: StorageDriver): Counted {
  const counted: Counted = { driver: inner, reads: [], writes: [], reset: () => ((counted.reads = []), (counted.writes = [])) };
  counted.driver = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === "getContent") {
        return (path: string) => {
          counted.reads.push(path);
          return target.getContent(path);
        };
      }
      if (prop === "putContent" || prop === "delete" || prop === "move" || prop === "writer") {
        return (path: string, ...rest: unknown[]) => {
          counted.writes.push(path);
          return (target[prop] as (...a: unknown[]) => unknown).call(target, path, ...rest);
        };
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return counted;
}

function logSink(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString("utf8"));
      callback();
    },
  });
  return { lines, stream };
}

/** A fresh Registry is what a freshly started process would have: no cached manifest content. */
function registry(driver: StorageDriver, options: { readOnly?: boolean; log?: Writable } = {}): Registry {
  return new Registry({
    driver,
    cache: new NoBlobDescriptorCache(),
    log: createLogger({ level: "warn", formatter: "json", destination: options.log ?? logSink().stream }),
    deleteEnabled: true,
    readOnly: options.readOnly ?? false,
  });
}

async function* bytes(content: Buffer): AsyncIterable<Buffer> {
  yield content;
}

async function pushBlob(repository: Repository, content: Buffer): Promise<Digest> {
  const digest = Digest.of("sha256", content);
  await repository.completeUpload(await repository.startUpload(), digest, bytes(content));
  return digest;
}

/** An image (or, with a subject, an artifact) whose blobs are pushed; the manifest bytes are returned unpushed. */
async function image(repository: Repository, subject?: { digest: Digest; size: number }): Promise<Buffer> {
  const config = Buffer.from(JSON.stringify({ nonce: randomBytes(8).toString("hex") }));
  const layer = randomBytes(32);
  const configDigest = await pushBlob(repository, config);
  const layerDigest = await pushBlob(repository, layer);
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      ...(subject ? { artifactType: "application/vnd.example.sig" } : {}),
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest.toString(), size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layerDigest.toString(), size: layer.length }],
      ...(subject ? { subject: { mediaType: OCI_MANIFEST, digest: subject.digest.toString(), size: subject.size } } : {}),
    }),
  );
}

/** What distribution does on a manifest PUT: blob and revision link, no referrers index. */
async function storeLikeDistribution(driver: StorageDriver, content: Buffer): Promise<Digest> {
  const digest = Digest.of("sha256", content);
  await driver.putContent(blobDataPath(digest), content);
  await driver.putContent(manifestRevisionLinkPath(NAME, digest), Buffer.from(digest.toString()));
  return digest;
}

async function exists(driver: StorageDriver, path: string): Promise<boolean> {
  try {
    await driver.stat(path);
    return true;
  } catch {
    return false;
  }
}

const manifestReads = (counted: Counted) => counted.reads.filter((p) => p.startsWith("/docker/registry/v2/blobs/"));

describe("referrers index coverage", () => {
  it("berth marks each manifest it stores, so answering reads only the referrers themselves", async () => {
    const counted = counting(new InMemoryDriver());
    const repository = registry(counted.driver).repository(NAME);
    const baseBytes = await image(repository);
    const { digest: base } = await repository.putManifest({ tag: "v1" }, baseBytes, OCI_MANIFEST);
    const sigBytes = await image(repository, { digest: base, size: baseBytes.length });
    const { digest: sig } = await repository.putManifest({ digest: Digest.of("sha256", sigBytes) }, sigBytes, OCI_MANIFEST);
    assert.ok(await exists(counted.driver, referrersIndexedMarkerPath(NAME, base)));
    assert.ok(await exists(counted.driver, referrersIndexedMarkerPath(NAME, sig)));

    counted.reset();
    const fresh = registry(counted.driver).repository(NAME);
    assert.deepEqual((await fresh.referrers(base)).map((d) => d.digest.toString()), [sig.toString()]);
    assert.deepEqual(manifestReads(counted), [blobDataPath(sig)], "only the referrer is read; the base is not re-read");
    assert.deepEqual(counted.writes, [], "nothing to index, nothing written");
  });

  it("a revision stored without the index (distribution, or a crash before the marker) is indexed once, then costs nothing", async () => {
    const counted = counting(new InMemoryDriver());
    const repository = registry(counted.driver).repository(NAME);
    const baseBytes = await image(repository);
    const { digest: base } = await repository.putManifest({ tag: "v1" }, baseBytes, OCI_MANIFEST);
    const sig = await storeLikeDistribution(counted.driver, await image(repository, { digest: base, size: baseBytes.length }));
    const plain = await storeLikeDistribution(counted.driver, await image(repository));

    counted.reset();
    const first = registry(counted.driver).repository(NAME);
    assert.deepEqual((await first.referrers(base)).map((d) => d.digest.toString()), [sig.toString()]);
    assert.deepEqual(new Set(manifestReads(counted)), new Set([blobDataPath(sig), blobDataPath(plain)]), "each unindexed revision is read");
    assert.ok(await exists(counted.driver, referrerLinkPath(NAME, base, sig)), "the missing referrer link is written");
    for (const digest of [sig, plain]) assert.ok(await exists(counted.driver, referrersIndexedMarkerPath(NAME, digest)));

    counted.reset();
    const second = registry(counted.driver).repository(NAME);
    assert.deepEqual((await second.referrers(base)).map((d) => d.digest.toString()), [sig.toString()]);
    assert.deepEqual(manifestReads(counted), [blobDataPath(sig)], "the plain manifest is not read again");
    assert.deepEqual(counted.writes, []);
    // Referrers of other subjects need no reads either.
    counted.reset();
    assert.deepEqual(await second.referrers(plain), []);
    assert.deepEqual(manifestReads(counted), []);
  });

  it("read-only: the answer includes unindexed referrers, and nothing is written", async () => {
    const counted = counting(new InMemoryDriver());
    const writer = registry(counted.driver).repository(NAME);
    const baseBytes = await image(writer);
    const { digest: base } = await writer.putManifest({ tag: "v1" }, baseBytes, OCI_MANIFEST);
    const sig = await storeLikeDistribution(counted.driver, await image(writer, { digest: base, size: baseBytes.length }));
    counted.reset();
    const reader = registry(counted.driver, { readOnly: true }).repository(NAME);
    assert.deepEqual((await reader.referrers(base)).map((d) => d.digest.toString()), [sig.toString()]);
    assert.deepEqual(counted.writes, []);
  });

  it("deleting removes the marker first; a manifest stored again afterwards is indexed again", async () => {
    const driver = new InMemoryDriver();
    const repository = registry(driver).repository(NAME);
    const baseBytes = await image(repository);
    const { digest: base } = await repository.putManifest({ tag: "v1" }, baseBytes, OCI_MANIFEST);
    const sigBytes = await image(repository, { digest: base, size: baseBytes.length });
    const { digest: sig } = await repository.putManifest({ digest: Digest.of("sha256", sigBytes) }, sigBytes, OCI_MANIFEST);
    await repository.deleteManifest({ digest: sig });
    assert.equal(await exists(driver, referrersIndexedMarkerPath(NAME, sig)), false);
    assert.equal(await exists(driver, referrerLinkPath(NAME, base, sig)), false);
    assert.deepEqual(await repository.referrers(base), []);
    await storeLikeDistribution(driver, sigBytes);
    assert.deepEqual((await registry(driver).repository(NAME).referrers(base)).map((d) => d.digest.toString()), [sig.toString()]);
  });

  it("a damaged or non-manifest revision does not fail the answer; sound bytes that are not a manifest are marked, damaged ones retried", async () => {
    const counted = counting(new InMemoryDriver());
    const repository = registry(counted.driver).repository(NAME);
    const baseBytes = await image(repository);
    const { digest: base } = await repository.putManifest({ tag: "v1" }, baseBytes, OCI_MANIFEST);
    const notJson = await storeLikeDistribution(counted.driver, Buffer.from("not json"));
    const sigBytes = await image(repository, { digest: base, size: baseBytes.length });
    const damaged = await storeLikeDistribution(counted.driver, sigBytes);
    await counted.driver.putContent(blobDataPath(damaged), Buffer.from(sigBytes.toString().replace("{", "{ ")));
    const sink = logSink();
    const reader = registry(counted.driver, { log: sink.stream }).repository(NAME);
    assert.deepEqual(await reader.referrers(base), []);
    assert.ok(await exists(counted.driver, referrersIndexedMarkerPath(NAME, notJson)), "a digest's bytes never change: marked");
    assert.equal(await exists(counted.driver, referrersIndexedMarkerPath(NAME, damaged)), false, "damaged bytes may be repaired: not marked");
    assert.ok(sink.lines.some((line) => line.includes("does not match its digest")));
    assert.ok(sink.lines.some((line) => line.includes("not a JSON manifest")));
  });
});

describe("content read back from storage", () => {
  it("a manifest whose bytes do not match its digest is an UNKNOWN error, not MANIFEST_UNKNOWN, and is not cached", async () => {
    const driver = new InMemoryDriver();
    const repository = registry(driver).repository(NAME);
    const content = await image(repository);
    const { digest } = await repository.putManifest({ tag: "v1" }, content, OCI_MANIFEST);
    await driver.putContent(blobDataPath(digest), Buffer.from(content.toString() + " "));
    const fresh = registry(driver).repository(NAME);
    await assert.rejects(fresh.getManifest({ tag: "v1" }), (err: unknown) => err instanceof RegistryError && err.code === "UNKNOWN");
    await driver.putContent(blobDataPath(digest), content);
    assert.deepEqual((await fresh.getManifest({ tag: "v1" })).content, content, "repaired bytes are served");
  });

  it("storedMediaType: declared, inferred, schema 1, or nothing", () => {
    const of = (value: unknown) => storedMediaType(Buffer.from(typeof value === "string" ? value : JSON.stringify(value)));
    assert.equal(of({ schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.v2+json" }), "application/vnd.docker.distribution.manifest.v2+json");
    assert.equal(of({ schemaVersion: 2, manifests: [] }), "application/vnd.oci.image.index.v1+json");
    assert.equal(of({ schemaVersion: 2, config: {}, layers: [] }), OCI_MANIFEST);
    assert.equal(of({ schemaVersion: 1, fsLayers: [], signatures: [] }), "application/vnd.docker.distribution.manifest.v1+prettyjws");
    assert.equal(of({ schemaVersion: 1, fsLayers: [] }), "application/vnd.docker.distribution.manifest.v1+json");
    assert.equal(of({ mediaType: "text/html\r\nX-Injected: 1" }), undefined, "never a header-breaking media type");
    assert.equal(of({ hello: "world" }), undefined);
    assert.equal(of("[1,2]"), undefined);
    assert.equal(of("{not json"), undefined);
  });

  async function readAll(stream: NodeJS.ReadableStream): Promise<{ bytes: Buffer; error?: unknown }> {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return { bytes: Buffer.concat(chunks) };
    } catch (error) {
      return { bytes: Buffer.concat(chunks), error };
    }
  }

  it("openChecked streams a sound blob whole, fails a damaged one before its last byte, and serves ranges as stored", async () => {
    const driver = new InMemoryDriver();
    const sink = logSink();
    const blobs = new BlobStore(driver, new NoBlobDescriptorCache(), createLogger({ level: "warn", formatter: "json", destination: sink.stream }));
    const sound = randomBytes(3 * 1024 * 1024 + 17);
    const soundDigest = await blobs.put(sound, "sha256");
    assert.deepEqual((await readAll(await blobs.openChecked(soundDigest.digest, 0, sound.length))).bytes, sound);
    assert.deepEqual((await readAll(await blobs.openChecked(soundDigest.digest, 0, sound.length))).bytes, sound, "again, unchecked");

    const original = randomBytes(2 * 1024 * 1024);
    const digest = Digest.parse(`sha256:${createHash("sha256").update(original).digest("hex")}`);
    const damaged = Buffer.from(original);
    damaged[10]! ^= 0xff;
    await driver.putContent(blobDataPath(digest), damaged);
    for (let attempt = 0; attempt < 2; attempt++) {
      const { bytes: received, error } = await readAll(await blobs.openChecked(digest, 0, damaged.length));
      assert.ok(error instanceof BlobContentMismatchError, `attempt ${attempt}: ${String(error)}`);
      assert.ok(received.length < damaged.length, "the last bytes are held back");
    }
    assert.ok(sink.lines.some((line) => line.includes("stored blob does not match its digest")));
    const range = await readAll(await blobs.openChecked(digest, 0, 100));
    assert.deepEqual(range.bytes, damaged.subarray(0, 100));
    const tail = await readAll(await blobs.openChecked(digest, 100, damaged.length));
    assert.deepEqual(tail.bytes, damaged.subarray(100));
  });
});
