/**
 * GET /v2/<name>/referrers/<digest>?artifactType=: the OCI index of manifests whose subject is the
 * digest. The fixture mirrors the conformance suite's (03_discovery_test.go): two artifacts whose
 * type is their config's media type, two with artifactType and the empty config, an index
 * artifact, and one referrer of a subject that was never pushed.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startBerth, type BerthProcess } from "./support/berth-process.js";
import {
  EMPTY_JSON,
  EMPTY_JSON_DIGEST,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_MANIFEST,
  RegistryClient,
  descriptorOf,
  expectError,
  json,
  randomImage,
  uniqueName,
  unknownDigest,
  type Descriptor,
  type ImageParts,
} from "./support/registry-client.js";

interface Index {
  schemaVersion: number;
  mediaType: string;
  manifests: Descriptor[];
}

const ANNOTATION = "org.opencontainers.conformance.test";
const TYPE_A = "application/vnd.nhl.peanut.butter.bagel";
const TYPE_B = "application/vnd.nba.strawberry.jam.croissant";
const TYPE_INDEX = "application/vnd.food.stand";

let berth: BerthProcess;
let client: RegistryClient;
const name = uniqueName("refs");
const blobA = Buffer.from("NHL Peanut Butter on my NHL bagel");
const blobB = Buffer.from("NBA Strawberry Jam on my NBA croissant");
let subject: ImageParts;
const absentSubject = randomImage();
/** digest → the annotation value its manifest carries */
const expected = new Map<string, { artifactType: string; annotation: string | undefined; bytes: Buffer; mediaType: string }>();
let referrerOfAbsent: string;

function configArtifact(type: string, config: Buffer, subjectDescriptor: Descriptor, annotation: string): Buffer {
  return Buffer.from(
    JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: descriptorOf(type, config),
        subject: subjectDescriptor,
        layers: [{ mediaType: OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: 2 }],
        annotations: { [ANNOTATION]: annotation },
      },
      null,
      "\t",
    ),
  );
}

function layerArtifact(type: string, layer: Buffer, subjectDescriptor: Descriptor, annotation?: string): Buffer {
  return Buffer.from(
    JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: type,
        config: { mediaType: OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: 2 },
        subject: subjectDescriptor,
        layers: [descriptorOf(type, layer)],
        ...(annotation !== undefined ? { annotations: { [ANNOTATION]: annotation } } : {}),
      },
      null,
      "\t",
    ),
  );
}

async function pushReferrer(bytes: Buffer, mediaType: string, artifactType: string, annotation: string | undefined): Promise<string> {
  const response = await client.putManifest(name, descriptorOf(mediaType, bytes).digest, bytes, mediaType);
  assert.equal(response.status, 201);
  const digest = response.headers.get("docker-content-digest")!;
  expected.set(digest, { artifactType, annotation, bytes, mediaType });
  return digest;
}

before(async () => {
  berth = await startBerth();
  client = new RegistryClient(berth.url);
  await client.pushBlob(name, EMPTY_JSON);
  await client.pushBlob(name, blobA);
  await client.pushBlob(name, blobB);
  const subjectDescriptor = (image: ImageParts): Descriptor => descriptorOf(OCI_MANIFEST, image.bytes);
  subject = randomImage();
  // Referrers A pushed before their subject, B after it, as the conformance suite does.
  const aConfig = configArtifact(TYPE_A, blobA, subjectDescriptor(subject), "test config a");
  const aLayer = layerArtifact(TYPE_A, blobA, subjectDescriptor(subject), "test layer a");
  await pushReferrer(aConfig, OCI_MANIFEST, TYPE_A, "test config a");
  await pushReferrer(aLayer, OCI_MANIFEST, TYPE_A, "test layer a");
  const index = Buffer.from(
    JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        artifactType: TYPE_INDEX,
        manifests: [descriptorOf(OCI_MANIFEST, aConfig), descriptorOf(OCI_MANIFEST, aLayer)],
        subject: subjectDescriptor(subject),
        annotations: { [ANNOTATION]: "test index" },
      },
      null,
      "\t",
    ),
  );
  await pushReferrer(index, OCI_INDEX, TYPE_INDEX, "test index");
  await client.pushImage(name, "tagtest0", subject);
  await pushReferrer(configArtifact(TYPE_B, blobB, subjectDescriptor(subject), "test config b"), OCI_MANIFEST, TYPE_B, "test config b");
  await pushReferrer(layerArtifact(TYPE_B, blobB, subjectDescriptor(subject), "test layer b"), OCI_MANIFEST, TYPE_B, "test layer b");
  const c = layerArtifact(TYPE_B, blobB, subjectDescriptor(absentSubject));
  const response = await client.putManifest(name, descriptorOf(OCI_MANIFEST, c).digest, c, OCI_MANIFEST);
  assert.equal(response.status, 201);
  assert.equal(response.headers.get("oci-subject"), absentSubject.digest);
  referrerOfAbsent = response.headers.get("docker-content-digest")!;
});

after(async () => {
  await berth.stop();
});

async function referrers(repository: string, digest: string, query = ""): Promise<{ response: Response; index: Index }> {
  const response = await client.fetch(`/v2/${repository}/referrers/${digest}${query}`);
  const index = (await response.json()) as Index;
  return { response, index };
}

test("GET /v2/<name>/referrers/<digest> answers 200 with an OCI index of every referrer", async () => {
  const { response, index } = await referrers(name, subject.digest);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), OCI_INDEX);
  assert.equal(index.schemaVersion, 2);
  assert.equal(index.mediaType, OCI_INDEX);
  assert.equal(index.manifests.length, 5);
  assert.deepEqual(new Set(index.manifests.map((d) => d.digest)), new Set([...expected.keys()]));
  assert.equal(response.headers.get("oci-filters-applied"), null);
});

test("GET /v2/<name>/referrers/<digest> gives each descriptor its mediaType, digest and size", async () => {
  const { index } = await referrers(name, subject.digest);
  for (const descriptor of index.manifests) {
    const pushed = expected.get(descriptor.digest)!;
    assert.equal(descriptor.mediaType, pushed.mediaType);
    assert.equal(descriptor.size, pushed.bytes.length);
  }
});

test("GET /v2/<name>/referrers/<digest> gives each descriptor its artifactType (or its config's media type)", async () => {
  const { index } = await referrers(name, subject.digest);
  for (const descriptor of index.manifests) {
    assert.equal(descriptor.artifactType, expected.get(descriptor.digest)!.artifactType, descriptor.digest);
  }
});

test("GET /v2/<name>/referrers/<digest> gives each descriptor the manifest's annotations", async () => {
  const { index } = await referrers(name, subject.digest);
  for (const descriptor of index.manifests) {
    assert.deepEqual(descriptor.annotations, { [ANNOTATION]: expected.get(descriptor.digest)!.annotation });
  }
});

test("GET /v2/<name>/referrers/<digest>?artifactType= answers only that type, with OCI-Filters-Applied: artifactType", async () => {
  const { response, index } = await referrers(name, subject.digest, `?artifactType=${encodeURIComponent(TYPE_A)}`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), OCI_INDEX);
  assert.equal(response.headers.get("oci-filters-applied"), "artifactType");
  assert.equal(index.manifests.length, 2);
  for (const descriptor of index.manifests) {
    assert.equal(descriptor.artifactType, TYPE_A);
    assert.equal(descriptor.annotations?.[ANNOTATION], expected.get(descriptor.digest)!.annotation);
  }
});

test("GET /v2/<name>/referrers/<digest>?artifactType= of the index artifact's type answers the index", async () => {
  const { index } = await referrers(name, subject.digest, `?artifactType=${encodeURIComponent(TYPE_INDEX)}`);
  assert.equal(index.manifests.length, 1);
  assert.equal(index.manifests[0]!.mediaType, OCI_INDEX);
});

test("GET /v2/<name>/referrers/<digest>?artifactType= matching nothing answers 200 with an empty index", async () => {
  const { response, index } = await referrers(name, subject.digest, "?artifactType=application%2Fvnd.example.none");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("oci-filters-applied"), "artifactType");
  assert.deepEqual(index.manifests, []);
});

test("GET /v2/<name>/referrers/<digest> of an unknown subject answers 200 with an empty OCI index", async () => {
  const { response, index } = await referrers(name, unknownDigest());
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), OCI_INDEX);
  assert.equal(index.schemaVersion, 2);
  assert.equal(index.mediaType, OCI_INDEX);
  assert.deepEqual(index.manifests, []);
});

test("GET /v2/<name>/referrers/<digest> of a subject that was never pushed lists its referrer", async () => {
  const { response, index } = await referrers(name, absentSubject.digest);
  assert.equal(response.status, 200);
  assert.deepEqual(
    index.manifests.map((d) => d.digest),
    [referrerOfAbsent],
  );
});

test("GET /v2/<name>/referrers/<digest> in a repository that does not exist answers 200 with an empty index", async () => {
  const { response, index } = await referrers(uniqueName("ghost"), subject.digest);
  assert.equal(response.status, 200);
  assert.deepEqual(index.manifests, []);
});

test("GET /v2/<name>/referrers/<digest> lists only the referrers pushed to that repository", async () => {
  const other = uniqueName("refs");
  const base = await client.pushImage(other, "base");
  const { index: before } = await referrers(other, base.digest);
  assert.deepEqual(before.manifests, []);
  const { index } = await referrers(name, base.digest);
  assert.deepEqual(index.manifests, []);
});

test("GET /v2/<name>/referrers/<digest> no longer lists a referrer after DELETE of its manifest", async () => {
  const repo = uniqueName("refs");
  const base = await client.pushImage(repo, "base");
  await client.pushBlob(repo, EMPTY_JSON);
  await client.pushBlob(repo, blobA);
  const keep = layerArtifact(TYPE_A, blobA, descriptorOf(OCI_MANIFEST, base.bytes), "keep");
  const drop = layerArtifact(TYPE_B, blobA, descriptorOf(OCI_MANIFEST, base.bytes), "drop");
  const keepDigest = await client.pushManifest(repo, descriptorOf(OCI_MANIFEST, keep).digest, keep, OCI_MANIFEST);
  const dropDigest = await client.pushManifest(repo, descriptorOf(OCI_MANIFEST, drop).digest, drop, OCI_MANIFEST);
  assert.equal((await referrers(repo, base.digest)).index.manifests.length, 2);
  assert.equal((await client.send(`/v2/${repo}/manifests/${dropDigest}`, { method: "DELETE" })).status, 202);
  const { index } = await referrers(repo, base.digest);
  assert.deepEqual(
    index.manifests.map((d) => d.digest),
    [keepDigest],
  );
});

test("GET /v2/<name>/referrers/<digest> lists a referrer pushed by tag", async () => {
  const repo = uniqueName("refs");
  const base = await client.pushImage(repo, "base");
  const sig = randomImage({ emptyConfig: true, artifactType: "application/vnd.example.sig", subject: descriptorOf(OCI_MANIFEST, base.bytes) });
  await client.pushImage(repo, "sig", sig);
  const { index } = await referrers(repo, base.digest);
  assert.deepEqual(
    index.manifests.map((d) => [d.digest, d.artifactType]),
    [[sig.digest, "application/vnd.example.sig"]],
  );
});

test("GET /v2/<name>/referrers/<digest> of an image without artifactType reports its config media type", async () => {
  const repo = uniqueName("refs");
  const base = await client.pushImage(repo, "base");
  const plain = randomImage({ subject: descriptorOf(OCI_MANIFEST, base.bytes) });
  await client.pushImage(repo, undefined, plain);
  const { index } = await referrers(repo, base.digest);
  assert.equal(index.manifests[0]!.artifactType, "application/vnd.oci.image.config.v1+json");
});

test("GET /v2/<name>/referrers/<digest> with a malformed digest answers 400 DIGEST_INVALID", async () => {
  await expectError(await client.fetch(`/v2/${name}/referrers/sha256:nothex`), 400, "DIGEST_INVALID");
});

test("GET /v2/<name>/referrers/<tag> answers 400 DIGEST_INVALID", async () => {
  await expectError(await client.fetch(`/v2/${name}/referrers/tagtest0`), 400, "DIGEST_INVALID");
});

test("PUT of a referrer answers OCI-Subject with its subject's digest", async () => {
  const repo = uniqueName("refs");
  const base = await client.pushImage(repo, "base");
  await client.pushBlob(repo, EMPTY_JSON);
  await client.pushBlob(repo, blobB);
  const bytes = json(JSON.parse(layerArtifact(TYPE_B, blobB, descriptorOf(OCI_MANIFEST, base.bytes)).toString()));
  const response = await client.putManifest(repo, "sig", bytes, OCI_MANIFEST);
  assert.equal(response.status, 201);
  assert.equal(response.headers.get("oci-subject"), base.digest);
});
