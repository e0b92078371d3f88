/**
 * Upload state tokens fuzzed (test/support/upload-state-fuzz.ts): genuine tokens broken, other
 * uploads' tokens, and payloads signed with the secret that no berth would issue, sent with every
 * upload method to live uploads and to finished or cancelled ones.
 *
 * After each case: the server answers; a token that does not vouch for the upload is refused with
 * BLOB_UPLOAD_INVALID (400) or BLOB_UPLOAD_UNKNOWN (404) and changes nothing (the upload's range is
 * what it was, no blob appears under the digest a refused PUT named, a gone upload's directory is
 * not created again); a token that vouches is served (`GET` the range the model expects, a `PATCH`
 * at that offset accepted), or answered BLOB_UPLOAD_UNKNOWN when its upload is gone; no answer is a
 * 5xx or leaks anything internal.
 *
 * Seeded: BERTH_FUZZ_SEED=<seed> replays a run, BERTH_FUZZ_STATE_CASES sets how many cases (600
 * here; `npm run fuzz:upload-state` runs 20,000).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ERROR_CODES, type ErrorCode } from "../src/errcode/error-codes.js";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { errorBodyProblem, fuzzSeed, leaks, Random } from "./support/fuzz-requests.js";
import { digestOf, randomBlob, RegistryClient } from "./support/registry-client.js";
import { generateTokenCase, type KnownUpload, type TokenCase } from "./support/upload-state-fuzz.js";

const CASES = Number(process.env.BERTH_FUZZ_STATE_CASES ?? 600);
const SECRET = "fuzz-upload-state-secret";
const REFUSALS: ReadonlySet<ErrorCode> = new Set(["BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN"]);

let berth: BerthProcess;
let client: RegistryClient;

before(async () => {
  berth = await startBerth({ configYaml: testConfig({ secret: SECRET }) });
  client = new RegistryClient(berth.url);
});

after(async () => {
  await berth.stop();
});

/** A live upload as the fuzzer models it: its bytes so far. */
interface LiveUpload extends KnownUpload {
  size: number;
}

function stateOf(location: string): string {
  const state = new URL(location, berth.url).searchParams.get("_state");
  assert.ok(state, `Location without _state: ${location}`);
  return state;
}

function startedAtOf(token: string): number {
  const fields = JSON.parse(Buffer.from(token.slice(0, token.indexOf(".")), "base64url").toString("utf8")) as [string, string, number];
  return fields[2];
}

async function openUpload(name: string, bytes: number): Promise<LiveUpload> {
  const post = await client.send(`/v2/${name}/blobs/uploads/`, { method: "POST" });
  assert.equal(post.status, 202);
  let location = post.headers.get("location")!;
  const id = post.headers.get("docker-upload-uuid")!;
  if (bytes > 0) {
    const patch = await client.send(location, { method: "PATCH", headers: { "Content-Type": "application/octet-stream", "Content-Range": `0-${bytes - 1}` }, body: randomBlob(bytes) });
    assert.equal(patch.status, 202);
    location = patch.headers.get("location")!;
  }
  const token = stateOf(location);
  return { name, id, token, startedAt: startedAtOf(token), gone: false, size: bytes };
}

function uploadURL(upload: KnownUpload, stateParams: string[], extra = ""): string {
  const query = [...stateParams.map((value) => `_state=${value}`), ...(extra ? [extra] : [])].join("&");
  return `/v2/${upload.name}/blobs/uploads/${upload.id}${query ? `?${query}` : ""}`;
}

test(`${CASES} hostile upload state tokens: refused unless they vouch for the upload, and nothing changed by a refused one`, async (t) => {
  const seed = fuzzSeed();
  const random = new Random(seed);
  t.diagnostic(`seed ${seed} (replay with BERTH_FUZZ_SEED=${seed}), ${CASES} cases`);

  const live: LiveUpload[] = [await openUpload("fuzz/state-a", 100), await openUpload("fuzz/state-a", 0), await openUpload("fuzz/state-b", 4096)];
  const cancelled = await openUpload("fuzz/state-a", 10);
  assert.equal((await client.send(uploadURL(cancelled, [cancelled.token]), { method: "DELETE" })).status, 204);
  const finished = await openUpload("fuzz/state-b", 0);
  const finishedBytes = randomBlob(321);
  const put = await client.send(uploadURL(finished, [finished.token], `digest=${digestOf(finishedBytes)}`), { method: "PUT", headers: { "Content-Type": "application/octet-stream" }, body: finishedBytes });
  assert.equal(put.status, 201);
  const gone: KnownUpload[] = [{ ...cancelled, gone: true }, { ...finished, gone: true }];
  const uploads: KnownUpload[] = [...live, ...gone];
  const uploadDir = (upload: KnownUpload): string => join(berth.root!, "docker/registry/v2/repositories", upload.name, "_uploads", upload.id);
  const outcomes = new Map<string, number>();
  const started = Date.now();

  for (let i = 0; i < CASES; i++) {
    const target = random.pick(uploads);
    const fuzzCase: TokenCase = generateTokenCase(random, SECRET, target, uploads.filter((u) => u !== target), Date.now());
    const model = live.find((u) => u === target);
    // A vouching token gets the reads and the one write the model can follow; any other token gets every method.
    const method = fuzzCase.vouches ? random.pick(["GET", "GET", "PATCH"]) : random.pick(["GET", "PATCH", "PUT", "DELETE"]);
    const chunk = randomBlob(1 + random.int(2048));
    const digest = digestOf(chunk);
    const fail = (problem: string, detail = ""): never =>
      assert.fail(`${problem}\n  case ${i}: ${method} with ${fuzzCase.description} to ${target.name} ${target.id}${target.gone ? " (gone)" : ""}\n  seed ${seed}: replay with BERTH_FUZZ_SEED=${seed} BERTH_FUZZ_STATE_CASES=${i + 1}${detail ? `\n  ${detail}` : ""}`);

    const headers: Record<string, string> = {};
    let body: Buffer | undefined;
    if (method === "PATCH" || method === "PUT") {
      headers["Content-Type"] = "application/octet-stream";
      body = chunk;
      if (method === "PATCH" && model) headers["Content-Range"] = `${model.size}-${model.size + chunk.length - 1}`;
    }
    const url = uploadURL(target, fuzzCase.stateParams, method === "PUT" ? `digest=${digest}` : "");
    let response: Response;
    try {
      response = await client.send(url, { method, headers, body });
    } catch (err) {
      fail(`no answer: ${(err as Error).message}`, berth.log().slice(-2000));
    }
    const text = await response!.text();
    const found = leaks(`${JSON.stringify([...response!.headers])}\n${text}`, [SECRET]);
    if (found.length > 0) fail(`the answer leaks ${found.join(", ")}`, `${response!.status} ${text.slice(0, 500)}`);
    const status = response!.status;
    let outcome = String(status);

    if (status === 431) {
      // A request target past Node's 16 KiB header limit: refused by the HTTP parser before berth
      // sees it (test/hardening.test.ts), so it can change nothing.
      if (url.length < 16 * 1024) fail(`431 for a request target of ${url.length} bytes`);
      outcome = "431 (parser)";
    } else if (status >= 200 && status < 300) {
      if (!fuzzCase.vouches) fail(`accepted (${status}) with a token that does not vouch for the upload`);
      if (target.gone) fail(`${status} for an upload that is gone`);
      if (method === "GET") {
        if (status !== 204) fail(`GET answered ${status}`);
        const expected = `0-${Math.max(model!.size - 1, 0)}`;
        if (response!.headers.get("range") !== expected) fail(`Range ${response!.headers.get("range")}, the upload holds ${model!.size} bytes`);
      } else {
        if (status !== 202) fail(`PATCH answered ${status}`);
        model!.size += chunk.length;
        if (response!.headers.get("range") !== `0-${model!.size - 1}`) fail(`Range ${response!.headers.get("range")} after a chunk, expected 0-${model!.size - 1}`);
        model!.token = stateOf(response!.headers.get("location")!);
      }
    } else {
      const problem = errorBodyProblem(Buffer.from(text), response!.headers.get("content-type") ?? undefined);
      if (problem) fail(`${status}: ${problem}`, text.slice(0, 300));
      const code = (JSON.parse(text) as { errors: Array<{ code: string }> }).errors[0]!.code as ErrorCode;
      if (!(code in ERROR_CODES) || ERROR_CODES[code].status !== status) fail(`${code} answered ${status}`);
      if (!REFUSALS.has(code)) fail(`refused with ${status} ${code}, not an upload error`, text.slice(0, 300));
      if (fuzzCase.vouches && !target.gone) fail(`a token that vouches for a live upload was refused: ${status} ${code}`, text.slice(0, 300));
      if (target.gone && fuzzCase.vouches && code !== "BLOB_UPLOAD_UNKNOWN") fail(`a gone upload answered ${code}, not BLOB_UPLOAD_UNKNOWN`);
      outcome = `${status} ${code}`;
      // Nothing changed: the upload's bytes, no blob under the refused PUT's digest, a gone upload stays gone.
      if (method === "PUT") {
        const head = await client.send(`/v2/${target.name}/blobs/${digest}`, { method: "HEAD" });
        if (head.status !== 404) fail(`HEAD of the refused PUT's digest answered ${head.status}`);
      }
      if (model && method !== "GET") {
        const check = await client.send(uploadURL(model, [model.token]));
        if (check.status !== 204 || check.headers.get("range") !== `0-${Math.max(model.size - 1, 0)}`) {
          fail(`after a refused ${method} the upload answers ${check.status} ${check.headers.get("range")}, expected 0-${Math.max(model.size - 1, 0)}`);
        }
      }
      if (target.gone && existsSync(uploadDir(target))) fail("a refused request created the gone upload's directory again");
    }
    const key = `${fuzzCase.vouches ? "vouching" : "not vouching"} ${method} → ${outcome}`;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }

  const internalErrors = berth.log().split("\n").filter((line) => line.includes("internal error"));
  assert.deepEqual(internalErrors, [], `internal errors logged (seed ${seed})`);
  // The live uploads still finish, with exactly the bytes the model says they hold.
  for (const upload of live) {
    const status = await client.send(uploadURL(upload, [upload.token]));
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), `0-${Math.max(upload.size - 1, 0)}`);
  }
  t.diagnostic(`${CASES} cases in ${Date.now() - started} ms; answers: ${[...outcomes.entries()].sort().map(([s, n]) => `${s}×${n}`).join(", ")}`);
});
