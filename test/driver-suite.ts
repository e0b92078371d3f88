import assert from "node:assert/strict";
import { createHash, randomBytes, randomInt, type Hash } from "node:crypto";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import {
  InvalidPathError,
  compareWalkOrder,
  PathNotFoundError,
  isPathNotFound,
  type FileInfo,
  type StorageDriver,
} from "../src/driver/storage-driver.js";

/**
 * The behaviour every StorageDriver must share, modelled on distribution's
 * registry/storage/driver/testsuites. Each test works in its own top-level directory and removes
 * it; the suite fails at teardown if any of its files are left behind.
 */

const MiB = 1024 * 1024;

export interface DriverFixture {
  driver: StorageDriver;
  cleanup: () => Promise<void>;
}

export interface DriverSuiteOptions {
  /** Test title → reason, for behaviour a driver cannot offer. */
  skip?: Record<string, string>;
  /** Whether the driver's writers copy each chunk before write() returns (FileWriter.copiesChunks). */
  copiesChunks?: boolean;
  /** The driver offers `appendLog` (object stores do not); its tests then run and it must be there. */
  appendLog?: boolean;
}

type TestBody = (driver: StorageDriver, dir: string) => Promise<void>;

export function runDriverSuite(
  name: string,
  makeDriver: () => Promise<DriverFixture>,
  options: DriverSuiteOptions = {},
): void {
  describe(`${name} storage driver`, () => {
    const suiteId = `berth-suite-${randomBytes(4).toString("hex")}`;
    let fixture: DriverFixture | undefined;

    before(async () => {
      fixture = await makeDriver();
    });

    after(async () => {
      if (fixture === undefined) return;
      try {
        assert.deepEqual(await suiteLeftovers(fixture.driver, suiteId), [], "files left behind by the suite");
      } finally {
        await fixture.cleanup();
      }
    });

    const test = (title: string, body: TestBody): void => {
      it(title, { skip: options.skip?.[title] }, async () => {
        assert.ok(fixture, "driver fixture was not created");
        const { driver } = fixture;
        const dir = `/${suiteId}-${slug(title)}`;
        try {
          await body(driver, dir);
        } finally {
          await driver.delete(dir).catch(() => undefined);
        }
      });
    };

    describe("putContent and getContent", () => defineContentTests(test));
    describe("path validation", () => definePathTests(test));
    describe("stat and list", () => defineStatAndListTests(test));
    describe("move and delete", () => defineMoveAndDeleteTests(test));
    describe("reader", () => defineReaderTests(test));
    describe("writer", () => defineWriterTests(test, options.copiesChunks ?? false));
    describe("walk", () => defineWalkTests(test));
    if (options.appendLog) describe("appendLog", () => defineAppendLogTests(test));
  });
}

type Define = (title: string, body: TestBody) => void;

function defineContentTests(test: Define): void {
  test("putContent then getContent round trips", async (driver, dir) => {
    const content = randomBytes(4096);
    await driver.putContent(`${dir}/file`, content);
    assert.deepEqual(await driver.getContent(`${dir}/file`), content);
  });

  test("putContent without durability still round trips and replaces atomically", async (driver, dir) => {
    await driver.putContent(`${dir}/file`, text("first"), { durable: false });
    await driver.putContent(`${dir}/file`, text("second"), { durable: false });
    assert.equal((await driver.getContent(`${dir}/file`)).toString(), "second");
  });

  test("putContent overwrites existing content", async (driver, dir) => {
    await driver.putContent(`${dir}/file`, text("a much longer first version"));
    await driver.putContent(`${dir}/file`, text("second"));
    assert.equal((await driver.getContent(`${dir}/file`)).toString(), "second");
    assert.equal((await driver.stat(`${dir}/file`)).size, 6);
  });

  test("putContent stores empty content", async (driver, dir) => {
    await driver.putContent(`${dir}/empty`, new Uint8Array(0));
    assert.equal((await driver.getContent(`${dir}/empty`)).length, 0);
    assert.equal((await driver.stat(`${dir}/empty`)).size, 0);
    assert.equal((await readAll(await driver.reader(`${dir}/empty`))).length, 0);
  });

  test("putContent creates parent directories", async (driver, dir) => {
    await driver.putContent(`${dir}/a/b/c/d/e/file`, text("deep"));
    assert.equal((await driver.getContent(`${dir}/a/b/c/d/e/file`)).toString(), "deep");
    assert.equal((await driver.stat(`${dir}/a/b/c`)).isDir, true);
  });

  test("stored and returned buffers are not shared with the caller", async (driver, dir) => {
    const content = text("original");
    await driver.putContent(`${dir}/file`, content);
    content.fill(0);
    const first = await driver.getContent(`${dir}/file`);
    first.fill(0);
    assert.equal((await driver.getContent(`${dir}/file`)).toString(), "original");
  });

  test("concurrent putContent on different paths", async (driver, dir) => {
    const contents = Array.from({ length: 64 }, (_, i) => randomBytes(1024 + i * 97));
    await Promise.all(contents.map((content, i) => driver.putContent(`${dir}/${i % 4}/file-${i}`, content)));
    const read = await Promise.all(contents.map((_, i) => driver.getContent(`${dir}/${i % 4}/file-${i}`)));
    read.forEach((content, i) => assert.deepEqual(content, contents[i]));
  });

  test("concurrent putContent on one path never exposes a mix", async (driver, dir) => {
    const path = `${dir}/contended`;
    const version = (n: number): Buffer => Buffer.alloc(256 * 1024, n);
    await driver.putContent(path, version(0));
    const puts = Array.from({ length: 16 }, (_, i) => driver.putContent(path, version(i + 1)));
    const gets = Array.from({ length: 16 }, () => driver.getContent(path));
    await Promise.all(puts);
    for (const content of [...(await Promise.all(gets)), await driver.getContent(path)]) {
      assertWholeVersion(content, 256 * 1024);
    }
  });

  test("names made of every allowed character class", async (driver, dir) => {
    const names = ["a:b", "a-b_c.d", "sha256:0123abcdef", "...", "a..b", ".hidden", "UPPER", "0"];
    await Promise.all(names.map((name) => driver.putContent(`${dir}/${name}`, text(name))));
    for (const name of names) {
      assert.equal((await driver.getContent(`${dir}/${name}`)).toString(), name);
    }
    assert.deepEqual((await driver.list(dir)).sort(), names.map((name) => `${dir}/${name}`).sort());
  });
}

function definePathTests(test: Define): void {
  test("a missing path is PathNotFoundError for every method", async (driver, dir) => {
    await driver.putContent(`${dir}/present/file`, text("x"));
    for (const missing of [`${dir}/absent`, `${dir}/present/absent`, `${dir}/absent/deeper/still`]) {
      await assertAllMethodsNotFound(driver, missing, `${dir}/dest`);
    }
    await assert.rejects(driver.stat(`${dir}/dest`), PathNotFoundError);
  });

  test("a path below a file is PathNotFoundError", async (driver, dir) => {
    await driver.putContent(`${dir}/file`, text("x"));
    await assertAllMethodsNotFound(driver, `${dir}/file/child`, `${dir}/dest`);
  });

  test("getContent and reader of a directory are PathNotFoundError", async (driver, dir) => {
    await driver.putContent(`${dir}/sub/file`, text("x"));
    await assert.rejects(driver.getContent(`${dir}/sub`), PathNotFoundError);
    await assert.rejects(driver.reader(`${dir}/sub`), PathNotFoundError);
  });

  test("invalid paths are rejected before touching storage", async (driver, dir) => {
    const source = `${dir}/source`;
    await driver.putContent(source, text("source"));
    for (const path of invalidPaths(dir)) {
      for (const [method, call] of methodCalls(driver, path, source)) {
        await assert.rejects(call(), InvalidPathError, `${method}(${JSON.stringify(path)})`);
      }
    }
    assert.deepEqual(await walkPaths(driver, dir), [source]);
    assert.equal((await driver.getContent(source)).toString(), "source");
  });

  test("non-ASCII names are rejected", async (driver, dir) => {
    for (const name of ["é", "日本", "emoji😀", "ﬁ"]) {
      await assert.rejects(driver.putContent(`${dir}/${name}`, text("x")), InvalidPathError);
    }
    await assert.rejects(driver.stat(dir), PathNotFoundError);
  });
}

function defineStatAndListTests(test: Define): void {
  test("stat of a file", async (driver, dir) => {
    const before = Date.now();
    await driver.putContent(`${dir}/file`, randomBytes(1234));
    const info = await driver.stat(`${dir}/file`);
    assert.equal(info.path, `${dir}/file`);
    assert.equal(info.size, 1234);
    assert.equal(info.isDir, false);
    assert.ok(info.modTime instanceof Date);
    // Filesystems may round modification times down, to the second at worst.
    assert.ok(info.modTime.getTime() >= before - 2000 && info.modTime.getTime() <= Date.now() + 2000);
  });

  test("stat with fileOnly: a file as without it; a directory is absent or a directory, never a file", async (driver, dir) => {
    await driver.putContent(`${dir}/sub/file`, randomBytes(321));
    const file = await driver.stat(`${dir}/sub/file`, { fileOnly: true });
    assert.deepEqual([file.size, file.isDir], [321, false]);
    try {
      assert.equal((await driver.stat(`${dir}/sub`, { fileOnly: true })).isDir, true);
    } catch (err) {
      assert.ok(err instanceof PathNotFoundError, String(err));
    }
    await assert.rejects(driver.stat(`${dir}/absent`, { fileOnly: true }), PathNotFoundError);
  });

  test("stat of a directory", async (driver, dir) => {
    await driver.putContent(`${dir}/sub/file`, randomBytes(100));
    for (const path of [dir, `${dir}/sub`]) {
      const info = await driver.stat(path);
      assert.equal(info.path, path);
      assert.equal(info.isDir, true);
      assert.equal(info.size, 0);
    }
  });

  test("list of the root includes top-level directories", async (driver, dir) => {
    await driver.putContent(`${dir}/file`, text("x"));
    assert.ok((await driver.list("/")).includes(dir));
    assert.equal((await driver.stat("/")).isDir, true);
  });

  test("list returns direct children as absolute paths", async (driver, dir) => {
    await putAll(driver, dir, ["a", "b", "sub/c", "sub/deeper/d"]);
    assert.deepEqual((await driver.list(dir)).sort(), [`${dir}/a`, `${dir}/b`, `${dir}/sub`]);
    assert.deepEqual((await driver.list(`${dir}/sub`)).sort(), [`${dir}/sub/c`, `${dir}/sub/deeper`]);
    assert.deepEqual(await driver.list(`${dir}/sub/deeper`), [`${dir}/sub/deeper/d`]);
  });

  test("list keeps names that share a prefix apart", async (driver, dir) => {
    await putAll(driver, dir, ["blob", "blobs/x", "blob2"]);
    assert.deepEqual(await driver.list(`${dir}/blobs`), [`${dir}/blobs/x`]);
    assert.deepEqual((await driver.list(dir)).sort(), [`${dir}/blob`, `${dir}/blob2`, `${dir}/blobs`]);
  });

  test("list of a missing directory or of a file is PathNotFoundError", async (driver, dir) => {
    await assert.rejects(driver.list(dir), PathNotFoundError);
    await driver.putContent(`${dir}/file`, text("x"));
    await assert.rejects(driver.list(`${dir}/file`), PathNotFoundError);
    await assert.rejects(driver.list(`${dir}/nothing`), PathNotFoundError);
  });
}

function defineMoveAndDeleteTests(test: Define): void {
  test("move renames a file", async (driver, dir) => {
    const content = randomBytes(5000);
    await driver.putContent(`${dir}/source`, content);
    await driver.move(`${dir}/source`, `${dir}/dest`);
    assert.deepEqual(await driver.getContent(`${dir}/dest`), content);
    await assert.rejects(driver.stat(`${dir}/source`), PathNotFoundError);
  });

  test("move replaces an existing destination", async (driver, dir) => {
    await driver.putContent(`${dir}/source`, text("new"));
    await driver.putContent(`${dir}/dest`, text("old and longer"));
    await driver.move(`${dir}/source`, `${dir}/dest`);
    assert.equal((await driver.getContent(`${dir}/dest`)).toString(), "new");
    await assert.rejects(driver.getContent(`${dir}/source`), PathNotFoundError);
  });

  test("move creates the destination's directories", async (driver, dir) => {
    await driver.putContent(`${dir}/uploads/id/data`, text("blob"));
    await driver.move(`${dir}/uploads/id/data`, `${dir}/blobs/sha256/ab/abcd/data`);
    assert.equal((await driver.getContent(`${dir}/blobs/sha256/ab/abcd/data`)).toString(), "blob");
    await assert.rejects(driver.getContent(`${dir}/uploads/id/data`), PathNotFoundError);
  });

  test("move of a missing source is PathNotFoundError and keeps the destination", async (driver, dir) => {
    await driver.putContent(`${dir}/dest`, text("kept"));
    await assert.rejects(driver.move(`${dir}/absent`, `${dir}/dest`), PathNotFoundError);
    await assert.rejects(driver.move(`${dir}/absent`, `${dir}/dest`, { size: 4 }), PathNotFoundError, "with the size given too");
    assert.equal((await driver.getContent(`${dir}/dest`)).toString(), "kept");
  });

  test("move with the source's size given moves it whole", async (driver, dir) => {
    const content = randomBytes(7000);
    await driver.putContent(`${dir}/uploads/id/data`, content);
    await driver.move(`${dir}/uploads/id/data`, `${dir}/blobs/data`, { size: content.length });
    assert.deepEqual(await driver.getContent(`${dir}/blobs/data`), content);
    await assert.rejects(driver.stat(`${dir}/uploads/id/data`), PathNotFoundError);
  });

  test("delete of a directory said to be one removes its tree and keeps name-sharing siblings", async (driver, dir) => {
    await putAll(driver, dir, ["up/id/startedat", "up/id/hashstates/sha256/0", "up/id2/startedat", "up/id-b"]);
    await driver.delete(`${dir}/up/id`, { directory: true });
    await assert.rejects(driver.stat(`${dir}/up/id`), PathNotFoundError);
    assert.deepEqual((await driver.list(`${dir}/up`)).sort(), [`${dir}/up/id-b`, `${dir}/up/id2`]);
    await assert.rejects(driver.delete(`${dir}/up/id`, { directory: true }), PathNotFoundError, "nothing left: not found");
  });

  test("delete removes a file and keeps its siblings", async (driver, dir) => {
    await putAll(driver, dir, ["a", "b"]);
    await driver.delete(`${dir}/a`);
    await assert.rejects(driver.stat(`${dir}/a`), PathNotFoundError);
    assert.deepEqual(await driver.list(dir), [`${dir}/b`]);
  });

  test("delete removes a directory tree", async (driver, dir) => {
    await putAll(driver, dir, ["tree/a", "tree/sub/b", "tree/sub/deeper/c", "other"]);
    await driver.delete(`${dir}/tree`);
    for (const path of ["tree", "tree/a", "tree/sub", "tree/sub/deeper/c"]) {
      await assert.rejects(driver.stat(`${dir}/${path}`), PathNotFoundError);
    }
    assert.deepEqual(await driver.list(dir), [`${dir}/other`]);
  });

  test("delete only removes the named path, not names sharing its prefix", async (driver, dir) => {
    await putAll(driver, dir, ["blob", "blobs/x", "blob2"]);
    await driver.delete(`${dir}/blob`);
    assert.deepEqual(await walkPaths(driver, dir), [`${dir}/blob2`, `${dir}/blobs`, `${dir}/blobs/x`]);
  });

  test("delete of a missing path is PathNotFoundError", async (driver, dir) => {
    await assert.rejects(driver.delete(`${dir}/absent`), PathNotFoundError);
    await driver.putContent(`${dir}/file`, text("x"));
    await driver.delete(`${dir}/file`);
    await assert.rejects(driver.delete(`${dir}/file`), PathNotFoundError);
  });
}

function defineReaderTests(test: Define): void {
  test("reader from offsets", async (driver, dir) => {
    const content = randomBytes(3 * MiB + 123);
    await driver.putContent(`${dir}/file`, content);
    const size = content.length;
    for (const offset of [0, 1, MiB - 1, MiB, size >> 1, size - 1, size, size + 1, size * 2]) {
      const read = await readAll(await driver.reader(`${dir}/file`, offset));
      assert.ok(read.equals(content.subarray(offset)), `offset ${offset}`);
    }
  });

  test("reader with an end", async (driver, dir) => {
    const content = randomBytes(2 * MiB + 77);
    await driver.putContent(`${dir}/file`, content);
    const size = content.length;
    const ranges: Array<[number, number]> = [
      [0, 10],
      [0, size],
      [5, 5],
      [10, 5],
      [size - 10, size + 100],
      [MiB - 3, 2 * MiB + 3],
      [size + 5, size + 10],
    ];
    for (const [offset, end] of ranges) {
      const read = await readAll(await driver.reader(`${dir}/file`, offset, end));
      assert.ok(read.equals(content.subarray(offset, Math.max(offset, end))), `range [${offset}, ${end})`);
    }
  });

  test("reader rejects a negative offset", async (driver, dir) => {
    await driver.putContent(`${dir}/file`, text("content"));
    await assert.rejects(driver.reader(`${dir}/file`, -1));
  });

  test("reader can be abandoned early", async (driver, dir) => {
    await driver.putContent(`${dir}/file`, randomBytes(4 * MiB));
    const stream = await driver.reader(`${dir}/file`);
    for await (const chunk of stream) {
      assert.ok(Buffer.isBuffer(chunk) && chunk.length > 0);
      break;
    }
    assert.ok(stream.destroyed);
    await driver.delete(`${dir}/file`);
    await assert.rejects(driver.stat(`${dir}/file`), PathNotFoundError);
  });
}

function defineWriterTests(test: Define, copiesChunks: boolean): void {
  test("writer writes a new file and commit makes it visible", async (driver, dir) => {
    const writer = await driver.writer(`${dir}/file`, false);
    assert.equal(writer.size, 0);
    await writer.write(text("hello "));
    await writer.write(text("world"));
    assert.equal(writer.size, 11);
    await writer.commit();
    assert.equal((await driver.getContent(`${dir}/file`)).toString(), "hello world");
    assert.equal((await driver.stat(`${dir}/file`)).size, 11);
  });

  test("commit({ durableName: false }) then move: the bytes are readable at the destination", async (driver, dir) => {
    const writer = await driver.writer(`${dir}/_uploads/id/data`, false);
    await writer.write(text("moved next"));
    await writer.commit({ durableName: false });
    assert.equal((await driver.getContent(`${dir}/_uploads/id/data`)).toString(), "moved next");
    await driver.move(`${dir}/_uploads/id/data`, `${dir}/blobs/data`);
    assert.equal((await driver.getContent(`${dir}/blobs/data`)).toString(), "moved next");
    await assert.rejects(driver.getContent(`${dir}/_uploads/id/data`), PathNotFoundError);
  });

  test("writer creates parent directories", async (driver, dir) => {
    const writer = await driver.writer(`${dir}/_uploads/id/data`, false);
    await writer.write(text("data"));
    await writer.commit();
    assert.equal((await driver.getContent(`${dir}/_uploads/id/data`)).toString(), "data");
  });

  test("writer appends across close and reopen", async (driver, dir) => {
    const path = `${dir}/upload`;
    const parts = [randomBytes(1000), randomBytes(MiB + 5), randomBytes(17)];
    let expectedSize = 0;
    for (const [i, part] of parts.entries()) {
      const writer = await driver.writer(path, i > 0);
      assert.equal(writer.size, expectedSize, `session ${i} starts where the last ended`);
      await writer.write(part);
      expectedSize += part.length;
      assert.equal(writer.size, expectedSize);
      await (i === parts.length - 1 ? writer.commit() : writer.close());
    }
    assert.deepEqual(await driver.getContent(path), Buffer.concat(parts));
  });

  test("writer with append on a missing path starts empty", async (driver, dir) => {
    const writer = await driver.writer(`${dir}/fresh`, true);
    assert.equal(writer.size, 0);
    await writer.write(text("first"));
    await writer.commit();
    assert.equal((await driver.getContent(`${dir}/fresh`)).toString(), "first");
  });

  test("writer with whileExists: PathNotFoundError naming the file when it is absent, and nothing written", async (driver, dir) => {
    await assert.rejects(
      driver.writer(`${dir}/upload/data`, true, { whileExists: `${dir}/upload/startedat` }),
      (err: unknown) => isPathNotFound(err) && err.path === `${dir}/upload/startedat`,
    );
    await assert.rejects(driver.stat(`${dir}/upload/data`), isPathNotFound);
    // A directory of that name is not the file.
    await driver.putContent(`${dir}/upload/startedat/inner`, text("x"));
    await assert.rejects(driver.writer(`${dir}/upload/data`, true, { whileExists: `${dir}/upload/startedat` }), isPathNotFound);
  });

  test("writer with whileExists appends across sessions while the file exists", async (driver, dir) => {
    await driver.putContent(`${dir}/upload/startedat`, text("2026-12-03T00:00:00Z"));
    const options = { whileExists: `${dir}/upload/startedat` };
    const parts = [randomBytes(1000), randomBytes(MiB + 5), randomBytes(17)];
    let expected = 0;
    for (const [i, part] of parts.entries()) {
      const writer = await driver.writer(`${dir}/upload/data`, true, options);
      assert.equal(writer.size, expected, `session ${i} starts where the last ended`);
      await writer.write(part);
      expected += part.length;
      await (i === parts.length - 1 ? writer.commit() : writer.close());
    }
    assert.deepEqual(await driver.getContent(`${dir}/upload/data`), Buffer.concat(parts));
  });

  test("writer without append discards previous content", async (driver, dir) => {
    await driver.putContent(`${dir}/committed`, text("old committed content"));
    const overwrite = await driver.writer(`${dir}/committed`, false);
    assert.equal(overwrite.size, 0);
    await overwrite.write(text("new"));
    await overwrite.commit();
    assert.equal((await driver.getContent(`${dir}/committed`)).toString(), "new");

    const first = await driver.writer(`${dir}/resumable`, false);
    await first.write(text("abandoned session"));
    await first.close();
    const restart = await driver.writer(`${dir}/resumable`, false);
    assert.equal(restart.size, 0);
    await restart.write(text("restarted"));
    await restart.commit();
    assert.equal((await driver.getContent(`${dir}/resumable`)).toString(), "restarted");
  });

  test("writer accepts Uint8Array views and empty chunks", async (driver, dir) => {
    const backing = new Uint8Array(256).map((_, i) => i);
    const writer = await driver.writer(`${dir}/file`, false);
    await writer.write(backing.subarray(10, 20));
    await writer.write(new Uint8Array(0));
    await writer.write(backing.subarray(200, 201));
    assert.equal(writer.size, 11);
    await writer.commit();
    assert.deepEqual([...(await driver.getContent(`${dir}/file`))], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 200]);
  });

  // An upload frees each body chunk after write() only when the writer says it copied it: a writer
  // that keeps chunks by reference must not claim to.
  test("writers declare whether they copy chunks", async (driver, dir) => {
    const writer = await driver.writer(`${dir}/file`, false);
    assert.equal(writer.copiesChunks ?? false, copiesChunks);
    await writer.cancel();
  });

  if (copiesChunks) {
    test("a writer that copies chunks keeps its bytes when the caller reuses the memory", async (driver, dir) => {
      const writer = await driver.writer(`${dir}/file`, false);
      // Sizes that end mid-buffer, fill one exactly and span several, all through one scratch buffer.
      const sizes = [100 * 1024, 412 * 1024, 256 * 1024, 3 * MiB + 7, 1];
      const scratch = Buffer.alloc(Math.max(...sizes));
      const expected: Buffer[] = [];
      const writes: Promise<void>[] = [];
      for (const [i, size] of sizes.entries()) {
        scratch.fill(i + 1, 0, size);
        expected.push(Buffer.from(scratch.subarray(0, size)));
        writes.push(writer.write(scratch.subarray(0, size)));
        scratch.fill(0xee);
      }
      await Promise.all(writes);
      await writer.commit();
      assert.ok((await driver.getContent(`${dir}/file`)).equals(Buffer.concat(expected)));
    });
  }

  test("writes that are not awaited keep their order", async (driver, dir) => {
    // Runs of over a thousand tiny chunks between large ones, as a chatty client would send.
    const chunks = Array.from({ length: 3000 }, (_, i) => randomBytes(i % 1500 === 1499 ? MiB + i : randomInt(1, 400)));
    const writer = await driver.writer(`${dir}/file`, false);
    await Promise.all(chunks.map((chunk) => writer.write(chunk)));
    await writer.commit();
    assert.ok((await driver.getContent(`${dir}/file`)).equals(Buffer.concat(chunks)));
  });

  test("cancel discards everything, including earlier sessions", async (driver, dir) => {
    const first = await driver.writer(`${dir}/upload`, false);
    await first.write(randomBytes(2048));
    await first.close();
    const second = await driver.writer(`${dir}/upload`, true);
    await second.write(randomBytes(2048));
    await second.cancel();
    await assert.rejects(driver.stat(`${dir}/upload`), PathNotFoundError);

    const fresh = await driver.writer(`${dir}/fresh`, false);
    await fresh.write(randomBytes(3 * MiB));
    await fresh.cancel();
    await assert.rejects(driver.stat(`${dir}/fresh`), PathNotFoundError);
  });

  test("writes after close, commit or cancel reject", async (driver, dir) => {
    for (const end of ["close", "commit", "cancel"] as const) {
      const writer = await driver.writer(`${dir}/${end}`, false);
      await writer.write(text("x"));
      await writer[end]();
      await assert.rejects(writer.write(text("y")), Error, `write after ${end}`);
      assert.equal(writer.size, 1);
    }
    assert.equal((await driver.getContent(`${dir}/commit`)).toString(), "x");
  });

  test("repeated close, commit and cancel are harmless", async (driver, dir) => {
    const committed = await driver.writer(`${dir}/committed`, false);
    await committed.write(text("kept"));
    await committed.commit();
    await committed.commit();
    await committed.close();
    assert.equal((await driver.getContent(`${dir}/committed`)).toString(), "kept");

    const closed = await driver.writer(`${dir}/closed`, false);
    await closed.write(text("resumable"));
    await closed.close();
    await closed.close();
    const resumed = await driver.writer(`${dir}/closed`, true);
    assert.equal(resumed.size, 9);
    await resumed.close();

    const cancelled = await driver.writer(`${dir}/cancelled`, false);
    await cancelled.write(text("gone"));
    await cancelled.cancel();
    await cancelled.cancel();
    await cancelled.close();
    await assert.rejects(driver.stat(`${dir}/cancelled`), PathNotFoundError);
  });

  test("large content streamed in random-size chunks", async (driver, dir) => {
    const path = `${dir}/large`;
    const total = 40 * MiB;
    const range = { start: 17 * MiB + 12_345, end: 20 * MiB + 17, hash: createHash("sha256") };
    const whole = createHash("sha256");
    let writer = await driver.writer(path, false);
    let reopened = false;
    while (writer.size < total) {
      const chunk = randomBytes(Math.min(randomChunkSize(), total - writer.size));
      whole.update(chunk);
      hashOverlap(range, chunk, writer.size);
      await writer.write(chunk);
      if (!reopened && writer.size >= total / 2) {
        const size = writer.size;
        await writer.close();
        writer = await driver.writer(path, true);
        assert.equal(writer.size, size);
        reopened = true;
      }
    }
    await writer.commit();
    assert.equal((await driver.stat(path)).size, total);
    assert.equal(await sha256(await driver.reader(path)), whole.digest("hex"));
    assert.equal(await sha256(await driver.reader(path, range.start, range.end)), range.hash.digest("hex"));
  });
}

function defineWalkTests(test: Define): void {
  const tree = ["c", "a/z", "a/b/c", "a.txt", "b/y", "Z/q"];

  test("walk visits depth-first in lexical order", async (driver, dir) => {
    await putAll(driver, dir, tree);
    const visited: FileInfo[] = [];
    await driver.walk(dir, async (info) => {
      visited.push(info);
    });
    const expected = ["Z", "Z/q", "a", "a/b", "a/b/c", "a/z", "a.txt", "b", "b/y", "c"];
    assert.deepEqual(visited.map((info) => info.path), expected.map((path) => `${dir}/${path}`));
    for (const info of visited) {
      const isDir = !tree.includes(info.path.slice(dir.length + 1));
      assert.equal(info.isDir, isDir, info.path);
      assert.equal(info.size, isDir ? 0 : info.path.slice(dir.length + 1).length, info.path);
    }
  });

  test("walk skip does not descend into a directory", async (driver, dir) => {
    await putAll(driver, dir, tree);
    const visited = await walkPaths(driver, dir, (info) => (info.path === `${dir}/a` ? "skip" : undefined));
    const expected = ["Z", "Z/q", "a", "a.txt", "b", "b/y", "c"];
    assert.deepEqual(visited, expected.map((path) => `${dir}/${path}`));
  });

  test("walk of a subdirectory excludes the directory itself", async (driver, dir) => {
    await putAll(driver, dir, tree);
    assert.deepEqual(await walkPaths(driver, `${dir}/a`), [`${dir}/a/b`, `${dir}/a/b/c`, `${dir}/a/z`]);
  });

  test("walk with startAfter visits only what follows that path and what is under it", async (driver, dir) => {
    await putAll(driver, dir, tree);
    const order = ["Z", "Z/q", "a", "a/b", "a/b/c", "a/z", "a.txt", "b", "b/y", "c"];
    // Every visited path, and paths that do not exist (between others, before all, after all).
    for (const start of [...order, "A", "a/a", "a/b/d", "a-", "a.s", "a0", "b/z/z", "zz"]) {
      const expected = order.filter((path) => compareWalkOrder(path, start) > 0 && !path.startsWith(`${start}/`));
      assert.deepEqual(await walkPaths(driver, dir, undefined, `${dir}/${start}`), expected.map((path) => `${dir}/${path}`), `after ${start}`);
    }
    const skipped = await walkPaths(driver, dir, (info) => (info.path === `${dir}/b` ? "skip" : undefined), `${dir}/a/b`);
    assert.deepEqual(skipped, ["a/z", "a.txt", "b", "c"].map((path) => `${dir}/${path}`));
  });

  test("walk stops where the visitor answers stop", async (driver, dir) => {
    await putAll(driver, dir, tree);
    const stopAt = (path: string) => (info: FileInfo) => (info.path === `${dir}/${path}` ? "stop" : undefined);
    assert.deepEqual(await walkPaths(driver, dir, stopAt("a/b")), ["Z", "Z/q", "a", "a/b"].map((path) => `${dir}/${path}`));
    assert.deepEqual(await walkPaths(driver, dir, stopAt("a.txt"), `${dir}/a/b`), ["a/z", "a.txt"].map((path) => `${dir}/${path}`));
    assert.deepEqual(await walkPaths(driver, dir, stopAt("b/y"), `${dir}/a`), ["a.txt", "b", "b/y"].map((path) => `${dir}/${path}`));
  });

  test("walk with startAfter outside the walked path is InvalidPathError", async (driver, dir) => {
    await putAll(driver, dir, tree);
    for (const start of [dir, `${dir}-x/a`, "/elsewhere", `${dir}/a/../b`, "relative"]) {
      await assert.rejects(driver.walk(dir, () => undefined, { startAfter: start }), InvalidPathError, start);
    }
  });

  test("walk with startAfter of a missing path is PathNotFoundError", async (driver, dir) => {
    await assert.rejects(driver.walk(`${dir}/absent`, () => undefined, { startAfter: `${dir}/absent/a` }), PathNotFoundError);
  });

  test("walk of a missing path is PathNotFoundError", async (driver, dir) => {
    await assert.rejects(driver.walk(`${dir}/absent`, () => undefined), PathNotFoundError);
  });
}

async function assertAllMethodsNotFound(driver: StorageDriver, missing: string, dest: string): Promise<void> {
  const calls: Array<[string, () => Promise<unknown>]> = [
    ["getContent", () => driver.getContent(missing)],
    ["reader", () => driver.reader(missing)],
    ["stat", () => driver.stat(missing)],
    ["list", () => driver.list(missing)],
    ["move", () => driver.move(missing, dest)],
    ["delete", () => driver.delete(missing)],
    ["walk", () => driver.walk(missing, () => undefined)],
  ];
  for (const [method, call] of calls) {
    await assert.rejects(call(), PathNotFoundError, `${method}(${missing})`);
  }
}

function invalidPaths(dir: string): string[] {
  return [
    "",
    "relative",
    `${dir.slice(1)}/file`,
    `${dir}/`,
    `${dir}//file`,
    `${dir}/./file`,
    `${dir}/sub/../file`,
    `${dir}/..`,
    `${dir}/a b`,
    `${dir}/a\\b`,
    `${dir}/a?b`,
    `${dir}/a%2Fb`,
    `${dir}/a\u0000b`,
    `${dir}/a\nb`,
    `${dir}/é`,
  ];
}

function methodCalls(driver: StorageDriver, path: string, valid: string): Array<[string, () => Promise<unknown>]> {
  return [
    ["getContent", () => driver.getContent(path)],
    ["putContent", () => driver.putContent(path, text("x"))],
    ["reader", () => driver.reader(path)],
    ["writer(append)", () => driver.writer(path, true)],
    ["writer", () => driver.writer(path, false)],
    ["stat", () => driver.stat(path)],
    ["list", () => driver.list(path)],
    ["move from", () => driver.move(path, valid)],
    ["move to", () => driver.move(valid, path)],
    ["delete", () => driver.delete(path)],
    ["redirectURL", () => driver.redirectURL(path, "GET")],
    ["walk", () => driver.walk(path, () => undefined)],
  ];
}

async function suiteLeftovers(driver: StorageDriver, suiteId: string): Promise<string[]> {
  const top = await driver.list("/").catch((err: unknown) => {
    if (err instanceof PathNotFoundError) return [];
    throw err;
  });
  return top.filter((path) => path.startsWith(`/${suiteId}`));
}

async function putAll(driver: StorageDriver, dir: string, names: string[]): Promise<void> {
  await Promise.all(names.map((name) => driver.putContent(`${dir}/${name}`, text(name))));
}

async function walkPaths(
  driver: StorageDriver,
  dir: string,
  decide: (info: FileInfo) => "skip" | "stop" | undefined = () => undefined,
  startAfter?: string,
): Promise<string[]> {
  const visited: string[] = [];
  await driver.walk(
    dir,
    (info) => {
      visited.push(info.path);
      return decide(info);
    },
    { startAfter },
  );
  return visited;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

async function sha256(stream: Readable): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of stream) hash.update(chunk as Uint8Array);
  return hash.digest("hex");
}

/** Feeds `range.hash` the part of `chunk` (which starts at `position`) inside [start, end). */
function hashOverlap(range: { start: number; end: number; hash: Hash }, chunk: Buffer, position: number): void {
  const from = Math.max(range.start, position);
  const to = Math.min(range.end, position + chunk.length);
  if (from < to) range.hash.update(chunk.subarray(from - position, to - position));
}

/** Mixes tiny, medium and larger-than-buffer chunks so that every buffering path is exercised. */
function randomChunkSize(): number {
  switch (randomInt(3)) {
    case 0:
      return randomInt(1, 64);
    case 1:
      return randomInt(1, 64 * 1024);
    default:
      return randomInt(1, 3 * MiB);
  }
}

function assertWholeVersion(content: Buffer, size: number): void {
  assert.equal(content.length, size);
  const first = content[0];
  assert.ok(content.every((byte) => byte === first), "content mixes two versions");
}

function text(value: string): Buffer {
  return Buffer.from(value);
}

function slug(title: string): string {
  return title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

function defineAppendLogTests(test: Define): void {
  const open = (driver: StorageDriver, path: string) => {
    assert.ok(driver.appendLog, `the ${driver.name} driver offers appendLog`);
    return driver.appendLog(path);
  };

  test("appendLog creates the file and its directories; each append is readable once it resolves", async (driver, dir) => {
    const log = await open(driver, `${dir}/queue/0001`);
    assert.equal(log.size, 0);
    assert.equal((await driver.getContent(`${dir}/queue/0001`)).length, 0);
    await log.append(text("one\n"), false);
    assert.equal((await driver.getContent(`${dir}/queue/0001`)).toString(), "one\n");
    await log.append(text("two\n"), true);
    assert.equal(log.size, 8);
    assert.equal((await driver.getContent(`${dir}/queue/0001`)).toString(), "one\ntwo\n");
    assert.deepEqual(await driver.list(`${dir}/queue`), [`${dir}/queue/0001`]);
    await log.close();
  });

  test("appendLog keeps what a file holds and appends after it", async (driver, dir) => {
    await driver.putContent(`${dir}/log`, text("before\n"));
    const log = await open(driver, `${dir}/log`);
    assert.equal(log.size, 7);
    await log.append(text("after\n"), false);
    await log.close();
    assert.equal((await driver.getContent(`${dir}/log`)).toString(), "before\nafter\n");
  });

  test("appendLog truncate takes back a tail", async (driver, dir) => {
    const log = await open(driver, `${dir}/log`);
    await log.append(text("kept\n"), false);
    await log.append(text("torn"), false);
    await log.truncate(5);
    assert.equal(log.size, 5);
    await log.append(text("next\n"), false);
    await log.close();
    assert.equal((await driver.getContent(`${dir}/log`)).toString(), "kept\nnext\n");
  });

  test("a file appended to can be deleted", async (driver, dir) => {
    const log = await open(driver, `${dir}/log`);
    await log.append(randomBytes(10_000), true);
    await log.close();
    await driver.delete(`${dir}/log`);
    await assert.rejects(driver.getContent(`${dir}/log`), PathNotFoundError);
  });
}
