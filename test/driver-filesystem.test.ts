import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { PathNotFoundError } from "../src/driver/storage-driver.js";
import { isTemporaryName } from "../src/driver/temporary-names.js";
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

  it("a name longer than the filesystem allows is PathNotFoundError for whatever only looks, and a walk resumes past it", async () => {
    await driver.putContent("/long/b/data", Buffer.from("b"));
    const long = "a".repeat(300);
    for (const path of [`/long/${long}`, `/long/${long}/data`]) {
      await assert.rejects(driver.stat(path), PathNotFoundError);
      await assert.rejects(driver.list(path), PathNotFoundError);
      await assert.rejects(driver.getContent(path), PathNotFoundError);
      await assert.rejects(driver.reader(path, 0), PathNotFoundError);
      await assert.rejects(driver.delete(path), PathNotFoundError);
    }
    const visited: string[] = [];
    await driver.walk("/long", (info) => void visited.push(info.path), { startAfter: `/long/${long}/data` });
    assert.deepEqual(visited, ["/long/b", "/long/b/data"]);
  });

  it("has no redirect URL", async () => {
    assert.equal(await driver.redirectURL("/docker/registry/v2/x", "GET"), undefined);
  });
});

describe("filesystem storage driver under kill -9", () => {
  const loop = fileURLToPath(new URL("../tools/tag-write-loop.js", import.meta.url));
  /** Where the loop writes its tags. */
  const TAGS_PATH = "/docker/registry/v2/repositories/loop/_manifests/tags";

  /** Runs the loop in a child process and SIGKILLs it after `ms` (once it has written something). */
  async function killAfter(root: string, ms: number): Promise<void> {
    const child = spawn(process.execPath, [loop, root], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    await new Promise((resolve) => setTimeout(resolve, ms));
    child.kill("SIGKILL");
    assert.equal(await exited, "SIGKILL", `the write loop died on its own: ${stderr}`);
  }

  it("every tag directory a listing shows holds its current link, whatever moment the writer was killed (new directories, recursive deletes)", { timeout: 120_000 }, async () => {
    await inFreshRoot("berth-fs-kill", async (root, driver) => {
      // Node starts in ~50-100 ms here; kills land from the first writes to a few hundred rounds in.
      for (let kill = 0; kill < 24; kill++) {
        await killAfter(root, 120 + ((kill * 37) % 150));
        const listed = await driver.list(TAGS_PATH).catch(() => []);
        for (const tag of listed) {
          const link = await driver.getContent(`${tag}/current/link`).catch(() => undefined);
          assert.ok(link !== undefined, `kill ${kill + 1}: ${tag} is listed but has no current/link (children: ${(await driver.list(tag).catch(() => [])).join(", ")})`);
        }
      }
      // What the kills cut short is hidden, and removable: nothing hidden is left after a sweep.
      const removed = await driver.removeTemporaries(new Date(Date.now() + 60_000));
      assert.deepEqual(await hiddenEntries(root), [], `after removing ${removed}`);
    });
  });

  it("removeTemporaries removes hidden files and directories last changed before the cutoff, and nothing else", async () => {
    await inFreshRoot("berth-fs-temporaries", async (root, driver) => {
      await driver.putContent("/a/b/link", Buffer.from("kept"));
      const oldFile = join(root, "a/b/.link.tmp-0123456789abcdef");
      const oldDir = join(root, "a/.b.tmp-0123456789abcdee");
      const youngFile = join(root, "a/.c.tmp-0123456789abcded");
      await writeFile(oldFile, "partial");
      await mkdir(join(oldDir, "current"), { recursive: true });
      await writeFile(join(oldDir, "current/link"), "sha256:…");
      await writeFile(youngFile, "being written");
      // utimes sets mtime; ctime cannot be set back, so the cutoff is ahead of now for the old ones.
      const hour = new Date(Date.now() - 3_600_000);
      for (const path of [oldFile, oldDir]) await utimes(path, hour, hour);
      assert.equal(await driver.removeTemporaries(new Date(Date.now() - 60_000)), 0, "ctime is recent: nothing is old enough yet");
      await new Promise((resolve) => setTimeout(resolve, 20));
      const cutoff = new Date();
      // File times come from the kernel's coarse clock, which may lag Date.now() by a tick.
      await new Promise((resolve) => setTimeout(resolve, 50));
      await writeFile(youngFile, "still being written");
      assert.equal(await driver.removeTemporaries(cutoff), 2);
      assert.deepEqual(await hiddenEntries(root), ["a/.c.tmp-0123456789abcded"]);
      assert.equal((await driver.getContent("/a/b/link")).toString(), "kept");
      assert.deepEqual(await driver.list("/a"), ["/a/b"]);
    });
  });

  it("a directory delete leaves nothing listed and nothing hidden behind", async () => {
    await inFreshRoot("berth-fs-delete", async (root, driver) => {
      await driver.putContent("/tags/t/current/link", Buffer.from("x"));
      await driver.putContent("/tags/t/index/sha256/ab/link", Buffer.from("x"));
      await driver.putContent("/tags/u/current/link", Buffer.from("y"));
      await driver.delete("/tags/t");
      assert.deepEqual(await driver.list("/tags"), ["/tags/u"]);
      assert.deepEqual(await readdir(join(root, "tags")), ["u"], "nothing hidden is left by a delete that finished");
      // Not durable (an upload's cleanup): removed in place; a missing one is still PathNotFoundError.
      await driver.putContent("/up/id/startedat", Buffer.from("x"), { durable: false });
      await driver.delete("/up/id", { directory: true, durable: false });
      assert.deepEqual(await readdir(join(root, "up")), []);
      await assert.rejects(driver.delete("/up/id", { directory: true, durable: false }), PathNotFoundError);
      await assert.rejects(driver.delete("/up/id", { directory: true }), PathNotFoundError);
    });
  });
});

/** Runs `test` on a driver over a new root directory, removed afterwards. */
async function inFreshRoot(prefix: string, test: (root: string, driver: FilesystemDriver) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), `${prefix}-`));
  try {
    await test(root, new FilesystemDriver(root));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Hidden temporary entries under `root`, relative paths, sorted (not descending into them). */
async function hiddenEntries(root: string, below = ""): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(join(root, below), { withFileTypes: true })) {
    const path = below === "" ? entry.name : `${below}/${entry.name}`;
    if (isTemporaryName(entry.name)) found.push(path);
    else if (entry.isDirectory()) found.push(...(await hiddenEntries(root, path)));
  }
  return found.sort();
}
