/** HEAD/GET/DELETE /v2/<name>/blobs/<digest>: pulls, ranges, per-repository links, deletes. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import {
  RegistryClient,
  digestOf,
  expectError,
  expectHeadError,
  randomBlob,
  uniqueName,
  unknownDigest,
} from "./support/registry-client.js";

let berth: BerthProcess;
let client: RegistryClient;
const name = uniqueName("blobs");
const blob = randomBlob(64);
let digest: string;

before(async () => {
  berth = await startBerth();
  client = new RegistryClient(berth.url);
  digest = await client.pushBlob(name, blob);
});

after(async () => {
  await berth.stop();
});

function range(value: string): Promise<{ response: Response; bytes: Buffer }> {
  return client.get(`/v2/${name}/blobs/${digest}`, { Range: value });
}

test("HEAD /v2/<name>/blobs/<digest> answers 200 with Content-Length and Docker-Content-Digest and no body", async () => {
  const response = await client.fetch(`/v2/${name}/blobs/${digest}`, { method: "HEAD" });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-length"), String(blob.length));
  assert.equal(response.headers.get("docker-content-digest"), digest);
  assert.equal(await response.text(), "");
});

test("GET /v2/<name>/blobs/<digest> answers 200 with the bytes, Content-Length, Docker-Content-Digest and ETag", async () => {
  const { response, bytes } = await client.get(`/v2/${name}/blobs/${digest}`);
  assert.equal(response.status, 200);
  assert.deepEqual(bytes, blob);
  assert.equal(response.headers.get("content-length"), String(blob.length));
  assert.equal(response.headers.get("docker-content-digest"), digest);
  assert.equal(response.headers.get("etag"), `"${digest}"`);
});

test("GET /v2/<name>/blobs/<digest> answers with Accept-Ranges: bytes", async () => {
  const response = await client.send(`/v2/${name}/blobs/${digest}`);
  assert.equal(response.headers.get("accept-ranges"), "bytes");
});

test("GET /v2/<name>/blobs/<digest> with Range bytes=10-19 answers 206 with Content-Range and those bytes", async () => {
  const { response, bytes } = await range("bytes=10-19");
  assert.equal(response.status, 206);
  assert.equal(response.headers.get("content-range"), `bytes 10-19/${blob.length}`);
  assert.equal(response.headers.get("content-length"), "10");
  assert.deepEqual(bytes, blob.subarray(10, 20));
});

test("GET /v2/<name>/blobs/<digest> with a suffix Range bytes=-5 answers 206 with the last 5 bytes", async () => {
  const { response, bytes } = await range("bytes=-5");
  assert.equal(response.status, 206);
  assert.equal(response.headers.get("content-range"), `bytes ${blob.length - 5}-${blob.length - 1}/${blob.length}`);
  assert.deepEqual(bytes, blob.subarray(blob.length - 5));
});

test("GET /v2/<name>/blobs/<digest> with an open-ended Range bytes=40- answers 206 with the rest", async () => {
  const { response, bytes } = await range("bytes=40-");
  assert.equal(response.status, 206);
  assert.equal(response.headers.get("content-range"), `bytes 40-${blob.length - 1}/${blob.length}`);
  assert.deepEqual(bytes, blob.subarray(40));
});

test("GET /v2/<name>/blobs/<digest> with a Range ending past the blob answers 206 up to its end", async () => {
  const { response, bytes } = await range("bytes=60-1000");
  assert.equal(response.status, 206);
  assert.equal(response.headers.get("content-range"), `bytes 60-${blob.length - 1}/${blob.length}`);
  assert.deepEqual(bytes, blob.subarray(60));
});

test("GET /v2/<name>/blobs/<digest> with an unsatisfiable Range answers 416 RANGE_INVALID with Content-Range bytes */size", async () => {
  const response = await client.fetch(`/v2/${name}/blobs/${digest}`, { headers: { Range: "bytes=100-200" } });
  assert.equal(response.headers.get("content-range"), `bytes */${blob.length}`);
  await expectError(response, 416, "RANGE_INVALID");
});

test("GET /v2/<name>/blobs/<digest> with several ranges answers 416 RANGE_INVALID", async () => {
  const response = await client.fetch(`/v2/${name}/blobs/${digest}`, { headers: { Range: "bytes=0-1,5-9" } });
  assert.equal(response.headers.get("content-range"), `bytes */${blob.length}`);
  await expectError(response, 416, "RANGE_INVALID");
});

test("GET /v2/<name>/blobs/<digest> with a garbage Range answers 416 RANGE_INVALID", async () => {
  const response = await client.fetch(`/v2/${name}/blobs/${digest}`, { headers: { Range: "lines=1-2" } });
  assert.equal(response.headers.get("content-range"), `bytes */${blob.length}`);
  await expectError(response, 416, "RANGE_INVALID");
});

test("GET /v2/<name>/blobs/<digest> with a reversed Range answers 416 RANGE_INVALID", async () => {
  await expectError(await client.fetch(`/v2/${name}/blobs/${digest}`, { headers: { Range: "bytes=20-10" } }), 416, "RANGE_INVALID");
});

test("GET /v2/<name>/blobs/<digest> of a zero-length blob answers 200 with Content-Length 0", async () => {
  const empty = Buffer.alloc(0);
  const emptyDigest = await client.pushBlob(name, empty);
  assert.equal(emptyDigest, digestOf(empty));
  const { response, bytes } = await client.get(`/v2/${name}/blobs/${emptyDigest}`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-length"), "0");
  assert.equal(bytes.length, 0);
});

test("GET /v2/<name>/blobs/<sha512 digest> answers 200 with the sha512 Docker-Content-Digest", async () => {
  const bytes = randomBlob(80);
  const sha512 = await client.pushBlob(name, bytes, { algorithm: "sha512" });
  const { response, bytes: body } = await client.get(`/v2/${name}/blobs/${sha512}`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("docker-content-digest"), sha512);
  assert.deepEqual(body, bytes);
});

test("GET /v2/<name>/blobs/<digest> of an unknown blob answers 404 BLOB_UNKNOWN", async () => {
  await expectError(await client.fetch(`/v2/${name}/blobs/${unknownDigest()}`), 404, "BLOB_UNKNOWN");
});

test("HEAD /v2/<name>/blobs/<digest> of an unknown blob answers 404 without a body", async () => {
  await expectHeadError(await client.fetch(`/v2/${name}/blobs/${unknownDigest()}`, { method: "HEAD" }), 404);
});

test("GET /v2/<name>/blobs/<digest> of a blob pushed only to another repository answers 404 BLOB_UNKNOWN", async () => {
  const other = uniqueName("other");
  const bytes = randomBlob();
  const otherDigest = await client.pushBlob(other, bytes);
  assert.equal((await client.send(`/v2/${other}/blobs/${otherDigest}`)).status, 200);
  await expectError(await client.fetch(`/v2/${name}/blobs/${otherDigest}`), 404, "BLOB_UNKNOWN");
});

test("GET /v2/<name>/blobs/<digest> in a repository that does not exist answers 404 BLOB_UNKNOWN", async () => {
  await expectError(await client.fetch(`/v2/${uniqueName("nowhere")}/blobs/${digest}`), 404, "BLOB_UNKNOWN");
});

test("GET /v2/<name>/blobs/<digest> with a malformed digest answers 400 DIGEST_INVALID", async () => {
  await expectError(await client.fetch(`/v2/${name}/blobs/sha256:xyz`), 400, "DIGEST_INVALID");
});

test("GET /v2/<name>/blobs/<digest> with an unsupported algorithm answers 400 DIGEST_INVALID", async () => {
  await expectError(await client.fetch(`/v2/${name}/blobs/md5:${"0".repeat(32)}`), 400, "DIGEST_INVALID");
});

test("GET /v2/<name>/blobs/<digest> with uppercase hex answers 400 DIGEST_INVALID", async () => {
  await expectError(await client.fetch(`/v2/${name}/blobs/${digest.toUpperCase().replace("SHA256", "sha256")}`), 400, "DIGEST_INVALID");
});

test("DELETE /v2/<name>/blobs/<digest> answers 202, then GET answers 404 BLOB_UNKNOWN", async () => {
  const repo = uniqueName("del");
  const bytes = randomBlob();
  const blobDigest = await client.pushBlob(repo, bytes);
  const response = await client.send(`/v2/${repo}/blobs/${blobDigest}`, { method: "DELETE" });
  assert.equal(response.status, 202);
  await expectError(await client.fetch(`/v2/${repo}/blobs/${blobDigest}`), 404, "BLOB_UNKNOWN");
});

test("DELETE /v2/<name>/blobs/<digest> unlinks the blob in that repository only", async () => {
  const first = uniqueName("del");
  const second = uniqueName("del");
  const bytes = randomBlob();
  const blobDigest = await client.pushBlob(first, bytes);
  await client.pushBlob(second, bytes);
  assert.equal((await client.send(`/v2/${first}/blobs/${blobDigest}`, { method: "DELETE" })).status, 202);
  const { response, bytes: body } = await client.get(`/v2/${second}/blobs/${blobDigest}`);
  assert.equal(response.status, 200);
  assert.deepEqual(body, bytes);
});

test("DELETE /v2/<name>/blobs/<digest> twice answers 404 BLOB_UNKNOWN the second time", async () => {
  const repo = uniqueName("del");
  const blobDigest = await client.pushBlob(repo, randomBlob());
  assert.equal((await client.send(`/v2/${repo}/blobs/${blobDigest}`, { method: "DELETE" })).status, 202);
  await expectError(await client.fetch(`/v2/${repo}/blobs/${blobDigest}`, { method: "DELETE" }), 404, "BLOB_UNKNOWN");
});

test("DELETE /v2/<name>/blobs/<digest> of an unknown blob answers 404 BLOB_UNKNOWN", async () => {
  await expectError(await client.fetch(`/v2/${name}/blobs/${unknownDigest()}`, { method: "DELETE" }), 404, "BLOB_UNKNOWN");
});

test("a blob pushed again after DELETE is served again", async () => {
  const repo = uniqueName("del");
  const bytes = randomBlob();
  const blobDigest = await client.pushBlob(repo, bytes);
  assert.equal((await client.send(`/v2/${repo}/blobs/${blobDigest}`, { method: "DELETE" })).status, 202);
  await client.pushBlob(repo, bytes);
  const { response, bytes: body } = await client.get(`/v2/${repo}/blobs/${blobDigest}`);
  assert.equal(response.status, 200);
  assert.deepEqual(body, bytes);
});

describe("with storage.delete.enabled false", () => {
  let noDelete: BerthProcess;
  let nd: RegistryClient;

  before(async () => {
    noDelete = await startBerth({ configYaml: testConfig({ deleteEnabled: false }) });
    nd = new RegistryClient(noDelete.url);
  });

  after(async () => {
    await noDelete.stop();
  });

  test("DELETE /v2/<name>/blobs/<digest> answers 405 UNSUPPORTED and the blob stays", async () => {
    const repo = uniqueName("nodel");
    const bytes = randomBlob();
    const blobDigest = await nd.pushBlob(repo, bytes);
    await expectError(await nd.fetch(`/v2/${repo}/blobs/${blobDigest}`, { method: "DELETE" }), 405, "UNSUPPORTED");
    assert.equal((await nd.send(`/v2/${repo}/blobs/${blobDigest}`)).status, 200);
  });

  test("DELETE /v2/<name>/manifests/<digest> answers 405 UNSUPPORTED and the manifest stays", async () => {
    const repo = uniqueName("nodel");
    const image = await nd.pushImage(repo, "v1");
    await expectError(await nd.fetch(`/v2/${repo}/manifests/${image.digest}`, { method: "DELETE" }), 405, "UNSUPPORTED");
    assert.equal((await nd.send(`/v2/${repo}/manifests/v1`)).status, 200);
  });

  test("DELETE /v2/<name>/manifests/<tag> answers 405 UNSUPPORTED and the tag stays", async () => {
    const repo = uniqueName("nodel");
    await nd.pushImage(repo, "v1");
    await expectError(await nd.fetch(`/v2/${repo}/manifests/v1`, { method: "DELETE" }), 405, "UNSUPPORTED");
    assert.deepEqual(await nd.tags(repo), ["v1"]);
  });
});
