/**
 * Hardening: nothing a client sends may crash the server, leak internals, or touch a file outside
 * the storage root. Hostile requests go over raw sockets where an HTTP client would refuse or
 * normalise them; each test checks the exact answer and that storage did not change.
 *
 * Covered here (test/api-bad-input.test.ts has the invalid names and the first traversal cases):
 * traversal through every parameter that reaches a path (tag, digest, upload id, `?digest=`,
 * `?tag=`, `?mount=`, `?from=`, `_state`, `?last=`) in plain, %-encoded, double-encoded, absolute,
 * NUL and backslash forms; upload state tokens (tampered, truncated, replayed, expired); framing
 * (Content-Length and Transfer-Encoding together, bodies longer or shorter than declared,
 * oversized headers and manifests); absurd Range and `n=`; internal errors without detail; slow
 * clients (slow headers, silent and idle connections, stalled bodies) under configured timeouts;
 * secrets and credentials never logged.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import bcrypt from "bcryptjs";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { errorBodyProblem, exchange, httpRequest, leaks, signUploadPayload, signUploadState, type Exchange, type RawResponse } from "./support/fuzz-requests.js";
import {
  OCI_MANIFEST,
  RegistryClient,
  assertTreeUnchanged,
  descriptorOf,
  digestOf,
  expectError,
  json,
  nextLink,
  randomBlob,
  randomImage,
  rawRequest,
  registryTree,
  relative,
  snapshotTree,
  uniqueName,
  withQuery,
  type ErrorEntry,
  type ImageParts,
  type TreeSnapshot,
} from "./support/registry-client.js";

const SECRET = "test-secret";
const HOUR = 3_600_000;

let berth: BerthProcess;
let client: RegistryClient;
/** The storage root's parent: the root plus what lies right outside it. */
let workDir: string;
const escapee = `berth-escape-${randomBytes(6).toString("hex")}`;
const name = "hard/repo";
const other = "hard/other";
let image: ImageParts;
let blob: Buffer;
let blobDigest: string;

before(async () => {
  berth = await startBerth();
  client = new RegistryClient(berth.url);
  workDir = dirname(berth.root!);
  image = await client.pushImage(name, "latest");
  blob = randomBlob(100);
  blobDigest = await client.pushBlob(name, blob);
  await client.pushImage(other, "latest");
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

async function assertNothingEscaped(): Promise<void> {
  for (const dir of [tmpdir(), "/", workDir, dirname(workDir), berth.root!]) {
    assert.equal(await exists(join(dir, escapee)), false, `${escapee} appeared in ${dir}`);
  }
}

/** A test that must leave storage, and what lies around it, exactly as it found it. */
function hostile(title: string, body: () => Promise<void>): void {
  test(title, async () => {
    const before = await snapshotTree(workDir);
    await body();
    await assertTreeUnchanged(before, workDir);
    await assertNothingEscaped();
    await assertAlive();
  });
}

async function assertAlive(): Promise<void> {
  assert.equal(berth.child.exitCode, null, "the server is still running");
  assert.equal((await client.send("/v2/")).status, 200, "the server still answers");
}

/** Asserts the spec error and that its body leaks nothing; returns the entry. */
async function expectCleanError(response: Response, status: number, code: string): Promise<ErrorEntry> {
  const text = await response.text();
  assert.deepEqual(leaks(text, [workDir]), [], `the error body leaks internals: ${text}`);
  return expectError(new Response(text, { status: response.status, headers: response.headers }), status, code);
}

/** The same for a response read off a raw socket. */
function expectRawError(response: RawResponse | undefined, status: number, code: string): void {
  assert.ok(response, "an answer");
  const text = response.body.toString("utf8");
  assert.equal(response.status, status, `expected ${status} ${code}, got ${response.status}: ${text}`);
  assert.equal(errorBodyProblem(response.body, response.headers["content-type"]), undefined);
  assert.equal((JSON.parse(text) as { errors: ErrorEntry[] }).errors[0]!.code, code, text);
  assert.deepEqual(leaks(text, [workDir]), [], `the error body leaks internals: ${text}`);
}

function raw(method: string, path: string, options: { body?: Uint8Array; headers?: Record<string, string> } = {}): Promise<Response> {
  return rawRequest(berth.url, method, path, options);
}

/** Node's parser refusing bytes it does not accept as HTTP: a bare status, then the connection closed. */
function expectParserRefusal(result: Exchange, status: number): void {
  assert.equal(result.responses.length, 1, `one answer, got: ${JSON.stringify(result.raw.slice(0, 300))}`);
  assert.equal(result.responses[0]!.status, status, result.raw.slice(0, 300));
  assert.equal(result.closedByServer, true, "the server closes the connection");
  assert.deepEqual(leaks(result.raw, [workDir]), []);
}

// ---------------------------------------------------------------------------------------------
// Path traversal through every parameter that reaches a storage path

/** Ways to spell "go up and out to <escapee>" (or somewhere absolute) in one parameter. */
const TRAVERSALS: Array<[string, string]> = [
  ["%2e%2e%2f-encoded", `${"%2e%2e%2f".repeat(8)}${escapee}`],
  ["..%2F-encoded", `${"..%2F".repeat(8)}${escapee}`],
  ["double-encoded %252e%252e%252f", `${"%252e%252e%252f".repeat(8)}${escapee}`],
  ["an absolute %2F path", `%2F${escapee}`],
  ["an absolute %2Fetc%2F path", `%2Fetc%2F${escapee}`],
  ["an encoded NUL", `${escapee}%00`],
  ["an encoded NUL before a traversal", `x%00%2F..%2F..%2F..%2F${escapee}`],
  ["encoded backslashes", `..%5C..%5C..%5C..%5C${escapee}`],
  ["overlong UTF-8 dots", `%c0%ae%c0%ae%2f%c0%ae%c0%ae%2f${escapee}`],
];

describe("traversal through the tag", () => {
  for (const [what, value] of TRAVERSALS) {
    const malformedUtf8 = value.includes("%c0");
    // A parameter that cannot be percent-decoded is refused by the router as NAME_INVALID.
    const [putStatus, putCode] = malformedUtf8 ? [400, "NAME_INVALID"] : [400, "TAG_INVALID"];
    const [getStatus, getCode] = malformedUtf8 ? [400, "NAME_INVALID"] : [404, "MANIFEST_UNKNOWN"];
    hostile(`PUT /v2/<name>/manifests/<tag> with ${what} answers ${putStatus} ${putCode}`, async () => {
      await expectCleanError(await raw("PUT", `/v2/${name}/manifests/${value}`, { body: image.bytes, headers: { "Content-Type": OCI_MANIFEST } }), putStatus, putCode);
    });
    hostile(`GET and DELETE /v2/<name>/manifests/<tag> with ${what} answer ${getStatus} ${getCode}`, async () => {
      await expectCleanError(await raw("GET", `/v2/${name}/manifests/${value}`), getStatus, getCode);
      await expectCleanError(await raw("DELETE", `/v2/${name}/manifests/${value}`), getStatus, getCode);
    });
  }

  for (const [what, value] of [...TRAVERSALS, ["a plain ../ traversal", `../../../../../../${escapee}`] as [string, string]]) {
    hostile(`PUT /v2/<name>/manifests/<digest>?tag= with ${what} answers 400 TAG_INVALID`, async () => {
      const response = await raw("PUT", `/v2/${name}/manifests/${image.digest}?tag=${value.replaceAll("/", "%2F")}`, { body: image.bytes, headers: { "Content-Type": OCI_MANIFEST } });
      await expectCleanError(response, 400, "TAG_INVALID");
    });
  }
});

describe("traversal through a digest", () => {
  for (const [what, value] of TRAVERSALS) {
    const malformedUtf8 = value.includes("%c0");
    const [status, code] = malformedUtf8 ? [400, "NAME_INVALID"] : [400, "DIGEST_INVALID"];
    hostile(`GET, HEAD and DELETE /v2/<name>/blobs/sha256:<${what}> answer ${status} ${code}`, async () => {
      await expectCleanError(await raw("GET", `/v2/${name}/blobs/sha256:${value}`), status, code);
      await expectCleanError(await raw("DELETE", `/v2/${name}/blobs/sha256:${value}`), status, code);
      const head = await raw("HEAD", `/v2/${name}/blobs/sha256:${value}`);
      assert.equal(head.status, status);
      assert.equal(await head.text(), "");
    });
    hostile(`GET /v2/<name>/referrers/sha256:<${what}> answers ${status} ${code}`, async () => {
      await expectCleanError(await raw("GET", `/v2/${name}/referrers/sha256:${value}`), status, code);
    });
    hostile(`PUT /v2/<name>/manifests/sha256:<${what}> answers ${status} ${code}`, async () => {
      await expectCleanError(await raw("PUT", `/v2/${name}/manifests/sha256:${value}`, { body: image.bytes, headers: { "Content-Type": OCI_MANIFEST } }), status, code);
    });
  }

  for (const [what, value] of [...TRAVERSALS, ["a plain ../ traversal", `../../../../../../${escapee}`] as [string, string]]) {
    hostile(`POST /v2/<name>/blobs/uploads/?digest=sha256:<${what}> answers 400 DIGEST_INVALID`, async () => {
      await expectCleanError(await raw("POST", `/v2/${name}/blobs/uploads/?digest=sha256:${value.replaceAll("/", "%2F")}`, { body: blob }), 400, "DIGEST_INVALID");
    });
  }

  test("PUT <location>?digest=sha256:<traversal> answers 400 DIGEST_INVALID and writes no blob", async () => {
    const { location } = await client.startUpload(name);
    const before = await snapshotTree(workDir);
    for (const [, value] of TRAVERSALS) {
      const url = new URL(location);
      const path = `${url.pathname}${url.search}&digest=sha256:${value}`;
      const response = await raw("PUT", path, { body: Buffer.alloc(0) });
      await expectCleanError(response, 400, "DIGEST_INVALID");
    }
    await assertTreeUnchanged(before, workDir);
    await assertNothingEscaped();
    assert.equal((await client.send(location, { method: "DELETE" })).status, 204);
  });
});

describe("traversal through the upload id", () => {
  for (const [what, value] of TRAVERSALS) {
    const malformedUtf8 = value.includes("%c0");
    const [status, code] = malformedUtf8 ? [400, "NAME_INVALID"] : [404, "BLOB_UPLOAD_UNKNOWN"];
    hostile(`PATCH, PUT, GET and DELETE /v2/<name>/blobs/uploads/<${what}> answer ${status} ${code}`, async () => {
      await expectCleanError(await raw("PATCH", `/v2/${name}/blobs/uploads/${value}`, { body: randomBlob(10) }), status, code);
      await expectCleanError(await raw("PUT", `/v2/${name}/blobs/uploads/${value}?digest=${blobDigest}`, { body: blob }), status, code);
      await expectCleanError(await raw("GET", `/v2/${name}/blobs/uploads/${value}`), status, code);
      await expectCleanError(await raw("DELETE", `/v2/${name}/blobs/uploads/${value}`), status, code);
    });
  }
});

describe("traversal through ?mount= and ?from=", () => {
  /**
   * A mount that cannot happen falls back to an ordinary upload (202), as the spec says: one new
   * upload in the target repository is the only thing storage may gain.
   */
  async function expectFallbackOnly(response: Response, target: string, before: TreeSnapshot): Promise<void> {
    assert.equal(response.status, 202, await response.clone().text());
    const uuid = response.headers.get("docker-upload-uuid")!;
    assert.match(uuid, /^[0-9a-f-]{36}$/);
    const after = await snapshotTree(workDir);
    const uploadDir = `data/docker/registry/v2/repositories/${target}/_uploads/${uuid}`;
    const added = [...after.keys()].filter((key) => !before.has(key));
    const unexpected = added.filter((key) => !key.startsWith(uploadDir) && !uploadDir.startsWith(key));
    assert.deepEqual(unexpected, [], "only the fallback upload was created");
    const changed = [...before.keys()].filter((key) => !after.has(key) || (after.get(key) !== before.get(key) && before.get(key) !== "dir"));
    assert.deepEqual(changed, [], "nothing else changed");
    assert.equal((await client.send(response.headers.get("location")!, { method: "DELETE" })).status, 204);
    await assertNothingEscaped();
  }

  for (const [what, value] of [...TRAVERSALS, ["a plain ../ traversal", `../../../../../../${escapee}`] as [string, string]]) {
    test(`POST ?mount=<digest>&from=<${what}> falls back to 202 and a new upload, touching nothing else`, async () => {
      const before = await snapshotTree(workDir);
      const response = await raw("POST", `/v2/${other}/blobs/uploads/?mount=${blobDigest}&from=${value.replaceAll("/", "%2F")}`);
      await expectFallbackOnly(response, other, before);
      assert.equal((await client.send(`/v2/${other}/blobs/${blobDigest}`, { method: "HEAD" })).status, 404, "nothing was mounted");
    });
    test(`POST ?mount=sha256:<${what}>&from=<name> falls back to 202 and a new upload, touching nothing else`, async () => {
      const before = await snapshotTree(workDir);
      const response = await raw("POST", `/v2/${other}/blobs/uploads/?mount=sha256:${value.replaceAll("/", "%2F")}&from=${name}`);
      await expectFallbackOnly(response, other, before);
    });
  }
});

describe("traversal through _state and ?last=", () => {
  for (const [what, value] of [...TRAVERSALS, ["a plain ../ traversal", `../../../../../../${escapee}`] as [string, string]]) {
    hostile(`PATCH <location> with _state=<${what}> answers 400 BLOB_UPLOAD_INVALID and appends nothing`, async () => {
      const { location, uuid } = await client.startUpload(name);
      const before = await snapshotTree(workDir);
      await expectCleanError(await raw("PATCH", `/v2/${name}/blobs/uploads/${uuid}?_state=${value.replaceAll("/", "%2F")}`, { body: randomBlob(10) }), 400, "BLOB_UPLOAD_INVALID");
      await assertTreeUnchanged(before, workDir);
      assert.equal((await client.send(location, { method: "DELETE" })).status, 204);
    });
    hostile(`GET /v2/<name>/tags/list?last=<${what}> answers 200 with the repository's tags only`, async () => {
      const response = await raw("GET", `/v2/${name}/tags/list?last=${value}`);
      assert.equal(response.status, 200);
      const body = (await response.json()) as { name: string; tags: string[] };
      assert.equal(body.name, name);
      assert.ok(body.tags.every((tag) => tag === "latest"), JSON.stringify(body));
    });
  }
});

describe("absolute paths, raw backslashes and raw NUL bytes in the request target", () => {
  hostile("GET /v2//<absolute path>/tags/list answers 400 NAME_INVALID", async () => {
    await expectCleanError(await raw("GET", `/v2//etc/${escapee}/tags/list`), 400, "NAME_INVALID");
  });
  hostile("PUT /v2//<absolute path>/manifests/latest answers 400 NAME_INVALID", async () => {
    await expectCleanError(await raw("PUT", `/v2//${escapee}/manifests/latest`, { body: image.bytes, headers: { "Content-Type": OCI_MANIFEST } }), 400, "NAME_INVALID");
  });
  hostile("POST /v2/<name>/blobs/uploads/ with a raw backslash traversal answers 400 NAME_INVALID", async () => {
    await expectCleanError(await raw("POST", `/v2/hard\\..\\..\\..\\${escapee}/blobs/uploads/`), 400, "NAME_INVALID");
  });
  hostile("PUT /v2/<name>/manifests/<tag> with a raw backslash in the tag answers 400 TAG_INVALID", async () => {
    await expectCleanError(await raw("PUT", `/v2/${name}/manifests/..\\..\\${escapee}`, { body: image.bytes, headers: { "Content-Type": OCI_MANIFEST } }), 400, "TAG_INVALID");
  });
  hostile("a raw NUL byte in the request target is refused by the HTTP parser with 400, and the connection closed", async () => {
    const result = await exchange(berth.url, [httpRequest("PUT", `/v2/${name}/manifests/x\0${escapee}`, [["Host", "x"], ["Content-Length", "2"]], Buffer.from("{}"))]);
    expectParserRefusal(result, 400);
  });
  hostile("an absolute-form request target is routed by its path, as HTTP/1.1 requires, and its authority ignored", async () => {
    const result = await exchange(berth.url, [httpRequest("GET", `http://evil.example/v2/${name}/tags/list`, [["Host", "x"], ["Connection", "close"]])]);
    assert.equal(result.responses[0]?.status, 200, result.raw);
    assert.deepEqual(JSON.parse(result.responses[0]!.body.toString()), { name, tags: ["latest"] });
    const traversal = await exchange(berth.url, [
      httpRequest("PUT", `http://evil.example/v2/${"%2e%2e%2f".repeat(8)}${escapee}/manifests/latest`, [["Host", "x"], ["Connection", "close"], ["Content-Type", OCI_MANIFEST], ["Content-Length", String(image.bytes.length)]], image.bytes),
    ]);
    expectRawError(traversal.responses[0], 400, "NAME_INVALID");
    const star = await exchange(berth.url, [httpRequest("OPTIONS", "*", [["Host", "x"], ["Connection", "close"]])]);
    expectRawError(star.responses[0], 404, "NOT_FOUND");
  });
});

// ---------------------------------------------------------------------------------------------
// Upload state tokens

describe("upload state tokens", () => {
  /** An upload in `name` with its real token, and a PATCH helper that reports what storage holds. */
  async function upload(): Promise<{ uuid: string; token: string; location: string; path: string }> {
    const { location, uuid } = await client.startUpload(name);
    const token = new URL(location).searchParams.get("_state")!;
    return { uuid, token, location, path: `/v2/${name}/blobs/uploads/${uuid}` };
  }

  /** PATCH, PUT and GET with `token` all answer 400 BLOB_UPLOAD_INVALID; nothing is written. */
  async function refused(path: string, token: string): Promise<void> {
    const before = await snapshotTree(workDir);
    const state = `_state=${encodeURIComponent(token)}`;
    await expectCleanError(await raw("PATCH", `${path}?${state}`, { body: randomBlob(16), headers: { "Content-Range": "0-15" } }), 400, "BLOB_UPLOAD_INVALID");
    await expectCleanError(await raw("PUT", `${path}?${state}&digest=${blobDigest}`, { body: blob }), 400, "BLOB_UPLOAD_INVALID");
    await expectCleanError(await raw("GET", `${path}?${state}`), 400, "BLOB_UPLOAD_INVALID");
    await expectCleanError(await raw("DELETE", `${path}?${state}`), 400, "BLOB_UPLOAD_INVALID");
    await assertTreeUnchanged(before, workDir);
  }

  /** Replaces the character at `index` by another of the base64url alphabet. */
  function flip(text: string, index: number): string {
    const i = index < 0 ? text.length + index : index;
    const replacement = text[i] === "A" ? "B" : "A";
    return text.slice(0, i) + replacement + text.slice(i + 1);
  }

  test("the genuine token works (the cases below differ from it in one way each)", async () => {
    const { token, path, location } = await upload();
    assert.equal((await raw("GET", `${path}?_state=${token}`)).status, 204);
    assert.equal(signUploadState(SECRET, name, path.split("/").pop()!, JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString())[2]), token, "the test signs tokens as berth does");
    assert.equal((await client.send(location, { method: "DELETE" })).status, 204);
  });

  test("a byte flipped in the payload: 400 BLOB_UPLOAD_INVALID, nothing written", async () => {
    const { token, path } = await upload();
    const [payload, mac] = token.split(".") as [string, string];
    for (const index of [0, Math.floor(payload.length / 2), -1]) await refused(path, `${flip(payload, index)}.${mac}`);
  });

  test("a byte flipped in the MAC, including the last character's unused bits: 400 BLOB_UPLOAD_INVALID", async () => {
    const { token, path } = await upload();
    const [payload, mac] = token.split(".") as [string, string];
    for (const index of [0, 20, -1]) await refused(path, `${payload}.${flip(mac, index)}`);
    // The MAC's last character carries 4 bits and 2 unused ones; another spelling of the same bytes
    // is still not the token berth issued.
    const last = mac.at(-1)!;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const sameBits = alphabet[(alphabet.indexOf(last) & ~3) | ((alphabet.indexOf(last) + 1) & 3)]!;
    await refused(path, `${payload}.${mac.slice(0, -1)}${sameBits}`);
    await refused(path, `${payload}.${mac}=`);
    await refused(path, `${payload}.${mac}AA`);
  });

  test("a truncated token: 400 BLOB_UPLOAD_INVALID", async () => {
    const { token, path } = await upload();
    const [payload, mac] = token.split(".") as [string, string];
    for (const truncated of [payload, `${payload}.`, `${payload}.${mac.slice(0, -1)}`, token.slice(0, token.length >> 1), `.${mac}`, ".", "", `${payload.slice(0, -1)}.${mac}`]) {
      await refused(path, truncated);
    }
  });

  test("a token replayed in another repository: 400 BLOB_UPLOAD_INVALID, nothing written", async () => {
    const { token, uuid } = await upload();
    await refused(`/v2/${other}/blobs/uploads/${uuid}`, token);
  });

  test("a token replayed for another upload in the same repository: 400 BLOB_UPLOAD_INVALID, that upload untouched", async () => {
    const first = await upload();
    const second = await upload();
    await refused(second.path, first.token);
    assert.equal((await client.send(second.location)).headers.get("range"), "0-0");
  });

  test("a token signed with another secret, or for another name, or without a number for startedAt: 400 BLOB_UPLOAD_INVALID", async () => {
    const { uuid, path } = await upload();
    const now = Date.now();
    await refused(path, signUploadState("another-secret", name, uuid, now));
    await refused(path, signUploadState(SECRET, other, uuid, now));
    await refused(path, signUploadState(SECRET, name, `${uuid}x`, now));
    for (const payload of [[name, uuid, "now"], [name, uuid, null], [name, uuid], { name, id: uuid }, "x", [name, uuid, now, 1]]) {
      await refused(path, signUploadPayload(SECRET, payload));
    }
  });

  test("a token whose start no berth issues (a fraction, before 1970, a year ahead, past a Date's range): 400 BLOB_UPLOAD_INVALID, and an hour ahead is taken", async () => {
    // Found by the upload state fuzzer: a start of 1e308 was taken, became an invalid Date, and the
    // upload's next Location carried a token no node would take.
    const { uuid, path, location } = await upload();
    const now = Date.now();
    for (const startedAt of [now - 0.5, -1, now + 365 * 24 * HOUR, 1e308]) await refused(path, signUploadState(SECRET, name, uuid, startedAt));
    const ahead = signUploadState(SECRET, name, uuid, now + HOUR);
    const response = await raw("PATCH", `${path}?_state=${ahead}`, { body: randomBlob(16) });
    assert.equal(response.status, 202);
    const next = new URL(response.headers.get("location")!, "http://x").searchParams.get("_state")!;
    assert.equal((await raw("GET", `${path}?_state=${next}`)).status, 204, "the token it answered with is taken");
    assert.equal((await client.send(location, { method: "DELETE" })).status, 204);
  });

  test("an expired token (older than storage.maintenance.uploadpurging.age, 168h by default): 400 BLOB_UPLOAD_INVALID", async () => {
    const { uuid, path, location } = await upload();
    const expired = signUploadState(SECRET, name, uuid, Date.now() - 168 * HOUR - 60_000);
    await refused(path, expired);
    const entry = await expectCleanError(await raw("GET", `${path}?_state=${expired}`), 400, "BLOB_UPLOAD_INVALID");
    assert.match(entry.message, /expired/);
    // Just inside the age, the same construction is accepted.
    const fresh = signUploadState(SECRET, name, uuid, Date.now() - 167 * HOUR);
    const response = await raw("PATCH", `${path}?_state=${fresh}`, { body: randomBlob(16) });
    assert.equal(response.status, 202);
    assert.equal(response.headers.get("range"), "0-15");
    assert.equal((await client.send(location, { method: "DELETE" })).status, 204);
  });
});

// ---------------------------------------------------------------------------------------------
// Framing and sizes, over raw sockets

describe("framing and sizes", () => {
  hostile("Content-Length and Transfer-Encoding together: Node's parser answers 400 and closes; nothing is written", async () => {
    const body = Buffer.from(`${blob.length.toString(16)}\r\n${blob.toString("latin1")}\r\n0\r\n\r\n`, "latin1");
    const result = await exchange(berth.url, [
      httpRequest("POST", `/v2/${name}/blobs/uploads/?digest=${blobDigest}`, [["Host", "x"], ["Content-Length", String(blob.length)], ["Transfer-Encoding", "chunked"]], body),
    ]);
    expectParserRefusal(result, 400);
  });

  hostile("two different Content-Length headers: 400 from the parser, nothing written", async () => {
    const result = await exchange(berth.url, [httpRequest("PUT", `/v2/${name}/manifests/twocl`, [["Host", "x"], ["Content-Length", "2"], ["Content-Length", "3"]], Buffer.from("{}x"))]);
    expectParserRefusal(result, 400);
  });

  for (const length of ["-1", "1e3", "0x10", "99999999999999999999999"]) {
    hostile(`Content-Length: ${length} is refused by the parser with 400`, async () => {
      const result = await exchange(berth.url, [httpRequest("PUT", `/v2/${name}/manifests/badcl`, [["Host", "x"], ["Content-Length", length]], Buffer.from("{}"))]);
      expectParserRefusal(result, 400);
    });
  }

  hostile("Transfer-Encoding other than chunked is refused by the parser with 400", async () => {
    const result = await exchange(berth.url, [httpRequest("PUT", `/v2/${name}/manifests/te`, [["Host", "x"], ["Transfer-Encoding", "gzip"]], Buffer.from("{}"))]);
    expectParserRefusal(result, 400);
  });

  hostile("a manifest PUT whose body ends before its Content-Length (client hangs up) writes nothing", async () => {
    const result = await exchange(
      berth.url,
      [httpRequest("PUT", `/v2/${name}/manifests/cut`, [["Host", "x"], ["Content-Type", OCI_MANIFEST], ["Content-Length", String(image.bytes.length + 100)]], image.bytes)],
      { end: true },
    );
    assert.equal(result.closedByServer, true);
    for (const response of result.responses) assert.ok(response.status === 400, `a refusal at most: ${result.raw}`);
    await expectCleanError(await client.fetch(`/v2/${name}/manifests/cut`), 404, "MANIFEST_UNKNOWN");
  });

  test("a monolithic blob POST whose body ends before its Content-Length stores no blob and leaves no upload", async () => {
    const before = await snapshotTree(workDir);
    const bytes = randomBlob(5000);
    const digest = digestOf(bytes);
    const result = await exchange(
      berth.url,
      [httpRequest("POST", `/v2/${name}/blobs/uploads/?digest=${digest}`, [["Host", "x"], ["Content-Length", String(bytes.length)]], bytes.subarray(0, 1000))],
      { end: true },
    );
    assert.equal(result.closedByServer, true);
    assert.equal((await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 404);
    const after = await snapshotTree(workDir);
    const added = [...after.entries()].filter(([key, kind]) => !before.has(key) && kind !== "dir");
    assert.deepEqual(added, [], "no file left behind");
    await assertNothingEscaped();
    await assertAlive();
  });

  test("a body longer than its Content-Length: the declared bytes are the request, the rest is refused as the next one", async () => {
    const bytes = randomBlob(64);
    const declared = bytes.subarray(0, 40);
    const digest = digestOf(declared);
    const junk = Buffer.from("this is not a request\r\n\r\n");
    // The surplus arrives a moment later, as the next request would: Node's parser refuses junk at
    // once, dropping an answer still in progress (the next test covers that case).
    const result = await exchange(berth.url, [
      httpRequest("POST", `/v2/${name}/blobs/uploads/?digest=${digest}`, [["Host", "x"], ["Content-Length", String(declared.length)]], declared),
      300,
      Buffer.concat([bytes.subarray(declared.length), junk]),
    ]);
    assert.equal(result.responses[0]?.status, 201, result.raw);
    assert.equal(result.responses[1]?.status, 400, "the leftover bytes are not a request");
    assert.equal(result.closedByServer, true);
    const { response, bytes: stored } = await client.get(`/v2/${name}/blobs/${digest}`);
    assert.equal(response.status, 200);
    assert.deepEqual(stored, declared, "exactly the declared bytes were stored");
    assert.equal((await client.send(`/v2/${name}/blobs/${digestOf(bytes)}`, { method: "HEAD" })).status, 404);
  });

  test("a body with junk right behind its Content-Length: never more than the declared bytes are stored", async () => {
    const bytes = randomBlob(64);
    const declared = bytes.subarray(0, 40);
    const result = await exchange(berth.url, [
      httpRequest("POST", `/v2/${name}/blobs/uploads/?digest=${digestOf(declared)}`, [["Host", "x"], ["Content-Length", String(declared.length)]], Buffer.concat([bytes, Buffer.from("junk\r\n\r\n")])),
    ]);
    assert.equal(result.closedByServer, true);
    assert.ok(result.responses.length >= 1 && [201, 400].includes(result.responses[0]!.status), result.raw);
    assert.equal((await client.send(`/v2/${name}/blobs/${digestOf(bytes)}`, { method: "HEAD" })).status, 404);
    const stored = await client.get(`/v2/${name}/blobs/${digestOf(declared)}`);
    if (stored.response.status === 200) assert.deepEqual(stored.bytes, declared);
    await assertAlive();
  });

  test("a manifest longer than its Content-Length: the declared bytes are stored exactly", async () => {
    const pushed = await client.pushImage(uniqueName("framing"), "v1");
    const target = uniqueName("framing");
    await client.pushBlob(target, pushed.config);
    for (const layer of pushed.layers) await client.pushBlob(target, layer);
    const result = await exchange(berth.url, [
      httpRequest("PUT", `/v2/${target}/manifests/v1`, [["Host", "x"], ["Content-Type", OCI_MANIFEST], ["Content-Length", String(pushed.bytes.length)]], pushed.bytes),
      300,
      Buffer.from("\n\n{garbage}\r\n\r\n"),
    ]);
    assert.equal(result.responses[0]?.status, 201, result.raw);
    assert.equal(result.responses[0]?.headers["docker-content-digest"], pushed.digest);
    const { bytes } = await client.get(`/v2/${target}/manifests/v1`, { Accept: OCI_MANIFEST });
    assert.deepEqual(bytes, pushed.bytes);
  });

  hostile("a manifest declared larger than 4 MiB is refused at once with 413, before its body is sent", async () => {
    const result = await exchange(
      berth.url,
      [httpRequest("PUT", `/v2/${name}/manifests/huge`, [["Host", "x"], ["Content-Type", OCI_MANIFEST], ["Content-Length", String(5 * 1024 * 1024)]], Buffer.from('{"schemaVersion":2'))],
      { responses: 1, timeoutMs: 5000 },
    );
    assert.equal(result.timedOut, false, "answered without waiting for the body");
    expectRawError(result.responses[0], 413, "MANIFEST_TOO_LARGE");
  });

  for (const [connection, size] of [["close", 5], ["close", 40], ["keep-alive", 40]] as const) {
    hostile(`a ${size} MiB manifest written whole (Connection: ${connection}) by a client that reads only afterwards gets its 413`, async () => {
      // As a simple client does: write the request, body and all, then read the answer.
      const length = size * 1024 * 1024;
      const headers: Array<[string, string]> = [["Host", "x"], ["Content-Type", OCI_MANIFEST], ["Content-Length", String(length)], ["Connection", connection]];
      const result = await exchange(berth.url, [httpRequest("PUT", `/v2/${name}/manifests/big`, headers, Buffer.alloc(length, 0x20))], { end: true, timeoutMs: 30_000 });
      assert.ok(result.responses[0], `no answer (socket error ${result.error})`);
      expectRawError(result.responses[0], 413, "MANIFEST_TOO_LARGE");
      assert.equal(result.error, undefined, "the body was taken, not refused with a reset");
    });
  }

  hostile("a manifest declared at 2^53 bytes is refused with 413 (or by the parser), never read", async () => {
    const result = await exchange(
      berth.url,
      [httpRequest("PUT", `/v2/${name}/manifests/huge`, [["Host", "x"], ["Content-Type", OCI_MANIFEST], ["Content-Length", "9007199254740993"]], Buffer.from("{}"))],
      { responses: 1, timeoutMs: 5000 },
    );
    assert.equal(result.timedOut, false);
    const answer = result.responses[0]!;
    if (answer.headers["docker-distribution-api-version"]) expectRawError(answer, 413, "MANIFEST_TOO_LARGE");
    else assert.equal(answer.status, 400);
  });

  hostile("request headers over Node's 16 KiB limit: 431 from the parser, the connection closed, the server alive", async () => {
    const result = await exchange(berth.url, [httpRequest("GET", "/v2/", [["Host", "x"], ["X-Big", "b".repeat(20 * 1024)]])]);
    expectParserRefusal(result, 431);
  });

  hostile("a request target over 16 KiB: 431 from the parser", async () => {
    const result = await exchange(berth.url, [httpRequest("GET", `/v2/${"a/".repeat(10_000)}tags/list`, [["Host", "x"]])]);
    expectParserRefusal(result, 431);
  });

  hostile("headers sent in many small pieces still count toward the limit: 431", async () => {
    const head = Buffer.from(`GET /v2/ HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 600 }, (_, i) => `X-H${i}: ${"v".repeat(30)}\r\n`).join("")}\r\n`);
    const parts: Array<Buffer | number> = [];
    for (let i = 0; i < head.length; i += 2048) parts.push(head.subarray(i, i + 2048), 5);
    expectParserRefusal(await exchange(berth.url, parts), 431);
  });

  hostile("methods and protocol lines Node does not accept are refused by the parser, the server stays up", async () => {
    for (const line of ["FOO /v2/ HTTP/1.1", "get /v2/ HTTP/1.1", "GET /v2/ HTTP/9.9", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"]) {
      const result = await exchange(berth.url, [Buffer.from(`${line}\r\nHost: x\r\n\r\n`, "latin1")], { timeoutMs: 5000 });
      assert.equal(result.timedOut, false, `${JSON.stringify(line)} is answered or closed`);
      for (const response of result.responses) assert.ok([400, 505].includes(response.status), `${JSON.stringify(line)}: ${result.raw}`);
      assert.deepEqual(leaks(result.raw, [workDir]), []);
    }
  });

  hostile("CONNECT is not served: the connection is closed without an answer", async () => {
    const result = await exchange(berth.url, [httpRequest("CONNECT", "127.0.0.1:22", [["Host", "127.0.0.1:22"]])], { timeoutMs: 5000 });
    assert.equal(result.timedOut, false);
    assert.ok(result.responses.every((response) => response.status >= 400), result.raw);
  });
});

// ---------------------------------------------------------------------------------------------
// Absurd Range and n=

describe("absurd Range and n=", () => {
  for (const range of ["bytes=-0", "bytes=5-1", "bytes=99999999999999999999-", "bytes=0-99999999999999999999", "bytes=abc", "bytes=", "bytes=-", "bytes=--1", "bytes=1-2,3-4", "bytes=1e2-", "bytes=0x10-"]) {
    hostile(`GET /v2/<name>/blobs/<digest> with Range: ${range} answers 416 RANGE_INVALID with Content-Range: bytes */size`, async () => {
      const response = await raw("GET", `/v2/${name}/blobs/${blobDigest}`, { headers: { Range: range } });
      assert.equal(response.headers.get("content-range"), `bytes */${blob.length}`);
      await expectCleanError(response, 416, "RANGE_INVALID");
      const head = await raw("HEAD", `/v2/${name}/blobs/${blobDigest}`, { headers: { Range: range } });
      assert.equal(head.status, 416);
    });
  }

  for (const contentRange of ["0-99999999999999999999", "-1-5", "5-1", "bytes 0-5/abc", "0-", "abc"]) {
    hostile(`PATCH <location> with Content-Range: ${contentRange} is refused and appends nothing`, async () => {
      const { location } = await client.startUpload(name);
      const before = await snapshotTree(workDir);
      const url = new URL(location);
      const response = await raw("PATCH", url.pathname + url.search, { body: randomBlob(6), headers: { "Content-Range": contentRange } });
      assert.ok([400, 416].includes(response.status), `${response.status}`);
      await expectCleanError(response, response.status, response.status === 416 ? "RANGE_INVALID" : "SIZE_INVALID");
      await assertTreeUnchanged(before, workDir);
      assert.equal((await client.send(location)).headers.get("range"), "0-0");
      assert.equal((await client.send(location, { method: "DELETE" })).status, 204);
    });
  }

  for (const [what, path] of [
    ["tags", `/v2/${name}/tags/list`],
    ["catalog", "/v2/_catalog"],
  ] as const) {
    hostile(`GET ${what} with n=999999999999999 (huge) answers 200 with a page of at most 10000`, async () => {
      const response = await raw("GET", `${path}?n=999999999999999`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("link"), null, "everything fits in the clamped page");
    });
    for (const n of ["-1", "-0", "99999999999999999999", "1e3", "abc", "0x10", "1.5", "%00", "9007199254740993000"]) {
      hostile(`GET ${what} with n=${n} answers 400 PAGINATION_NUMBER_INVALID`, async () => {
        await expectCleanError(await raw("GET", `${path}?n=${n}`), 400, "PAGINATION_NUMBER_INVALID");
      });
    }
  }

  test("GET tags with n=999999999999999 on 10001 tags answers the first 10000 and a Link to the rest", async () => {
    const many = uniqueName("many");
    const pushed = await client.pushImage(many, "t00000");
    // Tags made straight in storage (the listing reads only their directories): pushing 10001
    // manifests would take the suite's time.
    const tagsDir = join(registryTree(berth.root!), "repositories", many, "_manifests", "tags");
    const names = Array.from({ length: 10_001 }, (_, i) => `t${String(i).padStart(5, "0")}`);
    for (let i = 0; i < names.length; i += 500) await Promise.all(names.slice(i, i + 500).map((tag) => mkdir(join(tagsDir, tag), { recursive: true })));
    assert.ok(pushed.digest);
    const response = await client.send(`/v2/${many}/tags/list?n=999999999999999`);
    assert.equal(response.status, 200);
    const body = (await response.json()) as { tags: string[] };
    assert.equal(body.tags.length, 10_000);
    assert.equal(body.tags.at(-1), "t09999");
    const link = nextLink(response);
    assert.ok(link, "a Link to the next page");
    assert.match(link, /n=10000&last=t09999$/);
    const rest = (await (await client.send(link)).json()) as { tags: string[] };
    assert.deepEqual(rest.tags, ["t10000"]);
    await rm(join(registryTree(berth.root!), "repositories", many), { recursive: true, force: true });
  });
});

// ---------------------------------------------------------------------------------------------
// Internal errors

describe("internal errors answer 500 UNKNOWN without detail", () => {
  test("a tag whose link is a directory (EISDIR): 500 UNKNOWN, no path, no errno, no stack", async () => {
    const target = uniqueName("broken");
    await client.pushImage(target, "ok");
    const current = join(registryTree(berth.root!), "repositories", target, "_manifests", "tags", "bad", "current");
    await mkdir(join(current, "link"), { recursive: true });
    try {
      const response = await client.fetch(`/v2/${target}/manifests/bad`);
      const text = await response.clone().text();
      if (response.status === 500) {
        const entry = await expectCleanError(response, 500, "UNKNOWN");
        assert.equal(entry.detail, undefined);
      } else {
        // Treating the broken tag as unknown is as good.
        await expectCleanError(response, 404, "MANIFEST_UNKNOWN");
      }
      assert.deepEqual(leaks(text, [workDir]), []);
      const head = await client.fetch(`/v2/${target}/manifests/bad`, { method: "HEAD" });
      assert.equal(await head.text(), "");
    } finally {
      await rm(join(current, ".."), { recursive: true, force: true });
    }
  });

  test("an upload whose startedat is a directory: the answer leaks nothing", async () => {
    const { location, uuid } = await client.startUpload(name);
    const startedAt = join(registryTree(berth.root!), "repositories", name, "_uploads", uuid, "startedat");
    await rm(startedAt);
    await mkdir(startedAt);
    try {
      const response = await client.fetch(location, { method: "PATCH", body: randomBlob(8) });
      const text = await response.text();
      assert.ok([404, 500].includes(response.status), `${response.status} ${text}`);
      assert.deepEqual(leaks(text, [workDir]), []);
      assert.equal(errorBodyProblem(Buffer.from(text), response.headers.get("content-type") ?? undefined), undefined);
    } finally {
      await rm(join(startedAt, ".."), { recursive: true, force: true });
    }
  });

  test(
    "a manifest naming one layer 27000 times is answered without exhausting file descriptors (no 500 EMFILE)",
    async () => {
      const target = uniqueName("fanout");
      const config = randomBlob();
      const layer = randomBlob();
      await client.pushBlob(target, config);
      await client.pushBlob(target, layer);
      const manifest = json({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: descriptorOf("application/vnd.oci.image.config.v1+json", config),
        layers: Array.from({ length: 27_000 }, () => descriptorOf("application/vnd.oci.image.layer.v1.tar+gzip", layer)),
      });
      assert.ok(manifest.length <= 4 * 1024 * 1024);
      const response = await client.putManifest(target, "fanout", manifest, OCI_MANIFEST);
      assert.equal(response.status, 201, await response.clone().text());
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Concurrent requests on the same content

describe("concurrent requests on the same content never answer 500", () => {


  /** Runs `round` `times` times, each round's requests at once; fails listing any 500. */
  async function noInternalErrors(times: number, round: () => Array<Promise<Response>>): Promise<void> {
    const statuses: number[] = [];
    for (let i = 0; i < times; i++) for (const response of await Promise.all(round())) statuses.push(response.status);
    assert.equal(statuses.filter((status) => status === 500).length, 0, `statuses: ${statuses.join(" ")}`);
  }

  test("DELETE of a blob racing a mount of it and another DELETE", async () => {
    const source = uniqueName("race");
    const target = uniqueName("race");
    const digest = await client.pushBlob(source, randomBlob());
    await noInternalErrors(40, () => [
      client.send(`/v2/${target}/blobs/uploads/?mount=${digest}&from=${source}`, { method: "POST" }),
      client.send(`/v2/${target}/blobs/${digest}`, { method: "DELETE" }),
      client.send(`/v2/${target}/blobs/${digest}`, { method: "DELETE" }),
    ]);
  });

  test("PUT of a manifest racing DELETE of it by digest and by tag", async () => {
    const target = uniqueName("race");
    const pushed = await client.pushImage(target, "t");
    await noInternalErrors(40, () => [
      client.send(`/v2/${target}/manifests/t`, { method: "PUT", headers: { "Content-Type": pushed.mediaType }, body: pushed.bytes }),
      client.send(`/v2/${target}/manifests/${pushed.digest}`, { method: "DELETE" }),
      client.send(`/v2/${target}/manifests/t`, { method: "DELETE" }),
      client.send(`/v2/${target}/manifests/t`),
    ]);
  });

  test("PATCH, PUT, GET and DELETE of one upload at once", async () => {
    const target = uniqueName("race");
    const bytes = randomBlob(2000);
    for (let i = 0; i < 20; i++) {
      const { location } = await client.startUpload(target);
      await noInternalErrors(1, () => [
        client.send(location, { method: "PATCH", body: bytes }),
        client.send(withQuery(location, { digest: digestOf(bytes) }), { method: "PUT", body: bytes }),
        client.send(location, { method: "DELETE" }),
        client.send(location),
      ]);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Servers with their own configuration

function configWith(extra: { http?: string; log?: string; storage?: string }): string {
  return testConfig({ ...extra, secret: SECRET });
}

describe("upload state tokens expire with storage.maintenance.uploadpurging.age", () => {
  let short: BerthProcess;
  let shortClient: RegistryClient;

  before(async () => {
    // Purging off, so only the token's age can refuse the upload (the purger would delete it first).
    short = await startBerth({ configYaml: configWith({ storage: "  maintenance:\n    uploadpurging:\n      enabled: false\n      age: 1s" }) });
    shortClient = new RegistryClient(short.url);
  });

  after(async () => {
    await short.stop();
  });

  test("a token older than age: 1s is refused with 400 BLOB_UPLOAD_INVALID and nothing is appended; a fresh one works", async () => {
    const target = uniqueName("expiry");
    const { location } = await shortClient.startUpload(target);
    assert.equal((await shortClient.send(location)).status, 204, "fresh: accepted");
    await new Promise((resolve) => setTimeout(resolve, 1300));
    const before = await snapshotTree(dirname(short.root!));
    const entry = await expectCleanError(await shortClient.fetch(location, { method: "PATCH", body: randomBlob(10) }), 400, "BLOB_UPLOAD_INVALID");
    assert.match(entry.message, /expired/);
    await expectCleanError(await shortClient.fetch(withQuery(location, { digest: digestOf(Buffer.alloc(0)) }), { method: "PUT" }), 400, "BLOB_UPLOAD_INVALID");
    await assertTreeUnchanged(before, dirname(short.root!));
    const fresh = await shortClient.startUpload(target);
    assert.equal((await shortClient.patchChunk(fresh.location, randomBlob(10), 0)).status, 202);
  });
});

describe("slow clients (http.timeout.readheader: 1s, idle: 1s, inactivity: 2s)", () => {
  let slow: BerthProcess;
  let slowClient: RegistryClient;

  before(async () => {
    slow = await startBerth({ configYaml: configWith({ http: "  timeout:\n    readheader: 1s\n    idle: 1s\n    inactivity: 2s" }) });
    slowClient = new RegistryClient(slow.url);
  });

  after(async () => {
    await slow.stop();
  });

  test("40 connections sending headers a byte at a time (slowloris) are cut with 408 while normal requests are served", async () => {
    const drip = (): Promise<Exchange> => {
      const head = Buffer.from(`GET /v2/ HTTP/1.1\r\nHost: x\r\n${"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(3)}\r\n`);
      const parts: Array<Buffer | number> = [];
      for (const byte of head) parts.push(Buffer.from([byte]), 100);
      return exchange(slow.url, parts, { timeoutMs: 8000 });
    };
    const started = Date.now();
    const slowOnes = Array.from({ length: 40 }, drip);
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const response = await slowClient.send("/v2/");
      assert.equal(response.status, 200);
      assert.ok(Date.now() - t0 < 2000, `a normal request took ${Date.now() - t0} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const results = await Promise.all(slowOnes);
    for (const result of results) {
      assert.equal(result.closedByServer, true, "the server closed the slow connection");
      assert.ok(result.ms < 4000, `closed after ${result.ms} ms`);
      assert.equal(result.responses[0]?.status, 408, result.raw);
    }
    assert.ok(Date.now() - started < 6000);
    assert.equal(slow.child.exitCode, null);
  });

  test("a connection that sends nothing is closed after the header timeout", async () => {
    const result = await exchange(slow.url, [], { timeoutMs: 6000 });
    assert.equal(result.closedByServer, true);
    assert.ok(result.ms >= 900 && result.ms < 4000, `closed after ${result.ms} ms`);
  });

  test("a kept-alive connection is closed after the idle timeout", async () => {
    const result = await exchange(slow.url, [httpRequest("GET", "/v2/", [["Host", "x"]])], { timeoutMs: 6000 });
    assert.equal(result.responses[0]?.status, 200);
    assert.equal(result.closedByServer, true);
    assert.ok(result.ms >= 900 && result.ms < 4000, `closed after ${result.ms} ms`);
  });

  test("a body that stalls is cut after the inactivity timeout, and the upload resumes from what arrived", async () => {
    const target = uniqueName("stall");
    const { location } = await slowClient.startUpload(target);
    const url = new URL(location);
    const bytes = randomBlob(1000);
    const result = await exchange(
      slow.url,
      [httpRequest("PATCH", url.pathname + url.search, [["Host", "x"], ["Content-Type", "application/octet-stream"], ["Content-Length", "1000"]], bytes.subarray(0, 100))],
      { timeoutMs: 8000 },
    );
    assert.equal(result.closedByServer, true, "the server cut the stalled body");
    assert.ok(result.ms >= 1900 && result.ms < 6000, `cut after ${result.ms} ms`);
    // The upload holds what arrived (or nothing); either way it continues from its Range.
    // Fresh connections from here: a pooled one may be the server's to close after its 1 s idle timeout.
    const status = await rawRequest(slow.url, "GET", relative(location));
    assert.equal(status.status, 204);
    const range = status.headers.get("range")!;
    const have = range === "0-0" ? 0 : Number(range.split("-")[1]) + 1;
    assert.ok(have === 0 || have === 100, `Range ${range}`);
    const rest = await rawRequest(slow.url, "PATCH", relative(location), {
      body: bytes.subarray(have),
      headers: { "Content-Range": `${have}-${bytes.length - 1}`, "Content-Type": "application/octet-stream" },
    });
    assert.equal(rest.status, 202, await rest.clone().text());
    const done = await rawRequest(slow.url, "PUT", relative(withQuery(slowClient.url(rest.headers.get("location")!), { digest: digestOf(bytes) })));
    assert.equal(done.status, 201);
  });

  test("a slow but steady upload is not cut: inactivity bounds silence, not the length of a transfer", async () => {
    const target = uniqueName("steady");
    const { location } = await slowClient.startUpload(target);
    const url = new URL(location);
    const bytes = randomBlob(8 * 1024);
    // 8 pieces 400 ms apart: 2.8 s in all, longer than the 2 s inactivity timeout, never silent that long.
    const parts: Array<Buffer | number> = [httpRequest("PATCH", url.pathname + url.search, [["Host", "x"], ["Connection", "close"], ["Content-Length", String(bytes.length)]])];
    for (let offset = 0; offset < bytes.length; offset += 1024) parts.push(bytes.subarray(offset, offset + 1024), 400);
    parts.pop();
    const result = await exchange(slow.url, parts, { timeoutMs: 10_000 });
    assert.ok(result.ms >= 2500, `took ${result.ms} ms`);
    assert.equal(result.responses[0]?.status, 202, result.raw.slice(0, 300));
    assert.equal(result.responses[0]?.headers.range, `0-${bytes.length - 1}`);
    // A fresh connection: a pooled one may be the server's to close after its 1 s idle timeout.
    const done = await rawRequest(slow.url, "PUT", relative(withQuery(slowClient.url(result.responses[0]!.headers.location!), { digest: digestOf(bytes) })));
    assert.equal(done.status, 201);
  });
});

describe("secrets are never logged (log.level debug, access log on)", () => {
  let chatty: BerthProcess;
  let chattyClient: RegistryClient;
  let guarded: BerthProcess;
  const secret = `s3cret-${randomBytes(12).toString("hex")}`;
  const password = `pw-${randomBytes(12).toString("hex")}`;
  const bearer = `tok-${randomBytes(16).toString("hex")}`;
  const basic = Buffer.from(`alice:${password}`).toString("base64");
  const wrongBasic = Buffer.from(`alice:not-${password}`).toString("base64");
  let htpasswdDir: string;

  before(async () => {
    const yaml = configWith({ log: "  level: debug\n  accesslog:\n    disabled: false" }).replace(`secret: ${SECRET}`, `secret: ${secret}`);
    chatty = await startBerth({ configYaml: yaml });
    chattyClient = new RegistryClient(chatty.url);
    // The same with htpasswd authentication, so credentials are actually checked.
    htpasswdDir = await mkdtemp(join(tmpdir(), "berth-htpasswd-"));
    await writeFile(join(htpasswdDir, "htpasswd"), `alice:${bcrypt.hashSync(password, 5)}\n`);
    guarded = await startBerth({ configYaml: `${yaml}auth:\n  htpasswd:\n    realm: hardening\n    path: ${join(htpasswdDir, "htpasswd")}\n` });
  });

  after(async () => {
    await chatty.stop();
    await guarded.stop();
    await rm(htpasswdDir, { recursive: true, force: true });
  });

  test("with htpasswd auth, neither passwords (right or wrong) nor Basic or Bearer credentials appear in the log", async () => {
    const guardedClient = new RegistryClient(guarded.url);
    const target = uniqueName("secret");
    for (const authorization of [`Basic ${basic}`, `Basic ${wrongBasic}`, `Bearer ${bearer}`, `Basic ${Buffer.from(password).toString("base64")}`, `Basic ${password}`]) {
      const headers = { Authorization: authorization };
      await guardedClient.send("/v2/", { headers });
      await guardedClient.send(`/v2/${target}/tags/list`, { headers });
      await guardedClient.send(`/v2/${target}/blobs/uploads/`, { method: "POST", headers });
      await guardedClient.send(`/v2/${target}/manifests/v1`, { method: "PUT", headers: { ...headers, "Content-Type": OCI_MANIFEST }, body: Buffer.from("{}") });
    }
    assert.equal((await guardedClient.send("/v2/", { headers: { Authorization: `Basic ${basic}` } })).status, 200, "the right password is accepted");
    assert.equal((await guardedClient.send("/v2/", { headers: { Authorization: `Basic ${wrongBasic}` } })).status, 401);
    const log = guarded.log();
    assert.match(log, /msg=request|"msg":"request"/, "the access log is on");
    for (const [what, value] of [
      ["http.secret", secret],
      ["the password", password],
      ["the Basic credentials", basic],
      ["the wrong Basic credentials", wrongBasic],
      ["the bearer token", bearer],
    ] as const) {
      assert.equal(log.includes(value), false, `${what} appears in the log`);
    }
    assert.doesNotMatch(log, /authorization/i, "no Authorization header is logged");
  });

  test("neither http.secret nor Authorization credentials appear in the log, whatever the requests", async () => {
    const target = uniqueName("secret");
    const headersList: Array<Record<string, string>> = [{ Authorization: `Basic ${basic}` }, { Authorization: `Bearer ${bearer}` }, { Cookie: `session=${bearer}`, "Proxy-Authorization": `Basic ${basic}` }];
    for (const headers of headersList) {
      await chattyClient.send("/v2/", { headers });
      await chattyClient.send(`/v2/${target}/tags/list`, { headers });
      await chattyClient.send(`/v2/${target}/manifests/nope`, { headers });
      await chattyClient.send(`/v2/Bad/tags/list`, { headers });
      await chattyClient.send(`/v2/${target}/blobs/uploads/`, { method: "POST", headers });
      await chattyClient.send(`/v2/${target}/blobs/uploads/?digest=${digestOf(Buffer.from("x"))}`, { method: "POST", headers, body: Buffer.from("x") });
      await chattyClient.send(`/v2/${target}/manifests/v1`, { method: "PUT", headers: { ...headers, "Content-Type": OCI_MANIFEST }, body: Buffer.from("{not json") });
    }
    // An internal error too: its log entry carries the request, never its credentials.
    const image2 = await chattyClient.pushImage(target, "ok", randomImage());
    const current = join(registryTree(chatty.root!), "repositories", target, "_manifests", "tags", "broken", "current");
    await mkdir(join(current, "link"), { recursive: true });
    await chattyClient.send(`/v2/${target}/manifests/broken`, { headers: { Authorization: `Basic ${basic}` } });
    // A slow-header refusal and a parser refusal, with credentials in the headers.
    await exchange(chatty.url, [httpRequest("GET", "/v2/", [["Host", "x"], ["Authorization", `Bearer ${bearer}`], ["X-Big", "b".repeat(20_000)]])]);
    await exchange(chatty.url, [Buffer.from(`FOO /v2/ HTTP/1.1\r\nAuthorization: Basic ${basic}\r\n\r\n`)]);
    assert.ok(image2.digest);

    const log = chatty.log();
    assert.match(log, /msg=request|"msg":"request"/, "the access log is on");
    for (const [what, value] of [
      ["http.secret", secret],
      ["the password", password],
      ["the Basic credentials", basic],
      ["the bearer token", bearer],
    ] as const) {
      assert.equal(log.includes(value), false, `${what} appears in the log`);
    }
    assert.doesNotMatch(log, /authorization/i, "no Authorization header is logged");
  });
});
