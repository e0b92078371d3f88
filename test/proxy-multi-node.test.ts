/**
 * One mirror served by several stateless nodes. Three `berth serve` processes with the same
 * `proxy` section share one S3 bucket (a real Ceph radosgw, started here), one root directory in
 * it, one Redis (the blob descriptor cache) and one http.secret, and nothing else. Their upstream
 * is another berth (plain filesystem) behind a counting, fault-injecting proxy, so every request
 * that reaches the upstream is seen.
 *
 * - a cold pull through one node goes upstream once per blob; another node then serves the same
 *   content with no upstream request at all (the cache is the shared storage), and a tag costs it
 *   one upstream HEAD;
 * - concurrent cold pulls of one blob split over two nodes: one upstream GET per node at most, every
 *   client gets the right bytes, and the blob is stored once;
 * - with the upstream down, every node serves the cached tag, and nothing uncached;
 * - every node refuses pushes into the mirrored namespace, while local names are a registry shared
 *   by all nodes;
 * - the pull records that drive expiry are in the shared storage, written by whichever node served
 *   the pull.
 *
 * Needs Ceph (ceph-mon ceph-osd radosgw ceph-common) and redis-server: missing, the tests are
 * skipped on a developer's machine and fail in CI (CI=true).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import {
  cephSkipReason,
  listKeys as listBucketKeys,
  openMultipartUploads as openBucketMultipartUploads,
  s3DriverConfig,
  startCephS3,
  type CephS3,
} from "./support/ceph-s3.js";
import { requireRedis, startRedis, type RedisServer } from "./support/redis-server.js";
import {
  OCI_LAYER,
  RegistryClient,
  descriptorOf,
  digestOf,
  expectError,
  json,
  randomImage,
  uniqueName,
  waitFor,
  type ImageParts,
} from "./support/registry-client.js";
import { startUpstreamProxy, type UpstreamProxy } from "./support/upstream-proxy.js";

const MiB = 1024 * 1024;
const NODE_COUNT = 3;
/** How long S3 writes done behind a response (manifests, blob fills, pull records) may take. */
const STORED_WITHIN_MS = 30_000;

// Each check throws when CI=true and the program is missing: a CI run never skips these silently.
const cephSkip = cephSkipReason();
const redisSkip = requireRedis().skip;
const skip = cephSkip || redisSkip;

const BLOBS = /\/blobs\/sha256:/;

interface Node {
  berth: BerthProcess;
  client: RegistryClient;
}

/** A blob GET as a client sees it: the first answer, and the bytes (behind the redirect if any). */
interface PulledBlob {
  /** The node's status: 200 when it streamed the bytes, 307 when it redirected to the bucket. */
  status: number;
  /** The Location of a 307. */
  location: string | undefined;
  digestHeader: string | null;
  /** The status of the followed redirect, or the node's own. */
  finalStatus: number;
  bytes: Buffer;
}

describe("one mirror, three berth nodes on one S3 bucket, one Redis, one secret", { skip }, () => {
  let ceph: CephS3 | undefined;
  let s3: S3Client | undefined;
  let redis: RedisServer | undefined;
  let upstream: BerthProcess | undefined;
  let proxy: UpstreamProxy | undefined;
  let up: RegistryClient;
  const nodes: Node[] = [];
  const rootdirectory = `/mirror-${randomBytes(4).toString("hex")}`;
  const secret = randomBytes(24).toString("hex");

  before(async () => {
    const started = Date.now();
    [ceph, redis, upstream] = await Promise.all([startCephS3(), startRedis(), startBerth()]);
    s3 = ceph.client();
    proxy = await startUpstreamProxy(upstream.url);
    up = new RegistryClient(upstream.url);
    nodes.push(...(await Promise.all(Array.from({ length: NODE_COUNT }, startNode))));
    process.stderr.write(`# proxy multi-node: Ceph, Redis, the upstream and ${NODE_COUNT} mirror nodes up in ${Date.now() - started} ms\n`);
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.berth.stop()));
    await proxy?.close();
    await upstream?.stop();
    s3?.destroy();
    await redis?.stop();
    await ceph?.stop();
  });

  beforeEach(() => {
    proxy!.clearFaults();
    proxy!.setUp(true);
    proxy!.resetCounts();
  });

  afterEach(() => {
    proxy!.clearFaults();
    proxy!.setUp(true);
  });

  async function startNode(): Promise<Node> {
    const berth = await startBerth({ configYaml: nodeConfig() });
    const node = { berth, client: new RegistryClient(berth.url) };
    // /debug/health answers 503 until the node's Redis connection is up.
    await waitFor(
      () => node.client.send("/debug/health").then((r) => r.status === 200, () => false),
      `node ${berth.hostPort} to connect to redis`,
      15_000,
    );
    return node;
  }

  function nodeConfig(): string {
    assert.ok(ceph && redis && proxy);
    return testConfig({
      driver: s3DriverConfig(ceph, rootdirectory),
      storage: "  cache:\n    blobdescriptor: redis",
      secret,
      sections: [
        "redis:",
        `  addr: ${redis.addr}`,
        "proxy:",
        "  upstreams:",
        "    - prefix: up",
        `      remoteurl: ${proxy.url}`,
        "      ttl: 1h",
      ].join("\n"),
    });
  }

  /** The last lines each node logged, for failure messages. */
  function logs(): string {
    return nodes.map((node, i) => `--- node ${i + 1} ${node.berth.hostPort} (tail) ---\n${node.berth.log().slice(-3000)}`).join("\n");
  }

  // --- the bucket

  /** The object key of a path under the registry's root directory. */
  const key = (path: string): string => `${rootdirectory.slice(1)}/docker/registry/v2/${path}`;
  const hexOf = (digest: string): string => digest.slice("sha256:".length);
  const blobDir = (digest: string): string => key(`blobs/sha256/${hexOf(digest).slice(0, 2)}/${hexOf(digest)}/`);
  const blobData = (digest: string): string => `${blobDir(digest)}data`;
  const layerLink = (name: string, digest: string): string => key(`repositories/${name}/_layers/sha256/${hexOf(digest)}/link`);
  const revisionLink = (name: string, digest: string): string => key(`repositories/${name}/_manifests/revisions/sha256/${hexOf(digest)}/link`);
  const tagLink = (name: string, tag: string): string => key(`repositories/${name}/_manifests/tags/${tag}/current/link`);
  const pullRecord = (name: string, kind: "manifests" | "blobs", digest: string): string =>
    key(`repositories/${name}/_proxy/pulled/${kind}/sha256/${hexOf(digest)}`);

  const listKeys = (prefix: string): Promise<string[]> => listBucketKeys(s3!, ceph!.bucket, prefix);
  const openMultipartUploads = (prefix: string): Promise<string[]> => openBucketMultipartUploads(s3!, ceph!.bucket, prefix);

  /** The object's text, or undefined when it does not exist. */
  async function readObject(objectKey: string): Promise<string | undefined> {
    try {
      const out = await s3!.send(new GetObjectCommand({ Bucket: ceph!.bucket, Key: objectKey }));
      return await out.Body!.transformToString("utf8");
    } catch (err) {
      if ((err as { name?: string }).name === "NoSuchKey" || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      throw err;
    }
  }

  async function objectExists(objectKey: string): Promise<boolean> {
    try {
      await s3!.send(new HeadObjectCommand({ Bucket: ceph!.bucket, Key: objectKey }));
      return true;
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
      throw err;
    }
  }

  /** Waits until every key exists in the bucket (writes behind a response land a little later). */
  async function stored(keys: string[], what: string): Promise<void> {
    let missing = keys;
    await waitFor(
      async () => {
        const present = await Promise.all(missing.map((k) => objectExists(k).catch(() => false)));
        missing = missing.filter((_, i) => !present[i]);
        return missing.length === 0;
      },
      `${what} in the bucket (missing: ${missing.join(", ")})`,
      STORED_WITHIN_MS,
    ).catch((err: unknown) => assert.fail(`${(err as Error).message}; still missing ${missing.join(", ")}\n${logs()}`));
  }

  /** A pull record's time: RFC 3339 text, epoch milliseconds. */
  async function recordTime(objectKey: string): Promise<number> {
    const text = await readObject(objectKey);
    assert.ok(text !== undefined, `pull record ${objectKey} exists`);
    assert.match(text.trim(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/, `pull record ${objectKey} holds an RFC 3339 time`);
    return Date.parse(text.trim());
  }

  // --- clients

  /** GET a blob from a node; a 307 is followed (without the node) to get the bytes. */
  async function pullBlob(node: Node, name: string, digest: string): Promise<PulledBlob> {
    const response = await node.client.fetch(`/v2/${name}/blobs/${digest}`);
    const digestHeader = response.headers.get("docker-content-digest");
    if (response.status === 307) {
      await response.arrayBuffer();
      const location = response.headers.get("location") ?? "";
      const followed = await fetch(location);
      return { status: 307, location, digestHeader, finalStatus: followed.status, bytes: Buffer.from(await followed.arrayBuffer()) };
    }
    return { status: response.status, location: undefined, digestHeader, finalStatus: response.status, bytes: Buffer.from(await response.arrayBuffer()) };
  }

  /** Asserts the node served `bytes` for `digest`, and how: streamed (200) or from the bucket (307). */
  function assertBlob(pulled: PulledBlob, digest: string, size: number, how: 200 | 307, what: string): void {
    assert.equal(pulled.status, how, `${what}: answered ${pulled.status}, expected ${how}: ${pulled.status >= 400 ? pulled.bytes.toString() : ""}\n${pulled.status >= 400 ? logs() : ""}`);
    assert.equal(pulled.digestHeader, digest, `${what}: Docker-Content-Digest`);
    assert.equal(pulled.finalStatus, 200, `${what}: the bytes`);
    if (how === 307) assert.ok(pulled.location!.startsWith(`${ceph!.endpoint}/${ceph!.bucket}/`), `${what}: redirect to the bucket: ${pulled.location}`);
    assert.equal(pulled.bytes.length, size, `${what}: length`);
    assert.equal(digestOf(pulled.bytes), digest, `${what}: digest of the bytes`);
  }

  async function pullManifest(node: Node, name: string, reference: string): Promise<{ status: number; digest: string | null; type: string | null; bytes: Buffer }> {
    const { response, bytes } = await node.client.get(`/v2/${name}/manifests/${reference}`);
    return { status: response.status, digest: response.headers.get("docker-content-digest"), type: response.headers.get("content-type"), bytes };
  }

  function assertManifest(pulled: Awaited<ReturnType<typeof pullManifest>>, image: ImageParts, what: string): void {
    assert.equal(pulled.status, 200, `${what}: ${pulled.bytes.toString()}`);
    assert.equal(pulled.digest, image.digest, `${what}: Docker-Content-Digest`);
    assert.equal(pulled.type, image.mediaType, `${what}: Content-Type`);
    assert.ok(pulled.bytes.equals(image.bytes), `${what}: the manifest's bytes`);
  }

  /** Upstream requests for one repository's blob (by digest) or manifests. */
  const blobPath = (remote: string, digest: string): RegExp => new RegExp(`^/v2/${remote}/blobs/${digest}$`);
  const manifestsOf = (remote: string): RegExp => new RegExp(`^/v2/${remote}/manifests/`);

  function describeUpstream(): string {
    return proxy!.requests.map((r) => `${r.method} ${r.path} ${r.status}`).join("\n");
  }

  function assertNoUpstream(what: string): void {
    assert.equal(proxy!.requests.length, 0, `${what}; upstream requests:\n${describeUpstream()}`);
  }

  /** Waits until the mirrored repository's blob is stored, linked, and its upload gone. */
  async function blobCached(name: string, digests: string[]): Promise<void> {
    await stored(digests.flatMap((digest) => [blobData(digest), layerLink(name, digest)]), `blobs of ${name}`);
    await waitFor(async () => (await listKeys(key(`repositories/${name}/_uploads/`))).length === 0, `the fill uploads of ${name} to be finished`, STORED_WITHIN_MS);
  }

  // --- the tests

  it("a cold pull through node 1 goes upstream once per blob; node 2 then serves it all with no upstream request, and its tag with one HEAD", async () => {
    const started = Date.now();
    const remote = uniqueName("cold");
    const name = `up/${remote}`;
    const image = imageWith([randomBytes(1 * MiB + 123), randomBytes(2 * MiB + 4567), randomBytes(4 * MiB - 89)]);
    await up.pushImage(remote, "v1", image);
    const blobs = [image.config, ...image.layers];
    const digests = blobs.map((blob) => digestOf(blob));
    proxy!.resetCounts();

    // Node 1: everything is a miss.
    assertManifest(await pullManifest(nodes[0]!, name, "v1"), image, "node 1: manifest by tag");
    assert.equal(proxy!.count("HEAD", manifestsOf(remote)), 1, describeUpstream());
    assert.equal(proxy!.count("GET", manifestsOf(remote)), 1, describeUpstream());
    for (const [i, blob] of blobs.entries()) {
      assertBlob(await pullBlob(nodes[0]!, name, digests[i]!), digests[i]!, blob.length, 200, `node 1: cold blob ${i}`);
    }
    for (const digest of digests) {
      // One HEAD (the blob's size, for the response headers) and one GET (the bytes) per blob.
      assert.equal(proxy!.count("GET", blobPath(remote, digest)), 1, `one upstream GET of ${digest}:\n${describeUpstream()}`);
      assert.equal(proxy!.count("HEAD", blobPath(remote, digest)), 1, `one upstream HEAD of ${digest}:\n${describeUpstream()}`);
    }
    assert.equal(proxy!.requests.length, 2 + 2 * blobs.length, `nothing else went upstream:\n${describeUpstream()}`);
    const cold = Date.now();

    // Stored behind the responses: manifest, tag, blobs and their links, in the shared bucket.
    await stored([revisionLink(name, image.digest), tagLink(name, "v1"), blobData(image.digest)], "the manifest and its tag");
    await blobCached(name, digests);
    assert.equal(await readObject(tagLink(name, "v1")), image.digest, "the cached tag points at the manifest");
    // …and described in the shared Redis cache, in distribution's key layout.
    for (const [i, digest] of digests.entries()) {
      assert.equal(await redis!.client().hget(`blobs::${digest}`, "size"), String(blobs[i]!.length), `Redis describes ${digest}`);
    }

    // Node 2 never saw any of it, and asks the upstream for nothing.
    proxy!.resetCounts();
    assertManifest(await pullManifest(nodes[1]!, name, image.digest), image, "node 2: manifest by digest");
    for (const [i, blob] of blobs.entries()) {
      assertBlob(await pullBlob(nodes[1]!, name, digests[i]!), digests[i]!, blob.length, 307, `node 2: cached blob ${i}`);
      const head = await nodes[1]!.client.send(`/v2/${name}/blobs/${digests[i]!}`, { method: "HEAD" });
      assert.equal(head.status, 307, `node 2: HEAD of cached blob ${i}`);
    }
    assertNoUpstream("node 2 served the cached content without the upstream");

    // A tag is revalidated: one HEAD, and no GET since its digest is cached.
    assertManifest(await pullManifest(nodes[1]!, name, "v1"), image, "node 2: manifest by tag");
    assert.equal(proxy!.count("HEAD", manifestsOf(remote)), 1, describeUpstream());
    assert.equal(proxy!.requests.length, 1, `one upstream HEAD and nothing else:\n${describeUpstream()}`);
    assert.deepEqual(
      proxy!.requests.map((r) => `${r.method} ${r.path}`),
      [`HEAD /v2/${remote}/manifests/v1`],
    );
    process.stderr.write(
      `# proxy multi-node cold: ${(blobs.reduce((a, b) => a + b.length, 0) / MiB).toFixed(1)} MiB in ${blobs.length} blobs pulled cold through node 1 in ${cold - started} ms, ` +
        `served warm by node 2 in ${Date.now() - cold} ms (including waiting for the stores)\n`,
    );
  });

  it("20 concurrent cold pulls of one 8 MiB blob, 10 on each of two nodes: right bytes for all, at most one upstream GET per node, one blob in the bucket", async () => {
    const remote = uniqueName("herd");
    const name = `up/${remote}`;
    const layer = randomBytes(8 * MiB);
    const digest = digestOf(layer);
    await up.pushImage(remote, "v1", imageWith([layer]));
    proxy!.resetCounts();
    // Slowed down so that every request arrives while both nodes are still filling.
    proxy!.inject({ method: "GET", path: BLOBS, fault: { kind: "slow", bytesPerSecond: 8 * MiB } });

    const started = Date.now();
    const pulls = await Promise.all(Array.from({ length: 20 }, (_, i) => pullBlob(nodes[i < 10 ? 0 : 1]!, name, digest)));
    const elapsed = Date.now() - started;
    for (const [i, pulled] of pulls.entries()) {
      assert.equal(pulled.finalStatus, 200, `client ${i} (node ${i < 10 ? 1 : 2}): ${pulled.status} ${pulled.bytes.toString().slice(0, 300)}`);
      assert.equal(pulled.bytes.length, layer.length, `client ${i}: length`);
      assert.equal(digestOf(pulled.bytes), digest, `client ${i}: digest of the bytes`);
    }
    const gets = proxy!.count("GET", blobPath(remote, digest));
    assert.ok(gets >= 1 && gets <= 2, `at most one upstream GET per node, got ${gets}:\n${describeUpstream()}`);
    // Reported, not asserted: a client arriving after its node's fill stored the blob is redirected.
    const streamed = pulls.filter((pulled) => pulled.status === 200).length;

    await blobCached(name, [digest]);
    assert.deepEqual(await listKeys(blobDir(digest)), [blobData(digest)], "the blob is one object in the bucket");
    const object = await s3!.send(new HeadObjectCommand({ Bucket: ceph!.bucket, Key: blobData(digest) }));
    assert.equal(object.ContentLength, layer.length);
    assert.deepEqual(await listKeys(key(`repositories/${name}/_layers/`)), [layerLink(name, digest)], "linked once");
    assert.equal(await readObject(layerLink(name, digest)), digest);
    assert.deepEqual(await listKeys(key(`repositories/${name}/_uploads/`)), [], "no fill upload left behind");
    assert.deepEqual(await openMultipartUploads(key(`repositories/${name}/`)), [], "no multipart upload left open");

    // Node 3 took no part: with the upstream down it serves the blob from the bucket.
    proxy!.setUp(false);
    proxy!.resetCounts();
    assertBlob(await pullBlob(nodes[2]!, name, digest), digest, layer.length, 307, "node 3 with the upstream down");
    const head = await nodes[2]!.client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" });
    assert.equal(head.status, 307, "node 3: HEAD");
    assertNoUpstream("node 3 did not try the upstream");
    process.stderr.write(`# proxy multi-node herd: 20 clients on 2 nodes, 8 MiB at 8 MiB/s upstream, ${elapsed} ms, ${gets} upstream GET(s), ${streamed} streamed, ${20 - streamed} redirected\n`);
  });

  it("with the upstream down every node serves the cached tag; an uncached tag or blob is 503 UNAVAILABLE", async () => {
    const remote = uniqueName("down");
    const name = `up/${remote}`;
    const image = imageWith([randomBytes(300_000)]);
    const other = imageWith([randomBytes(1000)]);
    await up.pushImage(remote, "v1", image);
    await up.pushImage(remote, "v2", other);
    const layer = digestOf(image.layers[0]!);

    assertManifest(await pullManifest(nodes[0]!, name, "v1"), image, "node 1: manifest by tag");
    assertBlob(await pullBlob(nodes[0]!, name, layer), layer, image.layers[0]!.length, 200, "node 1: cold layer");
    await stored([revisionLink(name, image.digest), tagLink(name, "v1")], "the manifest and its tag");
    await blobCached(name, [layer]);

    proxy!.setUp(false);
    proxy!.resetCounts();
    for (const [i, node] of nodes.entries()) {
      assertManifest(await pullManifest(node, name, "v1"), image, `node ${i + 1}: cached tag, upstream down`);
      assertManifest(await pullManifest(node, name, image.digest), image, `node ${i + 1}: cached digest, upstream down`);
      assertBlob(await pullBlob(node, name, layer), layer, image.layers[0]!.length, 307, `node ${i + 1}: cached layer, upstream down`);
      const uncachedTag = await expectError(await node.client.send(`/v2/${name}/manifests/v2`), 503, "UNAVAILABLE");
      assert.match(uncachedTag.message, new RegExp(proxy!.hostPort.replaceAll(".", "\\.")), `node ${i + 1}: the error names the upstream`);
      await expectError(await node.client.send(`/v2/${name}/manifests/${other.digest}`), 503, "UNAVAILABLE");
      await expectError(await node.client.send(`/v2/${name}/blobs/${digestOf(image.config)}`), 503, "UNAVAILABLE");
    }
    // Every node tried the upstream for the tag (and what it did not have), and fell back.
    for (const [i, node] of nodes.entries()) {
      await waitFor(() => node.berth.log().includes("upstream failed: serving the cached tag"), `node ${i + 1} to log the stale answer`);
    }
    // One HEAD per node; a node whose kept-alive connection was reset sends it again on a new one.
    const heads = proxy!.count("HEAD", new RegExp(`^/v2/${remote}/manifests/v1$`));
    assert.ok(heads >= NODE_COUNT && heads <= 2 * NODE_COUNT, `${heads} HEADs of the tag:\n${describeUpstream()}`);
    assert.equal(proxy!.count("GET", BLOBS) + proxy!.count("HEAD", new RegExp(`^/v2/${remote}/blobs/${layer}$`)), 0, "cached blobs never go upstream");
  });

  it("pushes into the mirrored namespace answer 405 UNSUPPORTED on every node; a local name pushed through node 1 is pulled from node 2", async () => {
    const remote = uniqueName("readonly");
    const name = `up/${remote}`;
    const image = await up.pushImage(remote, "v1", randomImage());
    assertManifest(await pullManifest(nodes[0]!, name, "v1"), image, "node 1: manifest by tag");
    await stored([revisionLink(name, image.digest)], "the manifest");
    const config = digestOf(image.config);

    const local = uniqueName("local");
    const pushed = imageWith([randomBytes(6 * MiB + 11), randomBytes(70_000)]);
    for (const [i, node] of nodes.entries()) {
      const at = `node ${i + 1}`;
      await expectError(await node.client.send(`/v2/${name}/blobs/uploads/`, { method: "POST" }), 405, "UNSUPPORTED");
      await expectError(
        await node.client.send(`/v2/${name}/blobs/uploads/?digest=${config}`, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: image.config }),
        405,
        "UNSUPPORTED",
      );
      await expectError(await node.client.putManifest(name, "v2", image.bytes, image.mediaType), 405, "UNSUPPORTED");
      await expectError(await node.client.send(`/v2/${name}/manifests/${image.digest}`, { method: "DELETE" }), 405, "UNSUPPORTED");
      await expectError(await node.client.send(`/v2/${name}/blobs/${config}`, { method: "DELETE" }), 405, "UNSUPPORTED");
      // Nor can a blob be mounted into it from a local repository (pushed below, on the first round).
      if (i > 0) {
        const layer = digestOf(pushed.layers[1]!);
        await expectError(await node.client.send(`/v2/${name}/blobs/uploads/?mount=${layer}&from=${local}`, { method: "POST" }), 405, "UNSUPPORTED");
      }
      assertManifest(await pullManifest(node, name, image.digest), image, `${at}: the cached manifest is still served`);
      if (i === 0) await nodes[0]!.client.pushImage(local, "v1", pushed);
    }
    assert.deepEqual(await listKeys(key(`repositories/${name}/_uploads/`)), [], "no upload was started in the mirrored repository");
    assert.deepEqual(await listKeys(key(`repositories/${name}/_manifests/tags/v2/`)), [], "no tag was written");

    // The local repository is an ordinary registry shared by the nodes.
    for (const [i, node] of nodes.slice(1).entries()) {
      assertManifest(await pullManifest(node, local, "v1"), pushed, `node ${i + 2}: the local manifest`);
      for (const [j, blob] of [pushed.config, ...pushed.layers].entries()) {
        assertBlob(await pullBlob(node, local, digestOf(blob)), digestOf(blob), blob.length, 307, `node ${i + 2}: local blob ${j}`);
      }
    }
    assert.deepEqual(await nodes[1]!.client.tags(local), ["v1"]);
    assert.deepEqual(
      proxy!.requests.filter((r) => r.path.includes(local)),
      [],
      "local names never go upstream",
    );
    assert.deepEqual(
      proxy!.requests.filter((r) => r.method !== "GET" && r.method !== "HEAD"),
      [],
      "nothing but reads ever reaches the upstream",
    );
  });

  it("pull records are in the shared bucket: written by the node that served the pull, whichever it is", async () => {
    const remote = uniqueName("records");
    const name = `up/${remote}`;
    const [layerA, layerB] = [randomBytes(200_000), randomBytes(300_000)];
    const image = imageWith([layerA, layerB]);
    await up.pushImage(remote, "v1", image);
    const [config, a, b] = [digestOf(image.config), digestOf(layerA), digestOf(layerB)];

    // Node 1 pulls the manifest, the config and layer A.
    const first = Date.now();
    assertManifest(await pullManifest(nodes[0]!, name, "v1"), image, "node 1: manifest by tag");
    assertBlob(await pullBlob(nodes[0]!, name, config), config, image.config.length, 200, "node 1: config");
    assertBlob(await pullBlob(nodes[0]!, name, a), a, layerA.length, 200, "node 1: layer A");
    await stored([pullRecord(name, "manifests", image.digest), pullRecord(name, "blobs", config), pullRecord(name, "blobs", a)], "node 1's pull records");
    const records = await listKeys(key(`repositories/${name}/_proxy/pulled/`));
    assert.deepEqual(records, [pullRecord(name, "blobs", config), pullRecord(name, "blobs", a), pullRecord(name, "manifests", image.digest)].sort());
    assert.ok(records.some((k) => k.includes("_proxy/pulled/manifests/")));
    for (const record of records) {
      const time = await recordTime(record);
      assert.ok(time >= first - 1000 && time <= Date.now() + 1000, `${record}: ${new Date(time).toISOString()} is the time of the pull`);
    }

    // Layer B is pulled through node 2 only: its record is written by node 2.
    const second = Date.now();
    assertBlob(await pullBlob(nodes[1]!, name, b), b, layerB.length, 200, "node 2: layer B, cold");
    await stored([pullRecord(name, "blobs", b)], "node 2's pull record of layer B");
    const timeB = await recordTime(pullRecord(name, "blobs", b));
    assert.ok(timeB >= second - 1000 && timeB <= Date.now() + 1000, `layer B pulled at ${new Date(timeB).toISOString()}`);

    // The manifest cached by node 1, its record lost: a pull through node 2 records it again
    // (node 2 never recorded it, so the resolution does not hold it back).
    await s3!.send(new DeleteObjectCommand({ Bucket: ceph!.bucket, Key: pullRecord(name, "manifests", image.digest) }));
    assert.equal(await objectExists(pullRecord(name, "manifests", image.digest)), false);
    proxy!.resetCounts();
    const third = Date.now();
    assertManifest(await pullManifest(nodes[1]!, name, image.digest), image, "node 2: cached manifest by digest");
    assertNoUpstream("served from the cache");
    await stored([pullRecord(name, "manifests", image.digest)], "node 2's pull record of the manifest");
    const timeManifest = await recordTime(pullRecord(name, "manifests", image.digest));
    assert.ok(timeManifest >= third - 1000, `manifest pulled again at ${new Date(timeManifest).toISOString()}`);
  });

  it("a blob pull that node 2 answers with a redirect to the bucket is recorded as a pull", async () => {
    const remote = uniqueName("redirected");
    const name = `up/${remote}`;
    const layer = randomBytes(250_000);
    const image = imageWith([layer]);
    await up.pushImage(remote, "v1", image);
    const digest = digestOf(layer);

    assertBlob(await pullBlob(nodes[0]!, name, digest), digest, layer.length, 200, "node 1: cold layer");
    await blobCached(name, [digest]);
    await stored([pullRecord(name, "blobs", digest)], "node 1's pull record");
    // The record lost (or never written): the next pull, through node 2, must write it.
    await s3!.send(new DeleteObjectCommand({ Bucket: ceph!.bucket, Key: pullRecord(name, "blobs", digest) }));
    proxy!.resetCounts();
    const pulled = Date.now();
    assertBlob(await pullBlob(nodes[1]!, name, digest), digest, layer.length, 307, "node 2: cached layer");
    assertNoUpstream("served from the cache");
    let present = false;
    await waitFor(async () => (present = await objectExists(pullRecord(name, "blobs", digest))), "the record", 5_000).catch(() => undefined);
    assert.ok(
      present,
      `GET /v2/${name}/blobs/${digest} on node 2 answered 307 to the bucket at ${new Date(pulled).toISOString()}, ` +
        `but no pull record ${pullRecord(name, "blobs", digest)} was written within 5 s: blob pulls answered with a redirect ` +
        "do not count for expiry (nor for maxsize's least-recently-pulled order)",
    );
    const time = await recordTime(pullRecord(name, "blobs", digest));
    assert.ok(time >= pulled - 1000);
  });
});

/** An image (random config) whose layers are exactly `layers`. */
function imageWith(layers: Buffer[]): ImageParts {
  const base = randomImage();
  const manifest = { ...base.manifest, layers: layers.map((layer) => descriptorOf(OCI_LAYER, layer)) };
  const bytes = json(manifest);
  return { ...base, layers, manifest, bytes, digest: digestOf(bytes) };
}
