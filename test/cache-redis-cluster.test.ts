/**
 * The Redis blob descriptor cache on a Redis Cluster (several redis.addrs, no redis.mastername:
 * what go-redis's universal client, and so distribution 3, makes of them), against three real
 * cluster-enabled redis-server masters (test/support/redis-cluster.ts): the shared cache suite, and
 * a berth process pushing, pulling and deleting with its entries spread over the nodes.
 *
 * Without redis-server these tests skip (CI=true: they fail; .ci/run installs it).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RedisBlobDescriptorCache } from "../src/cache/redis-blob-descriptor-cache.js";
import { runBlobDescriptorCacheSuite } from "./cache-suite.js";
import { JSON_TEST_LOG, startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { memoryLogger } from "./support/memory-logger.js";
import { startRedisCluster, type RedisClusterSet } from "./support/redis-cluster.js";
import { requireRedis } from "./support/redis-server.js";
import { RegistryClient, randomImage, uniqueName, waitFor } from "./support/registry-client.js";

const skip = requireRedis().skip;
let cluster: RedisClusterSet | undefined;

before(async () => {
  if (!skip) cluster = await startRedisCluster();
});
after(async () => {
  await cluster?.stop();
});

async function clusterCache(): Promise<RedisBlobDescriptorCache> {
  const cache = new RedisBlobDescriptorCache({
    host: "127.0.0.1",
    port: cluster!.nodes[0]!.port,
    cluster: cluster!.nodes.map((n) => ({ host: "127.0.0.1", port: n.port })),
    db: 0,
    tls: undefined,
    dialTimeoutMs: 1000,
    commandTimeoutMs: 1000,
    probeIntervalMs: 100,
    log: memoryLogger().log,
  });
  cache.open();
  await waitFor(async () => Object.keys(await cache.health()).length === 0, "the cache to reach the cluster");
  return cache;
}

runBlobDescriptorCacheSuite("redis cluster", clusterCache, { skip });

describe("berth with the Redis cache on a Redis Cluster (several redis.addrs)", { skip }, () => {
  it("pushes, pulls and deletes with its entries on several nodes", async () => {
    let berth: BerthProcess | undefined;
    try {
      berth = await startBerth({
        configYaml: testConfig({
          log: JSON_TEST_LOG,
          storage: "  cache:\n    blobdescriptor: redis",
          sections: ["redis:", `  addrs: [${cluster!.addrs.join(", ")}]`, "  dialtimeout: 1s", "  readtimeout: 1s"].join("\n"),
        }),
      });
      const client = new RegistryClient(berth.url);
      await waitFor(async () => (await client.send("/debug/health")).status === 200, "berth to reach the cluster");
      const name = uniqueName("cluster");
      const image = await client.pushImage(name, "latest", randomImage({ layers: 4 }));
      const manifest = await client.get(`/v2/${name}/manifests/latest`, { accept: image.mediaType });
      assert.equal(manifest.response.status, 200);
      assert.deepEqual(manifest.bytes, image.bytes);
      const layers = (image.manifest as { layers: Array<{ digest: string }> }).layers.map((l) => l.digest);
      for (const [i, digest] of layers.entries()) {
        const { response, bytes } = await client.get(`/v2/${name}/blobs/${digest}`);
        assert.equal(response.status, 200);
        assert.deepEqual(bytes, image.layers[i]);
      }

      // Every descriptor is in the cluster, and the keys live on more than one node.
      const inspector = cluster!.client();
      const members = await inspector.smembers(`repository::${name}::blobs`);
      assert.deepEqual(members.sort(), [...layers, (image.manifest as { config: { digest: string } }).config.digest, image.digest].sort());
      const owners = new Set<number>();
      for (const digest of members) {
        for (const [index, node] of cluster!.nodes.entries()) {
          if ((await node.client().call("CLUSTER", "COUNTKEYSINSLOT", String(await inspector.call("CLUSTER", "KEYSLOT", `blobs::${digest}`)))) === 1) owners.add(index);
        }
      }
      assert.ok(owners.size > 1, `entries on ${owners.size} node(s)`);

      // A delete clears the entry on its nodes: the blob is gone, not served from the cache.
      const [first] = layers;
      assert.equal((await client.send(`/v2/${name}/blobs/${first}`, { method: "DELETE" })).status, 202);
      assert.equal(await inspector.sismember(`repository::${name}::blobs`, first!), 0);
      assert.equal((await client.send(`/v2/${name}/blobs/${first}`, { method: "HEAD" })).status, 404);

      // garbage-collect's forgetting reaches every master (SCAN per node, one DEL per key).
      const cache = await clusterCache();
      try {
        assert.ok((await cache.forgetAll(5_000)) >= members.length);
      } finally {
        await cache.close();
      }
      assert.deepEqual(await inspector.smembers(`repository::${name}::blobs`), []);
      for (const digest of members) assert.equal(await inspector.exists(`blobs::${digest}`), 0);
      assert.match(berth.log(), /"redis":"cluster 127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+","msg":"redis blob descriptor cache connected"/);
    } finally {
      await berth?.stop();
    }
  });
});
