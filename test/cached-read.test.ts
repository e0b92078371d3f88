/**
 * Reading a file in place when the kernel's caches hold it (native/cached_read.c), and the
 * filesystem driver's getContent around it: what the kernel has cached is read on the event loop;
 * what it does not (evicted from the page cache) is left to the threadpool, with the same bytes and
 * the same errors either way.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { PathNotFoundError } from "../src/driver/storage-driver.js";
import { readCachedFile } from "../src/native/cached-read.js";
import { requireProgram } from "./support/external-program.js";

/** Drops `path`'s pages from the page cache (synced first: only clean pages are dropped). */
function evict(path: string): void {
  const python = requireProgram("python3");
  assert.ok(python.path, `${python.skip}: it evicts a file from the page cache (posix_fadvise)`);
  const script = "import os,sys\nfd=os.open(sys.argv[1],os.O_RDONLY)\nos.fsync(fd)\nos.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)\nos.close(fd)";
  const run = spawnSync(python.path, ["-c", script, path], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
}

describe("cached read (native)", { skip: readCachedFile === undefined && process.env.CI !== "true" && "native cached_read addon not built (npm install builds it)" }, () => {
  let root: string;
  const read = (path: string, max = 1024 * 1024): Buffer | null | undefined => {
    assert.ok(readCachedFile, "the native cached_read addon must be built (npm install runs node-gyp)");
    return readCachedFile(path, max);
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "berth-cached-read-"));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("reads a file the kernel has cached, whole, on the calling thread", async () => {
    const path = join(root, "link");
    const content = randomBytes(5000);
    await writeFile(path, content);
    const answer = read(path);
    assert.notEqual(answer, undefined, "not read in place: this kernel or filesystem lacks openat2(RESOLVE_CACHED) or preadv2(RWF_NOWAIT), or a seccomp filter refuses openat2");
    assert.deepEqual(answer, content);
    await writeFile(join(root, "empty"), "");
    assert.deepEqual(read(join(root, "empty")), Buffer.alloc(0));
  });

  it("leaves a file larger than the limit to the caller", async () => {
    const path = join(root, "large");
    await writeFile(path, randomBytes(4097));
    assert.equal(read(path, 4096), undefined);
    assert.equal(read(path, 4097)?.length, 4097);
  });

  it("answers null for what is not a regular file, without waiting on a FIFO", async () => {
    await mkdir(join(root, "dir"));
    assert.equal(read(join(root, "dir")), null);
    const fifo = join(root, "fifo");
    const made = spawnSync("mkfifo", [fifo]);
    assert.equal(made.status, 0, String(made.stderr));
    assert.equal(read(fifo), null);
  });

  it("throws a missing file's ENOENT as node:fs does", () => {
    const path = join(root, "missing");
    // A lookup that failed once leaves the name's absence in the dentry cache.
    assert.throws(() => readFileSync(path), { code: "ENOENT" });
    assert.throws(() => read(path), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, "ENOENT");
      assert.equal(err.errno, -2);
      assert.equal(err.syscall, "open");
      assert.equal(err.path, path);
      return true;
    });
  });

  it("leaves a file that is not in the page cache to the caller, and the driver reads it through the threadpool", async () => {
    const driver = new FilesystemDriver(root);
    const content = randomBytes(3000);
    await driver.putContent("/evicted/link", content);
    const path = join(root, "evicted", "link");
    // Dropping is advice: a page another CPU still holds on its LRU list is dropped on a later try.
    let answer: Buffer | null | undefined = content;
    for (let attempt = 0; attempt < 5 && answer !== undefined; attempt++) {
      evict(path);
      answer = read(path);
    }
    assert.equal(answer, undefined, "the evicted file was read in place");
    evict(path);
    assert.deepEqual(await driver.getContent("/evicted/link"), content);
  });
});

describe("filesystem driver getContent around cached reads", () => {
  let root: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "berth-cached-content-"));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  for (const nativeFileOps of [true, false]) {
    const name = nativeFileOps ? "native" : "node:fs";

    it(`${name}: content above the in-place limit is read whole`, async () => {
      const driver = new FilesystemDriver(root, { nativeFileOps });
      const content = randomBytes(1024 * 1024 + 1);
      await driver.putContent(`/${name}/large`, content);
      assert.deepEqual(await driver.getContent(`/${name}/large`), content);
    });

    it(`${name}: a directory is no content (PathNotFoundError), a missing file neither`, async () => {
      const driver = new FilesystemDriver(root, { nativeFileOps });
      await mkdir(join(root, name, "dir"), { recursive: true });
      // (node:fs's open of a FIFO waits for a writer: only the native read is given one, below.)
      const paths = [`/${name}/dir`, `/${name}/missing`, `/${name}/dir/missing`];
      if (nativeFileOps && readCachedFile) {
        const made = spawnSync("mkfifo", [join(root, name, "fifo")]);
        assert.equal(made.status, 0, String(made.stderr));
        paths.push(`/${name}/fifo`);
      }
      for (const path of paths) {
        await assert.rejects(driver.getContent(path), PathNotFoundError, path);
      }
    });
  }
});
