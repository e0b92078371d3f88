/**
 * Expiry of the pull-through cache: counted from the last pull, shared blobs kept while any image
 * using them is within its TTL, no storage.delete.enabled needed, and the size limit evicting the
 * least recently pulled first. Pulls go through real mirror processes; the expiry runs are driven
 * here on the same storage with a chosen clock, so no test waits for hours.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { NoBlobDescriptorCache } from "../src/cache/blob-descriptor-cache.js";
import { parseConfig } from "../src/config/load-config.js";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { CacheExpiry } from "../src/proxy/cache-expiry.js";
import { PullRecords } from "../src/proxy/pull-records.js";
import { Upstream } from "../src/proxy/upstream.js";
import { StorageRegistry } from "../src/registry/storage-registry.js";
import { memoryLogger } from "./support/memory-logger.js";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { RegistryClient, digestOf, randomBlob, randomImage, registryTree, uniqueName, waitFor, type ImageParts } from "./support/registry-client.js";

const HOUR = 3_600_000;
let upstream: BerthProcess;
let up: RegistryClient;
let work: string;

before(async () => {
  upstream = await startBerth();
  up = new RegistryClient(upstream.url);
  work = await mkdtemp(join(tmpdir(), "berth-expiry-"));
});

after(async () => {
  await upstream?.stop();
  await rm(work, { recursive: true, force: true });
});

function mirrorConfig(upstreamLines: string): string {
  // No storage.delete.enabled: expiry is the registry's housekeeping, not a client's delete.
  return testConfig({ deleteEnabled: false, sections: `proxy:\n  upstreams:\n    - prefix: up\n      remoteurl: ${upstream.url}\n${upstreamLines}` });
}

/** An image of the given layers, pushed to the upstream as `remote:v1`. */
async function pushWithLayers(remote: string, layers: Buffer[]): Promise<ImageParts> {
  const base = randomImage();
  const manifest = {
    ...base.manifest,
    layers: layers.map((layer) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: digestOf(layer), size: layer.length })),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return up.pushImage(remote, "v1", { ...base, layers, manifest, bytes, digest: digestOf(bytes) });
}

/** What `docker pull` does: the manifest by tag, then the config and every layer. */
async function pull(mirror: BerthProcess, name: string, image: ImageParts): Promise<void> {
  const client = new RegistryClient(mirror.url);
  const manifest = await client.get(`/v2/${name}/manifests/v1`);
  assert.deepEqual(manifest.bytes, image.bytes);
  for (const blob of [image.config, ...image.layers]) {
    const { bytes } = await client.get(`/v2/${name}/blobs/${digestOf(blob)}`);
    assert.ok(bytes.equals(blob));
  }
}

function blobData(root: string, blob: Buffer | string): string {
  const digest = typeof blob === "string" ? blob : digestOf(blob);
  return join(registryTree(root), "blobs", "sha256", digest.slice(7, 9), digest.slice(7), "data");
}

/** Rewrites every pull record of a repository to `time`, as if it was last pulled then. */
async function setPulledAt(root: string, name: string, time: number): Promise<void> {
  for (const kind of ["manifests", "blobs"]) {
    const dir = join(registryTree(root), "repositories", name, "_proxy", "pulled", kind, "sha256");
    for (const hex of await readdir(dir)) await writeFile(join(dir, hex), new Date(time).toISOString());
  }
}

/** The expiry of a mirror configured by `yaml`, over its storage root, driven by the test. */
function expiryFor(root: string, yaml: string): { expiry: CacheExpiry; logText: () => string } {
  const { config } = parseConfig(yaml.replaceAll("{{root}}", root), {}, "test.yml");
  const memory = memoryLogger();
  const driver = new FilesystemDriver(root);
  const local = new StorageRegistry({ driver, cache: new NoBlobDescriptorCache(), log: memory.log, deleteEnabled: false, readOnly: false });
  const upstreams = config.proxy!.upstreams.map((u) => new Upstream(u, memory.log));
  const expiry = new CacheExpiry(driver, local, upstreams, new PullRecords(driver, HOUR, memory.log), memory.log);
  return { expiry, logText: memory.text };
}

describe("expiry by TTL", () => {
  test("counts from the last pull, and keeps a shared layer while any image using it is within its TTL", async () => {
    const root = join(work, "ttl");
    const yaml = mirrorConfig("      ttl: 1h");
    const shared = randomBlob(30_000);
    const onlyA = randomBlob(20_000);
    const onlyB = randomBlob(25_000);
    const nameA = uniqueName("expire-a");
    const nameB = uniqueName("expire-b");
    const imageA = await pushWithLayers(nameA, [shared, onlyA]);
    const imageB = await pushWithLayers(nameB, [shared, onlyB]);

    const first = await startBerth({ configYaml: yaml, root });
    await pull(first, `up/${nameA}`, imageA);
    await pull(first, `up/${nameB}`, imageB);
    await waitFor(() => existsSync(blobData(root, onlyB)), "the fills to land");
    await first.stop();

    // Both images were first pulled 50 minutes ago; B is pulled again now, by a restarted mirror.
    const now = Date.now();
    await setPulledAt(root, `up/${nameA}`, now - 50 * 60_000);
    await setPulledAt(root, `up/${nameB}`, now - 50 * 60_000);
    const second = await startBerth({ configYaml: yaml, root });
    try {
      await pull(second, `up/${nameB}`, imageB);
    } finally {
      await second.stop();
    }

    const { expiry } = expiryFor(root, yaml);
    // 20 minutes on: A is 70 minutes past its last pull, B 20 minutes.
    const result = await expiry.run(now + 20 * 60_000);
    assert.equal(result.manifests, 1);
    assert.equal(existsSync(blobData(root, onlyA)), false, "A's own layer is gone");
    assert.equal(existsSync(blobData(root, imageA.config)), false, "A's config is gone");
    assert.equal(existsSync(blobData(root, imageA.digest)), false, "A's manifest bytes are gone");
    assert.ok(existsSync(blobData(root, shared)), "the layer B shares stays");
    assert.ok(existsSync(blobData(root, onlyB)));
    assert.ok(existsSync(blobData(root, imageB.digest)));
    assert.equal(existsSync(join(registryTree(root), "repositories", "up", nameA)), false, "the emptied repository leaves the catalog");

    const served = await startBerth({ configYaml: yaml, root });
    try {
      const client = new RegistryClient(served.url);
      const { body } = await client.getJSON<{ repositories: string[] }>("/v2/_catalog");
      assert.deepEqual(body.repositories.filter((r) => r.includes("expire-")), [`up/${nameB}`]);
    } finally {
      await served.stop();
    }

    // An hour and a bit after B's last pull, B goes too, shared layer included.
    const later = await expiry.run(now + HOUR + 60_000);
    assert.equal(later.manifests, 1);
    assert.equal(existsSync(blobData(root, shared)), false);
    assert.equal(existsSync(blobData(root, onlyB)), false);
  });

  test("a changed TTL applies to what is already cached; ttl 0 keeps everything", async () => {
    const root = join(work, "changed");
    const name = uniqueName("retuned");
    const image = await pushWithLayers(name, [randomBlob(10_000)]);
    const mirror = await startBerth({ configYaml: mirrorConfig("      ttl: 168h"), root });
    try {
      await pull(mirror, `up/${name}`, image);
      await waitFor(() => existsSync(blobData(root, image.layers[0]!)), "the fill to land");
    } finally {
      await mirror.stop();
    }
    const now = Date.now();
    assert.equal((await expiryFor(root, mirrorConfig("      ttl: 0")).expiry.run(now + 1000 * HOUR)).manifests, 0);
    assert.equal((await expiryFor(root, mirrorConfig("      ttl: 168h")).expiry.run(now + 2 * HOUR)).manifests, 0);
    const shortened = await expiryFor(root, mirrorConfig("      ttl: 1h")).expiry.run(now + 2 * HOUR);
    assert.equal(shortened.manifests, 1);
    assert.equal(existsSync(blobData(root, image.layers[0]!)), false);
  });

  test("a local repository that mounted a cached blob keeps its bytes when the cache expires", async () => {
    const root = join(work, "mounted");
    const name = uniqueName("mounted");
    const layer = randomBlob(15_000);
    const image = await pushWithLayers(name, [layer]);
    const yaml = mirrorConfig("      ttl: 1h");
    const mirror = await startBerth({ configYaml: yaml, root });
    const local = uniqueName("own");
    try {
      await pull(mirror, `up/${name}`, image);
      await waitFor(() => existsSync(blobData(root, layer)), "the fill to land");
      const client = new RegistryClient(mirror.url);
      const mount = await client.send(`/v2/${local}/blobs/uploads/?mount=${digestOf(layer)}&from=up/${name}`, { method: "POST" });
      assert.equal(mount.status, 201);
    } finally {
      await mirror.stop();
    }
    const result = await expiryFor(root, yaml).expiry.run(Date.now() + 2 * HOUR);
    assert.equal(result.manifests, 1);
    assert.ok(existsSync(blobData(root, layer)), "the local repository's blob stays");
    assert.equal(existsSync(blobData(root, image.config)), false);
  });
});

describe("size limit", () => {
  test("over maxsize, the least recently pulled blobs go first, soon after the fill that grew the cache", async () => {
    const root = join(work, "sized");
    const layers = [randomBlob(400_000), randomBlob(400_000), randomBlob(400_000)];
    const name = uniqueName("sized");
    const image = await pushWithLayers(name, layers);
    const mirror = await startBerth({ configYaml: mirrorConfig("      ttl: 0\n      maxsize: 900KB"), root });
    try {
      const client = new RegistryClient(mirror.url);
      for (const layer of layers) {
        assert.ok((await client.get(`/v2/up/${name}/blobs/${digestOf(layer)}`)).bytes.equals(layer));
        await new Promise((resolve) => setTimeout(resolve, 5)); // distinct pull times
      }
      await waitFor(() => !existsSync(blobData(root, layers[0]!)), "the oldest layer to be evicted", 15_000);
      assert.ok(existsSync(blobData(root, layers[1]!)));
      assert.ok(existsSync(blobData(root, layers[2]!)));
      // Evicted content is fetched again on the next pull.
      assert.ok((await client.get(`/v2/up/${name}/blobs/${digestOf(layers[0]!)}`)).bytes.equals(layers[0]!));
      assert.equal(image.layers.length, 3);
    } finally {
      await mirror.stop();
    }
  });
});
