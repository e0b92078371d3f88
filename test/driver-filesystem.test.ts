import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { PathNotFoundError } from "../src/driver/storage-driver.js";
import { runDriverSuite } from "./driver-suite.js";

// Twice: durable writes through the native addon (the default where it is built) and through node:fs.
for (const nativeFileOps of [true, false]) {
  runDriverSuite(
    nativeFileOps ? "filesystem" : "filesystem (node:fs file operations)",
    async () => {
      const root = await mkdtemp(join(tmpdir(), "berth-fs-driver-"));
      return { driver: new FilesystemDriver(root, { nativeFileOps }), cleanup: () => rm(root, { recursive: true, force: true }) };
    },
    { copiesChunks: true, appendLog: true },
  );
}

describe("filesystem storage driver specifics", () => {
  let root: string;
  let driver: FilesystemDriver;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "berth-fs-specific-"));
    driver = new FilesystemDriver(root);
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("lays driver paths out under the root directory like distribution", async () => {
    await driver.putContent("/docker/registry/v2/x", Buffer.from("on disk"));
    assert.equal(await readFile(join(root, "docker/registry/v2/x"), "utf8"), "on disk");
  });

  it("putContent leaves no temporary file behind", async () => {
    await Promise.all(["a", "b", "a", "c"].map((name, i) => driver.putContent(`/clean/${name}`, Buffer.from(`${i}`))));
    assert.deepEqual((await readdir(join(root, "clean"))).sort(), ["a", "b", "c"]);
  });

  it("a failed putContent removes its temporary file", async () => {
    await mkdir(join(root, "failed/target/occupied"), { recursive: true });
    await assert.rejects(driver.putContent("/failed/target", Buffer.from("x")));
    assert.deepEqual(await readdir(join(root, "failed")), ["target"]);
  });

  it("a cancelled writer leaves nothing", async () => {
    const writer = await driver.writer("/cancelled/_uploads/id/data", false);
    await writer.write(Buffer.alloc(3 * 1024 * 1024));
    await writer.cancel();
    assert.deepEqual(await readdir(join(root, "cancelled/_uploads/id")), []);
  });

  it("a writer gathers small chunks instead of writing each one", async () => {
    const writer = await driver.writer("/buffered/data", false);
    await writer.write(Buffer.from("small"));
    assert.equal((await stat(join(root, "buffered/data"))).size, 0);
    await writer.close();
    assert.equal(await readFile(join(root, "buffered/data"), "utf8"), "small");
  });

  it("list hides temporary files and names outside the path alphabet", async () => {
    await mkdir(join(root, "foreign/lost+found"), { recursive: true });
    await writeFile(join(root, "foreign/.data.tmp-0123456789abcdef"), "partial");
    await writeFile(join(root, "foreign/with space"), "x");
    await driver.putContent("/foreign/.hidden", Buffer.from("content"));
    assert.deepEqual(await driver.list("/foreign"), ["/foreign/.hidden"]);
  });

  it("deleting the root empties it but keeps the directory", async () => {
    const own = await mkdtemp(join(tmpdir(), "berth-fs-root-"));
    try {
      const rootDriver = new FilesystemDriver(own);
      await rootDriver.putContent("/a/b", Buffer.from("x"));
      await rootDriver.delete("/");
      assert.deepEqual(await readdir(own), []);
      await assert.rejects(rootDriver.stat("/a"), PathNotFoundError);
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });

  it("a missing root directory is PathNotFoundError", async () => {
    const missing = new FilesystemDriver(join(root, "does-not-exist"));
    await assert.rejects(missing.list("/"), PathNotFoundError);
    await assert.rejects(missing.walk("/", () => undefined), PathNotFoundError);
  });

  it("has no redirect URL", async () => {
    assert.equal(await driver.redirectURL("/docker/registry/v2/x", "GET"), undefined);
  });
});
