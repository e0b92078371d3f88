import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createResumableSha256, resumableSha256Available, unmarshalSha256 } from "../src/hash/resumable-sha256.js";

const required = process.env.CI === "true";

describe("resumable SHA-256", { skip: !resumableSha256Available && !required && "native addon not built (npm install builds it)" }, () => {
  it("is built (CI requires the native addon)", () => {
    assert.equal(resumableSha256Available, true);
  });

  it("matches node:crypto for many split points", () => {
    const data = randomBytes(300_000);
    for (const split of [0, 1, 63, 64, 65, 1000, 131_072, 299_999, 300_000]) {
      const hash = createResumableSha256()!;
      hash.update(data.subarray(0, split));
      hash.update(data.subarray(split));
      assert.equal(hash.hexDigest(), createHash("sha256").update(data).digest("hex"), `split at ${split}`);
      assert.equal(hash.length, data.length);
    }
  });

  it("resumes from its marshalled state at any offset", () => {
    const data = randomBytes(10_000);
    for (const split of [0, 5, 64, 100, 4096, 9_999]) {
      const first = createResumableSha256()!;
      first.update(data.subarray(0, split));
      const saved = first.marshal();
      assert.equal(saved.length, 108);
      const resumed = unmarshalSha256(saved)!;
      assert.equal(resumed.length, split);
      resumed.update(data.subarray(split));
      assert.equal(resumed.hexDigest(), createHash("sha256").update(data).digest("hex"), `split at ${split}`);
    }
  });

  it("writes Go's encoding: magic, big-endian words, buffered bytes, big-endian length", () => {
    const hash = createResumableSha256()!;
    hash.update(Buffer.from("abc"));
    const saved = hash.marshal();
    assert.deepEqual(saved.subarray(0, 4), Buffer.from("sha\x03", "binary"));
    // The initial SHA-256 state words, unchanged until a whole block has been hashed.
    assert.equal(saved.readUInt32BE(4), 0x6a09e667);
    assert.equal(saved.readUInt32BE(32), 0x5be0cd19);
    assert.equal(saved.subarray(36, 39).toString(), "abc");
    assert.ok(saved.subarray(39, 100).every((b) => b === 0));
    assert.equal(saved.readBigUInt64BE(100), 3n);
  });

  it("refuses state that is not Go's SHA-256 encoding", () => {
    assert.equal(unmarshalSha256(Buffer.alloc(108)), undefined);
    assert.equal(unmarshalSha256(Buffer.from("sha\x03short", "binary")), undefined);
  });
});
