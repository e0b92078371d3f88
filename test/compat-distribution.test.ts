/**
 * Drop-in for distribution: the same storage tree, both ways.
 *
 * Each test runs the real distribution 2.8 (Debian's `docker-registry`) and berth on ONE storage
 * root, one after the other: what one wrote, the other lists, serves and deletes. Uploads are
 * started on one and continued on the other; berth's referrers index is shown not to disturb
 * distribution (nor its garbage collector), and berth is shown to answer correctly after
 * distribution changed the tree underneath it. Trees that are broken or not registry trees at all
 * are served as far as they are sound, with clear errors for the rest and nothing deleted.
 *
 * Findings about distribution 2.8 these tests rely on (see each test):
 *   - it ignores the body of `POST /blobs/uploads/?digest=` (answers 202, stores nothing), so every
 *     push here is POST + PATCH + PUT, which both registries accept;
 *   - it refuses any upload request without its own HMAC-signed `_state` (404 BLOB_UPLOAD_INVALID),
 *     and a `_state` whose offset is not the upload's size likewise;
 *   - it serves OCI manifests only to clients that accept them (Accept header), by tag or digest;
 *   - it lists tags in directory order, not sorted (compared here as sets);
 *   - its `garbage-collect --delete-untagged` deletes untagged referrers (signatures, SBOMs): it
 *     does not know `subject`;
 *   - a Location it issued is not accepted by berth (berth cannot verify distribution's `_state`),
 *     nor berth's by it: a switch mid-upload continues at `/v2/<name>/blobs/uploads/<uuid>` on
 *     berth, and on distribution only with a `_state` it signed (minted here with the shared secret).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, open, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { resumableSha256Available, unmarshalSha256 } from "../src/hash/resumable-sha256.js";
import { describeConfig, parseConfig } from "../src/config/load-config.js";
import { BERTH_CLI, JSON_TEST_LOG, startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import {
  decodeDistributionUploadState,
  DISTRIBUTION_SECRET,
  distributionGarbageCollect,
  distributionUploadState,
  requireDistribution,
  startDistribution,
  type DistributionProcess,
} from "./support/distribution-process.js";
import { describeRun, requireProgram, run, type RunResult } from "./support/external-program.js";
import { buildTestLayouts, readLayout, type TestLayouts } from "./support/oci-layout.js";
import {
  digestOf,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  expectError,
  indexOf,
  json,
  nextLink,
  OCI_INDEX,
  OCI_MANIFEST,
  randomBlob,
  randomImage,
  registryTree,
  RegistryClient,
  snapshotTree,
  assertTreeUnchanged,
  withQuery,
  type Descriptor,
  type ImageParts,
} from "./support/registry-client.js";

const distribution = requireDistribution();
const skopeo = requireProgram("skopeo");

const ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(", ");

/** berth on a given root: same http.secret as distribution (a shared deployment), purging off. */
function berthConfig(options: { readOnly?: boolean } = {}): string {
  return testConfig({
    log: JSON_TEST_LOG,
    storage: `  maintenance:\n    uploadpurging:\n      enabled: false\n    readonly:\n      enabled: ${options.readOnly === true}`,
    secret: DISTRIBUTION_SECRET,
  });
}

type Kind = "berth" | "distribution";

interface Side {
  kind: Kind;
  url: string;
  hostPort: string;
  client: RegistryClient;
  log(): string;
  stop(): Promise<unknown>;
}

async function startSide(kind: Kind, root: string, options: { readOnly?: boolean } = {}): Promise<Side> {
  const process: BerthProcess | DistributionProcess =
    kind === "berth" ? await startBerth({ root, configYaml: berthConfig(options), cleanup: false }) : await startDistribution({ root });
  return {
    kind,
    url: process.url,
    hostPort: process.hostPort,
    client: new RegistryClient(process.url),
    log: () => process.log(),
    stop: () => process.stop(),
  };
}

/** Starts `kind` on `root`, runs `body`, stops it; a failure carries the registry's log tail. */
async function on<T>(kind: Kind, root: string, body: (side: Side) => Promise<T>, options: { readOnly?: boolean } = {}): Promise<T> {
  const side = await startSide(kind, root, options);
  try {
    return await body(side);
  } catch (err) {
    if (err instanceof Error) err.message += `\n--- ${kind} log (tail) ---\n${side.log().slice(-4000)}`;
    throw err;
  } finally {
    await side.stop();
  }
}

let work: string;
let roots = 0;

async function newRoot(): Promise<string> {
  const root = join(work, `root-${++roots}`);
  await mkdir(root, { recursive: true });
  return root;
}

function tree(root: string, ...parts: string[]): string {
  return join(registryTree(root), ...parts);
}

function hexOf(digest: string): string {
  return digest.slice(digest.indexOf(":") + 1);
}

function descriptor(image: { mediaType: string; digest: string; bytes: Buffer }, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType: image.mediaType, digest: image.digest, size: image.bytes.length, ...extra };
}

// --- pushing and checking, the same way on both registries

/** POST + one PATCH + PUT: distribution 2.8 ignores a monolithic POST's body. */
async function pushBlob(client: RegistryClient, name: string, bytes: Buffer): Promise<string> {
  return client.pushBlob(name, bytes, { chunkSize: Math.max(bytes.length, 1) });
}

async function pushImage(client: RegistryClient, name: string, tags: string[], image: ImageParts): Promise<void> {
  await pushBlob(client, name, image.config);
  for (const layer of image.layers) await pushBlob(client, name, layer);
  for (const reference of tags.length > 0 ? tags : [image.digest]) {
    const digest = await client.pushManifest(name, reference, image.bytes, image.mediaType);
    assert.equal(digest, image.digest, `digest of ${name}:${reference}`);
  }
}

interface Manifestish {
  bytes: Buffer;
  digest: string;
  mediaType: string;
}

async function assertManifest(client: RegistryClient, name: string, reference: string, expected: Manifestish): Promise<void> {
  for (const ref of new Set([reference, expected.digest])) {
    const head = await client.send(`/v2/${name}/manifests/${ref}`, { method: "HEAD", headers: { Accept: ACCEPT } });
    assert.equal(head.status, 200, `HEAD ${name}:${ref}`);
    assert.equal(head.headers.get("docker-content-digest"), expected.digest, `HEAD ${name}:${ref} digest`);
    assert.equal(head.headers.get("content-length"), String(expected.bytes.length), `HEAD ${name}:${ref} length`);
    const { response, bytes } = await client.get(`/v2/${name}/manifests/${ref}`, { Accept: ACCEPT });
    assert.equal(response.status, 200, `GET ${name}:${ref}: ${bytes.toString()}`);
    assert.deepEqual(bytes, expected.bytes, `bytes of ${name}:${ref}`);
    assert.equal(digestOf(bytes), expected.digest, `content digest of ${name}:${ref}`);
    assert.equal(response.headers.get("docker-content-digest"), expected.digest);
    assert.equal(response.headers.get("content-type")?.split(";")[0], expected.mediaType, `Content-Type of ${name}:${ref}`);
  }
}

async function assertBlob(client: RegistryClient, name: string, expected: Buffer): Promise<void> {
  const digest = digestOf(expected);
  const head = await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" });
  assert.equal(head.status, 200, `HEAD blob ${name}@${digest}`);
  assert.equal(head.headers.get("content-length"), String(expected.length));
  const { response, bytes } = await client.get(`/v2/${name}/blobs/${digest}`);
  assert.equal(response.status, 200, `GET blob ${name}@${digest}`);
  assert.equal(digestOf(bytes), digest, `the bytes of ${name}@${digest} hash to its digest`);
  assert.equal(bytes.length, expected.length);
  assert.equal(response.headers.get("docker-content-digest"), digest);
}

async function assertImage(client: RegistryClient, name: string, reference: string, image: ImageParts): Promise<void> {
  await assertManifest(client, name, reference, image);
  await assertBlob(client, name, image.config);
  for (const layer of image.layers) await assertBlob(client, name, layer);
}

async function catalog(client: RegistryClient): Promise<string[]> {
  const { response, body } = await client.getJSON<{ repositories: string[] }>("/v2/_catalog");
  assert.equal(response.status, 200, "catalog");
  return body.repositories;
}

async function referrersOf(client: RegistryClient, name: string, subject: string, artifactType?: string): Promise<Descriptor[]> {
  const query = artifactType === undefined ? "" : `?artifactType=${encodeURIComponent(artifactType)}`;
  const { response, body } = await client.getJSON<{ manifests: Descriptor[]; mediaType: string }>(`/v2/${name}/referrers/${subject}${query}`);
  assert.equal(response.status, 200, `referrers of ${subject}`);
  assert.equal(body.mediaType, OCI_INDEX);
  return body.manifests;
}

/** Every piece of a small registry: single images under several tags, Docker and OCI, and indexes. */
function buildFixtures() {
  const app1 = randomImage({ layers: 2 });
  const app2 = randomImage({ layers: 1 });
  const dockerImage = randomImage({ mediaType: DOCKER_MANIFEST });
  const dockerList = indexOf([descriptor(dockerImage)], { mediaType: DOCKER_MANIFEST_LIST });
  const amd64 = randomImage({ layers: 2 });
  const arm64 = randomImage({ layers: 2 });
  const index = indexOf([descriptor(amd64), descriptor(arm64)]);
  return { app1, app2, dockerImage, dockerList, amd64, arm64, index };
}
type Fixtures = ReturnType<typeof buildFixtures>;

async function pushFixtures(client: RegistryClient, f: Fixtures): Promise<void> {
  await pushImage(client, "compat/app", ["v1", "latest"], f.app1);
  await pushImage(client, "compat/app", ["v2"], f.app2);
  await pushImage(client, "compat/docker", ["v1"], f.dockerImage);
  assert.equal(await client.pushManifest("compat/docker", "list", f.dockerList.bytes, DOCKER_MANIFEST_LIST), f.dockerList.digest);
  await pushImage(client, "compat/multi", [], f.amd64);
  await pushImage(client, "compat/multi", [], f.arm64);
  assert.equal(await client.pushManifest("compat/multi", "v1", f.index.bytes, OCI_INDEX), f.index.digest);
}

/**
 * Tags of a repository. berth lists them in lexical order, as the spec asks; distribution 2.8
 * lists them in directory order (unsorted), so its answers are compared as sets.
 */
async function tagsOf(side: Side, name: string): Promise<string[]> {
  const tags = await side.client.tags(name);
  return side.kind === "distribution" ? [...tags].sort() : tags;
}

async function assertFixtures(side: Side, f: Fixtures): Promise<void> {
  const { client } = side;
  assert.deepEqual(await catalog(client), ["compat/app", "compat/docker", "compat/multi"]);
  assert.deepEqual(await tagsOf(side, "compat/app"), ["latest", "v1", "v2"]);
  assert.deepEqual(await tagsOf(side, "compat/docker"), ["list", "v1"]);
  assert.deepEqual(await tagsOf(side, "compat/multi"), ["v1"]);
  await assertImage(client, "compat/app", "v1", f.app1);
  await assertManifest(client, "compat/app", "latest", f.app1);
  await assertImage(client, "compat/app", "v2", f.app2);
  await assertImage(client, "compat/docker", "v1", f.dockerImage);
  await assertManifest(client, "compat/docker", "list", { ...f.dockerList, bytes: f.dockerList.bytes });
  await assertManifest(client, "compat/multi", "v1", f.index);
  await assertImage(client, "compat/multi", f.amd64.digest, f.amd64);
  await assertImage(client, "compat/multi", f.arm64.digest, f.arm64);
}

/** Deletes through `client`: a tag, a manifest by digest (and so its tag), one of its layers. */
async function deleteSome(client: RegistryClient, f: Fixtures, options: { tagDelete: boolean }): Promise<void> {
  if (options.tagDelete) assert.equal((await client.send("/v2/compat/app/manifests/latest", { method: "DELETE" })).status, 202);
  assert.equal((await client.send(`/v2/compat/app/manifests/${f.app2.digest}`, { method: "DELETE" })).status, 202);
  assert.equal((await client.send(`/v2/compat/app/blobs/${digestOf(f.app2.layers[0]!)}`, { method: "DELETE" })).status, 202);
}

async function assertDeleted(side: Side, f: Fixtures, options: { tagDelete: boolean }): Promise<void> {
  const { client } = side;
  assert.deepEqual(await tagsOf(side, "compat/app"), options.tagDelete ? ["v1"] : ["latest", "v1"]);
  await expectError(await client.fetch(`/v2/compat/app/manifests/${f.app2.digest}`, { headers: { Accept: ACCEPT } }), 404, "MANIFEST_UNKNOWN");
  await expectError(await client.fetch("/v2/compat/app/manifests/v2", { headers: { Accept: ACCEPT } }), 404, "MANIFEST_UNKNOWN");
  await expectError(await client.fetch(`/v2/compat/app/blobs/${digestOf(f.app2.layers[0]!)}`), 404, "BLOB_UNKNOWN");
  if (options.tagDelete) await expectError(await client.fetch("/v2/compat/app/manifests/latest", { headers: { Accept: ACCEPT } }), 404, "MANIFEST_UNKNOWN");
  await assertImage(client, "compat/app", "v1", f.app1);
  await assertManifest(client, "compat/multi", "v1", f.index);
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), "berth-compat-"));
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe("distribution writes, berth reads, lists and deletes", { skip: distribution.skip }, () => {
  it("serves single images, several tags, Docker and OCI indexes pushed to distribution, and deletes them so distribution agrees", async () => {
    const root = await newRoot();
    const f = buildFixtures();
    await on("distribution", root, async (side) => {
      await pushFixtures(side.client, f);
      await assertFixtures(side, f);
    });
    await on("berth", root, async (side) => {
      await assertFixtures(side, f);
      await deleteSome(side.client, f, { tagDelete: true });
      await assertDeleted(side, f, { tagDelete: true });
    });
    // distribution sees berth's deletions exactly.
    await on("distribution", root, async (side) => {
      await assertDeleted(side, f, { tagDelete: true });
    });
  });
});

describe("berth writes, distribution reads, lists and deletes", { skip: distribution.skip }, () => {
  it("distribution serves images, tags, indexes, catalog and blobs pushed to berth, and berth sees its deletions", async () => {
    const root = await newRoot();
    const f = buildFixtures();
    await on("berth", root, async (side) => {
      await pushFixtures(side.client, f);
      await assertFixtures(side, f);
    });
    await on("distribution", root, async (side) => {
      await assertFixtures(side, f);
      await deleteSome(side.client, f, { tagDelete: false });
      await assertDeleted(side, f, { tagDelete: false });
    });
    await on("berth", root, async (side) => {
      await assertDeleted(side, f, { tagDelete: false });
    });
  });
});

describe("the catalog on one tree", { skip: distribution.skip }, () => {
  it("berth lists repositories in distribution's order, whole and page by page", async () => {
    const root = await newRoot();
    // "alpha-dash" and "alpha.dot" sort before "alpha/one" as strings, after it segment by segment.
    const names = ["zeta", "alpha/one", "alpha", "beta/deep/nested", "a0", "alpha/two", "alpha-dash", "alpha.dot", "b", "b-c/d"];
    await on("berth", root, async (side) => {
      for (const name of names) await side.client.pushImage(name, "latest", randomImage({ layers: 1 }));
    });
    const listings = async (side: Side): Promise<string[][]> => [await catalog(side.client), await catalogByPages(side.client, 2), await catalogByPages(side.client, 3)];
    const fromDistribution = await on("distribution", root, listings);
    const fromBerth = await on("berth", root, listings);
    assert.equal(fromDistribution[0]!.length, names.length, JSON.stringify(fromDistribution[0]));
    assert.deepEqual(fromBerth, fromDistribution);
  });
});

/** Every name, following Link headers from pages of `n`. */
async function catalogByPages(client: RegistryClient, n: number): Promise<string[]> {
  const names: string[] = [];
  for (let url: string | undefined = `/v2/_catalog?n=${n}`; url !== undefined; ) {
    const response = await client.fetch(url);
    assert.equal(response.status, 200, url);
    names.push(...((await response.json()) as { repositories: string[] }).repositories);
    url = nextLink(response);
  }
  return names;
}

describe("skopeo through one registry, out through the other", { skip: distribution.skip || skopeo.skip }, () => {
  let layouts: TestLayouts;
  let outputs = 0;

  before(async () => {
    layouts = await buildTestLayouts(join(work, "layouts"), { bigLayerBytes: 512 * 1024 });
  });

  async function skopeoCopy(args: string[]): Promise<RunResult> {
    const result = await run(skopeo.path!, ["--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests", ...args]);
    assert.equal(result.code, 0, describeRun(result));
    return result;
  }

  async function pushAll(side: Side): Promise<void> {
    const source = (ref: string) => `oci:${layouts.dir}:${ref}`;
    await skopeoCopy([source(layouts.refs.single), `docker://${side.hostPort}/sk/app:v1`]);
    await skopeoCopy(["--all", source(layouts.refs.multi), `docker://${side.hostPort}/sk/multi:v1`]);
    await skopeoCopy([source(layouts.refs.artifact), `docker://${side.hostPort}/sk/app:sbom`]);
  }

  async function pullAndCheck(side: Side): Promise<void> {
    const out = join(work, `skopeo-out-${++outputs}`);
    await skopeoCopy([`docker://${side.hostPort}/sk/app:v1`, `oci:${out}:app`]);
    await skopeoCopy(["--all", `docker://${side.hostPort}/sk/multi:v1`, `oci:${out}:multi`]);
    await skopeoCopy([`docker://${side.hostPort}/sk/app@${layouts.artifact.manifest.digest}`, `oci:${out}:artifact`]);
    const copied = await readLayout(out);
    const refs = new Map(copied.index.manifests.map((d) => [d.annotations?.["org.opencontainers.image.ref.name"], d.digest]));
    assert.equal(refs.get("app"), layouts.single.manifest.digest);
    assert.equal(refs.get("multi"), layouts.multi.index.digest);
    assert.equal(refs.get("artifact"), layouts.artifact.manifest.digest);
    for (const digest of [...layouts.single.blobDigests, ...layouts.multi.children.flatMap((c) => c.blobDigests), ...layouts.artifact.blobDigests]) {
      assert.ok(copied.blobDigests.has(digest), `pulled layout holds ${digest}`);
    }
    assert.deepEqual(await copied.readBlob(layouts.multi.index.digest), layouts.multi.indexBytes);
  }

  it("skopeo pushes to distribution, pulls from berth; berth finds the artifact's subject link distribution never wrote", async () => {
    const root = await newRoot();
    await on("distribution", root, pushAll);
    await assert.rejects(stat(tree(root, "repositories/sk/app/_referrers")), "distribution keeps no referrers index");
    await on("berth", root, async (side) => {
      await pullAndCheck(side);
      assert.deepEqual(await catalog(side.client), ["sk/app", "sk/multi"]);
      assert.deepEqual(await tagsOf(side, "sk/app"), ["sbom", "v1"]);
      const referrers = await referrersOf(side.client, "sk/app", layouts.single.manifest.digest);
      assert.deepEqual(
        referrers.map(({ digest, artifactType }) => ({ digest, artifactType })),
        [{ digest: layouts.artifact.manifest.digest, artifactType: layouts.artifact.artifactType }],
      );
    });
  });

  it("skopeo pushes to berth, pulls from distribution", async () => {
    const root = await newRoot();
    await on("berth", root, pushAll);
    await on("distribution", root, async (side) => {
      await pullAndCheck(side);
      assert.deepEqual(await catalog(side.client), ["sk/app", "sk/multi"]);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Uploads continued across registries

function uploadDir(root: string, name: string, uuid: string): string {
  return tree(root, "repositories", name, "_uploads", uuid);
}

async function hashStateOffsets(root: string, name: string, uuid: string): Promise<number[]> {
  try {
    return (await readdir(join(uploadDir(root, name, uuid), "hashstates", "sha256"))).map(Number).sort((a, b) => a - b);
  } catch {
    return [];
  }
}

/** Checks a saved hash state the way the resuming registry reads it: Go's format, the prefix's SHA-256. */
async function assertHashState(t: TestContext, root: string, name: string, uuid: string, blob: Buffer, offset: number): Promise<void> {
  const path = join(uploadDir(root, name, uuid), "hashstates", "sha256", String(offset));
  const saved = await readFile(path);
  assert.equal(saved.length, 108, "Go's crypto/sha256 MarshalBinary is 108 bytes");
  assert.equal(saved.subarray(0, 4).toString("latin1"), "sha\x03");
  assert.equal(saved.readBigUInt64BE(100), BigInt(offset), "the state's length is the offset it is named by");
  if (!resumableSha256Available) {
    t.diagnostic("native resumable SHA-256 addon not built: state contents not compared");
    return;
  }
  const resumed = unmarshalSha256(saved);
  assert.ok(resumed, `berth reads the state at ${path}`);
  assert.equal(resumed.length, offset);
  assert.equal(resumed.hexDigest(), createHash("sha256").update(blob.subarray(0, offset)).digest("hex"), "the state is the SHA-256 of the first <offset> bytes");
}

/** Flips the first byte of the upload's data file: only a registry that re-reads it can notice. */
async function tamperUploadPrefix(root: string, name: string, uuid: string): Promise<void> {
  const handle = await open(join(uploadDir(root, name, uuid), "data"), "r+");
  try {
    const first = Buffer.alloc(1);
    await handle.read(first, 0, 1, 0);
    await handle.write(Buffer.from([first[0]! ^ 0xff]), 0, 1, 0);
  } finally {
    await handle.close();
  }
}

function requireResumableHash(t: TestContext): boolean {
  if (resumableSha256Available) return true;
  if (process.env.CI === "true") assert.fail("the native resumable SHA-256 addon must be built in CI (npm install runs node-gyp)");
  t.skip("the native resumable SHA-256 addon is not built");
  return false;
}

/** An upload path without `_state`: how a registry that did not sign the Location is reached. */
function bareUploadPath(name: string, uuid: string): string {
  return `/v2/${name}/blobs/uploads/${uuid}`;
}

async function patch(client: RegistryClient, location: string, chunk: Buffer, start: number): Promise<Response> {
  return client.patchChunk(location, chunk, start);
}

describe("an upload started on one registry and continued on the other", { skip: distribution.skip }, () => {
  const NAME = "compat/upload";

  it("distribution → berth: berth resumes at /v2/<name>/blobs/uploads/<uuid> from distribution's hash state and stores a sound blob", async (t) => {
    const root = await newRoot();
    const blob = randomBlob(300_000);
    const digest = digestOf(blob);
    const cut1 = 100_000;
    const cut2 = 200_000;
    let uuid = "";
    let distributionLocation = "";
    await on("distribution", root, async ({ client }) => {
      const started = await client.startUpload(NAME);
      uuid = started.uuid;
      let response = await patch(client, started.location, blob.subarray(0, cut1), 0);
      assert.equal(response.status, 202);
      response = await patch(client, client.url(response.headers.get("location")!), blob.subarray(cut1, cut2), cut1);
      assert.equal(response.status, 202);
      assert.equal(response.headers.get("range"), `0-${cut2 - 1}`);
      distributionLocation = client.url(response.headers.get("location")!);
      assert.equal(decodeDistributionUploadState(new URL(distributionLocation).searchParams.get("_state")!).Offset, cut2);
    });
    assert.deepEqual(await hashStateOffsets(root, NAME, uuid), [0, cut1, cut2], "distribution saves its hash state after every chunk");
    await assertHashState(t, root, NAME, uuid, blob, cut2);

    await on("berth", root, async ({ client, log }) => {
      // distribution's own Location carries distribution's `_state`, which berth cannot verify:
      // berth either resumes or refuses cleanly; it never corrupts the upload.
      const foreign = await client.fetch(distributionLocation.replace(/^http:\/\/[^/]+/, ""));
      if (foreign.status === 204) {
        t.diagnostic("berth accepted distribution's _state");
        await foreign.arrayBuffer();
      } else {
        await expectError(foreign, 400, "BLOB_UPLOAD_INVALID");
        t.diagnostic("berth refuses distribution's _state (BLOB_UPLOAD_INVALID); the bare upload path works");
      }
      const status = await client.send(bareUploadPath(NAME, uuid));
      assert.equal(status.status, 204);
      assert.equal(status.headers.get("range"), `0-${cut2 - 1}`, "berth reads the size distribution left");
      // A chunk that does not start at the end is refused without touching the upload.
      await expectError(await patch(client, bareUploadPath(NAME, uuid), blob.subarray(cut1), cut1), 416, "RANGE_INVALID");
      const response = await patch(client, bareUploadPath(NAME, uuid), blob.subarray(cut2), cut2);
      assert.equal(response.status, 202);
      assert.equal(response.headers.get("range"), `0-${blob.length - 1}`);
      const done = await client.send(withQuery(client.url(response.headers.get("location")!), { digest }), { method: "PUT" });
      assert.equal(done.status, 201);
      assert.equal(done.headers.get("docker-content-digest"), digest);
      await assertBlob(client, NAME, blob);
      assert.doesNotMatch(log(), /does not match its digest/);
    });
    await assert.rejects(stat(uploadDir(root, NAME, uuid)), "the finished upload is removed");
    await on("distribution", root, async ({ client }) => assertBlob(client, NAME, blob));
  });

  it("distribution → berth: berth does not re-read what distribution received (proof: a flipped byte in the prefix goes unnoticed at PUT)", async (t) => {
    if (!requireResumableHash(t)) return;
    const root = await newRoot();
    const blob = randomBlob(200_000);
    const digest = digestOf(blob);
    const cut = 120_000;
    let uuid = "";
    await on("distribution", root, async ({ client }) => {
      const started = await client.startUpload(NAME);
      uuid = started.uuid;
      assert.equal((await patch(client, started.location, blob.subarray(0, cut), 0)).status, 202);
    });
    // Damage the bytes distribution stored, behind both registries' backs. A registry that
    // re-hashed the upload would now compute another digest and refuse the PUT; berth resumes
    // from distribution's saved state for the first <cut> bytes, so it accepts.
    await tamperUploadPrefix(root, NAME, uuid);
    await on("berth", root, async ({ client, log }) => {
      const response = await patch(client, bareUploadPath(NAME, uuid), blob.subarray(cut), cut);
      assert.equal(response.status, 202);
      const done = await client.send(withQuery(client.url(response.headers.get("location")!), { digest }), { method: "PUT" });
      assert.equal(done.status, 201, "berth computed the digest from distribution's hash state, without re-reading the prefix");
      assert.doesNotMatch(log(), /does not match/);
    });
    // The stored blob is now damaged (by the test). A process that did not receive it reads it
    // whole once and checks it: the download is cut short instead of handing out bytes that do
    // not match the digest, and it is logged.
    await on("berth", root, async ({ client, log }) => {
      await assertDownloadCut(client, `/v2/${NAME}/blobs/${digest}`);
      await waitForLog(log, /stored blob does not match its digest/);
    });
  });

  it("berth → distribution: distribution refuses berth's Location and a bare path cleanly, and the upload stays intact", async () => {
    const root = await newRoot();
    const blob = randomBlob(150_000);
    const digest = digestOf(blob);
    const cut = 100_000;
    let uuid = "";
    let berthLocation = "";
    await on("berth", root, async ({ client }) => {
      const started = await client.startUpload(NAME);
      uuid = started.uuid;
      const response = await patch(client, started.location, blob.subarray(0, cut), 0);
      assert.equal(response.status, 202);
      berthLocation = client.url(response.headers.get("location")!);
    });
    const before = await snapshotTree(uploadDir(root, NAME, uuid));
    await on("distribution", root, async ({ client }) => {
      const path = berthLocation.replace(/^http:\/\/[^/]+/, "");
      // distribution 2.8 answers BLOB_UPLOAD_INVALID with 404 (its error table), not 400.
      await expectError(await patch(client, path, blob.subarray(cut), cut), 404, "BLOB_UPLOAD_INVALID");
      await expectError(await patch(client, bareUploadPath(NAME, uuid), blob.subarray(cut), cut), 404, "BLOB_UPLOAD_INVALID");
      await expectError(await client.fetch(bareUploadPath(NAME, uuid)), 404, "BLOB_UPLOAD_INVALID");
    });
    await assertTreeUnchanged(before, uploadDir(root, NAME, uuid));
    // The refused upload is still berth's to finish.
    await on("berth", root, async ({ client }) => {
      const response = await patch(client, bareUploadPath(NAME, uuid), blob.subarray(cut), cut);
      assert.equal(response.status, 202);
      assert.equal((await client.send(withQuery(client.url(response.headers.get("location")!), { digest }), { method: "PUT" })).status, 201);
      await assertBlob(client, NAME, blob);
    });
  });

  it("berth → distribution: with a distribution `_state` (a node sharing http.secret), distribution finishes berth's upload from berth's hash state", async (t) => {
    const root = await newRoot();
    const blob = randomBlob(250_000);
    const digest = digestOf(blob);
    const cut1 = 70_000;
    const cut2 = 150_000;
    let uuid = "";
    await on("berth", root, async ({ client }) => {
      const started = await client.startUpload(NAME);
      uuid = started.uuid;
      let response = await patch(client, started.location, blob.subarray(0, cut1), 0);
      assert.equal(response.status, 202);
      response = await patch(client, client.url(response.headers.get("location")!), blob.subarray(cut1, cut2), cut1);
      assert.equal(response.status, 202);
    });
    const startedAt = new Date((await readFile(join(uploadDir(root, NAME, uuid), "startedat"), "utf8")).trim());
    assert.ok(!Number.isNaN(startedAt.getTime()), "berth's startedat is RFC 3339, as distribution reads it");
    if (resumableSha256Available) {
      assert.deepEqual(await hashStateOffsets(root, NAME, uuid), [cut1, cut2], "berth saves a state after every chunk");
      await assertHashState(t, root, NAME, uuid, blob, cut2);
    }
    await on("distribution", root, async ({ client }) => {
      const state = distributionUploadState({ name: NAME, uuid, offset: cut2, startedAt });
      const status = await client.send(`${bareUploadPath(NAME, uuid)}?_state=${encodeURIComponent(state)}`);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get("range"), `0-${cut2 - 1}`);
      const response = await patch(client, client.url(status.headers.get("location")!), blob.subarray(cut2), cut2);
      assert.equal(response.status, 202);
      const done = await client.send(withQuery(client.url(response.headers.get("location")!), { digest }), { method: "PUT" });
      assert.equal(done.status, 201);
      await assertBlob(client, NAME, blob);
    });
    await on("berth", root, async ({ client }) => assertBlob(client, NAME, blob));
  });

  it("berth → distribution: distribution uses berth's saved hash state (proof: a flipped byte in the prefix goes unnoticed at PUT)", async (t) => {
    if (!requireResumableHash(t)) return;
    const root = await newRoot();
    const blob = randomBlob(180_000);
    const digest = digestOf(blob);
    const cut = 100_000;
    let uuid = "";
    await on("berth", root, async ({ client }) => {
      const started = await client.startUpload(NAME);
      uuid = started.uuid;
      assert.equal((await patch(client, started.location, blob.subarray(0, cut), 0)).status, 202);
    });
    const startedAt = new Date((await readFile(join(uploadDir(root, NAME, uuid), "startedat"), "utf8")).trim());
    await tamperUploadPrefix(root, NAME, uuid);
    await on("distribution", root, async ({ client }) => {
      const state = distributionUploadState({ name: NAME, uuid, offset: cut, startedAt });
      const response = await patch(client, `${bareUploadPath(NAME, uuid)}?_state=${encodeURIComponent(state)}`, blob.subarray(cut), cut);
      assert.equal(response.status, 202);
      const done = await client.send(withQuery(client.url(response.headers.get("location")!), { digest }), { method: "PUT" });
      // distribution re-hashes the whole upload only when no saved state matches the offset; it
      // accepting the original digest shows it resumed from berth's state.
      assert.equal(done.status, 201, "distribution computed the digest from berth's hash state");
    });
  });

  it("a crossed upload finished with the wrong digest is refused on either side, and no blob appears", async () => {
    const root = await newRoot();
    const blob = randomBlob(90_000);
    const wrong = digestOf(randomBlob(16));
    const uuids: string[] = [];
    await on("distribution", root, async ({ client }) => {
      const started = await client.startUpload(NAME);
      uuids.push(started.uuid);
      assert.equal((await patch(client, started.location, blob.subarray(0, 50_000), 0)).status, 202);
    });
    await on("berth", root, async ({ client }) => {
      const response = await patch(client, bareUploadPath(NAME, uuids[0]!), blob.subarray(50_000), 50_000);
      assert.equal(response.status, 202);
      await expectError(await client.fetch(withQuery(client.url(response.headers.get("location")!), { digest: wrong }), { method: "PUT" }), 400, "DIGEST_INVALID");
      const started = await client.startUpload(NAME);
      uuids.push(started.uuid);
      assert.equal((await patch(client, started.location, blob.subarray(0, 50_000), 0)).status, 202);
    });
    const startedAt = new Date((await readFile(join(uploadDir(root, NAME, uuids[1]!), "startedat"), "utf8")).trim());
    await on("distribution", root, async ({ client }) => {
      const state = distributionUploadState({ name: NAME, uuid: uuids[1]!, offset: 50_000, startedAt });
      const response = await patch(client, `${bareUploadPath(NAME, uuids[1]!)}?_state=${encodeURIComponent(state)}`, blob.subarray(50_000), 50_000);
      assert.equal(response.status, 202);
      await expectError(await client.fetch(withQuery(client.url(response.headers.get("location")!), { digest: wrong }), { method: "PUT" }), 400, "DIGEST_INVALID");
    });
    for (const digest of [wrong, digestOf(blob)]) {
      await assert.rejects(stat(tree(root, "blobs", "sha256", hexOf(digest).slice(0, 2), hexOf(digest), "data")), `no blob ${digest}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Referrers

function referrerFixtures() {
  const base = randomImage();
  const subject = descriptor(base);
  const sbom = randomImage({ emptyConfig: true, artifactType: "application/vnd.example.sbom.v1", subject });
  const signature = randomImage({ emptyConfig: true, artifactType: "application/vnd.example.signature.v1", subject });
  const next = randomImage();
  return { base, sbom, signature, next };
}

async function revisionsOn(root: string, name: string): Promise<string[]> {
  return (await readdir(tree(root, "repositories", name, "_manifests/revisions/sha256")).catch(() => [] as string[])).sort();
}

async function markersOn(root: string, name: string): Promise<string[]> {
  return (await readdir(tree(root, "repositories", name, "_referrers/_indexed/sha256")).catch(() => [] as string[])).sort();
}

/**
 * A download that must fail on the client: the connection is cut before the last byte (after the
 * 200 and some bytes for a large blob; before anything for one that fits in one read).
 */
async function assertDownloadCut(client: RegistryClient, path: string): Promise<void> {
  let response: Response;
  try {
    response = await client.fetch(path);
  } catch {
    return;
  }
  assert.equal(response.status, 200);
  await assert.rejects(response.arrayBuffer(), `the body of ${path} ends before Content-Length: the client sees a failed download`);
}

async function waitForLog(log: () => string, pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!pattern.test(log())) {
    if (Date.now() > deadline) assert.fail(`log never matched ${pattern}:\n${log().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("referrers on a shared tree", { skip: distribution.skip }, () => {
  const NAME = "compat/ref";

  it("berth's _referrers index does not disturb distribution, and berth answers right after distribution deletes a referrer and moves a tag", async () => {
    const root = await newRoot();
    const r = referrerFixtures();
    await on("berth", root, async ({ client }) => {
      await pushImage(client, NAME, ["v1"], r.base);
      await pushImage(client, NAME, [], r.sbom);
      await pushImage(client, NAME, [], r.signature);
      assert.equal((await referrersOf(client, NAME, r.base.digest)).length, 2);
    });
    assert.deepEqual(await markersOn(root, NAME), await revisionsOn(root, NAME), "berth marks every revision it indexed");
    const referrersTree = tree(root, "repositories", NAME, "_referrers");
    await stat(join(referrersTree, "sha256", hexOf(r.base.digest), "sha256", hexOf(r.sbom.digest), "link"));
    const referrersBefore = await snapshotTree(referrersTree);

    await on("distribution", root, async ({ client }) => {
      assert.deepEqual(await catalog(client), [NAME], "berth's _referrers and _indexed are not repositories to distribution");
      assert.deepEqual(await client.tags(NAME), ["v1"]);
      await assertImage(client, NAME, "v1", r.base);
      await assertManifest(client, NAME, r.sbom.digest, r.sbom);
      await assertManifest(client, NAME, r.signature.digest, r.signature);
      // distribution changes the tree: a referrer goes, the tag moves to another image.
      assert.equal((await client.send(`/v2/${NAME}/manifests/${r.signature.digest}`, { method: "DELETE" })).status, 202);
      await pushImage(client, NAME, ["v1"], r.next);
    });
    const gc = await distributionGarbageCollect({ root });
    assert.equal(gc.code, 0, describeRun(gc));
    await assertTreeUnchanged(referrersBefore, referrersTree);

    await on("berth", root, async ({ client }) => {
      const referrers = await referrersOf(client, NAME, r.base.digest);
      assert.deepEqual(
        referrers.map((d) => d.digest),
        [r.sbom.digest],
        "the referrer distribution deleted is not served, although its index entry is still on disk",
      );
      assert.deepEqual(await client.tags(NAME), ["v1"]);
      await assertImage(client, NAME, "v1", r.next);
      await assertManifest(client, NAME, r.base.digest, r.base);
      const gone = await client.send(`/v2/${NAME}/manifests/${r.signature.digest}`, { method: "HEAD", headers: { Accept: ACCEPT } });
      assert.equal(gone.status, 404);
    });
  });

  it("berth finds referrers pushed through distribution (no index entry), also read-only without writing, and indexes them once", async () => {
    const root = await newRoot();
    const r = referrerFixtures();
    await on("distribution", root, async ({ client }) => {
      await pushImage(client, NAME, ["v1"], r.base);
      await pushImage(client, NAME, [], r.sbom);
      await pushImage(client, NAME, ["sig"], r.signature);
    });
    await assert.rejects(stat(tree(root, "repositories", NAME, "_referrers")));

    const untouched = await snapshotTree(registryTree(root));
    await on(
      "berth",
      root,
      async ({ client }) => {
        const all = await referrersOf(client, NAME, r.base.digest);
        assert.deepEqual(all.map((d) => d.digest).sort(), [r.sbom.digest, r.signature.digest].sort());
        const sbom = all.find((d) => d.digest === r.sbom.digest)!;
        assert.equal(sbom.artifactType, "application/vnd.example.sbom.v1");
        assert.equal(sbom.size, r.sbom.bytes.length);
        assert.equal(sbom.mediaType, OCI_MANIFEST);
        const filtered = await referrersOf(client, NAME, r.base.digest, "application/vnd.example.signature.v1");
        assert.deepEqual(filtered.map((d) => d.digest), [r.signature.digest]);
        assert.deepEqual(await referrersOf(client, NAME, r.sbom.digest), []);
      },
      { readOnly: true },
    );
    await assertTreeUnchanged(untouched, registryTree(root));

    await on("berth", root, async ({ client }) => {
      assert.equal((await referrersOf(client, NAME, r.base.digest)).length, 2);
    });
    // Indexed once: every revision now has its marker and the referrers their links.
    assert.deepEqual(await markersOn(root, NAME), await revisionsOn(root, NAME));
    for (const referrer of [r.sbom, r.signature]) {
      const link = tree(root, "repositories", NAME, "_referrers/sha256", hexOf(r.base.digest), "sha256", hexOf(referrer.digest), "link");
      assert.equal(await readFile(link, "utf8"), referrer.digest);
    }

    // distribution deletes a referrer and pushes it again (its stale link and marker are true
    // again), and pushes a new one (unindexed): berth serves all of them.
    const signature2 = randomImage({ emptyConfig: true, artifactType: "application/vnd.example.signature.v1", subject: descriptor(r.base) });
    await on("distribution", root, async ({ client }) => {
      assert.equal((await client.send(`/v2/${NAME}/manifests/${r.sbom.digest}`, { method: "DELETE" })).status, 202);
      assert.equal(await client.pushManifest(NAME, r.sbom.digest, r.sbom.bytes, OCI_MANIFEST), r.sbom.digest);
      await pushImage(client, NAME, [], signature2);
    });
    await on("berth", root, async ({ client }) => {
      const all = await referrersOf(client, NAME, r.base.digest);
      assert.deepEqual(all.map((d) => d.digest).sort(), [r.sbom.digest, r.signature.digest, signature2.digest].sort());
      // Deleting through berth keeps index and revisions in step.
      assert.equal((await client.send(`/v2/${NAME}/manifests/${r.signature.digest}`, { method: "DELETE" })).status, 202);
      assert.deepEqual((await referrersOf(client, NAME, r.base.digest)).map((d) => d.digest).sort(), [r.sbom.digest, signature2.digest].sort());
    });
    assert.deepEqual(await markersOn(root, NAME), await revisionsOn(root, NAME));
  });

  it("distribution's garbage-collect --delete-untagged removes untagged referrers (it does not know them); berth then answers an empty list", async () => {
    const root = await newRoot();
    const r = referrerFixtures();
    await on("berth", root, async ({ client }) => {
      await pushImage(client, NAME, ["v1"], r.base);
      await pushImage(client, NAME, [], r.sbom);
    });
    const dry = await distributionGarbageCollect({ root, deleteUntagged: true, dryRun: true });
    assert.equal(dry.code, 0, describeRun(dry));
    const gc = await distributionGarbageCollect({ root, deleteUntagged: true });
    assert.equal(gc.code, 0, describeRun(gc));
    await on("berth", root, async ({ client }) => {
      assert.deepEqual(await referrersOf(client, NAME, r.base.digest), []);
      await assertImage(client, NAME, "v1", r.base);
      await expectError(await client.fetch(`/v2/${NAME}/manifests/${r.sbom.digest}`, { headers: { Accept: ACCEPT } }), 404, "MANIFEST_UNKNOWN");
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Bad input from the tree

async function writeBlobFile(root: string, digest: string, content: Buffer): Promise<void> {
  const dir = tree(root, "blobs", "sha256", hexOf(digest).slice(0, 2), hexOf(digest));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "data"), content);
}

async function writeLink(path: string, content: string): Promise<void> {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, content);
}

/**
 * No data was written, changed or deleted: every entry of `before` is still there, unchanged, and
 * the only additions are berth's own bookkeeping: `/berth` (where a running berth keeps its lease
 * for garbage-collect; src/gc/registry-lease.ts) and each repository's `_referrers` index.
 */
async function assertDataUnchanged(before: Map<string, string>, root: string): Promise<void> {
  const after = await snapshotTree(root);
  const bookkeeping = (key: string) => key === "berth" || key.startsWith("berth/") || /(^|\/)_referrers(\/|$)/.test(key);
  const removed = [...before.keys()].filter((key) => !after.has(key));
  const changed = [...before.keys()].filter((key) => after.has(key) && after.get(key) !== before.get(key));
  const added = [...after.keys()].filter((key) => !before.has(key) && !bookkeeping(key));
  assert.deepEqual({ removed, changed, added }, { removed: [], changed: [], added: [] }, `data under ${root} changed`);
}

/** A manifest stored directly in the tree (as an old or damaged registry left it), tagged. */
async function plantManifest(root: string, name: string, tag: string, content: Buffer, digest = digestOf(content)): Promise<string> {
  await writeBlobFile(root, digest, content);
  const repo = tree(root, "repositories", name);
  await writeLink(join(repo, "_manifests/revisions/sha256", hexOf(digest), "link"), digest);
  await writeLink(join(repo, "_manifests/tags", tag, "current/link"), digest);
  await writeLink(join(repo, "_manifests/tags", tag, "index/sha256", hexOf(digest), "link"), digest);
  return digest;
}

describe("the base path without its slash", { skip: distribution.skip }, () => {
  it("GET and HEAD /v2 answer 301 to /v2/ on both, with the same Location and version header", async () => {
    const root = await newRoot();
    const answers: Record<string, string[]> = {};
    for (const kind of ["distribution", "berth"] as const) {
      await on(kind, root, async ({ client }) => {
        for (const method of ["GET", "HEAD"]) {
          const response = await client.send("/v2", { method });
          (answers[method] ??= []).push(`${response.status} ${response.headers.get("location")} ${response.headers.get("docker-distribution-api-version")}`);
        }
      });
    }
    assert.deepEqual(answers, { GET: ["301 /v2/ registry/2.0", "301 /v2/ registry/2.0"], HEAD: ["301 /v2/ registry/2.0", "301 /v2/ registry/2.0"] });
  });
});

describe("bad input from the tree", () => {
  it("an empty directory is an empty registry: nothing listed, nothing found, nothing written", async () => {
    const root = await newRoot();
    await on("berth", root, async ({ client }) => {
      assert.equal((await client.send("/v2/")).status, 200);
      assert.deepEqual(await catalog(client), []);
      await expectError(await client.fetch("/v2/some/repo/tags/list"), 404, "NAME_UNKNOWN");
      await expectError(await client.fetch("/v2/some/repo/manifests/latest", { headers: { Accept: ACCEPT } }), 404, "MANIFEST_UNKNOWN");
      await expectError(await client.fetch(`/v2/some/repo/blobs/${digestOf("x")}`), 404, "BLOB_UNKNOWN");
      assert.deepEqual(await referrersOf(client, "some/repo", digestOf("x")), []);
    });
    assert.deepEqual(await readdir(root).then((names) => names.filter((n) => n !== "berth")), [], "reading wrote nothing (beside berth's lease area)");
  });

  it("a directory of unrelated files (even where the registry tree should be) is served as empty, untouched", async () => {
    const root = await newRoot();
    await mkdir(join(root, "photos"), { recursive: true });
    await writeFile(join(root, "photos", "cat.jpg"), randomBlob(2048));
    await writeFile(join(root, "README"), "not a registry\n");
    await mkdir(join(root, "docker/registry/v2"), { recursive: true });
    await writeFile(join(root, "docker/registry/v2/repositories"), "a file where a directory belongs\n");
    await writeFile(join(root, "docker/registry/v2/blobs"), "also a file\n");
    const before = await snapshotTree(root);
    assert.ok(![...before.keys()].some((key) => key.startsWith("berth")));
    await on("berth", root, async ({ client }) => {
      assert.equal((await client.send("/v2/")).status, 200);
      assert.deepEqual(await catalog(client), []);
      await expectError(await client.fetch("/v2/photos/tags/list"), 404, "NAME_UNKNOWN");
      await expectError(await client.fetch("/v2/photos/manifests/cat", { headers: { Accept: ACCEPT } }), 404, "MANIFEST_UNKNOWN");
      await expectError(await client.fetch(`/v2/photos/blobs/${digestOf("x")}`), 404, "BLOB_UNKNOWN");
      assert.deepEqual(await referrersOf(client, "photos", digestOf("x")), []);
      assert.equal((await client.send("/v2/")).status, 200, "still serving");
    });
    await assertDataUnchanged(before, root);
  });

  it("corrupt link files hide only what they point to: 404 with the spec's code, logged, nothing deleted", async () => {
    const root = await newRoot();
    const good = randomImage();
    const broken = randomImage();
    await on("berth", root, async ({ client }) => {
      await pushImage(client, "bad/links", ["good"], good);
      await pushImage(client, "bad/links", ["broken", "tagbroken"], broken);
    });
    const repo = tree(root, "repositories/bad/links");
    await writeFile(join(repo, "_layers/sha256", hexOf(digestOf(broken.layers[0]!)), "link"), "\x00\xffgarbage");
    await writeFile(join(repo, "_manifests/revisions/sha256", hexOf(broken.digest), "link"), "sha256:not-a-digest");
    // A link naming another (real, stored) digest than its path must not serve that other content.
    await writeFile(join(repo, "_layers/sha256", hexOf(digestOf(broken.config)), "link"), digestOf(good.config));
    await writeFile(join(repo, "_manifests/tags/tagbroken/current/link"), "");
    const before = await snapshotTree(root);
    await on("berth", root, async ({ client, log }) => {
      await assertImage(client, "bad/links", "good", good);
      assert.deepEqual(await catalog(client), ["bad/links"]);
      assert.deepEqual(await client.tags("bad/links"), ["broken", "good", "tagbroken"]);
      await expectError(await client.fetch(`/v2/bad/links/blobs/${digestOf(broken.layers[0]!)}`), 404, "BLOB_UNKNOWN");
      await expectError(await client.fetch(`/v2/bad/links/blobs/${digestOf(broken.config)}`), 404, "BLOB_UNKNOWN");
      await expectError(await client.fetch(`/v2/bad/links/manifests/${broken.digest}`, { headers: { Accept: ACCEPT } }), 404, "MANIFEST_UNKNOWN");
      await expectError(await client.fetch("/v2/bad/links/manifests/broken", { headers: { Accept: ACCEPT } }), 404, "MANIFEST_UNKNOWN");
      await expectError(await client.fetch("/v2/bad/links/manifests/tagbroken", { headers: { Accept: ACCEPT } }), 404, "MANIFEST_UNKNOWN");
      assert.deepEqual(await referrersOf(client, "bad/links", good.digest), []);
      await waitForLog(log, /ignoring corrupt link file/);
      await waitForLog(log, /ignoring corrupt tag link/);
    });
    await assertDataUnchanged(before, root);
  });

  it("a blob whose bytes do not match its digest is never served as that digest; sound content around it is", async () => {
    const root = await newRoot();
    const good = randomImage();
    const damaged = randomImage({ layerSize: 3 * 1024 * 1024 });
    const damagedManifest = randomImage();
    await on("berth", root, async ({ client }) => {
      await pushImage(client, "bad/bytes", ["good"], good);
      await pushImage(client, "bad/bytes", ["damaged"], damaged);
      await pushImage(client, "bad/bytes", ["manifest"], damagedManifest);
    });
    // Same length, different bytes: bit rot, or a hand-edited tree.
    const layerDigest = digestOf(damaged.layers[0]!);
    const flipped = Buffer.from(damaged.layers[0]!);
    flipped[flipped.length - 1]! ^= 0x01;
    await writeBlobFile(root, layerDigest, flipped);
    const manifestBytes = Buffer.from(damagedManifest.bytes.toString().replace('"schemaVersion":2', '"schemaVersion":2 '));
    await writeBlobFile(root, damagedManifest.digest, manifestBytes);
    const before = await snapshotTree(root);
    await on("berth", root, async ({ client, log }) => {
      // The damaged layer: HEAD cannot tell (it reads nothing), a whole GET is cut short before the
      // last byte, every time, and logged; a Range that is not the whole blob is served as stored.
      assert.equal((await client.send(`/v2/bad/bytes/blobs/${layerDigest}`, { method: "HEAD" })).status, 200);
      for (let attempt = 0; attempt < 2; attempt++) await assertDownloadCut(client, `/v2/bad/bytes/blobs/${layerDigest}`);
      await waitForLog(log, /stored blob does not match its digest/);
      const partial = await client.get(`/v2/bad/bytes/blobs/${layerDigest}`, { Range: "bytes=0-99" });
      assert.equal(partial.response.status, 206);
      assert.deepEqual(partial.bytes, flipped.subarray(0, 100));
      // The damaged manifest: never served, by tag or digest, GET or HEAD; 500 with a clear message.
      for (const ref of ["manifest", damagedManifest.digest]) {
        const entry = await expectError(await client.fetch(`/v2/bad/bytes/manifests/${ref}`, { headers: { Accept: ACCEPT } }), 500, "UNKNOWN");
        assert.match(entry.message, /corrupt/);
        const head = await client.send(`/v2/bad/bytes/manifests/${ref}`, { method: "HEAD", headers: { Accept: ACCEPT } });
        assert.equal(head.status, 500);
      }
      await waitForLog(log, /stored manifest does not match its digest/);
      // Everything sound is served; the damaged objects stay listed.
      await assertImage(client, "bad/bytes", "good", good);
      await assertManifest(client, "bad/bytes", "damaged", damaged);
      await assertBlob(client, "bad/bytes", damaged.config);
      assert.deepEqual(await client.tags("bad/bytes"), ["damaged", "good", "manifest"]);
      assert.deepEqual(await referrersOf(client, "bad/bytes", good.digest), []);
    });
    await assertDataUnchanged(before, root);
  });

  it("a manifest blob that is not JSON answers 500 with a clear message; the rest of the repository works, and it can be deleted", async () => {
    const root = await newRoot();
    const good = randomImage();
    await on("berth", root, async ({ client }) => pushImage(client, "bad/json", ["good"], good));
    const garbage = Buffer.from("\x89PNG this is not a manifest {");
    const garbageDigest = await plantManifest(root, "bad/json", "garbage", garbage);
    const notManifest = json({ hello: "world" });
    const notManifestDigest = await plantManifest(root, "bad/json", "object", notManifest);
    const before = await snapshotTree(root);
    await on("berth", root, async ({ client, log }) => {
      for (const ref of ["garbage", garbageDigest, "object", notManifestDigest]) {
        const entry = await expectError(await client.fetch(`/v2/bad/json/manifests/${ref}`, { headers: { Accept: ACCEPT } }), 500, "UNKNOWN");
        assert.match(entry.message, /corrupt/);
      }
      await waitForLog(log, /stored manifest is not a JSON manifest/);
      assert.deepEqual(await client.tags("bad/json"), ["garbage", "good", "object"]);
      await assertImage(client, "bad/json", "good", good);
      // The referrers catch-up reads these revisions too: it skips them without failing.
      assert.deepEqual(await referrersOf(client, "bad/json", good.digest), []);
      assert.deepEqual(await catalog(client), ["bad/json"]);
    });
    await assertDataUnchanged(before, root);
    await on("berth", root, async ({ client }) => {
      // An operator can remove the broken manifest through the API (its bytes stay for GC).
      assert.equal((await client.send(`/v2/bad/json/manifests/${garbageDigest}`, { method: "DELETE" })).status, 202);
      assert.deepEqual(await client.tags("bad/json"), ["good", "object"]);
    });
    await stat(tree(root, "blobs/sha256", hexOf(garbageDigest).slice(0, 2), hexOf(garbageDigest), "data"));
  });

  it("a Docker schema 1 manifest left by an old distribution is served as stored, with its media type", async () => {
    const root = await newRoot();
    const schema1 = Buffer.from(
      JSON.stringify({ schemaVersion: 1, name: "old/image", tag: "v1", architecture: "amd64", fsLayers: [], history: [], signatures: [{ header: {}, signature: "x", protected: "y" }] }, null, 3),
    );
    const digest = await plantManifest(root, "old/image", "v1", schema1);
    await on("berth", root, async ({ client }) => {
      await assertManifest(client, "old/image", "v1", { bytes: schema1, digest, mediaType: "application/vnd.docker.distribution.manifest.v1+prettyjws" });
      assert.deepEqual(await catalog(client), ["old/image"]);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Configuration: distribution's own files

const DEBIAN_CONFIG = "/etc/docker/registry/config.yml";

function runCli(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return run(process.execPath, [BERTH_CLI, ...args], { env, timeoutMs: 60_000 });
}

interface Served {
  url: string;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Runs `berth serve FILE` (as an operator would, with environment overrides) until it either
 * listens (→ Served) or exits (→ its output). Never waits on a start that does not come.
 */
async function tryServe(file: string, env: Record<string, string>): Promise<Served | { exited: string }> {
  const child = spawn(process.execPath, [BERTH_CLI, "serve", file], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const match = /listening on (https?:\/\/[^\s,"]+)/.exec(output);
    if (match) {
      return {
        url: match[1]!,
        output: () => output,
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill("SIGTERM");
            await exited;
          }
        },
      };
    }
    if (child.exitCode !== null || child.signalCode !== null) return { exited: output };
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await exited;
      assert.fail(`berth neither listened nor exited within 20 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * The key of `document` a refusal names: the key after "configuration:" (else any dotted key in the
 * message), cut to its longest part still in the document (a refusal may name a key's child, or a
 * key already removed whose section is unusable without it).
 */
function namedKey(document: Record<string, any>, message: string): string[] | undefined {
  const existing = new Set(allPaths(document).map((path) => path.join(".")));
  // A list entry's key names its index (middleware.storage[0].options.privatekey): the list is the key.
  const primary = /configuration: ([A-Za-z0-9_.[\]-]+):/.exec(message)?.[1]?.replace(/\[\d+\]/g, "");
  const candidates = primary !== undefined ? [primary] : [...message.matchAll(/[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+/g)].map((m) => m[0]);
  for (const candidate of candidates) {
    const parts = candidate.split(".");
    for (let n = parts.length; n > 0; n--) {
      if (existing.has(parts.slice(0, n).join("."))) return parts.slice(0, n);
    }
  }
  return undefined;
}

function allPaths(value: unknown, at: string[] = []): string[][] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, child]) => [[...at, key], ...allPaths(child, [...at, key])]);
}

/**
 * What berth may refuse in a distribution config, and why: security settings it cannot honour
 * here (several auth types at once, which distribution refuses too; credentials or certificates in
 * files that do not exist; Let's Encrypt), and
 * middleware: named registry and repository middleware (distribution has none built in, and fails
 * to start on these names too) and a CloudFront private key file that does not exist.
 * Anything else must start berth, with a warning when it is ignored.
 */
const MAY_REFUSE = /^(auth|http\.tls|middleware\.(registry|repository|storage))(\.|$)/;

/**
 * Checks (`config check`) and starts (`serve`) the config, removing each key a refusal names until
 * berth starts. Returns the running server, the keys removed and the accepted document.
 */
async function startRemovingRefused(
  document: Record<string, any>,
  env: Record<string, string>,
  label: string,
): Promise<{ served: Served; refused: string[]; accepted: Record<string, any>; checkOutput: string }> {
  const refused: string[] = [];
  for (let round = 0; round < 30; round++) {
    const file = join(work, `${label}-${round}.yml`);
    await writeFile(file, stringifyYaml(document));
    const check = await runCli(["config", "check", file], env);
    let failure: string | undefined = check.code === 0 ? undefined : check.stderr + check.stdout;
    if (failure === undefined) {
      const served = await tryServe(file, env);
      if (!("exited" in served)) return { served, refused, accepted: document, checkOutput: check.stderr };
      failure = served.exited;
    }
    const key = namedKey(document, failure);
    assert.ok(key, `berth refused without naming a key of the file:\n${failure}`);
    refused.push(key.join("."));
    deletePath(document, key);
  }
  assert.fail(`berth still refuses after removing ${refused.join(", ")}`);
}

describe("distribution's configuration files", () => {
  it("Debian's /etc/docker/registry/config.yml: berth starts on it, or names each key it cannot honour and starts once those are removed", async (t) => {
    let text: string;
    try {
      text = await readFile(DEBIAN_CONFIG, "utf8");
    } catch {
      if (process.env.CI === "true" && !distribution.skip) assert.fail(`${DEBIAN_CONFIG} is missing although docker-registry is installed`);
      t.skip(`${DEBIAN_CONFIG} does not exist (Debian's docker-registry package is not installed)`);
      return;
    }
    const root = await newRoot();
    const env = { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root, REGISTRY_HTTP_ADDR: "127.0.0.1:0" };
    const { served, refused, accepted } = await startRemovingRefused(parseYaml(text) as Record<string, any>, env, "debian");
    try {
      t.diagnostic(`keys berth refuses in Debian's config: ${refused.join(", ") || "none"}`);
      for (const key of refused) assert.match(key, MAY_REFUSE, `${key} may not stop berth from starting`);
      // The API is served under http.prefix ("/my/nested/registry/" in distribution's example).
      const prefix = String(accepted.http?.prefix ?? "/").replace(/\/*$/, "/");
      const response = await fetch(`${served.url}${prefix}v2/`);
      await response.arrayBuffer();
      if (accepted.auth?.htpasswd) {
        // As distribution does on this file: htpasswd auth with no users locks everyone out.
        assert.equal(response.status, 401);
        assert.match(response.headers.get("www-authenticate") ?? "", /^Basic realm="basic-realm"/);
      } else {
        assert.equal(response.status, 200);
      }
      assert.equal(response.headers.get("x-content-type-options"), "nosniff", "http.headers from Debian's config");
      assert.doesNotMatch(served.output(), /health is not supported/, "berth runs the health checks");
    } finally {
      await served.stop();
    }
  });

  it("a config with every key distribution documents: each key berth cannot honour is named, the rest take effect or are warned about, and berth starts", async (t) => {
    const document = parseYaml(EVERY_KEY_CONFIG) as Record<string, any>;
    const root = await newRoot();
    const env = { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root, REGISTRY_HTTP_ADDR: "127.0.0.1:0" };
    // 1. Refusals (by `config check` or at start) name their key; each is removed until berth starts.
    const { served, refused, accepted } = await startRemovingRefused(document, env, "every-key");
    try {
      t.diagnostic(`refused: ${refused.join(", ")}`);
      for (const key of refused) assert.match(key, MAY_REFUSE, `${key} may not stop berth from starting`);
      // The API is served under http.prefix ("/my/nested/registry/" in distribution's example).
      const prefix = String(accepted.http?.prefix ?? "/").replace(/\/*$/, "/");
      const response = await fetch(`${served.url}${prefix}v2/`);
      await response.arrayBuffer();
      if (accepted.auth !== undefined) {
        assert.equal(response.status, 401, "auth is configured");
        assert.ok(response.headers.get("www-authenticate"));
      } else {
        assert.equal(response.status, 200);
      }
      // 2. Every warning about the file is logged at start.
      const { warnings } = parseConfig(stringifyYaml(accepted), env, "every-key.yml");
      for (const warning of warnings) assert.ok(served.output().includes(warning.split(" (")[0]!), `berth logs at start: ${warning}`);
    } finally {
      await served.stop();
    }

    // 3. Every remaining leaf either takes effect (removing it changes the effective
    //    configuration) or is named by a warning: nothing is silently ignored. (Without the
    //    environment overrides, which would mask removing http.addr or rootdirectory.)
    const baseline = parseConfig(stringifyYaml(accepted), {}, "every-key.yml");
    // The Config object itself (describeConfig masks the secret, and a generated one differs).
    const view = (config: unknown) => JSON.stringify(config, (_key, value: unknown) => (value instanceof Map ? [...value] : value));
    const baselineView = view(baseline.config);
    assert.ok(JSON.stringify(describeConfig(baseline.config)).length > 0);
    const silent: string[] = [];
    for (const path of leafPaths(accepted)) {
      if (baseline.warnings.some((w) => mentionsKey(w, path))) continue;
      const without = structuredClone(accepted);
      deletePath(without, path);
      let parsed: ReturnType<typeof parseConfig>;
      try {
        parsed = parseConfig(stringifyYaml(without), {}, "every-key.yml");
      } catch {
        continue; // required: it matters
      }
      if (view(parsed.config) === baselineView && JSON.stringify(parsed.warnings) === JSON.stringify(baseline.warnings)) silent.push(path.join("."));
    }
    assert.deepEqual(silent, [], `keys that neither take effect nor are warned about:\n${silent.join("\n")}\nwarnings:\n${baseline.warnings.join("\n")}`);
  });
});

/** Whether a warning names this key or one of its ancestors as a whole key path. */
function mentionsKey(warning: string, path: string[]): boolean {
  for (let i = path.length; i > 0; i--) {
    const key = path.slice(0, i).join(".");
    if (new RegExp(`(^|[\\s"'\`])${key.replaceAll(".", "\\.")}($|[\\s"'\`:,])`).test(warning)) return true;
  }
  return false;
}

function leafPaths(value: unknown, at: string[] = []): string[][] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return at.length > 0 ? [at] : [];
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return [at];
  return entries.flatMap(([key, child]) => leafPaths(child, [...at, key]));
}

/** Removes the key at `path`, and the sections it leaves empty (as a user editing the file would). */
function deletePath(node: Record<string, any>, path: string[]): void {
  const [key, ...rest] = path;
  if (key === undefined || node === null || typeof node !== "object" || !(key in node)) return;
  if (rest.length === 0) {
    delete node[key];
    return;
  }
  deletePath(node[key], rest);
  const child = node[key];
  if (child !== null && typeof child === "object" && !Array.isArray(child) && Object.keys(child).length === 0) delete node[key];
}

/**
 * Every key of distribution 2.8's configuration reference ("List of configuration options"), with
 * values that differ from the defaults wherever berth honours the key (so that removing a key berth
 * reads shows). Only one storage driver is configured, since distribution refuses more than one;
 * the other drivers are refused by name (covered in config.test.ts).
 */
const EVERY_KEY_CONFIG = `version: 0.1
log:
  accesslog:
    disabled: true
  level: debug
  formatter: json
  fields:
    service: registry
    environment: staging
  hooks:
    - type: mail
      disabled: true
      levels:
        - panic
      options:
        smtp:
          addr: mail.example.com:25
          username: mailuser
          password: password
          insecure: true
        from: sender@example.com
        to:
          - errors@example.com
loglevel: error
storage:
  filesystem:
    rootdirectory: /var/lib/registry-every-key
    maxthreads: 100
  delete:
    enabled: true
  redirect:
    disable: true
  cache:
    blobdescriptor: inmemory
    blobdescriptorsize: 12345
  maintenance:
    uploadpurging:
      enabled: false
      age: 100h
      interval: 10h
      dryrun: true
    readonly:
      enabled: true
  tag:
    concurrencylimit: 8
auth:
  silly:
    realm: silly-realm
    service: silly-service
  token:
    autoredirect: true
    realm: token-realm
    service: token-service
    issuer: registry-token-issuer
    rootcertbundle: /root/certs/bundle
  htpasswd:
    realm: basic-realm
    path: /path/to/htpasswd
middleware:
  registry:
    - name: ARegistryMiddleware
      options:
        foo: bar
  repository:
    - name: ARepositoryMiddleware
      options:
        foo: bar
  storage:
    - name: cloudfront
      options:
        baseurl: https://my.cloudfronted.domain.com/
        privatekey: /path/to/pem
        keypairid: cloudfrontkeypairid
        duration: 3000s
        ipfilteredby: awsregion
        awsregion: us-east-1, use-east-2
        updatefrequency: 12h
        iprangesurl: https://ip-ranges.amazonaws.com/ip-ranges.json
    - name: redirect
      options:
        baseurl: https://example.com/
reporting:
  bugsnag:
    apikey: bugsnagapikey
    releasestage: bugsnagreleasestage
    endpoint: bugsnagendpoint
  newrelic:
    licensekey: newreliclicensekey
    name: newrelicname
    verbose: true
http:
  addr: localhost:5000
  prefix: /my/nested/registry/
  host: https://myregistryaddress.org:5000
  secret: asecretforlocaldevelopment
  relativeurls: true
  draintimeout: 60s
  tls:
    certificate: /path/to/x509/public
    key: /path/to/x509/private
    clientcas:
      - /path/to/ca.pem
      - /path/to/another/ca.pem
    letsencrypt:
      cachefile: /path/to/cache-file
      email: emailused@letsencrypt.com
      hosts: [myregistryaddress.org]
  debug:
    addr: localhost:5001
    prometheus:
      enabled: true
      # Not the default /metrics, so that the key is seen to take effect.
      path: /prometheus
  headers:
    X-Content-Type-Options: [nosniff]
  http2:
    disabled: true
notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://my.listener.com/event
      headers:
        Authorization: [Bearer x]
      timeout: 1s
      threshold: 10
      backoff: 1s
      ignoredmediatypes:
        - application/octet-stream
      ignore:
        mediatypes:
          - application/octet-stream
        actions:
          - pull
redis:
  addr: localhost:6379
  password: asecret
  db: 0
  dialtimeout: 10ms
  readtimeout: 10ms
  writetimeout: 10ms
  pool:
    maxidle: 16
    maxactive: 64
    idletimeout: 300s
health:
  storagedriver:
    enabled: true
    interval: 15s
    threshold: 3
  file:
    - file: /path/to/checked/file
      interval: 10s
  http:
    - uri: http://localhost/must/return/200
      headers:
        Authorization: [Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==]
      statuscode: 200
      timeout: 3s
      interval: 10s
      threshold: 3
  tcp:
    - addr: localhost:6379
      timeout: 3s
      interval: 10s
      threshold: 3
proxy:
  remoteurl: https://registry-1.docker.io
  username: username
  password: password
compatibility:
  schema1:
    signingkeyfile: /etc/registry/key.json
    enabled: true
validation:
  disabled: true
  manifests:
    urls:
      allow:
        - ^https?://([^/]+\\.)*example\\.com/
      deny:
        - ^https?://www\\.example\\.com/
`;
