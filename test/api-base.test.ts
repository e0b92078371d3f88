/**
 * The base endpoint and server-wide behaviour: the version check, read-only mode, and how an
 * internal failure is answered.
 */
import assert from "node:assert/strict";
import { rm, symlink, unlink } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import {
  RegistryClient,
  digestOf,
  expectError,
  randomBlob,
  randomImage,
  registryTree,
  uniqueName,
  withQuery,
} from "./support/registry-client.js";

let berth: BerthProcess;
let client: RegistryClient;

before(async () => {
  berth = await startBerth();
  client = new RegistryClient(berth.url);
});

after(async () => {
  await berth.stop();
});

test("GET /v2/ answers 200 with Docker-Distribution-API-Version registry/2.0", async () => {
  const response = await client.fetch("/v2/");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("docker-distribution-api-version"), "registry/2.0");
  assert.deepEqual(await response.json(), {});
});

test("GET and HEAD /v2 without the trailing slash answer 301 to /v2/, as distribution's router does", async () => {
  for (const method of ["GET", "HEAD"]) {
    const response = await client.send("/v2", { method });
    assert.equal(response.status, 301, method);
    assert.equal(response.headers.get("location"), "/v2/", method);
    assert.equal(await response.text(), "");
  }
});

test("HEAD /v2/ answers 200 without a body", async () => {
  const response = await client.fetch("/v2/", { method: "HEAD" });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("docker-distribution-api-version"), "registry/2.0");
  assert.equal(await response.text(), "");
});

test("an error response carries Docker-Distribution-API-Version too", async () => {
  const response = await client.fetch(`/v2/${uniqueName()}/tags/list`);
  assert.equal(response.headers.get("docker-distribution-api-version"), "registry/2.0");
  await expectError(response, 404, "NAME_UNKNOWN");
});

test("a blob whose data file cannot be read answers 500 UNKNOWN without detail, and the log has the detail", async () => {
  const name = uniqueName("broken");
  const blob = randomBlob();
  const digest = await client.pushBlob(name, blob);
  const hex = digest.slice("sha256:".length);
  const data = join(registryTree(berth.root!), "blobs", "sha256", hex.slice(0, 2), hex, "data");
  // A symlink to itself: every open or stat fails with ELOOP, an error no storage code expects.
  await unlink(data);
  await symlink("data", data);
  try {
    const response = await client.fetch(`/v2/${name}/blobs/${digest}`);
    const entry = await expectError(response, 500, "UNKNOWN");
    assert.equal(entry.detail, undefined, "no internal detail for the client");
    assert.doesNotMatch(entry.message, /ELOOP|\/tmp|data/, "no path or errno in the message");
    assert.match(berth.log(), /internal error/);
    assert.match(berth.log(), /ELOOP/);
  } finally {
    await rm(data, { force: true });
  }
});

describe("read-only mode (storage.maintenance.readonly.enabled: true)", () => {
  let readOnly: BerthProcess;
  let ro: RegistryClient;
  const name = uniqueName("ro");
  const image = randomImage();
  const blob = randomBlob();
  let blobDigest: string;
  let uploadLocation: string;

  before(async () => {
    // Content pushed by a writable server, then served by a read-only one over the same root.
    const writable = await startBerth({ cleanup: false });
    const w = new RegistryClient(writable.url);
    await w.pushImage(name, "v1", image);
    blobDigest = await w.pushBlob(name, blob);
    uploadLocation = (await w.startUpload(name)).location.replace(writable.url, "");
    await writable.stop();
    const config = testConfig({ storage: "  maintenance:\n    readonly:\n      enabled: true" });
    readOnly = await startBerth({ root: writable.root!, configYaml: config, cleanup: true });
    ro = new RegistryClient(readOnly.url);
  });

  after(async () => {
    await readOnly.stop();
    await rm(join(readOnly.root!, ".."), { recursive: true, force: true });
  });

  test("GET /v2/<name>/manifests/<tag> in read-only mode answers 200", async () => {
    const { response, bytes } = await ro.get(`/v2/${name}/manifests/v1`);
    assert.equal(response.status, 200);
    assert.deepEqual(bytes, image.bytes);
  });

  test("GET /v2/<name>/blobs/<digest> in read-only mode answers 200", async () => {
    const { response, bytes } = await ro.get(`/v2/${name}/blobs/${blobDigest}`);
    assert.equal(response.status, 200);
    assert.deepEqual(bytes, blob);
  });

  test("GET /v2/<name>/tags/list in read-only mode answers 200", async () => {
    assert.deepEqual(await ro.tags(name), ["v1"]);
  });

  test("GET /v2/_catalog in read-only mode answers 200", async () => {
    const { response, body } = await ro.getJSON<{ repositories: string[] }>("/v2/_catalog");
    assert.equal(response.status, 200);
    assert.ok(body.repositories.includes(name));
  });

  test("POST /v2/<name>/blobs/uploads/ in read-only mode answers 405 UNSUPPORTED", async () => {
    await expectError(await ro.fetch(`/v2/${name}/blobs/uploads/`, { method: "POST" }), 405, "UNSUPPORTED");
  });

  test("POST /v2/<name>/blobs/uploads/?digest= in read-only mode answers 405 UNSUPPORTED", async () => {
    const bytes = randomBlob();
    const response = await ro.fetch(`/v2/${name}/blobs/uploads/?digest=${digestOf(bytes)}`, { method: "POST", body: bytes });
    await expectError(response, 405, "UNSUPPORTED");
  });

  test("POST /v2/<name>/blobs/uploads/?mount=&from= in read-only mode answers 405 UNSUPPORTED", async () => {
    const response = await ro.fetch(withQuery(ro.url(`/v2/${uniqueName()}/blobs/uploads/`), { mount: blobDigest, from: name }), { method: "POST" });
    await expectError(response, 405, "UNSUPPORTED");
  });

  test("PATCH <upload location> in read-only mode answers 405 UNSUPPORTED", async () => {
    const response = await ro.fetch(uploadLocation, { method: "PATCH", body: randomBlob() });
    await expectError(response, 405, "UNSUPPORTED");
  });

  test("PUT /v2/<name>/manifests/<tag> in read-only mode answers 405 UNSUPPORTED", async () => {
    const response = await ro.fetch(`/v2/${name}/manifests/v2`, { method: "PUT", headers: { "Content-Type": image.mediaType }, body: image.bytes });
    await expectError(response, 405, "UNSUPPORTED");
  });

  test("DELETE /v2/<name>/manifests/<digest> in read-only mode answers 405 UNSUPPORTED", async () => {
    await expectError(await ro.fetch(`/v2/${name}/manifests/${image.digest}`, { method: "DELETE" }), 405, "UNSUPPORTED");
    assert.equal((await ro.send(`/v2/${name}/manifests/${image.digest}`, { method: "HEAD" })).status, 200);
  });

  test("DELETE /v2/<name>/blobs/<digest> in read-only mode answers 405 UNSUPPORTED", async () => {
    await expectError(await ro.fetch(`/v2/${name}/blobs/${blobDigest}`, { method: "DELETE" }), 405, "UNSUPPORTED");
    assert.equal((await ro.send(`/v2/${name}/blobs/${blobDigest}`, { method: "HEAD" })).status, 200);
  });
});
