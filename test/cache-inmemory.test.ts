import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InMemoryBlobDescriptorCache, NoBlobDescriptorCache, type BlobDescriptorCache } from "../src/cache/blob-descriptor-cache.js";
import { freshDigest, runBlobDescriptorCacheSuite } from "./cache-suite.js";

runBlobDescriptorCacheSuite("inmemory", async () => new InMemoryBlobDescriptorCache(1000));

const octet = "application/octet-stream";

describe("InMemoryBlobDescriptorCache bounds", () => {
  it("holds at most maxEntries, forgetting the least recently used first", async () => {
    const cache = new InMemoryBlobDescriptorCache(3);
    const [a, b, c, d] = [freshDigest(), freshDigest(), freshDigest(), freshDigest()];
    for (const digest of [a, b, c]) await cache.set({ digest, size: 1, mediaType: octet });
    // Reading a makes it the most recently used: b is now the oldest.
    assert.ok(await cache.get(a));
    await cache.set({ digest: d, size: 1, mediaType: octet });
    assert.equal(await cache.get(b), undefined);
    for (const digest of [a, c, d]) assert.ok(await cache.get(digest), digest.toString());
  });

  it("counts a repository-scoped entry and its global entry against the bound", async () => {
    const cache = new InMemoryBlobDescriptorCache(4);
    const digests = [freshDigest(), freshDigest(), freshDigest()];
    for (const digest of digests) await cache.set({ digest, size: 1, mediaType: octet }, "team/app");
    // 6 entries were set into 4 places: the first blob's two entries went first.
    assert.equal(await cache.get(digests[0]!, "team/app"), undefined);
    assert.equal(await cache.get(digests[0]!), undefined);
    assert.ok(await cache.get(digests[2]!, "team/app"));
  });

  it("never answers from more than its bound, however many entries are set", async () => {
    const cache = new InMemoryBlobDescriptorCache(50);
    const digests = Array.from({ length: 500 }, () => freshDigest());
    for (const digest of digests) await cache.set({ digest, size: 1, mediaType: octet }, "r");
    let found = 0;
    for (const digest of digests) if (await cache.get(digest)) found++;
    assert.ok(found <= 50, `${found} entries answered`);
    assert.ok(await cache.get(digests[499]!, "r"));
  });

  it("keeps only global entries when not repository-scoped (a worker)", async () => {
    const cache = new InMemoryBlobDescriptorCache(10, false);
    const digest = freshDigest();
    await cache.set({ digest, size: 5, mediaType: octet }, "team/app");
    assert.equal(await cache.get(digest, "team/app"), undefined);
    assert.deepEqual(await cache.get(digest), { digest, size: 5, mediaType: octet });
  });

  it("NoBlobDescriptorCache remembers nothing and is healthy", async () => {
    const cache: BlobDescriptorCache = new NoBlobDescriptorCache();
    const digest = freshDigest();
    await cache.set({ digest, size: 5, mediaType: octet });
    assert.equal(await cache.get(digest), undefined);
    assert.deepEqual(await cache.health(), {});
  });
});
