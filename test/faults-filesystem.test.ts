/**
 * Storage faults under the filesystem driver, with the real `berth serve` over a socket:
 * - a full disk: a small tmpfs as the storage root, filled while berth runs;
 * - read-only storage: the tmpfs remounted read-only;
 * - permission errors: berth running as `nobody` beside a directory it may not write;
 * - EIO and failures at chosen steps (tag links): the fault-injecting driver wrapper
 *   (test/support/faulty-driver.ts), with berth started in-process.
 *
 * Each fault must reach the client as a registry error with a 5xx status and a code (never a hang:
 * every request carries a 30 s client-side timeout), leave nothing half-written visible (GET/HEAD
 * answer 404 or the complete content; the tree audit finds every blob's bytes hashing to its path
 * and every link naming what is stored), leave reads working, and end without a restart.
 */
import assert from "node:assert/strict";
import { chown, mkdir, mkdtemp, rm, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { parseConfig } from "../src/config/load-config.js";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { serve, type RunningRegistry } from "../src/cli/serve.js";
import { createLogger } from "../src/log/logger.js";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { enospc, FaultyDriver } from "./support/faulty-driver.js";
import { OCI_MANIFEST, RegistryClient, digestOf, expectError, randomBlob, randomImage, registryTree, uniqueName, waitFor, withQuery, type ImageParts } from "./support/registry-client.js";
import { mountTmpfs, tmpfsSkipReason, type SmallFilesystem } from "./support/small-filesystem.js";
import { auditStorage } from "./support/storage-audit.js";

/** Long enough for any answer here; a request still unanswered after it is a hang. */
const HANG_MS = 30_000;
const MiB = 1024 * 1024;

/** What every storage fault answers: 503 UNAVAILABLE, with what failed in the detail. */
async function expectStorageFault(response: Response, detail: string): Promise<void> {
  const entry = await expectError(response, 503, "UNAVAILABLE");
  assert.equal(entry.detail, detail, JSON.stringify(entry));
}

/** A client whose every request gives up after HANG_MS: a hang fails the test instead of stalling it. */
class TimedClient extends RegistryClient {
  override fetch(pathOrURL: string, init: Parameters<RegistryClient["fetch"]>[1] = {}): Promise<Response> {
    return super.fetch(pathOrURL, { signal: AbortSignal.timeout(HANG_MS), ...init });
  }
}

function monolithicPush(client: RegistryClient, name: string, bytes: Buffer): Promise<Response> {
  return client.send(`/v2/${name}/blobs/uploads/?digest=${digestOf(bytes)}`, {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: bytes,
  });
}

/** The blob is not there (404 BLOB_UNKNOWN to GET and 404 to HEAD), or it is, whole. */
async function assertBlobAbsentOrWhole(client: RegistryClient, name: string, bytes: Buffer): Promise<void> {
  const digest = digestOf(bytes);
  const head = await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" });
  const get = await client.fetch(`/v2/${name}/blobs/${digest}`);
  const body = Buffer.from(await get.arrayBuffer());
  if (get.status === 404) {
    assert.equal(head.status, 404);
    assert.equal(JSON.parse(body.toString()).errors[0].code, "BLOB_UNKNOWN");
  } else {
    assert.equal(get.status, 200);
    assert.equal(head.status, 200);
    assert.equal(digestOf(body), digest, "a blob served whole");
  }
}

async function assertImageServed(client: RegistryClient, name: string, tag: string, image: ImageParts): Promise<void> {
  const { response, bytes } = await client.get(`/v2/${name}/manifests/${tag}`, { Accept: OCI_MANIFEST });
  assert.equal(response.status, 200, `manifest ${name}:${tag}`);
  assert.deepEqual(bytes, image.bytes);
  for (const layer of [image.config, ...image.layers]) {
    const blob = await client.get(`/v2/${name}/blobs/${digestOf(layer)}`);
    assert.equal(blob.response.status, 200);
    assert.deepEqual(blob.bytes, layer);
  }
  assert.ok((await client.tags(name)).includes(tag));
}

async function assertSoundTree(root: string): Promise<void> {
  const audit = await auditStorage(new FilesystemDriver(root));
  assert.deepEqual(audit.problems, [], "nothing half-written is visible");
  assert.ok(audit.blobs > 0);
}

const skip = tmpfsSkipReason();

describe("a full disk (a 24 MiB tmpfs as the storage root)", { skip }, () => {
  let work: string;
  let fs: SmallFilesystem;
  let berth: BerthProcess;
  let client: RegistryClient;
  let root: string;
  const name = uniqueName("full");
  let image: ImageParts;
  const fillers: string[] = [];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-faults-"));
    fs = await mountTmpfs(join(work, "mnt"), { size: "24m" });
    root = join(fs.dir, "registry");
    berth = await startBerth({
      root,
      configYaml: testConfig({ sections: "health:\n  storagedriver:\n    enabled: true\n    interval: 100ms\n    threshold: 1" }),
    });
    client = new TimedClient(berth.url);
    image = await client.pushImage(name, "before", randomImage({ layers: 2, layerSize: 100_000 }));
  });

  after(async () => {
    await berth?.stop();
    await fs?.unmount();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function freeEverything(): Promise<void> {
    for (const filler of fillers.splice(0)) await rm(filler, { force: true });
  }

  it("a monolithic push larger than the free space: 503 UNAVAILABLE, the blob not visible", async () => {
    fillers.push(await fs.fill(1 * MiB));
    const bytes = randomBlob(4 * MiB);
    await expectStorageFault(await monolithicPush(client, name, bytes), "storage is full");
    await assertBlobAbsentOrWhole(client, name, bytes);
  });

  it("a PATCH that fills the disk mid-body: 503 UNAVAILABLE, and the upload resumes from what was stored once there is room", async () => {
    const bytes = randomBlob(4 * MiB);
    const { location } = await client.startUpload(name);
    await expectStorageFault(await client.patchChunk(location, bytes, 0), "storage is full");
    const status = await client.send(location);
    assert.equal(status.status, 204, "the upload is still known");
    const stored = Number(/^0-(\d+)$/.exec(status.headers.get("range") ?? "")?.[1] ?? -1) + 1;
    assert.ok(stored >= 0 && stored < bytes.length, `stored ${stored} bytes`);
    await assertBlobAbsentOrWhole(client, name, bytes);
    await freeEverything();
    const rest = await client.patchChunk(status.headers.get("location") ? client.url(status.headers.get("location")!) : location, bytes.subarray(stored), stored);
    assert.equal(rest.status, 202, await rest.clone().text());
    const done = await client.send(withQuery(client.url(rest.headers.get("location")!), { digest: digestOf(bytes) }), { method: "PUT" });
    assert.equal(done.status, 201, await done.clone().text());
    assert.deepEqual((await client.get(`/v2/${name}/blobs/${digestOf(bytes)}`)).bytes, bytes);
  });

  it("a final PUT whose last chunk does not fit: 503 UNAVAILABLE, the blob not visible", async () => {
    const bytes = randomBlob(4 * MiB);
    const { location } = await client.startUpload(name);
    const first = await client.patchChunk(location, bytes.subarray(0, 64 * 1024), 0);
    assert.equal(first.status, 202);
    fillers.push(await fs.fill(512 * 1024));
    const put = await client.send(withQuery(client.url(first.headers.get("location")!), { digest: digestOf(bytes) }), {
      method: "PUT",
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `${64 * 1024}-${bytes.length - 1}` },
      body: bytes.subarray(64 * 1024),
    });
    await expectStorageFault(put, "storage is full");
    await assertBlobAbsentOrWhole(client, name, bytes);
  });

  it("starting an upload with no room for its startedat file: 503 UNAVAILABLE", async () => {
    fillers.push(await fs.fill());
    await expectStorageFault(await client.send(`/v2/${name}/blobs/uploads/`, { method: "POST" }), "storage is full");
  });

  it("a manifest PUT with no room: 503 UNAVAILABLE, neither the manifest nor its tag visible", async () => {
    const other = randomImage();
    // Its blobs went in before the disk filled: only the manifest's own writes meet the full disk.
    await freeEverything();
    await client.pushBlob(name, other.config);
    for (const layer of other.layers) await client.pushBlob(name, layer);
    fillers.push(await fs.fill());
    await expectStorageFault(await client.putManifest(name, "after", other.bytes, other.mediaType), "storage is full");
    await expectError(await client.send(`/v2/${name}/manifests/after`, { headers: { Accept: OCI_MANIFEST } }), 404, "MANIFEST_UNKNOWN");
    const byDigest = await client.get(`/v2/${name}/manifests/${other.digest}`, { Accept: OCI_MANIFEST });
    assert.ok(byDigest.response.status === 404 || byDigest.bytes.equals(other.bytes), `manifest by digest: ${byDigest.response.status}`);
    assert.deepEqual(await client.tags(name), ["before"]);
  });

  it("while full: reads are served, readiness and /debug/health stay up (the root answers a stat), nothing is drained", async () => {
    await assertImageServed(client, name, "before", image);
    assert.equal((await client.send("/v2/_catalog")).status, 200);
    assert.equal((await client.send("/debug/health")).status, 200);
    assert.equal((await client.send("/debug/health/ready")).status, 200);
    await assertSoundTree(root);
  });

  it("once space is freed: pushes succeed again without a restart, and the tree is sound", async () => {
    await freeEverything();
    const again = await client.pushImage(name, "after", randomImage({ layers: 2, layerSize: 2 * MiB }));
    await assertImageServed(client, name, "after", again);
    await assertSoundTree(root);
  });

  it("once the filesystem is grown (remount size=64m) while full: pushes succeed again", async () => {
    fillers.push(await fs.fill());
    await expectStorageFault(await monolithicPush(client, name, randomBlob(MiB)), "storage is full");
    await fs.remount("size=64m");
    const bytes = randomBlob(8 * MiB);
    assert.equal((await monolithicPush(client, name, bytes)).status, 201);
    await assertBlobAbsentOrWhole(client, name, bytes);
    await freeEverything();
    await assertSoundTree(root);
  });
});

describe("read-only storage (the tmpfs remounted ro under a running berth)", { skip }, () => {
  let work: string;
  let fs: SmallFilesystem;
  let berth: BerthProcess;
  let client: RegistryClient;
  let root: string;
  const name = uniqueName("ro");
  let image: ImageParts;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-faults-"));
    fs = await mountTmpfs(join(work, "mnt"), { size: "32m" });
    root = join(fs.dir, "registry");
    berth = await startBerth({ root });
    client = new TimedClient(berth.url);
    image = await client.pushImage(name, "before");
    await fs.remount("ro");
  });

  after(async () => {
    await berth?.stop();
    await fs?.unmount();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("uploads, pushes and deletes answer 503 UNAVAILABLE", async () => {
    await expectStorageFault(await client.send(`/v2/${name}/blobs/uploads/`, { method: "POST" }), "storage is read-only");
    await expectStorageFault(await monolithicPush(client, name, randomBlob(1000)), "storage is read-only");
    // Blobs the repository has, so that only the manifest's own writes are refused.
    const other = Buffer.from(JSON.stringify({ ...image.manifest, annotations: { other: "yes" } }));
    await expectStorageFault(await client.putManifest(name, "other", other, OCI_MANIFEST), "storage is read-only");
    await expectStorageFault(await client.send(`/v2/${name}/manifests/${image.digest}`, { method: "DELETE" }), "storage is read-only");
  });

  it("reads are served", async () => {
    await assertImageServed(client, name, "before", image);
  });

  it("once remounted read-write: pushes succeed without a restart", async () => {
    await fs.remount("rw");
    const again = await client.pushImage(name, "after");
    await assertImageServed(client, name, "after", again);
    await assertImageServed(client, name, "before", image);
    await assertSoundTree(root);
  });
});

describe("permission errors (berth as nobody, one repository's directory owned by root)", { skip }, () => {
  let work: string;
  let berth: BerthProcess;
  let client: RegistryClient;
  let root: string;
  const open = "perm/open";
  const locked = "perm/locked";
  let image: ImageParts;
  const NOBODY = 65534;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-faults-"));
    await chmod(work, 0o755);
    root = join(work, "registry");
    await mkdir(root);
    await chown(root, NOBODY, NOBODY);
    berth = await startBerth({ root, uid: NOBODY, gid: NOBODY });
    client = new TimedClient(berth.url);
    image = await client.pushImage(open, "before");
    await client.pushImage(locked, "before");
    // The repository's directory now belongs to root, readable but not writable by berth.
    const repoDir = join(registryTree(root), "repositories", locked);
    await chownTree(repoDir, 0);
    await chmod(repoDir, 0o555);
  });

  after(async () => {
    await berth?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function chownTree(dir: string, uid: number): Promise<void> {
    const { readdir } = await import("node:fs/promises");
    await chown(dir, uid, uid);
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await chownTree(path, uid);
      else await chown(path, uid, uid);
    }
  }

  it("an upload into the locked repository answers 503 UNAVAILABLE", async () => {
    await expectStorageFault(await client.send(`/v2/${locked}/blobs/uploads/`, { method: "POST" }), "storage refused access");
  });

  it("the other repository takes pushes, and both are served", async () => {
    await client.pushImage(open, "after");
    await assertImageServed(client, open, "before", image);
    assert.equal((await client.send(`/v2/${locked}/manifests/before`, { headers: { Accept: OCI_MANIFEST } })).status, 200);
  });

  it("once the directory is berth's again: the push succeeds without a restart", async () => {
    const repoDir = join(registryTree(root), "repositories", locked);
    await chmod(repoDir, 0o755);
    await chownTree(repoDir, NOBODY);
    await client.pushImage(locked, "after");
    await assertSoundTree(root);
  });
});

describe("EIO and failures at chosen steps (fault-injecting driver wrapper, berth in-process)", () => {
  let work: string;
  let faulty: FaultyDriver;
  let running: RunningRegistry;
  let client: RegistryClient;
  let root: string;
  const name = uniqueName("eio");
  let image: ImageParts;
  const log = createLogger({ level: "error", formatter: "json", destination: { write: () => true } as unknown as NodeJS.WritableStream });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-faults-"));
    root = join(work, "registry");
    const { config } = parseConfig(
      testConfig({ sections: "health:\n  storagedriver:\n    enabled: true\n    interval: 100ms\n    threshold: 1" }).replace("{{root}}", root),
      {},
      "faults.yml",
    );
    running = await serve(config, [], log, {
      wrapDriver: (driver) => (faulty = new FaultyDriver(driver)),
    });
    client = new TimedClient(running.url);
    image = await client.pushImage(name, "before", randomImage({ layers: 1, layerSize: 3 * MiB }));
  });

  // A test that fails midway must not leave its fault in force for the next one.
  afterEach(() => faulty.clear());

  after(async () => {
    await running?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("EIO writing an upload's bytes: 503 UNAVAILABLE, the blob not visible; the push succeeds once the fault ends", async () => {
    const fault = faulty.inject({ ops: ["writer.write"], path: /\/_uploads\//, after: 2 });
    const bytes = randomBlob(2 * MiB);
    await expectStorageFault(await monolithicPush(client, name, bytes), "storage I/O error");
    assert.equal(fault.fired, 1);
    await assertBlobAbsentOrWhole(client, name, bytes);
    fault.remove();
    assert.equal((await monolithicPush(client, name, bytes)).status, 201);
    await assertBlobAbsentOrWhole(client, name, bytes);
  });

  it("EIO committing an upload (fsync): 503 UNAVAILABLE, the blob not visible; the same upload completes on retry", async () => {
    const bytes = randomBlob(300_000);
    const { location } = await client.startUpload(name);
    const patched = await client.patchChunk(location, bytes, 0);
    assert.equal(patched.status, 202);
    const fault = faulty.inject({ ops: ["writer.commit"], path: /\/_uploads\//, times: 1 });
    const put = withQuery(client.url(patched.headers.get("location")!), { digest: digestOf(bytes) });
    await expectStorageFault(await client.send(put, { method: "PUT" }), "storage I/O error");
    assert.equal(fault.fired, 1);
    await assertBlobAbsentOrWhole(client, name, bytes);
    assert.equal((await client.send(put, { method: "PUT" })).status, 201);
    assert.deepEqual((await client.get(`/v2/${name}/blobs/${digestOf(bytes)}`)).bytes, bytes);
  });

  it("EIO moving the upload into the blob store: 503 UNAVAILABLE; the same upload completes on retry", async () => {
    const bytes = randomBlob(200_000);
    const { location } = await client.startUpload(name);
    const patched = await client.patchChunk(location, bytes, 0);
    const fault = faulty.inject({ ops: ["move"], path: /\/blobs\//, times: 1 });
    const put = withQuery(client.url(patched.headers.get("location")!), { digest: digestOf(bytes) });
    await expectStorageFault(await client.send(put, { method: "PUT" }), "storage I/O error");
    assert.equal(fault.fired, 1);
    await assertBlobAbsentOrWhole(client, name, bytes);
    assert.equal((await client.send(put, { method: "PUT" })).status, 201);
  });

  it("EIO writing startedat: 503 UNAVAILABLE", async () => {
    const fault = faulty.inject({ ops: ["putContent"], path: /\/startedat$/, times: 1 });
    await expectStorageFault(await client.send(`/v2/${name}/blobs/uploads/`, { method: "POST" }), "storage I/O error");
    assert.equal(fault.fired, 1);
    assert.equal((await client.send(`/v2/${name}/blobs/uploads/`, { method: "POST" })).status, 202);
  });

  // A tag's current link is written before its index entry (src/storage/tag-store.ts), so a tag is
  // listed exactly when it resolves: when the current link fails, nothing of the tag is there;
  // when only the index entry fails, the tag already points at the new manifest (the answer is an
  // error all the same: the push did not finish), with its history one entry short.
  for (const [step, path, moved] of [
    ["the tag's index entry", /\/_manifests\/tags\/next\/index\//, true],
    ["the tag's current link", /\/_manifests\/tags\/next\/current\/link$/, false],
    ["the revision link", /\/_manifests\/revisions\//, false],
  ] as const) {
    it(`ENOSPC writing ${step}: 503 UNAVAILABLE, the tag listed only if it resolves; the push succeeds once the fault ends`, async () => {
      const next = randomImage();
      await client.pushBlob(name, next.config);
      for (const layer of next.layers) await client.pushBlob(name, layer);
      const before = await client.tags(name);
      const fault = faulty.inject({ ops: ["putContent"], path, error: enospc });
      await expectStorageFault(await client.putManifest(name, "next", next.bytes, next.mediaType), "storage is full");
      assert.equal(fault.fired, 1);
      if (moved) await assertImageServed(client, name, "next", next);
      else await expectError(await client.send(`/v2/${name}/manifests/next`, { headers: { Accept: OCI_MANIFEST } }), 404, "MANIFEST_UNKNOWN");
      assert.deepEqual(await client.tags(name), moved ? [...before, "next"].sort() : before);
      fault.remove();
      await client.pushManifest(name, "next", next.bytes, next.mediaType);
      await assertImageServed(client, name, "next", next);
      await client.send(`/v2/${name}/manifests/next`, { method: "DELETE" }).catch(() => undefined);
    });
  }

  it("EIO opening a blob: 503 UNAVAILABLE", async () => {
    const layer = digestOf(image.layers[0]!);
    const fault = faulty.inject({ ops: ["reader"], path: /\/blobs\//, times: 1 });
    await expectStorageFault(await client.send(`/v2/${name}/blobs/${layer}`), "storage I/O error");
    assert.equal(fault.fired, 1);
  });

  it("EIO in the middle of a blob's bytes: the response is cut, never completed with fewer bytes", async () => {
    const layer = image.layers[0]!;
    const fault = faulty.inject({ ops: ["reader.data"], path: /\/blobs\//, times: 1, afterBytes: 1 * MiB });
    const response = await client.fetch(`/v2/${name}/blobs/${digestOf(layer)}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), String(layer.length));
    await assert.rejects(response.arrayBuffer(), "the body fails rather than ending short");
    assert.equal(fault.fired, 1);
    assert.deepEqual((await client.get(`/v2/${name}/blobs/${digestOf(layer)}`)).bytes, layer, "served whole once the fault ends");
  });

  it("EIO reading a manifest or a tag link: 503 UNAVAILABLE, never 404", async () => {
    const fault = faulty.inject({ ops: ["getContent"], path: /\/_manifests\// });
    await expectStorageFault(await client.send(`/v2/${name}/manifests/before`, { headers: { Accept: OCI_MANIFEST } }), "storage I/O error");
    await expectStorageFault(await client.send(`/v2/${name}/manifests/${image.digest}`, { headers: { Accept: OCI_MANIFEST } }), "storage I/O error");
    fault.remove();
    await assertImageServed(client, name, "before", image);
  });

  it("EIO on the storage root's stat: health down, the API drained (503 UNAVAILABLE) and back once the fault ends", async () => {
    const fault = faulty.inject({ ops: ["stat"], path: /^\/$/ });
    await waitFor(async () => (await client.send("/debug/health")).status === 503, "health to go down");
    assert.deepEqual(await (await client.send("/debug/health")).json(), { storagedriver_filesystem: "stat of the storage root failed: EIO" });
    await expectError(await client.send("/v2/"), 503, "UNAVAILABLE");
    fault.remove();
    await waitFor(async () => (await client.send("/debug/health")).status === 200, "health to come back");
    await assertImageServed(client, name, "before", image);
    await assertSoundTree(root);
  });
});
