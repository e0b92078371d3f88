/**
 * HEAD/GET/PUT/DELETE /v2/<name>/manifests/<reference>: every manifest kind berth stores, bytes
 * served as pushed, the headers each answer carries, and every way a push is refused (with nothing
 * written when it is).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startBerth, type BerthProcess } from "./support/berth-process.js";
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  EMPTY_JSON,
  EMPTY_JSON_DIGEST,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_LAYER,
  OCI_MANIFEST,
  RegistryClient,
  assertTreeUnchanged,
  descriptorOf,
  digestOf,
  expectError,
  expectHeadError,
  indexOf,
  json,
  randomImage,
  snapshotTree,
  uniqueName,
  unknownDigest,
  type ImageParts,
} from "./support/registry-client.js";

let berth: BerthProcess;
let client: RegistryClient;
/** A repository holding one image's blobs (not its manifest), for tests of refused pushes. */
const shared = uniqueName("shared");
const sharedImage = randomImage();

before(async () => {
  berth = await startBerth();
  client = new RegistryClient(berth.url);
  await pushBlobsOf(shared, sharedImage);
});

after(async () => {
  await berth.stop();
});

/** Pushes an image's blobs only, so a test can push (or fail to push) its manifest itself. */
async function pushBlobsOf(name: string, image: ImageParts): Promise<void> {
  await client.pushBlob(name, image.config);
  for (const layer of image.layers) await client.pushBlob(name, layer);
}

/** Runs `push` (a refused manifest push) and asserts storage did not change at all. */
async function expectNothingWritten(push: () => Promise<void>): Promise<void> {
  const before = await snapshotTree(berth.root!);
  await push();
  await assertTreeUnchanged(before, berth.root!);
}

function getManifest(name: string, reference: string, method = "GET", headers: Record<string, string> = {}) {
  return client.fetch(`/v2/${name}/manifests/${reference}`, { method, headers });
}

// --- each manifest kind: PUT, GET, HEAD, DELETE

describe("OCI image manifest", () => {
  const name = uniqueName("oci");
  const image = randomImage({ layers: 2 });

  before(async () => {
    await pushBlobsOf(name, image);
  });

  test("PUT /v2/<name>/manifests/<tag> with an OCI image manifest answers 201 with Location and Docker-Content-Digest", async () => {
    const response = await client.putManifest(name, "v1", image.bytes, OCI_MANIFEST);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("docker-content-digest"), image.digest);
    assert.equal(new URL(response.headers.get("location")!).pathname, `/v2/${name}/manifests/${image.digest}`);
    assert.equal(response.headers.get("oci-subject"), null);
  });

  test("GET /v2/<name>/manifests/<tag> of an OCI image manifest answers 200 with the bytes, Content-Type and Docker-Content-Digest", async () => {
    const response = await getManifest(name, "v1", "GET", { Accept: OCI_MANIFEST });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), OCI_MANIFEST);
    assert.equal(response.headers.get("docker-content-digest"), image.digest);
    assert.equal(response.headers.get("content-length"), String(image.bytes.length));
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), image.bytes);
  });

  test("GET /v2/<name>/manifests/<digest> of an OCI image manifest answers 200 with the bytes", async () => {
    const response = await getManifest(name, image.digest);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-content-digest"), image.digest);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), image.bytes);
  });

  test("HEAD /v2/<name>/manifests/<tag> answers 200 with Content-Length, Content-Type and Docker-Content-Digest and no body", async () => {
    const response = await getManifest(name, "v1", "HEAD");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), String(image.bytes.length));
    assert.equal(response.headers.get("content-type"), OCI_MANIFEST);
    assert.equal(response.headers.get("docker-content-digest"), image.digest);
    assert.equal(await response.text(), "");
  });

  test("HEAD /v2/<name>/manifests/<digest> answers 200 with Docker-Content-Digest", async () => {
    const response = await getManifest(name, image.digest, "HEAD");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-content-digest"), image.digest);
    await response.arrayBuffer();
  });

  test("GET /v2/<name>/manifests/<digest> with If-None-Match of its ETag answers 304", async () => {
    const first = await getManifest(name, image.digest);
    await first.arrayBuffer();
    const etag = first.headers.get("etag")!;
    assert.equal(etag, `"${image.digest}"`);
    const response = await getManifest(name, image.digest, "GET", { "If-None-Match": etag });
    assert.equal(response.status, 304);
    assert.equal(response.headers.get("docker-content-digest"), image.digest);
    await response.arrayBuffer();
  });

  test("DELETE /v2/<name>/manifests/<digest> answers 202, then GET by digest and by tag answer 404 MANIFEST_UNKNOWN", async () => {
    const repo = uniqueName("oci");
    const other = await client.pushImage(repo, "v1");
    assert.equal((await client.send(`/v2/${repo}/manifests/${other.digest}`, { method: "DELETE" })).status, 202);
    await expectError(await getManifest(repo, other.digest), 404, "MANIFEST_UNKNOWN");
    await expectError(await getManifest(repo, "v1"), 404, "MANIFEST_UNKNOWN");
  });
});

describe("OCI image index", () => {
  const name = uniqueName("index");
  const children = [randomImage(), randomImage()];
  const index = indexOf(children.map((child) => descriptorOf(OCI_MANIFEST, child.bytes)));

  before(async () => {
    for (const child of children) await client.pushImage(name, undefined, child);
  });

  test("PUT /v2/<name>/manifests/<tag> with an OCI index answers 201 with Docker-Content-Digest", async () => {
    const response = await client.putManifest(name, "multi", index.bytes, OCI_INDEX);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("docker-content-digest"), index.digest);
  });

  test("GET /v2/<name>/manifests/<tag> of an OCI index answers 200 with Content-Type application/vnd.oci.image.index.v1+json", async () => {
    const response = await getManifest(name, "multi");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), OCI_INDEX);
    assert.equal(response.headers.get("docker-content-digest"), index.digest);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), index.bytes);
  });

  test("HEAD /v2/<name>/manifests/<digest> of an OCI index answers 200", async () => {
    const response = await getManifest(name, index.digest, "HEAD");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), OCI_INDEX);
    await response.arrayBuffer();
  });

  test("DELETE /v2/<name>/manifests/<digest> of an OCI index answers 202 and leaves its children", async () => {
    const repo = uniqueName("index");
    const child = await client.pushImage(repo, undefined);
    const idx = indexOf([descriptorOf(OCI_MANIFEST, child.bytes)]);
    await client.pushManifest(repo, "multi", idx.bytes, OCI_INDEX);
    assert.equal((await client.send(`/v2/${repo}/manifests/${idx.digest}`, { method: "DELETE" })).status, 202);
    await expectError(await getManifest(repo, idx.digest), 404, "MANIFEST_UNKNOWN");
    assert.equal((await client.send(`/v2/${repo}/manifests/${child.digest}`)).status, 200);
  });
});

describe("Docker schema 2 manifest and manifest list", () => {
  const name = uniqueName("docker");
  const image = randomImage({ mediaType: DOCKER_MANIFEST });
  const list = indexOf([descriptorOf(DOCKER_MANIFEST, image.bytes)], { mediaType: DOCKER_MANIFEST_LIST });

  before(async () => {
    await pushBlobsOf(name, image);
  });

  test("PUT /v2/<name>/manifests/<tag> with a Docker schema 2 manifest answers 201", async () => {
    const response = await client.putManifest(name, "latest", image.bytes, DOCKER_MANIFEST);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("docker-content-digest"), image.digest);
  });

  test("GET /v2/<name>/manifests/<tag> of a Docker schema 2 manifest answers with its Content-Type and bytes", async () => {
    const response = await getManifest(name, "latest", "GET", { Accept: DOCKER_MANIFEST });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), DOCKER_MANIFEST);
    assert.equal(response.headers.get("docker-content-digest"), image.digest);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), image.bytes);
  });

  test("PUT /v2/<name>/manifests/<tag> with a Docker manifest list answers 201", async () => {
    const response = await client.putManifest(name, "list", list.bytes, DOCKER_MANIFEST_LIST);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("docker-content-digest"), list.digest);
  });

  test("GET /v2/<name>/manifests/<digest> of a Docker manifest list answers with its Content-Type and bytes", async () => {
    const response = await getManifest(name, list.digest);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), DOCKER_MANIFEST_LIST);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), list.bytes);
  });

  test("DELETE /v2/<name>/manifests/<digest> of a Docker schema 2 manifest answers 202", async () => {
    const repo = uniqueName("docker");
    const other = await client.pushImage(repo, "v1", randomImage({ mediaType: DOCKER_MANIFEST }));
    assert.equal((await client.send(`/v2/${repo}/manifests/${other.digest}`, { method: "DELETE" })).status, 202);
    await expectError(await getManifest(repo, "v1"), 404, "MANIFEST_UNKNOWN");
  });
});

describe("artifact manifest (artifactType, empty config)", () => {
  const name = uniqueName("artifact");
  const payload = Buffer.from("an artifact's payload");
  const manifest = json({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: "application/vnd.example.sbom.v1",
    config: { mediaType: OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: 2, data: "e30=" },
    layers: [descriptorOf("application/vnd.example.sbom.layer.v1+json", payload)],
    annotations: { "org.opencontainers.image.created": "2024-01-01T00:00:00Z" },
  });

  before(async () => {
    assert.equal(await client.pushBlob(name, EMPTY_JSON), EMPTY_JSON_DIGEST);
    await client.pushBlob(name, payload);
  });

  test("PUT /v2/<name>/manifests/<tag> with an artifact manifest and the empty config answers 201", async () => {
    const response = await client.putManifest(name, "sbom", manifest, OCI_MANIFEST);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("docker-content-digest"), digestOf(manifest));
  });

  test("GET /v2/<name>/manifests/<tag> of an artifact manifest answers 200 with the bytes as pushed", async () => {
    const response = await getManifest(name, "sbom");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), OCI_MANIFEST);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), manifest);
  });

  test("PUT /v2/<name>/manifests/<tag> with an artifact manifest whose empty config was never pushed answers 400 MANIFEST_BLOB_UNKNOWN", async () => {
    const repo = uniqueName("artifact");
    await client.pushBlob(repo, payload);
    await expectError(await client.putManifest(repo, "sbom", manifest, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN");
  });
});

// --- bytes, headers and conformance shapes

test("PUT /v2/<name>/manifests/<tag> keeps odd whitespace and key order: GET serves the exact bytes under their digest", async () => {
  const name = uniqueName("bytes");
  const image = randomImage();
  await pushBlobsOf(name, image);
  const config = image.manifest.config as Record<string, unknown>;
  const layer = (image.manifest.layers as Record<string, unknown>[])[0]!;
  const odd = Buffer.from(
    `  {\n\t"layers" : [ {"size":${layer.size},   "digest":"${layer.digest}","mediaType":"${layer.mediaType}"} ],\r\n` +
      `"config":{"digest":"${config.digest}","size":${config.size},"mediaType":"${config.mediaType}"},\n` +
      `    "mediaType":"${OCI_MANIFEST}",   "schemaVersion" :2 }\n\n`,
  );
  const digest = await client.pushManifest(name, "odd", odd, OCI_MANIFEST);
  assert.equal(digest, digestOf(odd));
  for (const reference of ["odd", digest]) {
    const { response, bytes } = await client.get(`/v2/${name}/manifests/${reference}`);
    assert.equal(response.status, 200);
    assert.deepEqual(bytes, odd);
    assert.equal(response.headers.get("docker-content-digest"), digest);
  }
});

test("PUT /v2/<name>/manifests/<tag> accepts descriptors with data and fields the spec does not define", async () => {
  const name = uniqueName("extra");
  const image = randomImage();
  await pushBlobsOf(name, image);
  const config = { ...(image.manifest.config as object), data: image.config.toString("base64"), newUnspecifiedField: "aGVsbG8gd29ybGQ=" };
  const bytes = Buffer.from(JSON.stringify({ ...image.manifest, config }, null, "\t"));
  for (const tag of ["test0", "test1", "test2", "test3"]) {
    const response = await client.putManifest(name, tag, bytes, OCI_MANIFEST);
    assert.equal(response.status, 201);
    assert.ok(response.headers.get("location"));
  }
  assert.deepEqual(await client.tags(name), ["test0", "test1", "test2", "test3"]);
});

test("PUT /v2/<name>/manifests/<tag> with an image manifest without layers answers 201", async () => {
  const name = uniqueName("nolayers");
  const image = randomImage({ layers: 0 });
  await pushBlobsOf(name, image);
  const response = await client.putManifest(name, "emptylayer", image.bytes, OCI_MANIFEST);
  assert.equal(response.status, 201);
  assert.ok(response.headers.get("location"));
  assert.equal((await client.send(`/v2/${name}/manifests/${image.digest}`, { method: "DELETE" })).status, 202);
});

test("PUT /v2/<name>/manifests/<tag> with a layer that has urls answers 400 MANIFEST_INVALID by default, as distribution allows no URL unless told", async () => {
  // What validation.manifests.urls allows, and pushes it accepts, are in test/validation.test.ts.
  const name = uniqueName("foreign");
  const image = randomImage({ layers: 0 });
  await client.pushBlob(name, image.config);
  const foreign = {
    mediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    digest: unknownDigest(),
    size: 1234,
    urls: ["https://example.com/layer.tar.gz"],
  };
  const bytes = json({ ...image.manifest, layers: [foreign] });
  await expectError(await client.putManifest(name, "foreign", bytes, OCI_MANIFEST), 400, "MANIFEST_INVALID");
  assert.equal((await client.send(`/v2/${name}/manifests/foreign`)).status, 404);
});

test("PUT /v2/<name>/manifests/<tag> replaces what the tag points to, and the old manifest stays by digest", async () => {
  const name = uniqueName("retag");
  const first = await client.pushImage(name, "v1");
  const second = await client.pushImage(name, "v1");
  const { response, bytes } = await client.get(`/v2/${name}/manifests/v1`);
  assert.equal(response.headers.get("docker-content-digest"), second.digest);
  assert.deepEqual(bytes, second.bytes);
  assert.equal((await client.send(`/v2/${name}/manifests/${first.digest}`)).status, 200);
});

test("PUT /v2/<name>/manifests/<digest> answers 201 with that Docker-Content-Digest and creates no tag", async () => {
  const name = uniqueName("bydigest");
  const image = randomImage();
  await pushBlobsOf(name, image);
  const response = await client.putManifest(name, image.digest, image.bytes, OCI_MANIFEST);
  assert.equal(response.status, 201);
  assert.equal(response.headers.get("docker-content-digest"), image.digest);
  assert.equal(response.headers.get("oci-tag"), null);
  assert.deepEqual(await client.tags(name), []);
});

test("PUT /v2/<name>/manifests/<digest>?tag=…&tag=… answers 201 with OCI-Tag and applies every tag", async () => {
  const name = uniqueName("multitag");
  const image = randomImage();
  await pushBlobsOf(name, image);
  const response = await client.putManifest(name, image.digest, image.bytes, OCI_MANIFEST, "?tag=1.2.3&tag=1.2&tag=latest");
  assert.equal(response.status, 201);
  assert.equal(response.headers.get("docker-content-digest"), image.digest);
  const applied = response.headers.get("oci-tag")!.split(",").map((tag) => tag.trim());
  assert.deepEqual(applied.sort(), ["1.2", "1.2.3", "latest"]);
  assert.deepEqual(await client.tags(name), ["1.2", "1.2.3", "latest"]);
  for (const tag of ["1.2.3", "1.2", "latest"]) {
    assert.equal((await client.send(`/v2/${name}/manifests/${tag}`, { method: "HEAD" })).headers.get("docker-content-digest"), image.digest);
  }
});

test("PUT /v2/<name>/manifests/<sha512 digest> stores the manifest under that digest", async () => {
  const name = uniqueName("sha512");
  const image = randomImage();
  await pushBlobsOf(name, image);
  const sha512 = digestOf(image.bytes, "sha512");
  const response = await client.putManifest(name, sha512, image.bytes, OCI_MANIFEST, "?tag=v512");
  assert.equal(response.status, 201);
  assert.equal(response.headers.get("docker-content-digest"), sha512);
  const { response: pulled, bytes } = await client.get(`/v2/${name}/manifests/${sha512}`);
  assert.equal(pulled.status, 200);
  assert.deepEqual(bytes, image.bytes);
  assert.equal((await client.send(`/v2/${name}/manifests/v512`, { method: "HEAD" })).headers.get("docker-content-digest"), sha512);
});

test("PUT /v2/<name>/manifests/<tag> of a manifest with a subject answers 201 with OCI-Subject", async () => {
  const name = uniqueName("subject");
  const subject = await client.pushImage(name, "base");
  const referrer = randomImage({ emptyConfig: true, artifactType: "application/vnd.example.sig", subject: descriptorOf(OCI_MANIFEST, subject.bytes) });
  await pushBlobsOf(name, referrer);
  const response = await client.putManifest(name, referrer.digest, referrer.bytes, OCI_MANIFEST);
  assert.equal(response.status, 201);
  assert.equal(response.headers.get("oci-subject"), subject.digest);
});

test("PUT /v2/<name>/manifests/<digest> of a manifest whose subject was never pushed answers 201 with OCI-Subject", async () => {
  const name = uniqueName("subject");
  const absent = randomImage();
  const referrer = randomImage({ emptyConfig: true, artifactType: "application/vnd.example.sig", subject: descriptorOf(OCI_MANIFEST, absent.bytes) });
  await pushBlobsOf(name, referrer);
  const response = await client.putManifest(name, referrer.digest, referrer.bytes, OCI_MANIFEST);
  assert.equal(response.status, 201);
  assert.equal(response.headers.get("oci-subject"), absent.digest);
});

test("GET /v2/<name>/manifests/<digest> of a manifest pushed to another repository answers 404 MANIFEST_UNKNOWN", async () => {
  const image = await client.pushImage(uniqueName("elsewhere"), "v1");
  await expectError(await getManifest(uniqueName("here"), image.digest), 404, "MANIFEST_UNKNOWN");
});

// --- deletes

test("DELETE /v2/<name>/manifests/<tag> answers 202 and removes the tag only: the manifest stays by digest", async () => {
  const name = uniqueName("untag");
  const image = await client.pushImage(name, "v1");
  await client.pushManifest(name, "v2", image.bytes, OCI_MANIFEST);
  assert.equal((await client.send(`/v2/${name}/manifests/v1`, { method: "DELETE" })).status, 202);
  await expectError(await getManifest(name, "v1"), 404, "MANIFEST_UNKNOWN");
  assert.equal((await client.send(`/v2/${name}/manifests/${image.digest}`)).status, 200);
  assert.deepEqual(await client.tags(name), ["v2"]);
});

test("DELETE /v2/<name>/manifests/<digest> removes every tag pointing to it and keeps the others", async () => {
  const name = uniqueName("deltags");
  const doomed = await client.pushImage(name, "a");
  await client.pushManifest(name, "b", doomed.bytes, OCI_MANIFEST);
  await client.pushImage(name, "keep");
  assert.deepEqual(await client.tags(name), ["a", "b", "keep"]);
  assert.equal((await client.send(`/v2/${name}/manifests/${doomed.digest}`, { method: "DELETE" })).status, 202);
  assert.deepEqual(await client.tags(name), ["keep"]);
});

test("DELETE /v2/<name>/manifests/<digest> of an unknown manifest answers 404 MANIFEST_UNKNOWN", async () => {
  const name = uniqueName("del");
  await client.pushImage(name, "v1");
  await expectError(await client.fetch(`/v2/${name}/manifests/${unknownDigest()}`, { method: "DELETE" }), 404, "MANIFEST_UNKNOWN");
});

test("DELETE /v2/<name>/manifests/<tag> of an unknown tag answers 404 MANIFEST_UNKNOWN", async () => {
  const name = uniqueName("del");
  await client.pushImage(name, "v1");
  await expectError(await client.fetch(`/v2/${name}/manifests/nope`, { method: "DELETE" }), 404, "MANIFEST_UNKNOWN");
});

test("DELETE /v2/<name>/manifests/<digest> twice answers 404 MANIFEST_UNKNOWN the second time", async () => {
  const name = uniqueName("del");
  const image = await client.pushImage(name, undefined);
  assert.equal((await client.send(`/v2/${name}/manifests/${image.digest}`, { method: "DELETE" })).status, 202);
  await expectError(await client.fetch(`/v2/${name}/manifests/${image.digest}`, { method: "DELETE" }), 404, "MANIFEST_UNKNOWN");
});

// --- unknown manifests

test("GET /v2/<name>/manifests/<tag> of an unknown tag answers 404 MANIFEST_UNKNOWN", async () => {
  const name = uniqueName("unknown");
  await client.pushImage(name, "v1");
  await expectError(await getManifest(name, "v2"), 404, "MANIFEST_UNKNOWN");
});

test("GET /v2/<name>/manifests/<digest> of an unknown digest answers 404 MANIFEST_UNKNOWN", async () => {
  await expectError(await getManifest(uniqueName("unknown"), unknownDigest()), 404, "MANIFEST_UNKNOWN");
});

test("HEAD /v2/<name>/manifests/<tag> of an unknown tag answers 404 without a body", async () => {
  await expectHeadError(await getManifest(uniqueName("unknown"), "nope", "HEAD"), 404);
});

test("GET /v2/<name>/manifests/<reference> with a tag no push could create answers 404 MANIFEST_UNKNOWN", async () => {
  await expectError(await getManifest(uniqueName("unknown"), ".INVALID_MANIFEST_NAME"), 404, "MANIFEST_UNKNOWN");
});

test("HEAD /v2/<name>/manifests/<reference> with a tag no push could create answers 404", async () => {
  await expectHeadError(await getManifest(uniqueName("unknown"), ".INVALID_MANIFEST_NAME", "HEAD"), 404);
});

test("GET /v2/<name>/manifests/<reference> with a malformed digest answers 400 DIGEST_INVALID", async () => {
  await expectError(await getManifest(uniqueName("unknown"), "sha256:totallywrong"), 400, "DIGEST_INVALID");
});

// --- refused pushes: nothing is written

test("PUT /v2/<name>/manifests/<tag> naming a missing layer answers 400 MANIFEST_BLOB_UNKNOWN and writes no revision or tag", async () => {
  const name = uniqueName("missing");
  const image = randomImage({ layers: 2 });
  await client.pushBlob(name, image.config);
  await client.pushBlob(name, image.layers[0]!);
  await expectNothingWritten(async () => {
    const entry = await expectError(await client.putManifest(name, "v1", image.bytes, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN");
    assert.match(JSON.stringify(entry.detail), new RegExp(digestOf(image.layers[1]!)));
  });
  await expectError(await getManifest(name, image.digest), 404, "MANIFEST_UNKNOWN");
  assert.deepEqual(await client.tags(name), []);
});

test("PUT /v2/<name>/manifests/<tag> naming a missing config answers 400 MANIFEST_BLOB_UNKNOWN and writes nothing", async () => {
  const name = uniqueName("missing");
  const image = randomImage();
  for (const layer of image.layers) await client.pushBlob(name, layer);
  await expectNothingWritten(async () => {
    await expectError(await client.putManifest(name, "v1", image.bytes, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN");
  });
});

test("PUT /v2/<name>/manifests/<tag> naming a layer that only another repository has answers 400 MANIFEST_BLOB_UNKNOWN", async () => {
  const name = uniqueName("missing");
  const image = randomImage();
  await pushBlobsOf(uniqueName("owner"), image);
  await client.pushBlob(name, image.config);
  await expectError(await client.putManifest(name, "v1", image.bytes, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN");
});

test("PUT /v2/<name>/manifests/<tag> of an index naming a missing child manifest answers 400 MANIFEST_BLOB_UNKNOWN and writes nothing", async () => {
  const name = uniqueName("missing");
  const present = await client.pushImage(name, undefined);
  const absent = randomImage();
  const index = indexOf([descriptorOf(OCI_MANIFEST, present.bytes), descriptorOf(OCI_MANIFEST, absent.bytes)]);
  await expectNothingWritten(async () => {
    await expectError(await client.putManifest(name, "multi", index.bytes, OCI_INDEX), 400, "MANIFEST_BLOB_UNKNOWN");
  });
});

describe("PUT /v2/<name>/manifests/<tag> with an invalid manifest answers 400 MANIFEST_INVALID and writes nothing", () => {
  const name = shared;
  const image = sharedImage;
  const cases: Array<[string, () => Buffer, string]> = [
    ["a body that is not JSON", () => Buffer.from("blablabla"), OCI_MANIFEST],
    ["a JSON array", () => json([1, 2, 3]), OCI_MANIFEST],
    ["schemaVersion 3", () => json({ ...image.manifest, schemaVersion: 3 }), OCI_MANIFEST],
    ["no schemaVersion", () => json({ ...image.manifest, schemaVersion: undefined }), OCI_MANIFEST],
    ["no layers", () => json({ ...image.manifest, layers: undefined }), OCI_MANIFEST],
    ["layers that are not an array", () => json({ ...image.manifest, layers: {} }), OCI_MANIFEST],
    ["no config", () => json({ ...image.manifest, config: undefined }), OCI_MANIFEST],
    ["a layer with a malformed digest", () => json({ ...image.manifest, layers: [{ mediaType: OCI_LAYER, digest: "sha256:abc", size: 3 }] }), OCI_MANIFEST],
    ["a layer with a negative size", () => json({ ...image.manifest, layers: [{ mediaType: OCI_LAYER, digest: digestOf(image.layers[0]!), size: -1 }] }), OCI_MANIFEST],
    ["a mediaType that contradicts Content-Type", () => image.bytes, OCI_INDEX],
    ["an unknown manifest media type", () => json({ ...image.manifest, mediaType: "application/vnd.example.unknown+json" }), "application/vnd.example.unknown+json"],
    ["an index without manifests", () => json({ schemaVersion: 2, mediaType: OCI_INDEX }), OCI_INDEX],
    ["annotations that are not strings", () => json({ ...image.manifest, annotations: { a: 1 } }), OCI_MANIFEST],
  ];
  for (const [what, body, contentType] of cases) {
    test(`PUT /v2/<name>/manifests/<tag> with ${what} answers 400 MANIFEST_INVALID`, async () => {
      await expectNothingWritten(async () => {
        await expectError(await client.putManifest(name, "bad", body(), contentType), 400, "MANIFEST_INVALID");
      });
    });
  }
});

test("PUT /v2/<name>/manifests/<tag> with a Docker schema 1 manifest answers 400 MANIFEST_INVALID naming schema 1", async () => {
  const name = uniqueName("schema1");
  const schema1 = json({
    schemaVersion: 1,
    name,
    tag: "old",
    architecture: "amd64",
    fsLayers: [{ blobSum: unknownDigest() }],
    history: [{ v1Compatibility: "{}" }],
    signatures: [],
  });
  await expectNothingWritten(async () => {
    const entry = await expectError(
      await client.putManifest(name, "old", schema1, "application/vnd.docker.distribution.manifest.v1+prettyjws"),
      400,
      "MANIFEST_INVALID",
    );
    assert.match(entry.message, /schema 1/i);
  });
});

test("PUT /v2/<name>/manifests/<tag> with a schema 1 Content-Type answers 400 MANIFEST_INVALID naming schema 1", async () => {
  const entry = await expectError(
    await client.putManifest(uniqueName("schema1"), "old", json({ schemaVersion: 1 }), "application/vnd.docker.distribution.manifest.v1+json"),
    400,
    "MANIFEST_INVALID",
  );
  assert.match(entry.message, /schema 1/i);
});

test("PUT /v2/<name>/manifests/<tag> larger than 4 MiB answers 413 MANIFEST_TOO_LARGE and writes nothing", async () => {
  const name = shared;
  const image = sharedImage;
  const padding = 4 * 1024 * 1024;
  const bytes = json({ ...image.manifest, annotations: { padding: "x".repeat(padding) } });
  await expectNothingWritten(async () => {
    await expectError(await client.putManifest(name, "big", bytes, OCI_MANIFEST), 413, "MANIFEST_TOO_LARGE");
  });
});

test("PUT /v2/<name>/manifests/<tag> streamed without Content-Length past 4 MiB answers 413 MANIFEST_TOO_LARGE", async () => {
  const name = uniqueName("large");
  const chunk = Buffer.alloc(256 * 1024, 0x20);
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent > 5 * 1024 * 1024) controller.close();
      else {
        sent += chunk.length;
        controller.enqueue(chunk);
      }
    },
  });
  const response = await fetch(client.url(`/v2/${name}/manifests/big`), {
    method: "PUT",
    headers: { "Content-Type": OCI_MANIFEST },
    body,
    duplex: "half",
  } as RequestInit);
  await expectError(response, 413, "MANIFEST_TOO_LARGE");
});

test("PUT /v2/<name>/manifests/<tag> of exactly 4 MiB answers 201", async () => {
  const name = shared;
  const image = sharedImage;
  const base = json({ ...image.manifest, annotations: { padding: "" } }).length;
  const bytes = json({ ...image.manifest, annotations: { padding: "x".repeat(4 * 1024 * 1024 - base) } });
  assert.equal(bytes.length, 4 * 1024 * 1024);
  assert.equal((await client.putManifest(name, "edge", bytes, OCI_MANIFEST)).status, 201);
});

test("PUT /v2/<name>/manifests/<digest> with a digest that is not the content's answers 400 DIGEST_INVALID and writes nothing", async () => {
  const name = shared;
  const image = sharedImage;
  await expectNothingWritten(async () => {
    await expectError(await client.putManifest(name, unknownDigest(), image.bytes, OCI_MANIFEST), 400, "DIGEST_INVALID");
  });
});

test("PUT /v2/<name>/manifests/<reference> with a malformed digest answers 400 DIGEST_INVALID", async () => {
  const name = uniqueName("wrongdigest");
  await expectError(await client.putManifest(name, "sha256:totallywrong", Buffer.from("blablabla"), OCI_MANIFEST), 400, "DIGEST_INVALID");
});

for (const tag of ["-leading-dash", ".leading-dot", "a".repeat(129)]) {
  test(`PUT /v2/<name>/manifests/<tag> with the invalid tag ${JSON.stringify(tag.length > 20 ? `${tag.slice(0, 8)}…(${tag.length})` : tag)} answers 400 TAG_INVALID`, async () => {
    const name = shared;
    const image = sharedImage;
    await expectNothingWritten(async () => {
      await expectError(await client.putManifest(name, tag, image.bytes, OCI_MANIFEST), 400, "TAG_INVALID");
    });
  });
}

test("PUT /v2/<name>/manifests/<digest>?tag= with an invalid tag answers 400 TAG_INVALID and writes nothing", async () => {
  const name = shared;
  const image = sharedImage;
  await expectNothingWritten(async () => {
    await expectError(await client.putManifest(name, image.digest, image.bytes, OCI_MANIFEST, "?tag=good&tag=-bad"), 400, "TAG_INVALID");
  });
});

test("PUT /v2/<name>/manifests/<tag> with the longest valid tag (128 characters) answers 201", async () => {
  const name = uniqueName("longtag");
  const tag = `T${"a".repeat(127)}`;
  await client.pushImage(name, tag);
  assert.deepEqual(await client.tags(name), [tag]);
});
