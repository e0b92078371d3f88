/**
 * The Redis blob descriptor cache against a real redis-server (started here, on a free loopback
 * port, stopped by PID): the shared cache suite, distribution's key layout, and what happens when
 * Redis goes away (killed) or stops answering (frozen with SIGSTOP): misses and dropped sets while
 * it is gone, clears remembered and replayed when it is back, one log line each way. Then a berth
 * process with the cache: it keeps serving blobs from storage through an outage, reports it on
 * /debug/health, and does not serve a blob deleted during the outage once Redis is back.
 *
 * Without redis-server these tests skip (CI=true: they fail; .ci/run installs it).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RedisBlobDescriptorCache, type RedisBlobDescriptorCacheOptions } from "../src/cache/redis-blob-descriptor-cache.js";
import type { BlobDescriptor } from "../src/cache/blob-descriptor-cache.js";
import { Digest } from "../src/reference/digest.js";
import { freshDigest, runBlobDescriptorCacheSuite } from "./cache-suite.js";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { Redis } from "ioredis";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BERTH_CLI, JSON_TEST_LOG, startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { describeRun, run } from "./support/external-program.js";
import { requireDistribution, startDistribution } from "./support/distribution-process.js";
import { layerLinkPath } from "../src/storage/paths.js";
import { createTestPki } from "./support/test-pki.js";
import { requireProgram } from "./support/external-program.js";
import { memoryLogger } from "./support/memory-logger.js";
import { requireRedis, startRedis, type RedisServer } from "./support/redis-server.js";
import { RegistryClient, randomBlob, uniqueName, waitFor } from "./support/registry-client.js";

const redisProgram = requireRedis();
const skip = redisProgram.skip;
const OCTET = "application/octet-stream";

/** A cache on `server`, not opened yet, logging into memory. */
function unopenedCache(
  server: RedisServer,
  overrides: Partial<RedisBlobDescriptorCacheOptions> = {},
): { cache: RedisBlobDescriptorCache; logs: ReturnType<typeof memoryLogger> } {
  const logs = memoryLogger();
  const cache = new RedisBlobDescriptorCache({
    host: "127.0.0.1",
    port: server.port,
    db: 0,
    tls: undefined,
    dialTimeoutMs: 1000,
    commandTimeoutMs: 300,
    probeIntervalMs: 100,
    log: logs.log,
    ...overrides,
  });
  return { cache, logs };
}

/** A cache on `server`, connected (healthy) before it is returned. */
async function connectedCache(
  server: RedisServer,
  overrides: Partial<RedisBlobDescriptorCacheOptions> = {},
): Promise<{ cache: RedisBlobDescriptorCache; logs: ReturnType<typeof memoryLogger> }> {
  const { cache, logs } = unopenedCache(server, overrides);
  cache.open();
  await waitFor(async () => Object.keys(await cache.health()).length === 0, "the cache to connect to redis");
  return { cache, logs };
}

function descriptor(digest: Digest, size = 10, mediaType = OCTET): BlobDescriptor {
  return { digest, size, mediaType };
}

function messages(logs: ReturnType<typeof memoryLogger>, text: string): Array<Record<string, unknown>> {
  return logs.entries().filter((entry) => typeof entry["msg"] === "string" && entry["msg"].includes(text));
}

// One server for the suite, started before it runs.
let suiteServer: RedisServer | undefined;
before(async () => {
  if (!skip) suiteServer = await startRedis();
});
after(async () => {
  await suiteServer?.stop();
});

runBlobDescriptorCacheSuite(
  "redis",
  async () => {
    const { cache } = await connectedCache(suiteServer!);
    return cache;
  },
  { skip },
);

describe("redis blob descriptor cache: distribution's key layout", { skip }, () => {
  let server: RedisServer;
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await server.stop();
  });

  it("writes the keys distribution reads", async () => {
    const { cache } = await connectedCache(server);
    try {
      const digest = freshDigest();
      const d = digest.toString();
      await cache.set(descriptor(digest, 1234, "application/vnd.oci.image.layer.v1.tar+gzip"), "library/ubuntu");
      const raw = server.client();
      assert.deepEqual(await raw.hgetall(`blobs::${d}`), { digest: d, size: "1234", mediatype: "application/vnd.oci.image.layer.v1.tar+gzip" });
      assert.equal(await raw.sismember("repository::library/ubuntu::blobs", d), 1);
      assert.deepEqual(await raw.hgetall(`repository::library/ubuntu::blobs::${d}`), { mediatype: "application/vnd.oci.image.layer.v1.tar+gzip" });
      await cache.clear(digest, "library/ubuntu");
      assert.equal(await raw.sismember("repository::library/ubuntu::blobs", d), 0);
      assert.equal(await raw.exists(`repository::library/ubuntu::blobs::${d}`), 0);
      assert.equal(await raw.exists(`blobs::${d}`), 1, "a repository's clear leaves the global entry");
      await cache.clear(digest);
      assert.equal(await raw.exists(`blobs::${d}`), 0);
    } finally {
      await cache.close();
    }
  });

  it("reads entries distribution wrote, and honours distribution's clears", async () => {
    const { cache } = await connectedCache(server);
    try {
      const raw = server.client();
      const digest = freshDigest();
      const d = digest.toString();
      // What distribution's repository-scoped SetDescriptor leaves behind.
      await raw.sadd("repository::team/app::blobs", d);
      await raw.hset(`blobs::${d}`, "digest", d, "size", "77");
      await raw.hsetnx(`blobs::${d}`, "mediatype", OCTET);
      await raw.hset(`repository::team/app::blobs::${d}`, "mediatype", "application/vnd.docker.image.rootfs.diff.tar.gzip");
      assert.deepEqual(await cache.get(digest, "team/app"), descriptor(digest, 77, "application/vnd.docker.image.rootfs.diff.tar.gzip"));
      assert.deepEqual(await cache.get(digest), descriptor(digest, 77, OCTET));
      // distribution's repository-scoped Clear deletes the global hash's fields (HDEL).
      await raw.hdel(`blobs::${d}`, "digest", "size", "mediatype");
      assert.equal(await cache.get(digest, "team/app"), undefined);
      assert.equal(await cache.get(digest), undefined);
      // An old entry with "length" instead of "size" (distribution before 2.1) is a miss.
      const old = freshDigest();
      await raw.hset(`blobs::${old}`, "digest", old.toString(), "length", "5");
      assert.equal(await cache.get(old), undefined);
      // An entry mapping a digest to a descriptor of another digest is a miss for berth.
      const other = freshDigest();
      await raw.hset(`blobs::${other}`, "digest", freshDigest().toString(), "size", "5");
      assert.equal(await cache.get(other), undefined);
      // A key of another type under the same name is a miss, not a failure.
      const clash = freshDigest();
      await raw.set(`blobs::${clash}`, "not a hash");
      assert.equal(await cache.get(clash), undefined);
      assert.deepEqual(await cache.health(), {});
    } finally {
      await cache.close();
    }
  });
});

describe("redis blob descriptor cache: outages", { skip }, () => {
  it("misses, drops sets and remembers clears while Redis is killed; logs once each way", async () => {
    const server = await startRedis();
    const { cache, logs } = await connectedCache(server);
    try {
      const digest = freshDigest();
      await cache.set(descriptor(digest), "team/app");
      assert.ok(await cache.get(digest, "team/app"));
      await server.kill();
      await waitFor(async () => Object.keys(await cache.health()).length > 0, "the cache to notice redis is gone");
      assert.match((await cache.health())["redis"] ?? "", /^unreachable: (connection lost|connection refused|not connected)$/);
      for (let i = 0; i < 20; i++) {
        assert.equal(await cache.get(digest, "team/app"), undefined);
        assert.equal(await cache.get(digest), undefined);
        await cache.set(descriptor(freshDigest()), "team/app");
      }
      await cache.clear(digest, "team/app");
      await cache.clear(digest, "team/app");
      await cache.clear(digest);
      assert.equal(cache.pendingClears, 2, "clears are remembered once per key");
      // Reconnection attempts go on in the background: still one line.
      await new Promise((resolve) => setTimeout(resolve, 700));
      assert.equal(messages(logs, "unreachable").length, 1, logs.text());

      await server.restart();
      await waitFor(async () => Object.keys(await cache.health()).length === 0, "the cache to reconnect", 10_000);
      assert.equal(cache.pendingClears, 0);
      const back = messages(logs, "reachable again");
      assert.equal(back.length, 1, logs.text());
      assert.equal(back[0]!["replayedClears"], 2);
      await cache.set(descriptor(digest, 5), "team/app");
      assert.deepEqual(await cache.get(digest, "team/app"), descriptor(digest, 5));
    } finally {
      await cache.close();
      await server.stop();
    }
  });

  it("replays a clear made while Redis was frozen before anything else, so the stale entry is gone", async () => {
    const server = await startRedis();
    const { cache, logs } = await connectedCache(server);
    try {
      const raw = server.client();
      const linked = freshDigest();
      const stored = freshDigest();
      await cache.set(descriptor(linked), "team/app");
      await cache.set(descriptor(stored));
      assert.equal(await raw.sismember("repository::team/app::blobs", linked.toString()), 1);

      server.pause();
      const started = Date.now();
      assert.equal(await cache.get(linked, "team/app"), undefined, "a frozen Redis is a miss");
      assert.ok(Date.now() - started < 2000, "after the command timeout, not longer");
      assert.deepEqual(await cache.health(), { redis: "unreachable: command timed out" });
      // Once down, the cache no longer waits on Redis.
      const quick = Date.now();
      assert.equal(await cache.get(linked, "team/app"), undefined);
      await cache.clear(linked, "team/app");
      await cache.clear(stored);
      assert.ok(Date.now() - quick < 100, `took ${Date.now() - quick} ms`);
      assert.equal(cache.pendingClears, 2);

      server.resume();
      await waitFor(async () => Object.keys(await cache.health()).length === 0, "the cache to see redis answer again");
      assert.equal(await raw.sismember("repository::team/app::blobs", linked.toString()), 0);
      assert.equal(await raw.exists(`repository::team/app::blobs::${linked}`), 0);
      assert.equal(await raw.exists(`blobs::${stored}`), 0);
      assert.equal(await cache.get(linked, "team/app"), undefined);
      assert.ok(await cache.get(linked), "the global entry of the unlinked blob stays");
      assert.equal(messages(logs, "unreachable").length, 1, logs.text());
      assert.equal(messages(logs, "reachable again").length, 1, logs.text());
    } finally {
      server.resume();
      await cache.close();
      await server.stop();
    }
  });

  it("forgets every blob descriptor when more clears were missed than it can remember", async () => {
    const server = await startRedis();
    const { cache, logs } = await connectedCache(server, { maxPendingClears: 2 });
    try {
      const raw = server.client();
      const digests = [freshDigest(), freshDigest(), freshDigest(), freshDigest()];
      for (const digest of digests) await cache.set(descriptor(digest), "team/app");
      await raw.set("unrelated", "kept");
      server.pause();
      assert.equal(await cache.get(digests[0]!), undefined);
      for (const digest of digests.slice(0, 3)) await cache.clear(digest, "team/app");
      server.resume();
      await waitFor(async () => Object.keys(await cache.health()).length === 0, "the cache to recover");
      assert.deepEqual(await raw.keys("blobs::*"), []);
      assert.deepEqual(await raw.keys("repository::*"), []);
      assert.equal(await raw.get("unrelated"), "kept");
      assert.equal(messages(logs, "forgot every blob descriptor").length, 1, logs.text());
    } finally {
      server.resume();
      await cache.close();
      await server.stop();
    }
  });

  it("reports Redis unreachable from the start, once, and connects when it appears", async () => {
    const server = await startRedis();
    await server.kill();
    const { cache, logs } = unopenedCache(server);
    try {
      const digest = freshDigest();
      assert.equal(await cache.get(digest), undefined, "before open(), a miss");
      assert.deepEqual(await cache.health(), { redis: "unreachable: not connected yet" });
      cache.open();
      await waitFor(() => messages(logs, "unreachable").length > 0, "the first failure to be logged");
      assert.deepEqual(await cache.health(), { redis: "unreachable: connection refused" });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(messages(logs, "unreachable").length, 1, logs.text());
      await server.restart();
      await waitFor(async () => Object.keys(await cache.health()).length === 0, "the cache to connect", 10_000);
      await cache.set(descriptor(digest));
      assert.deepEqual(await cache.get(digest), descriptor(digest));
    } finally {
      await cache.close();
      await server.stop();
    }
    assert.equal(await cache.get(freshDigest()), undefined, "after close(), a miss");
  });
});

/** berth's configuration with the redis cache on `redisAddr`; `{{root}}` is the storage root. */
function redisCacheConfig(redisAddr: string): string {
  return testConfig({
    log: JSON_TEST_LOG,
    storage: "  cache:\n    blobdescriptor: redis",
    sections: [
      "redis:",
      `  addr: ${redisAddr}`,
      '  password: ""',
      "  db: 0",
      "  dialtimeout: 1s",
      "  readtimeout: 300ms",
      "  writetimeout: 300ms",
      "  pool:",
      "    maxidle: 16",
      "    maxactive: 64",
      "    idletimeout: 300s",
    ].join("\n"),
  });
}

describe("berth garbage-collect with the redis cache", { skip }, () => {
  it("clears the cache after deleting blobs, so no registry goes on saying they exist", async () => {
    const redis = await startRedis();
    const work = await mkdtemp(join(tmpdir(), "berth-gc-redis-"));
    const root = join(work, "data");
    const configPath = join(work, "config.yml");
    await writeFile(configPath, redisCacheConfig(redis.addr).replaceAll("{{root}}", root));
    try {
      let berth = await startBerth({ configYaml: redisCacheConfig(redis.addr), root });
      const client = new RegistryClient(berth.url);
      await waitFor(async () => (await client.send("/debug/health")).status === 200, "berth to connect to redis");
      const name = uniqueName("gc");
      // A blob no manifest refers to: garbage.
      const digest = await client.pushBlob(name, randomBlob(300));
      assert.equal((await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 200);
      assert.equal(await redis.client().exists(`blobs::${digest}`), 1);
      await berth.stop();

      const gc = await run(process.execPath, [BERTH_CLI, "garbage-collect", configPath]);
      assert.equal(gc.code, 0, describeRun(gc));
      assert.match(gc.stdout, /blobs deleted: 1 /);
      assert.match(gc.stderr, /cleared the Redis blob descriptor cache at 127\.0\.0\.1:\d+ \(\d+ keys\)/);
      assert.deepEqual(await redis.client().keys("blobs::*"), []);
      assert.deepEqual(await redis.client().keys("repository::*"), []);

      berth = await startBerth({ configYaml: redisCacheConfig(redis.addr), root });
      try {
        const again = new RegistryClient(berth.url);
        assert.equal((await again.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 404);
      } finally {
        await berth.stop();
      }

      // Redis gone: the collection reports that the cache could not be cleared, and fails.
      await redis.kill();
      const another = new RegistryClient((berth = await startBerth({ configYaml: redisCacheConfig(redis.addr), root })).url);
      await another.pushBlob(name, randomBlob(100));
      await berth.stop();
      const failed = await run(process.execPath, [BERTH_CLI, "garbage-collect", configPath], {
        env: { REGISTRY_REDIS_DIALTIMEOUT: "200ms" },
      });
      assert.equal(failed.code, 1, describeRun(failed));
      assert.match(failed.stderr, /could not clear the Redis blob descriptor cache \(redis at 127\.0\.0\.1:\d+ unreachable: connection refused\)/);
    } finally {
      await redis.stop();
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe("berth with storage.cache.blobdescriptor: redis", { skip }, () => {
  let redis: RedisServer;
  let berth: BerthProcess;
  let client: RegistryClient;

  before(async () => {
    redis = await startRedis();
    berth = await startBerth({ configYaml: redisCacheConfig(redis.addr) });
    client = new RegistryClient(berth.url);
    await waitFor(async () => (await client.send("/debug/health")).status === 200, "berth to connect to redis");
  });
  after(async () => {
    await berth?.stop();
    redis?.resume();
    await redis?.stop();
  });

  const health = async (): Promise<{ status: number; body: unknown }> => {
    const response = await client.send("/debug/health");
    return { status: response.status, body: await response.json() };
  };
  const unreachableLines = (): number => berth.log().split("\n").filter((line) => line.includes("redis blob descriptor cache unreachable")).length;

  it("serves blobs through Redis, keeps serving them from storage while Redis is gone, and says so once", async () => {
    const name = uniqueName("cache");
    const bytes = randomBlob(2000);
    const digest = await client.pushBlob(name, bytes);
    assert.deepEqual(await health(), { status: 200, body: {} });
    assert.equal((await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 200);
    const raw = redis.client();
    assert.equal(await raw.sismember(`repository::${name}::blobs`, digest), 1, "the descriptor is cached in Redis");
    assert.equal(await raw.hget(`blobs::${digest}`, "size"), "2000");

    await redis.kill();
    for (let i = 0; i < 5; i++) {
      const head = await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), "2000");
      const { response, bytes: got } = await client.get(`/v2/${name}/blobs/${digest}`);
      assert.equal(response.status, 200);
      assert.ok(got.equals(bytes));
    }
    // A push works too (its cache writes are dropped).
    const other = await client.pushBlob(name, randomBlob(10));
    assert.equal((await client.send(`/v2/${name}/blobs/${other}`, { method: "HEAD" })).status, 200);
    await waitFor(async () => (await health()).status === 503, "health to report the outage");
    const down = await health();
    assert.equal(down.status, 503);
    assert.match((down.body as { redis: string }).redis, /^unreachable: (connection lost|connection refused|not connected)$/);
    assert.deepEqual(Object.keys(down.body as object), ["redis"]);
    assert.equal(unreachableLines(), 1, berth.log());

    await redis.restart();
    await waitFor(async () => (await health()).status === 200, "health to recover", 10_000);
    assert.equal((await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 200);
    assert.equal(await redis.client().sismember(`repository::${name}::blobs`, digest), 1, "cached again");
    assert.equal(unreachableLines(), 1);
  });

  it("does not serve a blob deleted while Redis was frozen once Redis is back", async () => {
    const name = uniqueName("cache");
    const digest = await client.pushBlob(name, randomBlob(500));
    assert.equal((await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 200);
    const raw = redis.client();
    assert.equal(await raw.sismember(`repository::${name}::blobs`, digest), 1);
    const linesBefore = unreachableLines();

    redis.pause();
    assert.equal((await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 200, "served from storage");
    assert.equal((await client.send(`/v2/${name}/blobs/${digest}`, { method: "DELETE" })).status, 202);
    assert.equal((await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 404);
    const down = await health();
    assert.equal(down.status, 503);
    assert.deepEqual(down.body, { redis: "unreachable: command timed out" });

    redis.resume();
    await waitFor(async () => (await health()).status === 200, "health to recover");
    assert.equal(await raw.sismember(`repository::${name}::blobs`, digest), 0, "the delete was replayed as a clear");
    for (let i = 0; i < 3; i++) {
      assert.equal((await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 404);
      assert.equal((await client.send(`/v2/${name}/blobs/${digest}`)).status, 404);
    }
    assert.equal(unreachableLines(), linesBefore + 1, berth.log());
    assert.match(berth.log(), /redis blob descriptor cache reachable again/);
  });

  it("answers /debug/health without credentials and with nothing else", async () => {
    const response = await client.send("/debug/health", { method: "HEAD" });
    assert.equal(response.status, 200);
    assert.equal((await client.send("/debug/health", { method: "POST" })).status, 405);
    assert.equal((await client.send("/debug/healthz")).status, 404);
  });
});

describe("one Redis shared by berth and distribution 2.8 on one storage", { skip: skip || requireDistribution().skip }, () => {
  it("each honours the entries and the deletes of the other", async () => {
    const redis = await startRedis();
    const root = await mkdtemp(join(tmpdir(), "berth-shared-redis-"));
    const berth = await startBerth({ configYaml: redisCacheConfig(redis.addr), root });
    const distribution = await startDistribution({
      root,
      env: { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: "redis", REGISTRY_REDIS_ADDR: redis.addr },
    });
    const { cache } = await connectedCache(redis);
    try {
      const viaBerth = new RegistryClient(berth.url);
      const viaDistribution = new RegistryClient(distribution.url);
      await waitFor(async () => (await viaBerth.send("/debug/health")).status === 200, "berth to connect to redis");
      const head = async (client: RegistryClient, name: string, digest: string): Promise<number> =>
        (await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status;

      // distribution answers from the entries berth writes: with the link removed behind both
      // their backs, it still finds the blob (a stale entry, which only a cache hit explains).
      const stale = uniqueName("shared");
      const staleDigest = await viaBerth.pushBlob(stale, randomBlob(123));
      assert.equal(await head(viaBerth, stale, staleDigest), 200);
      await rm(join(root, layerLinkPath(stale, Digest.parse(staleDigest))), { force: true });
      assert.equal(await head(viaDistribution, stale, staleDigest), 200, "distribution read berth's entry");

      // A blob berth deletes is gone for distribution too.
      const name = uniqueName("shared");
      const digest = await viaBerth.pushBlob(name, randomBlob(321));
      assert.equal(await head(viaBerth, name, digest), 200);
      assert.equal(await head(viaDistribution, name, digest), 200);
      assert.equal((await viaBerth.send(`/v2/${name}/blobs/${digest}`, { method: "DELETE" })).status, 202);
      assert.equal(await head(viaDistribution, name, digest), 404);

      // berth reads the entries distribution writes, and honours distribution's deletes.
      const other = uniqueName("shared");
      const bytes = randomBlob(456);
      const otherDigest = await viaDistribution.pushBlob(other, bytes, { chunkSize: 1000 }); // 2.8 has no monolithic POST
      assert.equal(await head(viaDistribution, other, otherDigest), 200);
      assert.deepEqual(await cache.get(Digest.parse(otherDigest), other), {
        digest: Digest.parse(otherDigest),
        size: 456,
        mediaType: OCTET,
      });
      assert.equal(await head(viaBerth, other, otherDigest), 200);
      assert.equal((await viaDistribution.send(`/v2/${other}/blobs/${otherDigest}`, { method: "DELETE" })).status, 202);
      assert.equal(await head(viaBerth, other, otherDigest), 404);
    } finally {
      await cache.close();
      await distribution.stop();
      await berth.stop();
      await redis.stop();
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("berth with a Redis cache over TLS (redis.tls.enabled)", { skip: skip || requireProgram("openssl").skip }, () => {
  it("connects when the server's certificate is trusted, and reports it unreachable when not", async () => {
    const pki = await createTestPki();
    const server = await pki.issue("redis", { serverNames: { dns: ["localhost"], ips: ["127.0.0.1"] } });
    const redis = await startRedis({ tls: server });
    const config = redisCacheConfig(redis.addr).replace("  pool:\n", "  tls:\n    enabled: true\n  pool:\n");
    const root = await mkdtemp(join(tmpdir(), "berth-redis-tls-"));
    let berth: BerthProcess | undefined;
    try {
      berth = await startBerth({ configYaml: config, root, env: { NODE_EXTRA_CA_CERTS: pki.ca.cert } });
      const client = new RegistryClient(berth.url);
      await waitFor(async () => (await client.send("/debug/health")).status === 200, "berth to connect to redis over TLS");
      const name = uniqueName("tls");
      const digest = await client.pushBlob(name, randomBlob(50));
      assert.equal((await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 200);
      await berth.stop();

      // The same server, its CA unknown to berth: never used, said plainly.
      berth = await startBerth({ configYaml: config, root });
      const untrusting = new RegistryClient(berth.url);
      await waitFor(async () => (await untrusting.send("/debug/health")).status === 503, "health to report the untrusted server");
      assert.deepEqual(await (await untrusting.send("/debug/health")).json(), { redis: "unreachable: TLS certificate not trusted" });
      assert.equal((await untrusting.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 200, "served from storage");
    } finally {
      await berth?.stop();
      await redis.stop();
      await pki.cleanup();
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("berth with a Redis cache over mutual TLS (redis.tls.certificate, key, clientcas)", { skip: skip || requireProgram("openssl").skip }, () => {
  /** The redis section for `addr` with these tls lines (certificate, key, clientcas). */
  const tlsConfig = (addr: string, tls: string[]): string =>
    redisCacheConfig(addr).replace("  pool:\n", `  tls:\n${tls.map((line) => `    ${line}\n`).join("")}  pool:\n`);

  it("connects with a client certificate to a server of a private CA, and reports a wrong CA or a missing certificate plainly", async () => {
    const pki = await createTestPki();
    const server = await pki.issue("redis-server", { serverNames: { dns: ["localhost"], ips: ["127.0.0.1"] } });
    const clientCert = await pki.issue("berth-client", { client: true });
    const otherRoot = await pki.newRoot("other-ca");
    const redis = await startRedis({ tls: { ...server, clientCa: pki.ca.cert } });
    const root = await mkdtemp(join(tmpdir(), "berth-redis-mtls-"));
    const inspector = new Redis({ host: "127.0.0.1", port: redis.port, protocol: 2, tls: { ca: await readFile(pki.ca.cert), cert: await readFile(clientCert.cert), key: await readFile(clientCert.key) } });
    inspector.on("error", () => undefined);
    let berth: BerthProcess | undefined;
    try {
      // Nothing from Node's CA list or NODE_EXTRA_CA_CERTS: clientcas alone makes the server trusted.
      berth = await startBerth({ configYaml: tlsConfig(redis.addr, [`certificate: ${clientCert.cert}`, `key: ${clientCert.key}`, `clientcas: [${pki.ca.cert}]`]), root });
      const client = new RegistryClient(berth.url);
      await waitFor(async () => (await client.send("/debug/health")).status === 200, "berth to connect to redis over mutual TLS");
      const name = uniqueName("mtls");
      const digest = await client.pushBlob(name, randomBlob(50));
      assert.equal((await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 200);
      assert.deepEqual(await inspector.smembers(`repository::${name}::blobs`), [digest], "the entry is in the TLS server");
      await berth.stop();

      // The server's certificate does not chain to clientcas: never used, said plainly.
      berth = await startBerth({ configYaml: tlsConfig(redis.addr, [`certificate: ${clientCert.cert}`, `key: ${clientCert.key}`, `clientcas: [${otherRoot.cert}]`]), root });
      const wrongCa = new RegistryClient(berth.url);
      await waitFor(async () => (await wrongCa.send("/debug/health")).status === 503, "health to report the untrusted server");
      assert.deepEqual(await (await wrongCa.send("/debug/health")).json(), { redis: "unreachable: TLS certificate not trusted" });
      assert.equal((await wrongCa.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 200, "served from storage");
      await berth.stop();

      // No client certificate: the server refuses the connection, and health says why. The server's
      // CA named by rootcas (the later distribution's name): trusted, so the refusal is the server's.
      berth = await startBerth({ configYaml: tlsConfig(redis.addr, [`rootcas: [${pki.ca.cert}]`]), root });
      const noCert = new RegistryClient(berth.url);
      await waitFor(async () => (await noCert.send("/debug/health")).status === 503, "health to report the refused connection");
      assert.deepEqual(await (await noCert.send("/debug/health")).json(), { redis: "unreachable: TLS client certificate refused" });
      assert.equal((await noCert.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 200, "served from storage");
    } finally {
      inspector.disconnect();
      await berth?.stop();
      await redis.stop();
      await pki.cleanup();
      await rm(root, { recursive: true, force: true });
    }
  });
});
