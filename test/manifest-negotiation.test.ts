/**
 * HEAD/GET /v2/<name>/manifests/<reference> and the Accept header: the same requests to berth and
 * to distribution 2.8 (Debian's docker-registry), on the same content pushed to each, give the same
 * answers, except where berth deliberately differs (no Accept, or a wildcard: berth serves the
 * manifest as stored).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startBerth, type BerthProcess } from "./support/berth-process.js";
import { requireDistribution, startDistribution, type DistributionProcess } from "./support/distribution-process.js";
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, RegistryClient, indexOf, randomImage, type ImageParts } from "./support/registry-client.js";

interface Pushed {
  oci: ImageParts;
  docker: ImageParts;
  index: { digest: string; bytes: Buffer };
  list: { digest: string; bytes: Buffer };
  /** A list without a linux/amd64 image. */
  armList: { digest: string; bytes: Buffer };
}

/** The same content on any registry: tags oci, docker, index, list, armlist in repository neg/app. */
async function pushContent(client: RegistryClient, content: { oci: ImageParts; docker: ImageParts }): Promise<Pushed> {
  await client.pushImage("neg/app", "oci", content.oci);
  await client.pushImage("neg/app", "docker", content.docker);
  const index = indexOf([{ mediaType: OCI_MANIFEST, digest: content.oci.digest, size: content.oci.bytes.length }]);
  await client.pushManifest("neg/app", "index", index.bytes, OCI_INDEX);
  const list = indexOf([{ mediaType: DOCKER_MANIFEST, digest: content.docker.digest, size: content.docker.bytes.length }], { mediaType: DOCKER_MANIFEST_LIST });
  await client.pushManifest("neg/app", "list", list.bytes, DOCKER_MANIFEST_LIST);
  const armManifest = { ...list.manifest, manifests: [{ mediaType: DOCKER_MANIFEST, digest: content.docker.digest, size: content.docker.bytes.length, platform: { architecture: "arm64", os: "linux" } }] };
  const armBytes = Buffer.from(JSON.stringify(armManifest));
  const armDigest = await client.pushManifest("neg/app", "armlist", armBytes, DOCKER_MANIFEST_LIST);
  return { ...content, index, list, armList: { digest: armDigest, bytes: armBytes } };
}

interface Answer {
  status: number;
  contentType: string | null;
  digest: string | null;
  body: string;
}

async function ask(client: RegistryClient, method: "GET" | "HEAD", reference: string, accept: string | undefined): Promise<Answer> {
  const response = await client.send(`/v2/neg/app/manifests/${reference}`, { method, headers: accept === undefined ? {} : { Accept: accept } });
  const body = await response.text();
  const ok = response.status === 200;
  return {
    status: response.status,
    contentType: ok ? response.headers.get("content-type") : null,
    digest: ok ? response.headers.get("docker-content-digest") : null,
    // Error bodies: the codes and messages (distribution's detail differs in shape).
    body: ok ? body : method === "HEAD" ? "" : JSON.stringify((JSON.parse(body) as { errors: Array<{ code: string; message: string }> }).errors.map((e) => [e.code, e.message])),
  };
}

const ALL = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(", ");
/** Requests whose answers must be the same from both registries. */
const SAME: Array<[string, string]> = [
  ["oci", OCI_MANIFEST],
  ["oci", ALL],
  ["oci", DOCKER_MANIFEST],
  ["oci", `${DOCKER_MANIFEST}, ${OCI_INDEX}`],
  ["oci", `${OCI_MANIFEST};q=0`],
  ["index", OCI_INDEX],
  ["index", OCI_MANIFEST],
  ["index", DOCKER_MANIFEST_LIST],
  ["docker", DOCKER_MANIFEST],
  ["docker", ALL],
  ["list", DOCKER_MANIFEST_LIST],
  ["list", ALL],
  ["list", DOCKER_MANIFEST],
  ["list", `${DOCKER_MANIFEST}, ${OCI_MANIFEST}`],
  ["armlist", DOCKER_MANIFEST],
];

const distribution = requireDistribution();

describe("manifest content negotiation, berth beside distribution 2.8", { skip: distribution.skip }, () => {
  let work: string;
  let theirs: DistributionProcess;
  let ours: BerthProcess;
  let ourClient: RegistryClient;
  let theirClient: RegistryClient;
  let pushed: Pushed;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-negotiation-"));
    [theirs, ours] = await Promise.all([startDistribution({ root: join(work, "distribution") }), startBerth()]);
    ourClient = new RegistryClient(ours.url);
    theirClient = new RegistryClient(theirs.url);
    // distribution 2.8 takes no monolithic POST ?digest= upload: push blobs in one PATCH there.
    const pushBlob = theirClient.pushBlob.bind(theirClient);
    theirClient.pushBlob = (name, bytes, options = {}) => pushBlob(name, bytes, { chunkSize: 1 << 20, ...options });
    const content = { oci: randomImage(), docker: randomImage({ mediaType: DOCKER_MANIFEST }) };
    pushed = await pushContent(ourClient, content);
    await pushContent(theirClient, content);
  });
  after(async () => {
    await theirs?.stop();
    await ours?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it("GET and HEAD answer as distribution's: status, Content-Type, Docker-Content-Digest, body, error code and message", async () => {
    for (const [reference, accept] of SAME) {
      for (const method of ["GET", "HEAD"] as const) {
        assert.deepEqual(await ask(ourClient, method, reference, accept), await ask(theirClient, method, reference, accept), `${method} ${reference} Accept: ${accept}`);
      }
    }
  });

  it("GET of an OCI manifest or index the Accept header does not name answers 404 MANIFEST_UNKNOWN with distribution's message", async () => {
    assert.deepEqual(await ask(ourClient, "GET", "oci", DOCKER_MANIFEST), {
      status: 404,
      contentType: null,
      digest: null,
      body: JSON.stringify([["MANIFEST_UNKNOWN", "OCI manifest found, but accept header does not support OCI manifests"]]),
    });
    assert.equal((await ask(ourClient, "GET", "index", OCI_MANIFEST)).body, JSON.stringify([["MANIFEST_UNKNOWN", "OCI index found, but accept header does not support OCI indexes"]]));
    assert.equal((await ask(ourClient, "HEAD", "index", OCI_MANIFEST)).status, 404);
  });

  it("GET of a manifest list by tag without the list type answers its linux/amd64 image, with that image's digest", async () => {
    const answer = await ask(ourClient, "GET", "list", DOCKER_MANIFEST);
    assert.equal(answer.status, 200);
    assert.equal(answer.digest, pushed.docker.digest);
    assert.equal(answer.body, pushed.docker.bytes.toString());
    // By digest the list itself: the answer must be the bytes the digest names.
    const byDigest = await ask(ourClient, "GET", pushed.list.digest, DOCKER_MANIFEST);
    assert.equal(byDigest.digest, pushed.list.digest);
    assert.equal((await ask(ourClient, "GET", "armlist", DOCKER_MANIFEST)).status, 404);
  });

  it("berth differs where documented: without Accept, or with */*, the manifest is served as stored; distribution answers 404 (OCI) or 400 (rewrite to schema 1)", async () => {
    for (const [reference, expected] of [
      ["oci", pushed.oci.digest],
      ["index", pushed.index.digest],
      ["docker", pushed.docker.digest],
      ["list", pushed.list.digest],
    ] as const) {
      for (const accept of [undefined, "*/*"]) {
        const answer = await ask(ourClient, "GET", reference, accept);
        assert.equal(answer.status, 200, `${reference} Accept: ${accept}`);
        assert.equal(answer.digest, expected);
        assert.notEqual((await ask(theirClient, "GET", reference, accept)).status, 200, `distribution refuses ${reference} Accept: ${accept}`);
      }
    }
    // A Docker schema 2 manifest asked for as OCI only: berth serves it (distribution 3 too); 2.8 tries schema 1.
    assert.equal((await ask(ourClient, "GET", "docker", OCI_MANIFEST)).status, 200);
    assert.equal((await ask(theirClient, "GET", "docker", OCI_MANIFEST)).status, 400);
  });

  it("If-None-Match with the tag's digest answers 304 whatever the Accept header, as distribution", async () => {
    for (const client of [ourClient, theirClient]) {
      const response = await client.send("/v2/neg/app/manifests/oci", { headers: { Accept: DOCKER_MANIFEST, "If-None-Match": `"${pushed.oci.digest}"` } });
      assert.equal(response.status, 304);
    }
  });
});
