/**
 * policy.repository.classes, side by side with Debian's docker-registry (distribution 2.8) given
 * the same policy: the same manifest pushes answer the same status and error code, and a refused
 * manifest is not stored.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { requireDistribution, startDistribution, type DistributionProcess } from "./support/distribution-process.js";
import { descriptorOf, indexOf, randomImage, RegistryClient, uniqueName, type ImageParts } from "./support/registry-client.js";
import { DOCKER_MANIFEST, OCI_MANIFEST } from "../src/manifest/media-types.js";

const distributionSkip = requireDistribution().skip;
const POLICY = "policy:\n  repository:\n    classes:\n      - image\n";

interface Answer {
  status: number;
  code: string | undefined;
  message: string | undefined;
}

async function putImage(client: RegistryClient, name: string, tag: string, image: ImageParts): Promise<Answer> {
  // Chunked: distribution 2.8 has no single-POST upload.
  for (const blob of [image.config, ...image.layers]) await client.pushBlob(name, blob, { chunkSize: blob.length });
  const response = await client.putManifest(name, tag, image.bytes, image.mediaType);
  const body = response.status === 201 ? undefined : ((await response.json()) as { errors: Array<{ code: string; message: string }> });
  return { status: response.status, code: body?.errors[0]?.code, message: body?.errors[0]?.message };
}

describe("policy.repository.classes, as distribution 2.8 applies it", { skip: distributionSkip }, () => {
  let berth: BerthProcess;
  let distribution: DistributionProcess;
  let dir: string;
  const clients: Array<[string, RegistryClient]> = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-policy-"));
    berth = await startBerth({ configYaml: testConfig({ sections: POLICY }) });
    distribution = await startDistribution({ root: join(dir, "distribution"), extraYaml: POLICY });
    clients.push(["berth", new RegistryClient(berth.url)], ["distribution", new RegistryClient(distribution.url)]);
  });
  after(async () => {
    await berth?.stop();
    await distribution?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function both(push: (client: RegistryClient, name: string) => Promise<Answer>): Promise<Answer> {
    const answers: Answer[] = [];
    for (const [, client] of clients) answers.push(await push(client, uniqueName("policy")));
    assert.deepEqual(answers[0], answers[1], "berth and distribution answer the same");
    return answers[0]!;
  }

  it("an image manifest, Docker or OCI, is accepted", async () => {
    for (const mediaType of [DOCKER_MANIFEST, OCI_MANIFEST] as const) {
      const answer = await both((client, name) => putImage(client, name, "v1", randomImage({ mediaType })));
      assert.equal(answer.status, 201);
    }
  });

  it("a Docker plugin is refused 403 DENIED: the plugin class is not allowed; nothing is stored", async () => {
    const plugin = randomImage({ mediaType: DOCKER_MANIFEST, configMediaType: "application/vnd.docker.plugin.v1+json" });
    const answer = await both(async (client, name) => {
      const put = await putImage(client, name, "v1", plugin);
      assert.equal((await client.get(`/v2/${name}/manifests/${plugin.digest}`, { Accept: DOCKER_MANIFEST })).response.status, 404, "not stored");
      return put;
    });
    assert.deepEqual(answer, { status: 403, code: "DENIED", message: "registry does not allow plugin manifest" });
  });

  it("an OCI artifact, whose config names no image, is refused 403 DENIED with the config's media type", async () => {
    const artifact = randomImage({ configMediaType: "application/vnd.example.sbom+json", artifactType: "application/vnd.example.sbom+json" });
    const answer = await both((client, name) => putImage(client, name, "sbom", artifact));
    assert.deepEqual(answer, { status: 403, code: "DENIED", message: "unknown manifest class for application/vnd.example.sbom+json" });
  });

  it("an index has no class and is accepted", async () => {
    const answer = await both(async (client, name) => {
      const child = await putImage(client, name, "child", randomImage());
      assert.equal(child.status, 201);
      const image = randomImage();
      await putImage(client, name, "child2", image);
      const index = indexOf([descriptorOf(OCI_MANIFEST, image.bytes)]);
      const response = await client.putManifest(name, "multi", index.bytes, index.mediaType);
      return { status: response.status, code: undefined, message: undefined };
    });
    assert.equal(answer.status, 201);
  });
});

describe("policy.repository.classes: plugin only", () => {
  it("refuses an image with distribution's message and stores nothing", async () => {
    const berth = await startBerth({ configYaml: testConfig({ sections: "policy:\n  repository:\n    classes: [plugin]\n" }) });
    try {
      const client = new RegistryClient(berth.url);
      const name = uniqueName("plugins");
      const answer = await putImage(client, name, "v1", randomImage());
      assert.deepEqual(answer, { status: 403, code: "DENIED", message: "registry does not allow image manifest" });
      assert.equal((await client.get(`/v2/${name}/manifests/v1`)).response.status, 404);
    } finally {
      await berth.stop();
    }
  });
});
