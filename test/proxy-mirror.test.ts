/**
 * The pull-through cache against a real upstream (another berth) behind a counting,
 * fault-injecting proxy: what goes upstream and how often, what is stored, what clients see when
 * the upstream is slow, down, rate-limited or lying.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import {
  RegistryClient,
  digestOf,
  expectError,
  filesUnder,
  randomBlob,
  randomImage,
  registryTree,
  uniqueName,
  waitFor,
  type ImageParts,
} from "./support/registry-client.js";
import { startUpstreamProxy, type UpstreamProxy } from "./support/upstream-proxy.js";

let upstream: BerthProcess;
let proxy: UpstreamProxy;
let mirror: BerthProcess;
let up: RegistryClient;
let client: RegistryClient;

before(async () => {
  upstream = await startBerth();
  proxy = await startUpstreamProxy(upstream.url);
  mirror = await startBerth({
    configYaml: testConfig({
      sections: `proxy:
  upstreams:
    - prefix: up
      remoteurl: ${proxy.url}
      namespaces: [upstream.test]
      connecttimeout: 1s
      readtimeout: 1s
    - prefix: lib
      remoteurl: ${proxy.url}
      libraryprefix: true
      namespaces: [lib.test]
    - prefix: strict
      remoteurl: ${proxy.url}
      namespaces: [strict.test]
      maxstaleness: 1ms
      readtimeout: 1s`,
    }),
  });
  up = new RegistryClient(upstream.url);
  client = new RegistryClient(mirror.url);
});

after(async () => {
  await mirror?.stop();
  await proxy?.close();
  await upstream?.stop();
});

beforeEach(() => {
  proxy.clearFaults();
  proxy.setUp(true);
  proxy.resetCounts();
});

function blobData(digest: string): string {
  return join(registryTree(mirror.root!), "blobs", "sha256", digest.slice(7, 9), digest.slice(7), "data");
}

function layerLink(name: string, digest: string): string {
  return join(registryTree(mirror.root!), "repositories", name, "_layers", "sha256", digest.slice(7), "link");
}

function revisionLink(name: string, digest: string): string {
  return join(registryTree(mirror.root!), "repositories", name, "_manifests", "revisions", "sha256", digest.slice(7), "link");
}

/** Waits until the mirror's storage has `tag` pointing at `digest` (manifests are stored behind the response). */
async function cachedTag(name: string, tag: string, digest: string): Promise<void> {
  const link = join(registryTree(mirror.root!), "repositories", name, "_manifests", "tags", tag, "current", "link");
  await waitFor(() => existsSync(link) && readFileSync(link, "utf8") === digest && existsSync(revisionLink(name, digest)), `${name}:${tag} to be cached`);
}

/** Pushes an image to the upstream as `remote:tag`. */
async function upstreamImage(remote: string, tag: string, options: Parameters<typeof randomImage>[0] = {}): Promise<ImageParts> {
  return up.pushImage(remote, tag, randomImage(options));
}

const MANIFESTS = /\/manifests\//;
const BLOBS = /\/blobs\/sha256:/;

describe("reads through the mirror", () => {
  test("a tag pull costs one upstream HEAD and one GET of the new digest; cached digests cost nothing", async () => {
    const remote = uniqueName("tagpull");
    const image = await upstreamImage(remote, "v1");
    const name = `up/${remote}`;

    const first = await client.get(`/v2/${name}/manifests/v1`);
    assert.equal(first.response.status, 200);
    assert.deepEqual(first.bytes, image.bytes);
    assert.equal(first.response.headers.get("docker-content-digest"), image.digest);
    assert.equal(first.response.headers.get("content-type"), image.mediaType);
    assert.equal(proxy.count("HEAD", MANIFESTS), 1);
    assert.equal(proxy.count("GET", MANIFESTS), 1);
    await waitFor(() => existsSync(revisionLink(name, image.digest)), "the manifest to be cached");

    proxy.resetCounts();
    const again = await client.get(`/v2/${name}/manifests/v1`);
    assert.deepEqual(again.bytes, image.bytes);
    assert.equal(proxy.count("HEAD", MANIFESTS), 1, "a tag is revalidated with one HEAD");
    assert.equal(proxy.count("GET", MANIFESTS), 0, "an unchanged tag is not fetched again");

    proxy.resetCounts();
    const byDigest = await client.get(`/v2/${name}/manifests/${image.digest}`);
    assert.deepEqual(byDigest.bytes, image.bytes);
    assert.equal(proxy.requests.length, 0, "a cached digest is served without asking the upstream");
  });

  test("a tag that moved upstream is fetched again and the cached tag follows it", async () => {
    const remote = uniqueName("moved");
    await upstreamImage(remote, "latest");
    const name = `up/${remote}`;
    assert.equal((await client.get(`/v2/${name}/manifests/latest`)).response.status, 200);
    const second = await upstreamImage(remote, "latest");
    proxy.resetCounts();
    const moved = await client.get(`/v2/${name}/manifests/latest`);
    assert.deepEqual(moved.bytes, second.bytes);
    assert.equal(proxy.count("GET", MANIFESTS), 1);
    await cachedTag(name, "latest", second.digest);
    proxy.setUp(false);
    const stale = await client.get(`/v2/${name}/manifests/latest`);
    assert.deepEqual(stale.bytes, second.bytes, "the cached tag points at the new digest");
  });

  test("a blob miss is fetched once and stored; later GETs never reach the upstream", async () => {
    const remote = uniqueName("blob");
    const image = await upstreamImage(remote, "v1", { layers: 1, layerSize: 300_000 });
    const name = `up/${remote}`;
    const layer = image.layers[0]!;
    const digest = digestOf(layer);

    const first = await client.get(`/v2/${name}/blobs/${digest}`);
    assert.equal(first.response.status, 200);
    assert.deepEqual(first.bytes, layer);
    assert.equal(first.response.headers.get("docker-content-digest"), digest);
    assert.equal(proxy.count("GET", BLOBS), 1);
    await waitFor(() => existsSync(blobData(digest)) && existsSync(layerLink(name, digest)), "the blob stored and linked");

    proxy.resetCounts();
    const again = await client.get(`/v2/${name}/blobs/${digest}`);
    assert.deepEqual(again.bytes, layer);
    const ranged = await client.get(`/v2/${name}/blobs/${digest}`, { Range: "bytes=10-19" });
    assert.equal(ranged.response.status, 206);
    assert.deepEqual(ranged.bytes, layer.subarray(10, 20));
    assert.equal(proxy.requests.length, 0);
  });

  test("a HEAD of an uncached blob costs one upstream HEAD and downloads nothing", async () => {
    const remote = uniqueName("head");
    const image = await upstreamImage(remote, "v1", { layers: 1, layerSize: 100_000 });
    const digest = digestOf(image.layers[0]!);
    const response = await client.fetch(`/v2/up/${remote}/blobs/${digest}`, { method: "HEAD" });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), "100000");
    assert.equal(proxy.count("HEAD", BLOBS), 1);
    assert.equal(proxy.count("GET", BLOBS), 0);
    assert.equal(existsSync(blobData(digest)), false);
  });

  test("a blob already stored for another repository is linked after one upstream HEAD, not downloaded again", async () => {
    const first = uniqueName("shared-a");
    const second = uniqueName("shared-b");
    const layer = randomBlob(200_000);
    await up.pushImage(first, "v1", { ...randomImage(), layers: [layer], ...imageWithLayer(layer) });
    await up.pushImage(second, "v1", { ...randomImage(), layers: [layer], ...imageWithLayer(layer) });
    const digest = digestOf(layer);
    assert.deepEqual((await client.get(`/v2/up/${first}/blobs/${digest}`)).bytes, layer);
    await waitFor(() => existsSync(blobData(digest)), "the blob stored");
    proxy.resetCounts();
    assert.deepEqual((await client.get(`/v2/up/${second}/blobs/${digest}`)).bytes, layer);
    assert.equal(proxy.count("GET", BLOBS), 0);
    assert.equal(proxy.count("HEAD", BLOBS), 1, "the upstream confirms the second repository has it");
    assert.ok(existsSync(layerLink(`up/${second}`, digest)));
  });

  test("twenty concurrent GETs of one uncached blob cause one upstream GET and all get the bytes", async () => {
    const remote = uniqueName("herd");
    const image = await upstreamImage(remote, "v1", { layers: 1, layerSize: 2 * 1024 * 1024 });
    const layer = image.layers[0]!;
    const digest = digestOf(layer);
    proxy.inject({ method: "GET", path: BLOBS, fault: { kind: "slow", bytesPerSecond: 4 * 1024 * 1024 } });
    const results = await Promise.all(Array.from({ length: 20 }, () => client.get(`/v2/up/${remote}/blobs/${digest}`)));
    for (const { response, bytes } of results) {
      assert.equal(response.status, 200);
      assert.ok(bytes.equals(layer));
    }
    assert.equal(proxy.count("GET", BLOBS), 1);
  });

  test("a client receives bytes while the fill is still running, and its disconnect does not stop the fill", async () => {
    const remote = uniqueName("stream");
    const image = await upstreamImage(remote, "v1", { layers: 1, layerSize: 1024 * 1024 });
    const layer = image.layers[0]!;
    const digest = digestOf(layer);
    proxy.inject({ method: "GET", path: BLOBS, fault: { kind: "slow", bytesPerSecond: 512 * 1024 } });
    const controller = new AbortController();
    const response = await client.fetch(`/v2/up/${remote}/blobs/${digest}`, { signal: controller.signal });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const firstChunk = await reader.read();
    assert.ok(firstChunk.value && firstChunk.value.length > 0, "bytes arrive before the upstream finished");
    assert.equal(existsSync(blobData(digest)), false, "the blob is not complete in storage yet");
    controller.abort();
    await reader.cancel().catch(() => undefined);

    await waitFor(() => existsSync(blobData(digest)) && existsSync(layerLink(`up/${remote}`, digest)), "the fill to finish for the cache", 15_000);
    proxy.resetCounts();
    assert.ok((await client.get(`/v2/up/${remote}/blobs/${digest}`)).bytes.equals(layer));
    assert.equal(proxy.requests.length, 0);
  });
});

describe("upstream content that does not match its digest", () => {
  test("a blob whose bytes miss their digest never reaches a client whole and is not stored", async () => {
    const remote = uniqueName("badblob");
    const image = await upstreamImage(remote, "v1", { layers: 1, layerSize: 50_000 });
    const layer = image.layers[0]!;
    const digest = digestOf(layer);
    proxy.inject({ method: "GET", path: BLOBS, times: 1, fault: { kind: "corrupt" } });
    const response = await client.fetch(`/v2/up/${remote}/blobs/${digest}`);
    let received: Buffer | undefined;
    try {
      received = Buffer.from(await response.arrayBuffer());
    } catch {
      received = undefined; // the connection was cut: what a client must see
    }
    assert.ok(received === undefined || response.status !== 200 || received.length < layer.length, "no complete body under the digest");
    assert.equal(existsSync(blobData(digest)), false);
    assert.equal(existsSync(layerLink(`up/${remote}`, digest)), false);
    assert.equal(await mirrorLogs("upstream blob does not match its digest"), true);

    const retry = await client.get(`/v2/up/${remote}/blobs/${digest}`);
    assert.equal(retry.response.status, 200);
    assert.ok(retry.bytes.equals(layer));
  });

  test("a manifest whose bytes miss their digest answers 503 UNAVAILABLE and nothing is stored", async () => {
    const remote = uniqueName("badmanifest");
    const image = await upstreamImage(remote, "v1");
    proxy.inject({ method: "GET", path: MANIFESTS, times: 1, fault: { kind: "corrupt" } });
    const error = await expectError(await client.send(`/v2/up/${remote}/manifests/v1`), 503, "UNAVAILABLE");
    assert.match(error.message, /do not match/);
    assert.equal(existsSync(revisionLink(`up/${remote}`, image.digest)), false);
    assert.deepEqual(await filesUnder(registryTree(mirror.root!), `repositories/up/${remote}/_manifests`), []);
  });

  test("a manifest over 4 MiB answers 503 UNAVAILABLE and nothing is stored", async () => {
    const remote = uniqueName("huge");
    const image = await upstreamImage(remote, "v1");
    const body = Buffer.alloc(5 * 1024 * 1024, 0x20);
    proxy.inject({
      method: "GET",
      path: MANIFESTS,
      times: 1,
      fault: { kind: "replace", status: 200, headers: { "Content-Type": image.mediaType, "Docker-Content-Digest": image.digest }, body },
    });
    const error = await expectError(await client.send(`/v2/up/${remote}/manifests/v1`), 503, "UNAVAILABLE");
    assert.match(error.message, /larger than/);
    assert.equal(existsSync(revisionLink(`up/${remote}`, image.digest)), false);
  });

  test("what the upstream does not have is 404 MANIFEST_UNKNOWN or BLOB_UNKNOWN, nothing stored", async () => {
    const remote = uniqueName("missing");
    await upstreamImage(remote, "v1");
    await expectError(await client.send(`/v2/up/${remote}/manifests/nope`), 404, "MANIFEST_UNKNOWN");
    const digest = digestOf(randomBlob(10));
    await expectError(await client.send(`/v2/up/${remote}/blobs/${digest}`), 404, "BLOB_UNKNOWN");
    assert.equal(existsSync(blobData(digest)), false);
  });
});

describe("when the upstream fails", () => {
  test("a kept-alive upstream connection reset before any answer is tried once more on a new one, not taken for an outage", async () => {
    const remote = uniqueName("stale-conn");
    const first = await upstreamImage(remote, "v1");
    const name = `up/${remote}`;
    // Leaves a kept-alive connection to the upstream, which the next request reuses.
    assert.equal((await client.get(`/v2/${name}/manifests/v1`)).response.status, 200);
    await cachedTag(name, "v1", first.digest);
    const moved = await upstreamImage(remote, "v1");
    const logFrom = mirror.log().length;
    proxy.resetCounts();
    proxy.inject({ method: "HEAD", path: MANIFESTS, times: 1, fault: { kind: "reset" } });
    const fresh = await client.get(`/v2/${name}/manifests/v1`);
    assert.equal(fresh.response.status, 200);
    assert.deepEqual(fresh.bytes, moved.bytes, "the tag was revalidated, not served stale");
    assert.equal(proxy.count("HEAD", MANIFESTS), 2, "the reset HEAD, then the same HEAD on a new connection");
    const logged = mirror.log().slice(logFrom);
    assert.equal(logged.includes("upstream failed"), false, logged);
  });

  test("a cached tag is served while the upstream is down, rate-limited or hung; an uncached one is 503", async () => {
    const remote = uniqueName("down");
    const image = await upstreamImage(remote, "v1");
    await upstreamImage(remote, "v2");
    const name = `up/${remote}`;
    assert.equal((await client.get(`/v2/${name}/manifests/v1`)).response.status, 200);
    await cachedTag(name, "v1", image.digest);

    proxy.setUp(false);
    const stale = await client.get(`/v2/${name}/manifests/v1`);
    assert.equal(stale.response.status, 200);
    assert.deepEqual(stale.bytes, image.bytes);
    await expectError(await client.send(`/v2/${name}/manifests/v2`), 503, "UNAVAILABLE");
    assert.equal(await mirrorLogs("upstream failed: serving the cached tag"), true);

    proxy.setUp(true);
    proxy.inject({ method: "HEAD", path: MANIFESTS, fault: { kind: "status", status: 429, body: '{"errors":[{"code":"TOOMANYREQUESTS"}]}' } });
    assert.deepEqual((await client.get(`/v2/${name}/manifests/v1`)).bytes, image.bytes);
    proxy.clearFaults();
    proxy.inject({ method: "HEAD", path: MANIFESTS, fault: { kind: "status", status: 503 } });
    assert.deepEqual((await client.get(`/v2/${name}/manifests/v1`)).bytes, image.bytes);
    proxy.clearFaults();
    // readtimeout is 1s: a hung upstream is given up on, and the cache answers.
    proxy.inject({ method: "HEAD", path: MANIFESTS, fault: { kind: "hang" } });
    assert.deepEqual((await client.get(`/v2/${name}/manifests/v1`)).bytes, image.bytes);
  });

  test("beyond maxstaleness a cached tag is not served: 503 UNAVAILABLE", async () => {
    const remote = uniqueName("strict");
    await upstreamImage(remote, "v1");
    assert.equal((await client.get(`/v2/strict/${remote}/manifests/v1`)).response.status, 200);
    await new Promise((resolve) => setTimeout(resolve, 20));
    proxy.setUp(false);
    await expectError(await client.send(`/v2/strict/${remote}/manifests/v1`), 503, "UNAVAILABLE");
  });

  test("a hung blob download is cut after the read timeout and the next request fills again", async () => {
    const remote = uniqueName("hungblob");
    const image = await upstreamImage(remote, "v1", { layers: 1, layerSize: 10_000 });
    const digest = digestOf(image.layers[0]!);
    proxy.inject({ method: "GET", path: BLOBS, times: 1, fault: { kind: "hang" } });
    await expectError(await client.send(`/v2/up/${remote}/blobs/${digest}`), 503, "UNAVAILABLE");
    assert.equal(existsSync(blobData(digest)), false);
    assert.ok((await client.get(`/v2/up/${remote}/blobs/${digest}`)).bytes.equals(image.layers[0]!));
  });

  test("a blob cut short by the upstream is not stored", async () => {
    const remote = uniqueName("truncated");
    const image = await upstreamImage(remote, "v1", { layers: 1, layerSize: 100_000 });
    const digest = digestOf(image.layers[0]!);
    proxy.inject({ method: "GET", path: BLOBS, times: 1, fault: { kind: "truncate", afterBytes: 40_000 } });
    // Cut before or after the headers, depending on when the upstream's failure arrives.
    await assert.rejects(async () => {
      const response = await client.fetch(`/v2/up/${remote}/blobs/${digest}`);
      await response.arrayBuffer();
    });
    assert.equal(existsSync(blobData(digest)), false);
  });
});

describe("an upstream that is not there", () => {
  test("the mirror starts anyway, answers 503 UNAVAILABLE for what it lacks, and serves once the upstream is back", async () => {
    const gone = await startUpstreamProxy(upstream.url);
    gone.setUp(false);
    const lonely = await startBerth({
      configYaml: testConfig({ sections: `proxy:\n  remoteurl: ${gone.url}\n  connecttimeout: 1s\n  readtimeout: 1s` }),
    });
    try {
      const remote = uniqueName("later");
      const image = await upstreamImage(remote, "v1");
      const mirrorClient = new RegistryClient(lonely.url);
      assert.equal((await mirrorClient.send("/v2/")).status, 200);
      const error = await expectError(await mirrorClient.send(`/v2/${remote}/manifests/v1`), 503, "UNAVAILABLE");
      assert.match(error.message, new RegExp(gone.url.replace(/[.]/g, "\\.")));
      gone.setUp(true);
      assert.deepEqual((await mirrorClient.get(`/v2/${remote}/manifests/v1`)).bytes, image.bytes);
    } finally {
      await lonely.stop();
      await gone.close();
    }
  });
});

describe("a read-only mirror (storage.maintenance.readonly)", () => {
  test("serves what it has not cached from the upstream, verified, and writes nothing", async () => {
    const readOnly = await startBerth({
      configYaml: testConfig({ storage: "  maintenance:\n    readonly:\n      enabled: true", sections: `proxy:\n  remoteurl: ${proxy.url}` }),
    });
    try {
      const remote = uniqueName("readonly-mirror");
      const image = await upstreamImage(remote, "v1", { layers: 1, layerSize: 100_000 });
      const mirrorClient = new RegistryClient(readOnly.url);
      assert.deepEqual((await mirrorClient.get(`/v2/${remote}/manifests/v1`)).bytes, image.bytes);
      assert.ok((await mirrorClient.get(`/v2/${remote}/blobs/${digestOf(image.layers[0]!)}`)).bytes.equals(image.layers[0]!));
      assert.equal((await mirrorClient.fetch(`/v2/${remote}/blobs/${digestOf(image.config)}`, { method: "HEAD" })).status, 200);
      await expectError(await mirrorClient.send(`/v2/${remote}/blobs/uploads/`, { method: "POST" }), 405, "UNSUPPORTED");
      assert.deepEqual(await filesUnder(registryTree(readOnly.root!)), []);
    } finally {
      await readOnly.stop();
    }
  });
});

describe("what a mirror accepts and lists", () => {
  test("pushes and deletes into a mirrored namespace answer 405 UNSUPPORTED; other names are a local registry", async () => {
    const remote = uniqueName("readonly");
    const image = await upstreamImage(remote, "v1");
    const name = `up/${remote}`;
    await expectError(await client.send(`/v2/${name}/blobs/uploads/`, { method: "POST" }), 405, "UNSUPPORTED");
    await expectError(await client.putManifest(name, "v2", image.bytes, image.mediaType), 405, "UNSUPPORTED");
    await client.get(`/v2/${name}/manifests/v1`);
    await waitFor(() => existsSync(revisionLink(name, image.digest)), "the manifest to be cached");
    await expectError(await client.send(`/v2/${name}/manifests/${image.digest}`, { method: "DELETE" }), 405, "UNSUPPORTED");
    await expectError(await client.send(`/v2/${name}/blobs/${digestOf(image.config)}`, { method: "DELETE" }), 405, "UNSUPPORTED");
    assert.ok(existsSync(revisionLink(name, image.digest)), "the cached manifest is still there");

    const local = uniqueName("local");
    const pushed = await client.pushImage(local, "v1");
    assert.deepEqual((await client.get(`/v2/${local}/manifests/v1`)).bytes, pushed.bytes);
    assert.equal(proxy.requests.filter((r) => r.path.includes(local)).length, 0, "local names never go upstream");
  });

  test("a tag list merges the upstream's tags with the cached ones, and lists the cached ones when the upstream is down", async () => {
    const remote = uniqueName("tags");
    await upstreamImage(remote, "a");
    await upstreamImage(remote, "b");
    const name = `up/${remote}`;
    const cached = await client.get(`/v2/${name}/manifests/a`);
    await cachedTag(name, "a", cached.response.headers.get("docker-content-digest")!);
    assert.equal((await up.send(`/v2/${remote}/manifests/a`, { method: "DELETE" })).status, 202);
    assert.deepEqual(await client.tags(name), ["a", "b"]);
    proxy.setUp(false);
    assert.deepEqual(await client.tags(name), ["a"]);
    await expectError(await client.send(`/v2/up/${uniqueName("never")}/tags/list`), 503, "UNAVAILABLE");
  });

  test("the catalog lists what is cached, not what the upstream has", async () => {
    const cached = uniqueName("cataloged");
    const uncached = uniqueName("uncataloged");
    await upstreamImage(cached, "v1");
    await upstreamImage(uncached, "v1");
    const pulled = await client.get(`/v2/up/${cached}/manifests/v1`);
    await cachedTag(`up/${cached}`, "v1", pulled.response.headers.get("docker-content-digest")!);
    const { body } = await client.getJSON<{ repositories: string[] }>("/v2/_catalog");
    assert.ok(body.repositories.includes(`up/${cached}`));
    assert.ok(!body.repositories.some((r) => r.endsWith(uncached)));
  });

  test("containerd's ?ns= names the upstream: answered with OCI-Namespace, cached under its prefix", async () => {
    const remote = uniqueName("ns");
    const image = await upstreamImage(remote, "v1");
    const response = await client.get(`/v2/${remote}/manifests/v1?ns=upstream.test`);
    assert.equal(response.response.status, 200);
    assert.deepEqual(response.bytes, image.bytes);
    assert.equal(response.response.headers.get("oci-namespace"), "upstream.test");
    await waitFor(() => existsSync(revisionLink(`up/${remote}`, image.digest)), "the manifest cached under the prefix");
    const digest = digestOf(image.layers[0]!);
    const blob = await client.get(`/v2/${remote}/blobs/${digest}?ns=upstream.test`);
    assert.ok(blob.bytes.equals(image.layers[0]!));
    // A namespace no upstream answers leaves the name alone: a local repository.
    await expectError(await client.send(`/v2/${remote}/manifests/v1?ns=elsewhere.test`), 404, "MANIFEST_UNKNOWN");
  });

  test("Docker Hub's library/: a one-component name reaches the upstream as library/<name>", async () => {
    const remote = uniqueName("official").replaceAll("/", "-");
    const image = await upstreamImage(`library/${remote}`, "v1");
    const response = await client.get(`/v2/lib/${remote}/manifests/v1`);
    assert.deepEqual(response.bytes, image.bytes);
    assert.ok(proxy.requests.some((r) => r.path === `/v2/library/${remote}/manifests/v1`));
  });
});

/** An image whose single layer is `layer`, with its own random config. */
function imageWithLayer(layer: Buffer): Pick<ImageParts, "manifest" | "bytes" | "digest" | "mediaType" | "config"> {
  const base = randomImage();
  const manifest = { ...base.manifest, layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: digestOf(layer), size: layer.length }] };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return { manifest, bytes, digest: digestOf(bytes), mediaType: base.mediaType, config: base.config };
}

async function mirrorLogs(fragment: string): Promise<boolean> {
  try {
    await waitFor(() => mirror.log().includes(fragment), `the mirror to log ${JSON.stringify(fragment)}`);
    return true;
  } catch {
    return false;
  }
}
