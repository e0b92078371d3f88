/**
 * GET /debug/health (distribution's health endpoint): 200 `{}` when all is well, 503 naming the
 * component and a short reason when the Redis cache is unreachable, never asking for credentials.
 * (The Redis outage and recovery cases with a real redis-server are in cache-redis.test.ts.)
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { freePort } from "./support/distribution-process.js";
import { RegistryClient, waitFor } from "./support/registry-client.js";

describe("GET /debug/health", () => {
  describe("with an in-memory cache and auth that wants credentials for everything", () => {
    let berth: BerthProcess;
    let client: RegistryClient;
    before(async () => {
      berth = await startBerth({
        configYaml: testConfig({
          deleteEnabled: false,
          storage: "  cache:\n    blobdescriptor: inmemory",
          sections: "auth:\n  silly:\n    realm: https://auth.example.com/token\n    service: registry.example.com",
        }),
      });
      client = new RegistryClient(berth.url);
    });
    after(async () => {
      await berth?.stop();
    });

    it("answers 200 {} without credentials", async () => {
      assert.equal((await client.send("/v2/")).status, 401, "the API itself wants credentials");
      const response = await client.send("/debug/health");
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      assert.equal(response.headers.get("cache-control"), "no-store");
      assert.deepEqual(await response.json(), {});
      const head = await client.send("/debug/health", { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal((await head.arrayBuffer()).byteLength, 0);
    });

    it("is only that path and those methods", async () => {
      assert.equal((await client.send("/debug/health", { method: "DELETE" })).status, 405);
      assert.equal((await client.send("/debug/health/")).status, 404);
      assert.equal((await client.send("/debug/vars")).status, 404);
    });
  });

  describe("with a Redis cache whose server is not there", () => {
    let berth: BerthProcess;
    let client: RegistryClient;
    before(async () => {
      // A port nothing listens on: connections are refused.
      const port = await freePort();
      berth = await startBerth({
        configYaml: testConfig({
          deleteEnabled: false,
          storage: "  cache:\n    blobdescriptor: redis",
          sections: `redis:\n  addr: 127.0.0.1:${port}\n  password: sesame\n  dialtimeout: 200ms\n  readtimeout: 200ms`,
        }),
      });
      client = new RegistryClient(berth.url);
    });
    after(async () => {
      await berth?.stop();
    });

    it("answers 503 naming redis and the reason, and nothing more", async () => {
      await waitFor(async () => {
        const response = await client.send("/debug/health");
        return response.status === 503 && JSON.stringify(await response.json()).includes("refused");
      }, "health to report the refused connection");
      const response = await client.send("/debug/health");
      assert.equal(response.status, 503);
      assert.deepEqual(await response.json(), { redis: "unreachable: connection refused" });
    });

    it("still serves the registry from storage, and logs the outage once without the password", async () => {
      const response = await client.send("/v2/");
      assert.equal(response.status, 200);
      const blob = Buffer.from("served without redis");
      const digest = await client.pushBlob("team/app", blob);
      const { response: got, bytes } = await client.get(`/v2/team/app/blobs/${digest}`);
      assert.equal(got.status, 200);
      assert.ok(bytes.equals(blob));
      await new Promise((resolve) => setTimeout(resolve, 500));
      const lines = berth.log().split("\n").filter((line) => line.includes("redis blob descriptor cache unreachable"));
      assert.equal(lines.length, 1, berth.log());
      assert.ok(!berth.log().includes("sesame"), "the password is never logged");
    });

    it("stops promptly on SIGTERM though Redis keeps refusing", async () => {
      const started = Date.now();
      assert.equal(await berth.stop(), 0);
      assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    });
  });
});
