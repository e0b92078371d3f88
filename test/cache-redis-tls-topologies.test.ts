/**
 * The Redis blob descriptor cache over mutual TLS through Sentinel and on a Redis Cluster, against
 * real Debian redis-server processes serving TLS only (test/support/redis-sentinel.ts,
 * redis-cluster.ts): the master, its replica and the sentinels talk TLS to each other
 * (tls-replication), the Cluster's bus too (tls-cluster), and every one of them asks clients for a
 * certificate of the test CA (tls-auth-clients). berth is given the same redis.tls settings as for
 * one server (certificate, key, clientcas) and uses them for every connection, as distribution 3
 * (go-redis's one TLSConfig) does.
 *
 * Without redis-server or openssl these tests skip (CI=true: they fail; .ci/run installs both).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { requireProgram } from "./support/external-program.js";
import { startBerth, testConfig, JSON_TEST_LOG, type BerthProcess } from "./support/berth-process.js";
import { debugURL, scrape, valueOf } from "./support/prometheus-text.js";
import { startRedisCluster } from "./support/redis-cluster.js";
import { requireRedis, type RedisServer, type RedisTls } from "./support/redis-server.js";
import { startRedisSentinelSet } from "./support/redis-sentinel.js";
import { RegistryClient, randomImage, uniqueName, waitFor, type ImageParts } from "./support/registry-client.js";
import { createTestPki, type CertFiles, type TestPki } from "./support/test-pki.js";

const skip = requireRedis().skip || requireProgram("openssl").skip;

interface Certificates {
  pki: TestPki;
  /** What each Redis process serves and presents to the others. */
  servers: RedisTls;
  /** berth's client certificate. */
  berth: CertFiles;
}

async function certificates(): Promise<Certificates> {
  const pki = await createTestPki();
  const server = await pki.issue("redis-server", { serverNames: { dns: ["localhost"], ips: ["127.0.0.1"] } });
  const peer = await pki.issue("redis-peer", { client: true });
  const berth = await pki.issue("berth-client", { client: true });
  return { pki, servers: { ...server, clientCa: pki.ca.cert, outbound: peer }, berth };
}

/** A redis section: these addresses (and master name), with berth's certificate and `ca` as clientcas. */
function redisSection(addrs: string[], masterName: string | undefined, certs: Certificates, ca: string): string {
  return [
    "redis:",
    `  addrs: [${addrs.join(", ")}]`,
    ...(masterName === undefined ? [] : [`  mastername: ${masterName}`]),
    "  dialtimeout: 1s",
    "  readtimeout: 1s",
    "  writetimeout: 1s",
    "  tls:",
    `    certificate: ${certs.berth.cert}`,
    `    key: ${certs.berth.key}`,
    `    clientcas: [${ca}]`,
  ].join("\n");
}

function cacheConfig(section: string): string {
  return testConfig({
    log: JSON_TEST_LOG,
    storage: "  cache:\n    blobdescriptor: redis",
    http: "  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true",
    sections: section,
  });
}

async function healthy(client: RegistryClient): Promise<boolean> {
  return (await client.send("/debug/health")).status === 200;
}

function blobDigests(image: ImageParts): string[] {
  const manifest = image.manifest as { config: { digest: string }; layers: Array<{ digest: string }> };
  return [manifest.config.digest, ...manifest.layers.map((layer) => layer.digest), image.digest].sort();
}

/** GETs every layer of `image` in `name`, checking the bytes. */
async function pullLayers(client: RegistryClient, name: string, image: ImageParts): Promise<void> {
  const layers = (image.manifest as { layers: Array<{ digest: string }> }).layers;
  for (const [i, layer] of layers.entries()) {
    const { response, bytes } = await client.get(`/v2/${name}/blobs/${layer.digest}`);
    assert.equal(response.status, 200, `GET blob ${layer.digest}`);
    assert.deepEqual(bytes, image.layers[i]);
  }
}

/** The cache's counters from berth's /metrics (distribution's registry_storage_cache_total). */
async function cacheCounts(berth: BerthProcess): Promise<{ hits: number; misses: number; errors: number }> {
  const { samples } = await scrape(`${await debugURL(berth.log)}/metrics`);
  const count = (type: string): number => valueOf(samples, "registry_storage_cache_total", { type }) ?? 0;
  return { hits: count("Hit"), misses: count("Miss"), errors: count("Error") };
}

/** Pulls `image`'s layers and asserts each descriptor came from the cache (a hit, no error). */
async function pullHits(berth: BerthProcess, client: RegistryClient, name: string, image: ImageParts, what: string): Promise<void> {
  const before = await cacheCounts(berth);
  await pullLayers(client, name, image);
  const layers = image.layers.length;
  // /metrics reads the counters at most every 100 ms: a scrape right after the last one repeats it.
  let after = before;
  await waitFor(async () => (after = await cacheCounts(berth)).hits - before.hits >= layers, "the cache's counters to show the pulls", 2_000).catch(() => {
    assert.fail(`${what}: ${layers} layers pulled, cache counters ${JSON.stringify(before)} then ${JSON.stringify(after)}`);
  });
}

async function cachedDigests(server: RedisServer, name: string): Promise<string[]> {
  return (await server.client().smembers(`repository::${name}::blobs`)).sort();
}

describe("the Redis cache over mutual TLS through Sentinel (redis.mastername + redis.tls)", { skip }, () => {
  it("serves blob descriptors from the TLS master, follows SENTINEL FAILOVER over TLS, and reports a wrong CA plainly", async () => {
    const certs = await certificates();
    const set = await startRedisSentinelSet({ sentinels: 1, tls: certs.servers });
    const root = await mkdtemp(join(tmpdir(), "berth-redis-sentinel-tls-"));
    let berth: BerthProcess | undefined;
    try {
      berth = await startBerth({ configYaml: cacheConfig(redisSection(set.addrs, set.masterName, certs, certs.pki.ca.cert)), root });
      const client = new RegistryClient(berth.url);
      await waitFor(() => healthy(client), "berth to reach the master through the sentinel over TLS");
      const name = uniqueName("sentineltls");
      const image = await client.pushImage(name, "latest", randomImage({ layers: 2 }));
      assert.deepEqual(await cachedDigests(set.master, name), blobDigests(image), "entries written on the TLS master");
      await pullHits(berth, client, name, image, "from the first master");

      await set.failover();
      await waitFor(async () => {
        // A write in flight as the master changes may be dropped (the cache is only a cache): push until one lands.
        const probe = uniqueName("probe");
        await client.pushImage(probe, "latest", randomImage());
        return (await cachedDigests(set.replica, probe)).length > 0;
      }, "berth's writes to reach the new master over TLS", 20_000);
      const after = uniqueName("sentineltls");
      const second = await client.pushImage(after, "latest", randomImage({ layers: 2 }));
      assert.deepEqual(await cachedDigests(set.replica, after), blobDigests(second), "entries written on the new master");
      await pullHits(berth, client, after, second, "from the new master");
      assert.match(berth.log(), /"redis":"master berthmaster via sentinels 127\.0\.0\.1:\d+","msg":"redis blob descriptor cache connected"/);
      await berth.stop();

      // The servers' certificates do not chain to clientcas: nothing is used, health says why.
      const other = await certs.pki.newRoot("other-ca");
      berth = await startBerth({ configYaml: cacheConfig(redisSection(set.addrs, set.masterName, certs, other.cert)), root });
      await assertUntrustedButServing(berth, name, image, "sentinels");
    } finally {
      await berth?.stop();
      await set.stop();
      await certs.pki.cleanup();
      await rm(root, { recursive: true, force: true });
    }
  });
});

/**
 * berth's Redis servers' certificates do not chain to its clientcas: health names the cause (after
 * "connection lost": ioredis hides it, and berth then asks the first server), and the manifest is
 * still served from storage.
 */
async function assertUntrustedButServing(berth: BerthProcess, name: string, image: { mediaType: string }, what: string): Promise<void> {
  const client = new RegistryClient(berth.url);
  let health: unknown;
  await waitFor(async () => {
    const response = await client.send("/debug/health");
    health = await response.json();
    return response.status === 503 && JSON.stringify(health).includes("TLS");
  }, `health to report the untrusted ${what}`, 10_000).catch(() => undefined);
  assert.deepEqual(health, { redis: "unreachable: TLS certificate not trusted" });
  assert.equal((await client.send(`/v2/${name}/manifests/latest`, { method: "HEAD", headers: { accept: image.mediaType } })).status, 200, "served from storage");
}

describe("the Redis cache over mutual TLS on a Redis Cluster (several redis.addrs + redis.tls)", { skip }, () => {
  it("reads and writes through three TLS masters, and reports a wrong CA plainly", async () => {
    const certs = await certificates();
    const cluster = await startRedisCluster({ tls: certs.servers });
    const root = await mkdtemp(join(tmpdir(), "berth-redis-cluster-tls-"));
    let berth: BerthProcess | undefined;
    try {
      berth = await startBerth({ configYaml: cacheConfig(redisSection(cluster.addrs, undefined, certs, certs.pki.ca.cert)), root });
      const client = new RegistryClient(berth.url);
      await waitFor(() => healthy(client), "berth to reach the cluster over TLS");
      const name = uniqueName("clustertls");
      const image = await client.pushImage(name, "latest", randomImage({ layers: 4 }));
      const inspector = cluster.client();
      assert.deepEqual((await inspector.smembers(`repository::${name}::blobs`)).sort(), blobDigests(image));
      await pullHits(berth, client, name, image, "from the cluster");
      // The entries are spread: the nodes together hold the global descriptors, more than one holds some.
      const holders = await Promise.all(cluster.nodes.map(async (node) => (await node.client().keys("blobs::*")).length));
      assert.ok(holders.filter((n) => n > 0).length > 1, `blob descriptors on ${holders.join("/")} keys per node`);
      assert.match(berth.log(), /"redis":"cluster 127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+","msg":"redis blob descriptor cache connected"/);
      await berth.stop();

      const other = await certs.pki.newRoot("other-ca");
      berth = await startBerth({ configYaml: cacheConfig(redisSection(cluster.addrs, undefined, certs, other.cert)), root });
      await assertUntrustedButServing(berth, name, image, "nodes");
    } finally {
      await berth?.stop();
      await cluster.stop();
      await certs.pki.cleanup();
      await rm(root, { recursive: true, force: true });
    }
  });
});
