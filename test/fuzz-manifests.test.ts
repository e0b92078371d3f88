/**
 * Manifest PUTs fuzzed with structure (test/support/manifest-fuzz.ts): valid manifests, indexes and
 * artifacts broken with hostile values. After each the server must be alive; the answer `201` or a
 * registry error with the status its code has in the error table, nothing internal in it; a stored
 * manifest is served back byte for byte under the digest of its bytes; and the repository's tag
 * list and referrers keep answering.
 *
 * Seeded: BERTH_FUZZ_SEED=<seed> replays a run, BERTH_FUZZ_MANIFEST_CASES sets how many cases (250
 * here; `npm run fuzz:manifests` runs 100,000).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ERROR_CODES, type ErrorCode } from "../src/errcode/error-codes.js";
import { startBerth, type BerthProcess } from "./support/berth-process.js";
import { errorBodyProblem, fuzzSeed, leaks, Random } from "./support/fuzz-requests.js";
import { generateManifestCase, type ManifestFuzzTarget } from "./support/manifest-fuzz.js";
import { digestOf, OCI_INDEX, RegistryClient, randomImage } from "./support/registry-client.js";

const CASES = Number(process.env.BERTH_FUZZ_MANIFEST_CASES ?? 250);
/**
 * Past what berth reads of a refused body (src/server/request-body.ts: 16 MiB, then up to 64 MiB
 * while lingering), the connection is cut; a client still uploading (fetch reads no answer before
 * its body is sent) then sees the cut, not the 413.
 */
const READ_OF_REFUSED_BODY = 64 * 1024 * 1024;

let berth: BerthProcess;
let client: RegistryClient;

before(async () => {
  berth = await startBerth();
  client = new RegistryClient(berth.url);
});

after(async () => {
  await berth.stop();
});

async function prepare(): Promise<ManifestFuzzTarget> {
  const name = "fuzz/manifests";
  const image = randomImage({ layers: 1, layerSize: 64 });
  await client.pushImage(name, "base", image);
  const layer = image.layers[0]!;
  return {
    name,
    config: { digest: digestOf(image.config), size: image.config.length },
    layer: { digest: digestOf(layer), size: layer.length },
    manifest: { digest: image.digest, size: image.bytes.length, mediaType: image.mediaType },
  };
}

/** GET /v2/ answers 200 within three tries (the client's pool may first pick the connection that was cut). */
async function answers(): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const response = await client.send("/v2/");
      await response.arrayBuffer();
      if (response.status === 200) return true;
    } catch {
      // a pooled connection the server cut: try again on a new one
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return false;
}

test(`${CASES} hostile manifests: answered 201 or with a registry error, stored ones served back exactly, the repository still listing`, async (t) => {
  const seed = fuzzSeed();
  const random = new Random(seed);
  t.diagnostic(`seed ${seed} (replay with BERTH_FUZZ_SEED=${seed}), ${CASES} cases`);
  const target = await prepare();
  const outcomes = new Map<string, number>();
  const started = Date.now();

  for (let i = 0; i < CASES; i++) {
    const fuzzCase = generateManifestCase(random, target, i);
    const fail = (problem: string, detail = ""): never =>
      assert.fail(`${problem}\n  case ${i}: ${fuzzCase.description}\n  seed ${seed}: replay with BERTH_FUZZ_SEED=${seed} BERTH_FUZZ_MANIFEST_CASES=${i + 1}${detail ? `\n  ${detail}` : ""}`);
    const headers: Record<string, string> = {};
    if (fuzzCase.contentType !== undefined) headers["Content-Type"] = fuzzCase.contentType;
    let response: Response;
    try {
      response = await client.send(`/v2/${target.name}/manifests/${fuzzCase.reference}`, { method: "PUT", headers, body: fuzzCase.body });
    } catch (err) {
      if (fuzzCase.body.length <= READ_OF_REFUSED_BODY) fail(`no answer: ${(err as Error).message}`, berth.log().slice(-2000));
      if (!(await answers())) fail("the server does not answer after cutting a huge body", berth.log().slice(-2000));
      outcomes.set("cut (body over 64 MiB)", (outcomes.get("cut (body over 64 MiB)") ?? 0) + 1);
      continue;
    }
    const text = await response!.text();
    const found = leaks(`${JSON.stringify([...response!.headers])}\n${text}`);
    if (found.length > 0) fail(`the answer leaks ${found.join(", ")}`, `${response!.status} ${text.slice(0, 500)}`);

    if (response!.status === 201) {
      outcomes.set("201", (outcomes.get("201") ?? 0) + 1);
      const algorithm = fuzzCase.reference.startsWith("sha512:") ? "sha512" : "sha256";
      const stored = response!.headers.get("docker-content-digest");
      if (stored !== digestOf(fuzzCase.body, algorithm)) fail(`201 under ${stored}, not the digest of the bytes`);
      const back = await client.get(`/v2/${target.name}/manifests/${stored}`, { Accept: "*/*" });
      if (back.response.status !== 200 || !back.bytes.equals(fuzzCase.body)) fail(`GET of the stored manifest: ${back.response.status}, ${back.bytes.length} bytes for ${fuzzCase.body.length}`);
      continue;
    }
    const problem = errorBodyProblem(Buffer.from(text), response!.headers.get("content-type") ?? undefined);
    if (problem) fail(`${response!.status}: ${problem}`, text.slice(0, 300));
    const code = (JSON.parse(text) as { errors: Array<{ code: string }> }).errors[0]!.code as ErrorCode;
    if (!(code in ERROR_CODES)) fail(`unknown error code ${code}`);
    if (ERROR_CODES[code].status !== response!.status) fail(`${code} answered ${response!.status}, the table says ${ERROR_CODES[code].status}`);
    if (code === "UNKNOWN") fail("500 UNKNOWN", berth.log().split("\n").filter((line) => line.includes("internal error")).slice(-1)[0]?.slice(0, 3000));
    const key = `${response!.status} ${code}`;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);

    if (i % 50 === 49) {
      const tags = await client.send(`/v2/${target.name}/tags/list`);
      if (tags.status !== 200) fail(`tags/list answered ${tags.status}`);
      await tags.arrayBuffer();
      const referrers = await client.send(`/v2/${target.name}/referrers/${target.manifest.digest}`);
      if (referrers.status !== 200 || !(referrers.headers.get("content-type") ?? "").startsWith(OCI_INDEX)) fail(`referrers answered ${referrers.status}`);
      await referrers.arrayBuffer();
    }
  }

  const internalErrors = berth.log().split("\n").filter((line) => line.includes("internal error"));
  assert.deepEqual(internalErrors, [], `internal errors logged (seed ${seed})`);
  assert.equal((await client.send("/v2/")).status, 200);
  t.diagnostic(`${CASES} cases in ${Date.now() - started} ms; answers: ${[...outcomes.entries()].sort().map(([s, n]) => `${s}×${n}`).join(", ")}`);
});
