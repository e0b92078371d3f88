/**
 * Bad input on every route: invalid and traversing repository names (plain, percent-encoded and
 * double-encoded), traversal through tags, upload ids and digests, unknown paths and wrong
 * methods. Each test also checks that storage did not change at all: nothing appeared outside the
 * storage root, and no file under it was created, removed or altered.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { startBerth, type BerthProcess } from "./support/berth-process.js";
import {
  OCI_MANIFEST,
  RegistryClient,
  assertTreeUnchanged,
  digestOf,
  expectError,
  expectHeadError,
  randomBlob,
  rawRequest,
  snapshotTree,
  type ImageParts,
} from "./support/registry-client.js";

let berth: BerthProcess;
let client: RegistryClient;
/** The storage root's parent: the root plus what lies right outside it. */
let workDir: string;
const escapee = `berth-escape-${randomBytes(6).toString("hex")}`;
const name = "valid/repo";
let image: ImageParts;
let blobDigest: string;

before(async () => {
  berth = await startBerth();
  client = new RegistryClient(berth.url);
  workDir = dirname(berth.root!);
  // Real content, so a request that slipped past validation would have something to write.
  image = await client.pushImage(name, "latest");
  blobDigest = await client.pushBlob(name, randomBlob());
});

after(async () => {
  await berth.stop();
});

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** A test that must leave storage (and what lies around it) exactly as it found it. */
function badInput(title: string, body: () => Promise<void>): void {
  test(title, async () => {
    const before = await snapshotTree(workDir);
    await body();
    await assertTreeUnchanged(before, workDir);
    assert.equal(await exists(join(tmpdir(), escapee)), false, "nothing escaped into the temp directory");
    assert.equal(await exists(join("/", escapee)), false, "nothing escaped to the filesystem root");
  });
}

function raw(method: string, path: string, body?: Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
  return rawRequest(berth.url, method, path, { body, headers });
}

// --- invalid repository names, on every route

const invalidNames: Array<[string, string]> = [
  ["..", ".."],
  ["an uppercase name", "Valid/Repo"],
  ["a component starting with _", "valid/_repo"],
  ["a first component starting with _", "_valid"],
  ["a component starting with -", "valid/-repo"],
  ["a component starting with .", "valid/.repo"],
  ["a component ending with a separator", "valid-/repo"],
  ["an empty component", "valid//repo"],
  ["three underscores", "valid___repo"],
  ["256 characters", `${"a".repeat(127)}/${"b".repeat(128)}`],
  ["a traversal out of the storage root", `../../../../../../${escapee}`],
  ["a traversal into another repository's files", "valid/repo/../../other"],
];

for (const [what, bad] of invalidNames) {
  badInput(`GET /v2/<name>/tags/list with ${what} answers 400 NAME_INVALID`, async () => {
    await expectError(await raw("GET", `/v2/${bad}/tags/list`), 400, "NAME_INVALID");
  });

  badInput(`POST /v2/<name>/blobs/uploads/ with ${what} answers 400 NAME_INVALID`, async () => {
    await expectError(await raw("POST", `/v2/${bad}/blobs/uploads/`), 400, "NAME_INVALID");
  });

  badInput(`PUT /v2/<name>/manifests/<tag> with ${what} answers 400 NAME_INVALID`, async () => {
    await expectError(await raw("PUT", `/v2/${bad}/manifests/latest`, image.bytes, { "Content-Type": OCI_MANIFEST }), 400, "NAME_INVALID");
  });
}

badInput("GET /v2/<name>/manifests/<tag> with an invalid name answers 400 NAME_INVALID", async () => {
  await expectError(await raw("GET", "/v2/Valid/manifests/latest"), 400, "NAME_INVALID");
});

badInput("HEAD /v2/<name>/manifests/<tag> with an invalid name answers 400 without a body", async () => {
  await expectHeadError(await raw("HEAD", "/v2/_valid/manifests/latest"), 400);
});

badInput("GET /v2/<name>/blobs/<digest> with an invalid name answers 400 NAME_INVALID", async () => {
  await expectError(await raw("GET", `/v2/../blobs/${blobDigest}`), 400, "NAME_INVALID");
});

badInput("DELETE /v2/<name>/blobs/<digest> with an invalid name answers 400 NAME_INVALID", async () => {
  await expectError(await raw("DELETE", `/v2/valid/../valid/repo/blobs/${blobDigest}`), 400, "NAME_INVALID");
});

badInput("DELETE /v2/<name>/manifests/<digest> with an invalid name answers 400 NAME_INVALID", async () => {
  await expectError(await raw("DELETE", `/v2/valid/./repo/manifests/${image.digest}`), 400, "NAME_INVALID");
});

badInput("GET /v2/<name>/referrers/<digest> with an invalid name answers 400 NAME_INVALID", async () => {
  await expectError(await raw("GET", `/v2/-valid/referrers/${image.digest}`), 400, "NAME_INVALID");
});

badInput("PATCH /v2/<name>/blobs/uploads/<id> with an invalid name answers 400 NAME_INVALID", async () => {
  await expectError(await raw("PATCH", `/v2/../../${escapee}/blobs/uploads/abc`, randomBlob()), 400, "NAME_INVALID");
});

badInput("GET /v2/<name>/tags/list with a 255-character name answers 404 NAME_UNKNOWN (valid, not there)", async () => {
  await expectError(await raw("GET", `/v2/${"a".repeat(127)}/${"b".repeat(127)}/tags/list`), 404, "NAME_UNKNOWN");
});

// --- percent-encoded traversal

badInput("POST /v2/<name>/blobs/uploads/ with a %2e%2e-encoded traversal answers 400 NAME_INVALID", async () => {
  const path = `/v2/${"%2e%2e/".repeat(6)}${escapee}/blobs/uploads/`;
  await expectError(await raw("POST", path), 400, "NAME_INVALID");
});

badInput("PUT /v2/<name>/manifests/<tag> with a %2E%2E%2F-encoded traversal answers 400 NAME_INVALID", async () => {
  const path = `/v2/valid%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2F${escapee}/manifests/latest`;
  await expectError(await raw("PUT", path, image.bytes, { "Content-Type": OCI_MANIFEST }), 400, "NAME_INVALID");
});

badInput("POST /v2/<name>/blobs/uploads/?digest= with a %2e%2e-encoded traversal answers 400 NAME_INVALID", async () => {
  const blob = randomBlob();
  const digest = digestOf(blob);
  await expectError(await raw("POST", `/v2/%2e%2e/%2e%2e/%2e%2e/%2e%2e/${escapee}/blobs/uploads/?digest=${digest}`, blob), 400, "NAME_INVALID");
});

badInput("GET /v2/<name>/tags/list with a double-encoded %252e%252e traversal answers 400 NAME_INVALID", async () => {
  await expectError(await raw("GET", `/v2/${"%252e%252e/".repeat(6)}${escapee}/tags/list`), 400, "NAME_INVALID");
});

badInput("PUT /v2/<name>/manifests/<tag> with a double-encoded %252F traversal answers 400 NAME_INVALID", async () => {
  const path = `/v2/valid%252F..%252F..%252F..%252F${escapee}/manifests/latest`;
  await expectError(await raw("PUT", path, image.bytes, { "Content-Type": OCI_MANIFEST }), 400, "NAME_INVALID");
});

badInput("GET /v2/<name>/tags/list with malformed percent-encoding answers 400 NAME_INVALID", async () => {
  await expectError(await raw("GET", "/v2/valid%zz/tags/list"), 400, "NAME_INVALID");
});

badInput("GET /v2/<name>/tags/list with an encoded NUL byte answers 400 NAME_INVALID", async () => {
  await expectError(await raw("GET", "/v2/valid%00repo/tags/list"), 400, "NAME_INVALID");
});

badInput("GET /v2/<name>/tags/list with an encoded backslash traversal answers 400 NAME_INVALID", async () => {
  await expectError(await raw("GET", "/v2/valid%5C..%5C..%5Cother/tags/list"), 400, "NAME_INVALID");
});

// --- traversal through the other path parameters

badInput("PUT /v2/<name>/manifests/<tag> with an encoded traversal as the tag answers 400 TAG_INVALID", async () => {
  const path = `/v2/${name}/manifests/..%2F..%2F..%2F..%2F..%2F..%2F..%2F..%2F${escapee}`;
  await expectError(await raw("PUT", path, image.bytes, { "Content-Type": OCI_MANIFEST }), 400, "TAG_INVALID");
});

badInput("PUT /v2/<name>/manifests/<tag> with %2e%2e as the tag answers 400 TAG_INVALID", async () => {
  await expectError(await raw("PUT", `/v2/${name}/manifests/%2e%2e`, image.bytes, { "Content-Type": OCI_MANIFEST }), 400, "TAG_INVALID");
});

badInput("PUT /v2/<name>/manifests/<digest>?tag= with a traversal as the tag answers 400 TAG_INVALID", async () => {
  const path = `/v2/${name}/manifests/${image.digest}?tag=${encodeURIComponent(`../../../../${escapee}`)}`;
  await expectError(await raw("PUT", path, image.bytes, { "Content-Type": OCI_MANIFEST }), 400, "TAG_INVALID");
});

badInput("GET /v2/<name>/manifests/<tag> with an encoded traversal as the tag answers 404 MANIFEST_UNKNOWN", async () => {
  await expectError(await raw("GET", `/v2/${name}/manifests/..%2F..%2F_manifests`), 404, "MANIFEST_UNKNOWN");
});

badInput("DELETE /v2/<name>/manifests/<tag> with an encoded traversal as the tag answers 404 MANIFEST_UNKNOWN", async () => {
  await expectError(await raw("DELETE", `/v2/${name}/manifests/..%2F..%2F..%2F..%2Frepositories`), 404, "MANIFEST_UNKNOWN");
  assert.equal((await client.send(`/v2/${name}/manifests/latest`)).status, 200);
});

badInput("PATCH /v2/<name>/blobs/uploads/<id> with an encoded traversal as the id answers 404 BLOB_UPLOAD_UNKNOWN", async () => {
  const path = `/v2/${name}/blobs/uploads/..%2F..%2F..%2F..%2F..%2F..%2F..%2F${escapee}`;
  await expectError(await raw("PATCH", path, randomBlob()), 404, "BLOB_UPLOAD_UNKNOWN");
});

badInput("PUT /v2/<name>/blobs/uploads/<id> with %2e%2e as the id answers 404 BLOB_UPLOAD_UNKNOWN", async () => {
  await expectError(await raw("PUT", `/v2/${name}/blobs/uploads/%2e%2e?digest=${blobDigest}`, randomBlob()), 404, "BLOB_UPLOAD_UNKNOWN");
});

badInput("DELETE /v2/<name>/blobs/uploads/<id> with a traversal to another upload area answers 404 BLOB_UPLOAD_UNKNOWN", async () => {
  await expectError(await raw("DELETE", `/v2/${name}/blobs/uploads/..%2F..%2F..%2Fother%2F_uploads%2Fx`), 404, "BLOB_UPLOAD_UNKNOWN");
});

badInput("GET /v2/<name>/blobs/<digest> with an encoded traversal in the digest answers 400 DIGEST_INVALID", async () => {
  await expectError(await raw("GET", `/v2/${name}/blobs/sha256:..%2F..%2F..%2F..%2F${escapee}`), 400, "DIGEST_INVALID");
});

badInput("DELETE /v2/<name>/blobs/<digest> with an encoded traversal in the digest answers 400 DIGEST_INVALID", async () => {
  await expectError(await raw("DELETE", `/v2/${name}/blobs/sha256%3A..%2F..%2F_layers`), 400, "DIGEST_INVALID");
});

badInput("PUT /v2/<name>/blobs/uploads/<id>?digest= with a traversal as the digest answers 400 DIGEST_INVALID", async () => {
  // The upload is started and cancelled inside the check: only the digest may not write anything.
  const { location } = await client.startUpload(name);
  const response = await client.fetch(`${location}&digest=${encodeURIComponent(`sha256:../../../../${escapee}`)}`, { method: "PUT", body: randomBlob() });
  await expectError(response, 400, "DIGEST_INVALID");
  assert.equal((await client.send(location, { method: "DELETE" })).status, 204);
});

badInput("GET /v2/<name>/referrers/<digest> with a traversal as the digest answers 400 DIGEST_INVALID", async () => {
  await expectError(await raw("GET", `/v2/${name}/referrers/..%2F..%2F..%2F${escapee}`), 400, "DIGEST_INVALID");
});

badInput("GET /v2/_catalog?last= with a traversal answers 200 without leaving the repository tree", async () => {
  const response = await raw("GET", `/v2/_catalog?last=${encodeURIComponent("../../../")}`);
  assert.equal(response.status, 200);
  assert.deepEqual(((await response.json()) as { repositories: string[] }).repositories, [name]);
});

// --- unknown paths and wrong methods

// "/" belongs to the web UI when it is on (a redirect to /ui/; test/ui-http.test.ts), 404 when it is off.
const unknownPaths = ["/v1/", "/v3/", "/v2/valid/repo", "/v2/valid/repo/blobs", "/v2/valid/repo/unknown/thing", "/v2/_catalog/extra", "/favicon.ico"];
for (const path of unknownPaths) {
  badInput(`GET ${path} answers 404 NOT_FOUND with a JSON error`, async () => {
    await expectError(await raw("GET", path), 404, "NOT_FOUND");
  });
}

const wrongMethods: Array<[string, string]> = [
  ["DELETE", "/v2/"],
  ["POST", "/v2/"],
  ["POST", "/v2/_catalog"],
  ["PUT", "/v2/valid/repo/tags/list"],
  ["PATCH", "/v2/valid/repo/manifests/latest"],
  ["POST", "/v2/valid/repo/manifests/latest"],
  ["PUT", "/v2/valid/repo/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000"],
  ["PATCH", "/v2/valid/repo/blobs/uploads/"],
  ["GET", "/v2/valid/repo/blobs/uploads/"],
  ["POST", "/v2/valid/repo/blobs/uploads/some-upload"],
  ["DELETE", "/v2/valid/repo/referrers/sha256:0000000000000000000000000000000000000000000000000000000000000000"],
];
for (const [method, path] of wrongMethods) {
  badInput(`${method} ${path.replace("valid/repo", "<name>").replace(/sha256:0+/, "<digest>")} answers 405 UNSUPPORTED`, async () => {
    await expectError(await raw(method, path, method === "GET" ? undefined : randomBlob(8)), 405, "UNSUPPORTED");
  });
}

badInput("an unknown method on /v2/ answers 405 UNSUPPORTED", async () => {
  await expectError(await raw("OPTIONS", "/v2/"), 405, "UNSUPPORTED");
});

test("after every bad request the repository still serves its content unchanged", async () => {
  const { response, bytes } = await client.get(`/v2/${name}/manifests/latest`);
  assert.equal(response.status, 200);
  assert.deepEqual(bytes, image.bytes);
  assert.equal((await client.send(`/v2/${name}/blobs/${blobDigest}`)).status, 200);
  assert.deepEqual(await client.tags(name), ["latest"]);
  assert.doesNotMatch(berth.log(), /internal error/);
});
