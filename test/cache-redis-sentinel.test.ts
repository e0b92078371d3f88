/**
 * The Redis blob descriptor cache through Redis Sentinel (redis.addrs + redis.mastername), against
 * a real set from Debian's redis-server: a master, a replica and sentinels (test/support/
 * redis-sentinel.ts), every process stopped by PID. A berth process pushes and pulls with the
 * cache; the master is failed over (SENTINEL FAILOVER, and a killed master elected away by three
 * sentinels); berth goes on serving throughout and then writes and reads its entries on the new
 * master. The blob descriptor cache is the only part of berth that uses Redis.
 *
 * Without redis-server these tests skip (CI=true: they fail; .ci/run installs it).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startBerth, testConfig, JSON_TEST_LOG, type BerthProcess } from "./support/berth-process.js";
import { requireRedis, type RedisServer } from "./support/redis-server.js";
import { startRedisSentinelSet, type RedisSentinelSet } from "./support/redis-sentinel.js";
import { RegistryClient, randomImage, uniqueName, waitFor, type ImageParts } from "./support/registry-client.js";

const skip = requireRedis().skip;

function sentinelConfig(set: RedisSentinelSet): string {
  return testConfig({
    log: JSON_TEST_LOG,
    storage: "  cache:\n    blobdescriptor: redis",
    sections: ["redis:", `  addrs: [${set.addrs.join(", ")}]`, `  mastername: ${set.masterName}`, "  dialtimeout: 1s", "  readtimeout: 300ms", "  writetimeout: 300ms"].join("\n"),
  });
}

/** The digests berth recorded for `name` in the Redis server `server` (distribution's key layout). */
async function cachedDigests(server: RedisServer, name: string): Promise<string[]> {
  return (await server.client().smembers(`repository::${name}::blobs`)).sort();
}

/** What pushing and pulling `image` records: its config, layers and manifest. */
function blobDigests(image: ImageParts): string[] {
  const manifest = image.manifest as { config: { digest: string }; layers: Array<{ digest: string }> };
  return [manifest.config.digest, ...manifest.layers.map((layer) => layer.digest), image.digest].sort();
}

/** Pulls the image as a client does: the manifest by tag, then every blob, checking the bytes. */
async function pull(client: RegistryClient, name: string, image: ImageParts): Promise<void> {
  const manifest = await client.get(`/v2/${name}/manifests/latest`, { accept: image.mediaType });
  assert.equal(manifest.response.status, 200, `GET manifest ${name}:latest`);
  assert.deepEqual(manifest.bytes, image.bytes);
  const manifestJson = image.manifest as { config: { digest: string }; layers: Array<{ digest: string }> };
  const blobs: Array<[string, Buffer]> = [[manifestJson.config.digest, image.config], ...image.layers.map((layer, i): [string, Buffer] => [manifestJson.layers[i]!.digest, layer])];
  for (const [digest, expected] of blobs) {
    const { response, bytes } = await client.get(`/v2/${name}/blobs/${digest}`);
    assert.equal(response.status, 200, `GET blob ${digest}`);
    assert.deepEqual(bytes, expected);
  }
}

/** Pulls `image` over and over until `stop` resolves; resolves to the number of pulls, all good. */
async function pullDuring(client: RegistryClient, name: string, image: ImageParts, stop: Promise<unknown>): Promise<number> {
  let done = false;
  void stop.finally(() => (done = true));
  let pulls = 0;
  while (!done) {
    await pull(client, name, image);
    pulls++;
  }
  return pulls;
}

/** How long the cache was down, from berth's log lines (measured, never asserted), for the test's diagnostics. */
function outageMs(log: string): string {
  const at = (msg: string): number | undefined => {
    const line = log.split("\n").find((l) => l.includes(`"msg":"${msg}`));
    return line === undefined ? undefined : (JSON.parse(line) as { time: number }).time;
  };
  const down = at("redis blob descriptor cache unreachable");
  const up = at("redis blob descriptor cache reachable again");
  return down === undefined || up === undefined ? "no outage logged" : `cache down ${up - down} ms`;
}

/**
 * Until a pushed and pulled image's entries are on `server`: a connection opened before the failover
 * may still reach the old master, which answers READONLY and is then reopened through the
 * sentinels; writes in that window are dropped (the cache is only a cache). How long it lasts is
 * the machine's business, so the test waits for it instead of racing it.
 */
async function writesReach(client: RegistryClient, server: RedisServer, what: string): Promise<void> {
  await waitFor(
    async () => {
      const probe = uniqueName("probe");
      const image = await client.pushImage(probe, "latest", randomImage());
      await pull(client, probe, image);
      return (await cachedDigests(server, probe)).length > 0;
    },
    what,
    20_000,
  );
}

async function healthy(client: RegistryClient): Promise<boolean> {
  return (await client.send("/debug/health")).status === 200;
}

describe("the Redis cache through Sentinel (redis.addrs + redis.mastername)", { skip }, () => {
  it("follows SENTINEL FAILOVER: pulls never fail, and entries then go to the new master", async (t) => {
    const set = await startRedisSentinelSet({ sentinels: 1 });
    let berth: BerthProcess | undefined;
    try {
      berth = await startBerth({ configYaml: sentinelConfig(set) });
      const client = new RegistryClient(berth.url);
      await waitFor(() => healthy(client), "berth to reach the master through the sentinel");
      const before = uniqueName("sentinel");
      const first = await client.pushImage(before, "latest", randomImage({ layers: 2 }));
      await pull(client, before, first);
      assert.deepEqual(await cachedDigests(set.master, before), blobDigests(first), "entries written on the first master");

      const failover = set.failover();
      const pulls = await pullDuring(client, before, first, failover);
      await failover;
      assert.ok(pulls > 0);
      t.diagnostic(`${pulls} pulls during the failover, all complete and correct`);
      await waitFor(async () => (await healthy(client)) && (await set.masterPort()) === set.replica.port, "berth to use the new master", 20_000);
      await writesReach(client, set.replica, "berth's writes to reach the new master");

      const after = uniqueName("sentinel");
      const second = await client.pushImage(after, "latest", randomImage({ layers: 2 }));
      await pull(client, after, second);
      await pull(client, before, first);
      assert.deepEqual(await cachedDigests(set.replica, after), blobDigests(second), "entries written on the new master");
      // A delete reaches the new master too: the entry is gone and the blob with it.
      const [layer] = (second.manifest as { layers: Array<{ digest: string }> }).layers;
      assert.equal((await client.send(`/v2/${after}/blobs/${layer!.digest}`, { method: "DELETE" })).status, 202);
      assert.ok(!(await cachedDigests(set.replica, after)).includes(layer!.digest));
      assert.equal((await client.send(`/v2/${after}/blobs/${layer!.digest}`, { method: "HEAD" })).status, 404);
      t.diagnostic(outageMs(berth.log()));
      assert.match(berth.log(), /"redis":"master berthmaster via sentinels 127\.0\.0\.1:\d+","msg":"redis blob descriptor cache connected"/);
    } finally {
      await berth?.stop();
      await set.stop();
    }
  });

  it("follows three sentinels electing the replica after the master is killed (settings from REGISTRY_REDIS_*)", async (t) => {
    const set = await startRedisSentinelSet({ sentinels: 3 });
    let berth: BerthProcess | undefined;
    try {
      berth = await startBerth({
        configYaml: testConfig({ log: JSON_TEST_LOG, storage: "  cache:\n    blobdescriptor: redis" }),
        env: {
          REGISTRY_REDIS_ADDRS: `[${set.addrs.join(", ")}]`,
          REGISTRY_REDIS_MASTERNAME: set.masterName,
          REGISTRY_REDIS_READTIMEOUT: "300ms",
          REGISTRY_REDIS_DIALTIMEOUT: "1s",
        },
      });
      const client = new RegistryClient(berth.url);
      await waitFor(() => healthy(client), "berth to reach the master through the sentinels");
      const name = uniqueName("sentinel");
      const image = await client.pushImage(name, "latest", randomImage());
      assert.deepEqual(await cachedDigests(set.master, name), blobDigests(image));

      await set.master.kill();
      const elected = set.waitForMaster(set.replica.port, "the sentinels to elect the replica");
      const pulls = await pullDuring(client, name, image, elected);
      await elected;
      assert.ok(pulls > 0);
      t.diagnostic(`${pulls} pulls while the sentinels elected a new master, all complete and correct`);
      await waitFor(() => healthy(client), "berth to use the elected master", 20_000);
      await writesReach(client, set.replica, "berth's writes to reach the elected master");
      t.diagnostic(outageMs(berth.log()));

      const other = uniqueName("sentinel");
      const second = await client.pushImage(other, "latest", randomImage());
      await pull(client, other, second);
      assert.deepEqual(await cachedDigests(set.replica, other), blobDigests(second), "entries written on the elected master");
    } finally {
      await berth?.stop();
      await set.stop();
    }
  });
});
