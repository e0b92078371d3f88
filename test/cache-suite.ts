/**
 * The blob descriptor cache contract, one suite run over every implementation (in-memory, Redis),
 * modelled on distribution's registry/storage/cache/cachecheck/suite.go: empty cache, invalid
 * input, set and get (global and repository-scoped), media types per repository, clear.
 *
 * Scoping as distribution has it: a repository-scoped set also sets the global entry; a
 * repository-scoped get answers only from that repository's entry (a global entry alone is a miss:
 * the blob may not be linked there); the global media type is the first one set.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { afterEach, describe, it } from "node:test";
import type { BlobDescriptor, BlobDescriptorCache } from "../src/cache/blob-descriptor-cache.js";
import { Digest } from "../src/reference/digest.js";

export interface CacheSuiteOptions {
  /** A reason to skip the whole suite (a missing server), or false. */
  skip?: string | false;
}

const OCTET = "application/octet-stream";
const JSON_TYPE = "application/json";

/** A digest no other test uses. */
export function freshDigest(algorithm: "sha256" | "sha512" = "sha256"): Digest {
  return Digest.of(algorithm, randomBytes(16));
}

function descriptor(digest: Digest, size = 10, mediaType = OCTET): BlobDescriptor {
  return { digest, size, mediaType };
}

/**
 * Runs the suite. `makeCache` returns a cache ready to answer (connected, for Redis), empty as far
 * as the digests this suite makes are concerned; the suite closes it after each test.
 */
export function runBlobDescriptorCacheSuite(
  name: string,
  makeCache: () => Promise<BlobDescriptorCache>,
  options: CacheSuiteOptions = {},
): void {
  describe(`blob descriptor cache suite: ${name}`, { skip: options.skip ?? false }, () => {
    let open: BlobDescriptorCache[] = [];
    const cache = async (): Promise<BlobDescriptorCache> => {
      const made = await makeCache();
      open.push(made);
      return made;
    };
    afterEach(async () => {
      for (const made of open) await made.close?.();
      open = [];
    });

    it("misses on an empty cache, globally and in a repository", async () => {
      const c = await cache();
      const digest = freshDigest();
      assert.equal(await c.get(digest), undefined);
      assert.equal(await c.get(digest, "foo/bar"), undefined);
      assert.deepEqual(await c.health(), {});
    });

    it("rejects invalid descriptors and keys, storing nothing", async () => {
      const c = await cache();
      const digest = freshDigest();
      await assert.rejects(c.set({ digest, size: -1, mediaType: OCTET }), TypeError);
      await assert.rejects(c.set({ digest, size: 1.5, mediaType: OCTET }), TypeError);
      await assert.rejects(c.set({ digest, size: Number.NaN, mediaType: OCTET }), TypeError);
      await assert.rejects(c.set({ digest, size: 10, mediaType: "" }), TypeError);
      await assert.rejects(c.set({ digest: "sha256:abc" as unknown as Digest, size: 10, mediaType: OCTET }), TypeError);
      await assert.rejects(c.set(descriptor(digest), ""), TypeError);
      await assert.rejects(c.get("" as unknown as Digest), TypeError);
      await assert.rejects(c.get(digest, ""), TypeError);
      await assert.rejects(c.clear("" as unknown as Digest), TypeError);
      assert.equal(await c.get(digest), undefined);
      assert.equal(await c.get(digest, "foo/bar"), undefined);
    });

    it("returns a global entry globally, but not in a repository that never had it", async () => {
      const c = await cache();
      const digest = freshDigest();
      await c.set(descriptor(digest, 1234));
      assert.deepEqual(await c.get(digest), descriptor(digest, 1234));
      // distribution's repository-scoped Stat checks membership first: no fallback to global.
      assert.equal(await c.get(digest, "foo/bar"), undefined);
    });

    it("sets a repository-scoped entry and the global one with it", async () => {
      const c = await cache();
      const digest = freshDigest();
      await c.set(descriptor(digest, 42), "foo/bar");
      assert.deepEqual(await c.get(digest, "foo/bar"), descriptor(digest, 42));
      assert.deepEqual(await c.get(digest), descriptor(digest, 42));
      assert.equal(await c.get(digest, "foo/other"), undefined);
      assert.equal(await c.get(digest, "foo"), undefined);
    });

    it("keeps a repository's media type per repository and the first one globally", async () => {
      const c = await cache();
      const digest = freshDigest();
      await c.set(descriptor(digest, 10, OCTET), "foo/bar");
      await c.set(descriptor(digest, 10, JSON_TYPE), "foo/bar");
      assert.deepEqual(await c.get(digest, "foo/bar"), descriptor(digest, 10, JSON_TYPE));
      assert.deepEqual(await c.get(digest), descriptor(digest, 10, OCTET), "the global media type is the first one set");
      await c.set(descriptor(digest, 10, "application/vnd.oci.image.manifest.v1+json"), "other/repo");
      assert.equal((await c.get(digest, "other/repo"))?.mediaType, "application/vnd.oci.image.manifest.v1+json");
      assert.equal((await c.get(digest, "foo/bar"))?.mediaType, JSON_TYPE);
    });

    it("clears a repository-scoped entry without touching the global one or other repositories", async () => {
      const c = await cache();
      const digest = freshDigest();
      await c.set(descriptor(digest), "foo/bar");
      await c.set(descriptor(digest), "foo/baz");
      await c.clear(digest, "foo/bar");
      assert.equal(await c.get(digest, "foo/bar"), undefined);
      assert.deepEqual(await c.get(digest, "foo/baz"), descriptor(digest));
      assert.deepEqual(await c.get(digest), descriptor(digest));
      // Clearing what is not there is not an error.
      await c.clear(digest, "foo/bar");
      await c.clear(freshDigest(), "never/seen");
      await c.clear(freshDigest());
    });

    it("clearing the global entry forgets the blob in every repository", async () => {
      const c = await cache();
      const digest = freshDigest();
      await c.set(descriptor(digest), "foo/bar");
      await c.clear(digest);
      assert.equal(await c.get(digest), undefined);
      assert.equal(await c.get(digest, "foo/bar"), undefined);
      // Set again (the blob was pushed again): found again.
      await c.set(descriptor(digest, 11), "foo/bar");
      assert.deepEqual(await c.get(digest, "foo/bar"), descriptor(digest, 11));
    });

    it("keeps digests of different algorithms and repositories apart", async () => {
      const c = await cache();
      const a = freshDigest("sha256");
      const b = freshDigest("sha512");
      await c.set(descriptor(a, 1), "team/app");
      await c.set(descriptor(b, 2), "team/app");
      await c.set(descriptor(b, 2), "team/app/sub");
      assert.deepEqual(await c.get(a, "team/app"), descriptor(a, 1));
      assert.deepEqual(await c.get(b, "team/app"), descriptor(b, 2));
      assert.equal(await c.get(a, "team/app/sub"), undefined);
      await c.clear(b, "team/app");
      assert.deepEqual(await c.get(b, "team/app/sub"), descriptor(b, 2));
      assert.deepEqual(await c.get(a, "team/app"), descriptor(a, 1));
    });

    it("stores sizes beyond 32 bits exactly", async () => {
      const c = await cache();
      const digest = freshDigest();
      const size = 2 ** 40 + 7;
      await c.set(descriptor(digest, size), "big/blobs");
      assert.equal((await c.get(digest, "big/blobs"))?.size, size);
      assert.equal((await c.get(digest))?.size, size);
      const empty = freshDigest();
      await c.set(descriptor(empty, 0));
      assert.equal((await c.get(empty))?.size, 0);
    });
  });
}
