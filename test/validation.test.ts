/**
 * validation.manifests.urls: the URLs of layers in pushed manifests, over a real socket, with the
 * same pushes checked against distribution 2.8 (Debian's docker-registry) on the same rules; and
 * validation.manifests.indexes (distribution 3 only, so berth alone): which children of an index
 * must be in the repository.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { compileGoRegexp, compileGoRegexpList } from "../src/validation/go-regexp.js";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { requireDistribution, startDistribution, type DistributionProcess } from "./support/distribution-process.js";
import { DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, RegistryClient, digestOf, expectError, json, randomImage, uniqueName, unknownDigest } from "./support/registry-client.js";

const NON_DISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
const FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
// distribution's documented example, as in a config.yml.
const RULES = `validation:
  manifests:
    urls:
      allow:
        - ^https?://([^/]+\\.)*example\\.com/
      deny:
        - ^https?://www\\.example\\.com/`;

/** Pushes the config, then a manifest with one layer of `mediaType` naming `urls`; the PUT's response. */
async function pushWithLayerURLs(client: RegistryClient, name: string, urls: string[] | undefined, mediaType = NON_DISTRIBUTABLE, manifestType = OCI_MANIFEST): Promise<Response> {
  const image = randomImage({ layers: 0, mediaType: manifestType as typeof OCI_MANIFEST });
  await client.pushBlob(name, image.config, { chunkSize: 1 << 20 });
  const layer = { mediaType, digest: unknownDigest(), size: 1234, ...(urls === undefined ? {} : { urls }) };
  return client.putManifest(name, "t", json({ ...image.manifest, layers: [layer] }), manifestType);
}

describe("validation.manifests.urls with allow and deny lists", () => {
  let berth: BerthProcess;
  let client: RegistryClient;
  before(async () => {
    berth = await startBerth({ configYaml: testConfig({ sections: RULES }) });
    client = new RegistryClient(berth.url);
  });
  after(async () => {
    await berth.stop();
  });

  it("PUT of a manifest whose layer URL the allow list matches answers 201 without that blob", async () => {
    const response = await pushWithLayerURLs(client, uniqueName("v"), ["https://cdn.example.com/layer.tgz"]);
    assert.equal(response.status, 201);
  });

  it("PUT of a manifest whose layer URL the deny list matches answers 400 MANIFEST_INVALID and writes nothing", async () => {
    const name = uniqueName("v");
    const error = await expectError(await pushWithLayerURLs(client, name, ["https://cdn.example.com/a", "https://www.example.com/layer.tgz"]), 400, "MANIFEST_INVALID");
    assert.deepEqual((error.detail as Record<string, unknown>).url, "https://www.example.com/layer.tgz");
    assert.match(String((error.detail as Record<string, unknown>).reason), /validation\.manifests\.urls\.deny/);
    assert.equal((await client.send(`/v2/${name}/manifests/t`)).status, 404);
  });

  it("PUT of a manifest with a layer URL outside the allow list answers 400 MANIFEST_INVALID", async () => {
    const error = await expectError(await pushWithLayerURLs(client, uniqueName("v"), ["https://example.org/layer.tgz"]), 400, "MANIFEST_INVALID");
    assert.match(String((error.detail as Record<string, unknown>).reason), /allow/);
  });

  it("PUT with a layer URL that is not http(s), or has a fragment, answers 400 MANIFEST_INVALID", async () => {
    await expectError(await pushWithLayerURLs(client, uniqueName("v"), ["ftp://cdn.example.com/layer.tgz"]), 400, "MANIFEST_INVALID");
    await expectError(await pushWithLayerURLs(client, uniqueName("v"), ["https://cdn.example.com/layer.tgz#part"]), 400, "MANIFEST_INVALID");
    await expectError(await pushWithLayerURLs(client, uniqueName("v"), ["not a url"]), 400, "MANIFEST_INVALID");
  });

  it("PUT with urls that are not a list of strings answers 400 MANIFEST_INVALID", async () => {
    const name = uniqueName("v");
    const image = randomImage({ layers: 0 });
    await client.pushBlob(name, image.config);
    const layer = { mediaType: NON_DISTRIBUTABLE, digest: unknownDigest(), size: 1, urls: "https://cdn.example.com/x" };
    await expectError(await client.putManifest(name, "t", json({ ...image.manifest, layers: [layer] }), OCI_MANIFEST), 400, "MANIFEST_INVALID");
  });

  it("a Docker foreign layer must have urls: PUT without answers 400 MANIFEST_INVALID", async () => {
    await expectError(await pushWithLayerURLs(client, uniqueName("v"), undefined, FOREIGN, DOCKER_MANIFEST), 400, "MANIFEST_INVALID");
    assert.equal((await pushWithLayerURLs(client, uniqueName("v"), ["https://cdn.example.com/l"], FOREIGN, DOCKER_MANIFEST)).status, 201);
  });
});

describe("validation without lists, and validation.disabled", () => {
  it("with validation on and no lists no layer URL is allowed; disabled, any http(s) URL is (set from the environment)", async () => {
    const strict = await startBerth();
    const open = await startBerth({ env: { REGISTRY_VALIDATION_DISABLED: "true" } });
    try {
      await expectError(await pushWithLayerURLs(new RegistryClient(strict.url), uniqueName("v"), ["https://example.com/l"]), 400, "MANIFEST_INVALID");
      const openClient = new RegistryClient(open.url);
      assert.equal((await pushWithLayerURLs(openClient, uniqueName("v"), ["https://anywhere.test/l"])).status, 201);
      // The syntax is checked whatever the configuration, as in distribution.
      await expectError(await pushWithLayerURLs(openClient, uniqueName("v"), ["file:///etc/passwd"]), 400, "MANIFEST_INVALID");
    } finally {
      await strict.stop();
      await open.stop();
    }
  });

  it("an allow list from REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW applies", async () => {
    const berth = await startBerth({ env: { REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW: "['(?i)^https://MIRROR\\.test/']" } });
    try {
      const client = new RegistryClient(berth.url);
      assert.equal((await pushWithLayerURLs(client, uniqueName("v"), ["https://mirror.test/l"])).status, 201);
      await expectError(await pushWithLayerURLs(client, uniqueName("v"), ["https://other.test/l"]), 400, "MANIFEST_INVALID");
    } finally {
      await berth.stop();
    }
  });

  it("refuses to start on a pattern it cannot run, naming the entry", async () => {
    await assert.rejects(
      startBerth({ configYaml: testConfig({ sections: "validation:\n  manifests:\n    urls:\n      deny:\n        - ok\n        - a(?i)b" }) }),
      /validation\.manifests\.urls\.deny\[1\]: "a\(\?i\)b" is not a regular expression berth can run/,
    );
  });
});

const distribution = requireDistribution();

describe("validation decisions compared with distribution 2.8", { skip: distribution.skip }, () => {
  let work: string;
  let theirs: DistributionProcess;
  let ours: BerthProcess;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-validation-"));
    theirs = await startDistribution({ root: join(work, "distribution"), extraYaml: RULES });
    ours = await startBerth({ configYaml: testConfig({ sections: RULES }) });
  });
  after(async () => {
    await theirs?.stop();
    await ours?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it("accepts and refuses the same layer URLs; distribution answers a refusal with 500 UNKNOWN, berth with 400 MANIFEST_INVALID", async () => {
    const cases = [
      "https://cdn.example.com/l",
      "http://example.com/l",
      "https://www.example.com/l",
      "https://example.org/l",
      "ftp://cdn.example.com/l",
      "https://cdn.example.com/l#x",
    ];
    for (const url of cases) {
      const theirResponse = await pushWithLayerURLs(new RegistryClient(theirs.url), uniqueName("v"), [url]);
      const ourResponse = await pushWithLayerURLs(new RegistryClient(ours.url), uniqueName("v"), [url]);
      if (theirResponse.status === 201) {
        assert.equal(ourResponse.status, 201, url);
      } else {
        await expectError(theirResponse, 500, "UNKNOWN");
        await expectError(ourResponse, 400, "MANIFEST_INVALID");
      }
    }
  });
});

describe("validation.manifests.indexes: which children of a pushed index must be in the repository", () => {
  const modes = {
    all: "",
    none: "validation:\n  manifests:\n    indexes:\n      platforms: none",
    list: "validation:\n  manifests:\n    indexes:\n      platforms: list\n      platformlist:\n        - architecture: amd64\n          os: linux",
  };
  const servers: Partial<Record<keyof typeof modes, { berth: BerthProcess; client: RegistryClient }>> = {};
  before(async () => {
    for (const [mode, sections] of Object.entries(modes) as Array<[keyof typeof modes, string]>) {
      const berth = await startBerth({ configYaml: testConfig({ sections }) });
      servers[mode] = { berth, client: new RegistryClient(berth.url) };
    }
  });
  after(async () => {
    for (const server of Object.values(servers)) await server.berth.stop();
  });

  /** An index over `children` (digest, os/arch), pushed by digest after one image it may name; the PUT's response and the index's digest. */
  async function pushIndex(client: RegistryClient, name: string, children: Array<{ digest: string; platform: string }>): Promise<{ response: Response; digest: string }> {
    const bytes = json({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: children.map(({ digest, platform }) => {
        const [os, architecture] = platform.split("/");
        return { mediaType: OCI_MANIFEST, digest, size: 321, platform: { architecture, os } };
      }),
    });
    const digest = digestOf(bytes);
    return { response: await client.putManifest(name, digest, bytes, OCI_INDEX), digest };
  }

  for (const mode of Object.keys(modes) as Array<keyof typeof modes>) {
    it(`platforms: ${mode}: a missing child is refused 400 MANIFEST_BLOB_UNKNOWN where the mode requires it, with nothing written`, async () => {
      const { client } = servers[mode]!;
      const name = uniqueName(`idx-${mode}`);
      const present = await client.pushImage(name, undefined);
      const [missingArm, missingAmd] = [unknownDigest(), unknownDigest()];
      // An arm64 child missing: only "all" requires it.
      const arm = await pushIndex(client, name, [{ digest: present.digest, platform: "linux/amd64" }, { digest: missingArm, platform: "linux/arm64" }]);
      // An amd64 child missing: "all" and "list" (linux/amd64) require it.
      const amd = await pushIndex(client, name, [{ digest: missingAmd, platform: "linux/amd64" }]);
      const expected = { all: [false, false], none: [true, true], list: [true, false] }[mode];
      for (const [i, [pushed, missing]] of ([[arm, missingArm], [amd, missingAmd]] as const).entries()) {
        if (expected[i]) {
          assert.equal(pushed.response.status, 201, `${mode}: index ${i}`);
          assert.equal((await client.send(`/v2/${name}/manifests/${pushed.digest}`, { headers: { Accept: OCI_INDEX } })).status, 200);
        } else {
          const error = await expectError(pushed.response, 400, "MANIFEST_BLOB_UNKNOWN");
          assert.deepEqual((error.detail as { digests: string[] }).digests, [missing]);
          assert.equal((await client.send(`/v2/${name}/manifests/${pushed.digest}`, { headers: { Accept: OCI_INDEX } })).status, 404);
        }
      }
    });
  }
});

describe("Go regular expressions", () => {
  it("translates what Go writes differently", () => {
    assert.ok(compileGoRegexp("\\Ahttps://x\\z").test("https://x"));
    assert.ok(!compileGoRegexp("\\Ahttps://x\\z").test("https://x/y"));
    assert.ok(compileGoRegexp("(?i)^HTTPS://").test("https://a"));
    assert.ok(compileGoRegexp("^https://(?P<host>[[:alnum:].-]+)/").test("https://a-1.b/"));
    assert.ok(compileGoRegexp("\\Qa.b\\E$").test("xa.b"));
    assert.ok(!compileGoRegexp("\\Qa.b\\E$").test("xaxb"));
    assert.ok(compileGoRegexp("\\p{L}+").test("é"));
  });

  it("joins a list as distribution does, each entry keeping its own flags", () => {
    const list = compileGoRegexpList(["(?i)^https://A/", "^http://b/"])!;
    assert.ok(list.test("https://a/x"));
    assert.ok(list.test("http://b/x"));
    assert.ok(!list.test("http://B/x"));
    assert.equal(compileGoRegexpList([]), undefined);
  });

  it("refuses what JavaScript would read differently", () => {
    assert.throws(() => compileGoRegexp("a(?i)b"), /flag groups/);
    assert.throws(() => compileGoRegexp("(?i:a)"), /flag groups/);
    assert.throws(() => compileGoRegexp("(?U)a+"), /ungreedy/);
    assert.throws(() => compileGoRegexp("\\pL"), /braces/);
    assert.throws(() => compileGoRegexp("[[:nope:]]"), /POSIX/);
    assert.throws(() => compileGoRegexp("(unclosed"));
  });
});
