/**
 * The filesystem driver's durable file operations, native (native/durable_file.c) and node:fs,
 * held to the same behaviour: what lands on disk, what is left behind, and the errors callers map.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type DurableFileOps, nodeFileOps } from "../src/driver/durable-file-ops.js";
import { nativeFileOps } from "../src/native/durable-file.js";
import { createResumableSha256, unmarshalSha256 } from "../src/hash/resumable-sha256.js";

const implementations: [string, DurableFileOps | undefined][] = [
  ["native", nativeFileOps],
  ["node:fs", nodeFileOps],
];

for (const [name, ops] of implementations) {
  const skip = ops === undefined && process.env.CI !== "true" && "native durable_file addon not built (npm install builds it)";

  describe(`durable file operations (${name})`, { skip }, () => {
    let root: string;
    const use = (): DurableFileOps => {
      assert.ok(ops, "the native durable_file addon is not built");
      return ops;
    };

    before(async () => {
      root = await mkdtemp(join(tmpdir(), "berth-durable-ops-"));
    });

    after(async () => {
      await rm(root, { recursive: true, force: true });
    });

    it("put writes the bytes under the target name, durably or not, and leaves no temporary file", async () => {
      const dir = join(root, "put");
      await mkdir(dir);
      await use().put(join(dir, ".a.tmp"), join(dir, "a"), Buffer.from("durable"), dir);
      await use().put(join(dir, ".b.tmp"), join(dir, "b"), new Uint8Array([1, 2, 3]).subarray(1), undefined);
      await use().put(join(dir, ".a.tmp"), join(dir, "a"), Buffer.from("replaced"), dir);
      assert.equal(await readFile(join(dir, "a"), "utf8"), "replaced");
      assert.deepEqual([...(await readFile(join(dir, "b")))], [2, 3]);
      assert.deepEqual((await readdir(dir)).sort(), ["a", "b"]);
    });

    it("put into a missing directory fails with ENOENT and creates nothing", async () => {
      const err = await use().put(join(root, "missing", ".x.tmp"), join(root, "missing", "x"), Buffer.from("x"), join(root, "missing")).then(
        () => assert.fail("put succeeded"),
        (e: NodeJS.ErrnoException) => e,
      );
      assert.equal(err.code, "ENOENT");
      assert.equal(err.syscall, "open");
      assert.deepEqual(await readdir(root).then((names) => names.includes("missing")), false);
    });

    it("put refuses an existing temporary file and leaves it alone", async () => {
      const dir = join(root, "exclusive");
      await mkdir(dir);
      await writeFile(join(dir, ".t.tmp"), "someone else's");
      const err = await use().put(join(dir, ".t.tmp"), join(dir, "t"), Buffer.from("mine"), dir).then(
        () => assert.fail("put succeeded"),
        (e: NodeJS.ErrnoException) => e,
      );
      assert.equal(err.code, "EEXIST");
      assert.equal(await readFile(join(dir, ".t.tmp"), "utf8"), "someone else's");
      assert.deepEqual(await readdir(dir), [".t.tmp"]);
    });

    it("put removes its temporary file when the rename fails", async () => {
      const dir = join(root, "rename-fails");
      await mkdir(join(dir, "target", "occupied"), { recursive: true });
      // A non-empty directory cannot be replaced by a file.
      const err = await use().put(join(dir, ".t.tmp"), join(dir, "target"), Buffer.from("x"), dir).then(
        () => assert.fail("put succeeded"),
        (e: NodeJS.ErrnoException) => e,
      );
      assert.equal(err.code, "EISDIR");
      assert.deepEqual(await readdir(dir), ["target"]);
    });

    it("move renames and syncs; a missing source fails with ENOENT", async () => {
      const dir = join(root, "move");
      await mkdir(join(dir, "to"), { recursive: true });
      await writeFile(join(dir, "from"), "moved");
      await use().move(join(dir, "from"), join(dir, "to", "here"), join(dir, "to"));
      assert.equal(await readFile(join(dir, "to", "here"), "utf8"), "moved");
      const err = await use().move(join(dir, "from"), join(dir, "to", "again"), undefined).then(
        () => assert.fail("move succeeded"),
        (e: NodeJS.ErrnoException) => e,
      );
      assert.equal(err.code, "ENOENT");
      assert.equal(err.path, join(dir, "from"), "the missing source is named");
    });

    it("move into a missing directory fails with ENOENT and leaves the source where it was", async () => {
      const dir = join(root, "move-missing-dir");
      await mkdir(dir);
      await writeFile(join(dir, "from"), "stays");
      const err = await use().move(join(dir, "from"), join(dir, "gone", "here"), join(dir, "gone")).then(
        () => assert.fail("move succeeded"),
        (e: NodeJS.ErrnoException) => e,
      );
      assert.equal(err.code, "ENOENT");
      // node:fs names the source whatever is missing; the native job looked and names the destination.
      assert.equal(err.path, name === "native" ? join(dir, "gone", "here") : join(dir, "from"));
      assert.equal(await readFile(join(dir, "from"), "utf8"), "stays");
    });

    it("syncDirectory syncs a directory and treats a vanished one as synced", async () => {
      await use().syncDirectory(root);
      await use().syncDirectory(join(root, "never-existed"));
    });

    it("makeStandIn makes the stand-in beside the highest missing ancestor, with the levels below it inside", async () => {
      const base = join(root, "stand-in");
      await mkdir(join(base, "repo", "tags"), { recursive: true });
      const wanted = join(base, "repo", "tags", "t", "index", "sha256");
      const { standIn, top } = await use().makeStandIn(wanted, base, ".tmp-00000000000000a1");
      assert.equal(top, join(base, "repo", "tags", "t"));
      assert.equal(standIn, join(base, "repo", "tags", ".t.tmp-00000000000000a1"));
      assert.deepEqual(await readdir(join(standIn, "index")), ["sha256"]);
      assert.deepEqual(await readdir(join(base, "repo", "tags")), [".t.tmp-00000000000000a1"], "nothing but the stand-in");
      // Only the leaf missing: the stand-in is the leaf's, and nothing is made inside it.
      const leaf = await use().makeStandIn(join(base, "repo", "layers"), base, ".tmp-00000000000000a2");
      assert.deepEqual(leaf, { standIn: join(base, "repo", ".layers.tmp-00000000000000a2"), top: join(base, "repo", "layers") });
      assert.deepEqual(await readdir(leaf.standIn), []);
    });

    it("makeStandIn stops at the root: a missing root with its parent is ENOENT", async () => {
      const base = join(root, "stand-in-errors", "root");
      const missingRoot = await use().makeStandIn(join(base, "a", "b"), base, ".tmp-00000000000000b1").catch((e: NodeJS.ErrnoException) => e);
      assert.equal((missingRoot as NodeJS.ErrnoException).code, "ENOENT");
      assert.deepEqual(await readdir(root).then((names) => names.includes("stand-in-errors")), false, "nothing made above the root");
    });
  });
}

describe("durable file operations (native): writeHashed", { skip: nativeFileOps === undefined && process.env.CI !== "true" && "native durable_file addon not built (npm install builds it)" }, () => {
  let root: string;
  const writeHashed = (): NonNullable<DurableFileOps["writeHashed"]> => {
    assert.ok(nativeFileOps?.writeHashed, "the native durable_file addon is not built, or is older than writeHashed");
    return nativeFileOps.writeHashed;
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "berth-write-hashed-"));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("appends each buffer to the file and hashes it into the state, in order, across a resumed state", async () => {
    const parts = [randomBytes(256 * 1024), randomBytes(100_003), randomBytes(1)];
    const all = Buffer.concat(parts);
    const handle = await open(join(root, "data"), "a");
    const hash = createResumableSha256();
    assert.ok(hash, "the sha256_state addon is not built");
    try {
      for (const part of parts.slice(0, 2)) await writeHashed()(handle.fd, part, hash.nativeState);
    } finally {
      await handle.close();
    }
    // The saved state goes on in another hasher and another descriptor, as a resumed upload does.
    const resumed = unmarshalSha256(hash.marshal());
    assert.ok(resumed);
    const again = await open(join(root, "data"), "a");
    try {
      await writeHashed()(again.fd, parts[2]!, resumed.nativeState);
    } finally {
      await again.close();
    }
    assert.deepEqual(await readFile(join(root, "data")), all);
    assert.equal(resumed.length, all.length);
    assert.equal(resumed.hexDigest(), createHash("sha256").update(all).digest("hex"));
  });

  it("leaves the state untouched when the write fails", async () => {
    await writeFile(join(root, "read-only"), "x");
    const handle = await open(join(root, "read-only"), "r");
    const hash = createResumableSha256();
    assert.ok(hash);
    hash.update(Buffer.from("before "));
    try {
      const err = await writeHashed()(handle.fd, Buffer.from("never written"), hash.nativeState).then(
        () => assert.fail("write succeeded"),
        (e: NodeJS.ErrnoException) => e,
      );
      assert.equal(err.code, "EBADF");
      assert.equal(err.syscall, "write");
    } finally {
      await handle.close();
    }
    assert.equal(hash.length, 7);
    assert.equal(hash.hexDigest(), createHash("sha256").update("before ").digest("hex"));
  });

  it("refuses a state of the wrong size, before anything is written", async () => {
    const handle = await open(join(root, "refused"), "a");
    try {
      await assert.rejects(writeHashed()(handle.fd, Buffer.from("x"), Buffer.alloc(16)), TypeError);
    } finally {
      await handle.close();
    }
    assert.equal((await readFile(join(root, "refused"))).length, 0);
  });
});

describe("durable file operations (native): putMakingDirectories", { skip: nativeFileOps === undefined && process.env.CI !== "true" && "native durable_file addon not built (npm install builds it)" }, () => {
  let root: string;
  const put = (): NonNullable<DurableFileOps["putMakingDirectories"]> => {
    assert.ok(nativeFileOps?.putMakingDirectories, "the native durable_file addon is not built, or is older than putMakingDirectories");
    return nativeFileOps.putMakingDirectories;
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "berth-put-making-"));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("makes the missing levels below the root and writes the file, leaving no temporary file", async () => {
    const dir = join(root, "repo", "_uploads", "id");
    await put()(join(dir, ".startedat.tmp"), join(dir, "startedat"), Buffer.from("2026-12-03"), root);
    assert.equal(await readFile(join(dir, "startedat"), "utf8"), "2026-12-03");
    assert.deepEqual(await readdir(dir), ["startedat"]);
    // Into an existing directory it is a plain put.
    await put()(join(dir, ".other.tmp"), join(dir, "other"), Buffer.from("x"), root);
    assert.deepEqual((await readdir(dir)).sort(), ["other", "startedat"]);
  });

  it("never makes the root or anything above it: a missing root is ENOENT and nothing is made", async () => {
    const missingRoot = join(root, "no-root", "root");
    const err = await put()(join(missingRoot, "a", ".x.tmp"), join(missingRoot, "a", "x"), Buffer.from("x"), missingRoot).then(
      () => assert.fail("put succeeded"),
      (e: NodeJS.ErrnoException) => e,
    );
    assert.equal(err.code, "ENOENT");
    assert.equal(err.syscall, "mkdir");
    assert.equal((await readdir(root)).includes("no-root"), false);
  });

  it("a file where a directory belongs is ENOTDIR (the open says so; nothing is made) and nothing is written", async () => {
    await writeFile(join(root, "plain-file"), "not a directory");
    const dir = join(root, "plain-file", "below", "dir");
    const err = await put()(join(dir, ".x.tmp"), join(dir, "x"), Buffer.from("x"), root).then(
      () => assert.fail("put succeeded"),
      (e: NodeJS.ErrnoException) => e,
    );
    assert.equal(err.code, "ENOTDIR");
    assert.equal(err.syscall, "open");
    assert.equal(await readFile(join(root, "plain-file"), "utf8"), "not a directory");
  });
});

describe("durable file operations (native): removeSmallTree", { skip: nativeFileOps === undefined && process.env.CI !== "true" && "native durable_file addon not built (npm install builds it)" }, () => {
  let root: string;
  const remove = (): NonNullable<DurableFileOps["removeSmallTree"]> => {
    assert.ok(nativeFileOps?.removeSmallTree, "the native durable_file addon is not built, or is older than removeTree");
    return nativeFileOps.removeSmallTree;
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "berth-remove-tree-"));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("removes an upload's directory with what it holds, nested directories included, and nothing beside it", async () => {
    const upload = join(root, "_uploads", "id");
    await mkdir(join(upload, "hashstates", "sha256"), { recursive: true });
    await writeFile(join(upload, "data"), randomBytes(1000));
    await writeFile(join(upload, "startedat"), "2026-12-03");
    await writeFile(join(upload, "hashstates", "sha256", "1000"), randomBytes(108));
    await writeFile(join(root, "_uploads", "neighbour"), "stays");
    assert.equal(await remove()(upload), true);
    assert.deepEqual(await readdir(join(root, "_uploads")), ["neighbour"]);
  });

  it("a path that is not there is false, not an error; a file is removed", async () => {
    assert.equal(await remove()(join(root, "never-existed")), false);
    await writeFile(join(root, "single"), "x");
    assert.equal(await remove()(join(root, "single")), true);
    assert.equal((await readdir(root)).includes("single"), false);
  });
});
