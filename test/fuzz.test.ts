/**
 * Fuzzing over the real server: thousands of randomized requests, most of them valid requests with
 * one to three fields broken (method, path segment, digest, header, Content-Range, body length,
 * query parameter, manifest JSON field), about one in ten outside HTTP itself. After each the
 * server must be alive, the answer a status the spec uses (never 500), a registry error body on
 * every 4xx it produced, nothing internal in any answer, and nothing written outside the storage
 * root.
 *
 * The PRNG is seeded; the seed is printed. BERTH_FUZZ_SEED=<seed> replays a run, BERTH_FUZZ_CASES
 * sets how many cases (2000 by default).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { errorBodyProblem, exchange, fuzzSeed, generateCase, leaks, Random, type FuzzTarget } from "./support/fuzz-requests.js";
import { OCI_MANIFEST, RegistryClient, randomImage, registryTree, type ImageParts } from "./support/registry-client.js";

const CASES = Number(process.env.BERTH_FUZZ_CASES ?? 2000);
/** Statuses the registry (or Node's HTTP parser, for malformed HTTP) may answer with. */
const SPEC_STATUSES = new Set([200, 201, 202, 204, 206, 304, 307, 400, 401, 403, 404, 405, 413, 416, 429, 431]);
/** Node's own answers to bytes that are not HTTP it accepts: bad request, headers too large, bad Expect. */
const PARSER_STATUSES = new Set([400, 408, 413, 417, 431]);

let berth: BerthProcess;
let client: RegistryClient;
let workDir: string;
const escapee = `berth-fuzz-escape-${randomBytes(6).toString("hex")}`;

/** Access-log lines so far: one per request that reached the registry's handler, when it is done. */
let handled = 0;

before(async () => {
  // The access log tells when a handler has finished (see waitForHandler).
  berth = await startBerth({ configYaml: testConfig({ log: "  level: info\n  accesslog:\n    disabled: false" }) });
  let partial = "";
  berth.child.stderr!.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) if (/msg=request\b/.test(line)) handled += 1;
  });
  client = new RegistryClient(berth.url);
  workDir = dirname(berth.root!);
});

after(async () => {
  await berth.stop();
});

/**
 * Waits (briefly) until the handler of a request whose connection ended early has finished, so that
 * the next case does not run beside it: the cases are sequential, like one careful client.
 */
async function waitForHandler(handledBefore: number): Promise<void> {
  const deadline = Date.now() + 2000;
  while (handled <= handledBefore && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
}

async function names(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Nothing outside the storage root, and nothing at the top of it that berth does not write. */
async function outsideProblems(): Promise<string[]> {
  const problems: string[] = [];
  const work = await names(workDir);
  if (work.join(",") !== "config.yml,data") problems.push(`work directory holds ${JSON.stringify(work)}`);
  const data = await names(berth.root!);
  if (data.some((entry) => entry !== "docker" && entry !== "berth")) problems.push(`storage root holds ${JSON.stringify(data)}`);
  const v2 = await names(registryTree(berth.root!));
  if (v2.some((entry) => entry !== "blobs" && entry !== "repositories")) problems.push(`registry tree holds ${JSON.stringify(v2)}`);
  for (const dir of [tmpdir(), "/", dirname(tmpdir()), workDir, join(berth.root!, "docker")]) {
    if (await exists(join(dir, escapee))) problems.push(`${escapee} appeared in ${dir}`);
  }
  return problems;
}

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const REPOSITORY_DIRS = new Set(["_layers", "_manifests", "_uploads", "_referrers"]);

/** Every directory under repositories/ is a valid name component or one of berth's own. */
async function repositoryTreeProblems(): Promise<string[]> {
  const problems: string[] = [];
  async function visit(dir: string, rel: string): Promise<void> {
    for (const entry of await names(dir)) {
      if (REPOSITORY_DIRS.has(entry)) continue;
      if (!COMPONENT.test(entry)) problems.push(`repositories/${rel}${entry}`);
      else await visit(join(dir, entry), `${rel}${entry}/`);
    }
  }
  await visit(join(registryTree(berth.root!), "repositories"), "");
  return problems;
}

async function prepare(image: ImageParts): Promise<FuzzTarget> {
  const name = "fuzz/base";
  const otherName = "fuzz/other";
  await client.pushImage(name, "latest", image);
  await client.pushBlob(otherName, image.layers[0]!);
  const upload = await client.startUpload(name);
  const location = new URL(upload.location);
  return {
    name,
    otherName,
    tag: "latest",
    manifest: image.bytes,
    manifestDigest: image.digest,
    manifestType: OCI_MANIFEST,
    configDigest: (image.manifest.config as { digest: string }).digest,
    layer: image.layers[0]!,
    layerDigest: (image.manifest.layers as Array<{ digest: string }>)[0]!.digest,
    uploadPath: location.pathname + location.search,
    uploadId: upload.uuid,
    uploadState: location.searchParams.get("_state")!,
    escapee,
  };
}

test(`${CASES} randomized and mutated requests: the server stays up, answers with spec statuses and error bodies, and writes only inside its storage root`, async (t) => {
  const seed = fuzzSeed();
  const random = new Random(seed);
  t.diagnostic(`seed ${seed} (replay with BERTH_FUZZ_SEED=${seed}), ${CASES} cases`);
  const image = randomImage({ layers: 1, layerSize: 32 });
  let target = await prepare(image);
  const statuses = new Map<string, number>();
  const started = Date.now();

  for (let i = 0; i < CASES; i++) {
    // Cases delete tags, blobs and the open upload: put them back now and then.
    if (i > 0 && i % 100 === 0) target = await prepare(image);
    const fuzzCase = generateCase(random, target, i);
    const fail = (problem: string, detail = ""): never =>
      assert.fail(`${problem}\n  case ${fuzzCase.description}\n  seed ${seed}: replay with BERTH_FUZZ_SEED=${seed} BERTH_FUZZ_CASES=${i + 1}${detail ? `\n  ${detail}` : ""}`);

    const handledBefore = handled;
    const result = await exchange(berth.url, fuzzCase.parts, { end: fuzzCase.abandoned, head: [fuzzCase.head], timeoutMs: 15_000 });
    if (fuzzCase.lingering && !result.responses[0]?.headers["docker-distribution-api-version"]) await waitForHandler(handledBefore);
    if (berth.child.exitCode !== null || berth.child.signalCode !== null) {
      fail(`the server exited (${berth.child.exitCode ?? berth.child.signalCode})`, berth.log().slice(-2000));
    }
    if (result.timedOut) fail("no answer and no close within 15 s", result.raw.slice(0, 500));
    const [first] = result.responses;
    if (!first && !fuzzCase.malformed && !fuzzCase.abandoned) fail("the connection closed without an answer", result.raw.slice(0, 500));

    for (const [n, response] of result.responses.entries()) {
      const fromRegistry = response.headers["docker-distribution-api-version"] === "registry/2.0";
      const key = `${response.status}${fromRegistry ? "" : " (node)"}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      const text = response.body.toString("latin1");
      if (response.status === 500) {
        const logged = berth.log().split("\n").filter((line) => line.includes("internal error")).slice(-1)[0] ?? "";
        fail("500", `${text}\n  server log: ${logged.slice(0, 3000)}`);
      }
      const found = leaks(`${JSON.stringify(response.headers)}\n${text}`, [workDir]);
      if (found.length > 0) fail(`the answer leaks ${found.join(", ")}`, `${response.status} ${text.slice(0, 500)}`);
      if (fromRegistry) {
        if (!SPEC_STATUSES.has(response.status)) fail(`status ${response.status} is not one the spec uses`, text.slice(0, 300));
        if (response.status >= 400 && !(n === 0 && fuzzCase.head)) {
          const problem = errorBodyProblem(response.body, response.headers["content-type"]);
          if (problem) fail(`${response.status}: ${problem}`);
        }
      } else {
        // Only Node's parser answers without the registry's headers, and only to malformed HTTP
        // (a junk second request after a short Content-Length counts as one) or a request cut off
        // before its declared end.
        const tolerated = fuzzCase.malformed || fuzzCase.abandoned || n > 0;
        if (!tolerated || !PARSER_STATUSES.has(response.status)) {
          fail(`answer ${response.status} without Docker-Distribution-API-Version to ${fuzzCase.malformed ? "malformed" : "well-formed"} HTTP`, result.raw.slice(0, 500));
        }
      }
    }

    const problems = await outsideProblems();
    if (problems.length > 0) fail(`storage escaped: ${problems.join("; ")}`);
  }

  const treeProblems = await repositoryTreeProblems();
  assert.deepEqual(treeProblems, [], `directories under repositories/ that no valid name makes (seed ${seed})`);
  const internalErrors = berth.log().split("\n").filter((line) => line.includes("internal error"));
  assert.deepEqual(internalErrors, [], `internal errors logged (seed ${seed})`);
  // The registry still works after all that.
  const after = await client.send("/v2/");
  assert.equal(after.status, 200);
  t.diagnostic(`${CASES} cases in ${Date.now() - started} ms; answers: ${[...statuses.entries()].sort().map(([s, n]) => `${s}×${n}`).join(" ")}`);
});
