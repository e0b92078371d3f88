import { randomBytes } from "node:crypto";
import { lstat, mkdir, open, readdir, rm, rmdir, stat, unlink } from "node:fs/promises";
import { type Dirent, writeSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { Readable } from "node:stream";
import {
  assertOffset,
  type AppendLog,
  assertValidPath,
  type CommitOptions,
  markLocalFileRange,
  type PutOptions,
  PathNotFoundError,
  type FileInfo,
  type FileWriter,
  type StorageDriver,
  type WriterOptions,
  requireFile,
  segmentsBelow,
  type Visitor,
  type WalkOptions,
} from "./storage-driver.js";
import { nativeFileOps } from "../native/durable-file.js";
import { type DurableFileOps, nodeFileOps } from "./durable-file-ops.js";
import { WriteBufferPool } from "./write-buffer-pool.js";

const READ_CHUNK = 1024 * 1024;
/** Entries of one directory removed at once by a recursive delete. */
const REMOVE_CONCURRENCY = 32;
/** Attempts at a write whose directory a concurrent delete keeps removing. */
const DIRECTORY_RACE_RETRIES = 5;
/** Flushed bytes after which the writer starts an early writeback (see #startWriteback). */
const EARLY_WRITEBACK_BYTES = 8 * 1024 * 1024;
/**
 * The writers' buffers: 256 KiB per write(2) (a single upload then runs at disk speed; 64 KiB writes
 * cost a quarter of its throughput here), falling back to 64 KiB once 8 MiB are out in large ones.
 * Each upload holds at most two (see FilesystemFileWriter.write).
 */
const writeBuffers = new WriteBufferPool({ largeSize: 256 * 1024, smallSize: 64 * 1024, largeBudget: 8 * 1024 * 1024, maxIdle: 16 });
const RESOLVED = Promise.resolve();

const TEMP_SUFFIX = /\.tmp-[0-9a-f]{16}$/;
const VALID_SEGMENT = /^[A-Za-z0-9._:-]+$/;

/**
 * Stores objects as plain files under a root directory, laid out like distribution's filesystem
 * driver so that an existing distribution root can be served as is.
 */
export class FilesystemDriver implements StorageDriver {
  readonly name = "filesystem";
  readonly rootDirectory: string;

  readonly #ops: DurableFileOps;

  /**
   * @param options.nativeFileOps default true: durable writes through the native addon when it is
   *   built (one threadpool job per write); false: through node:fs, as without the addon.
   */
  constructor(rootDirectory: string, options: { nativeFileOps?: boolean } = {}) {
    this.rootDirectory = resolve(rootDirectory);
    this.#ops = ((options.nativeFileOps ?? true) && nativeFileOps) || nodeFileOps;
  }

  async getContent(path: string): Promise<Buffer> {
    assertValidPath(path);
    const { handle, size } = await this.#openFile(path);
    try {
      // The size fstat gave, in as few reads as it takes (one, for links and manifests), rather
      // than readFile's own fstat and a last read for end of file. Content is replaced by rename,
      // never grown in place, so the size at open is the content's size.
      const content = Buffer.allocUnsafe(size);
      let filled = 0;
      while (filled < size) {
        const { bytesRead } = await handle.read(content, filled, size - filled, filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return filled < size ? content.subarray(0, filled) : content;
    } finally {
      await handle.close();
    }
  }

  async putContent(path: string, content: Uint8Array, options: PutOptions = {}): Promise<void> {
    const durable = options.durable ?? true;
    assertValidPath(path);
    const target = this.#fullPath(path);
    const dir = dirname(target);
    await this.#inDirectory(dir, path, () => this.#ops.put(join(dir, tempName(target)), target, content, durable ? dir : undefined));
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    assertValidPath(path);
    assertOffset(offset, end);
    const { handle, size } = await this.#openFile(path);
    const stop = Math.min(end ?? size, size);
    if (offset >= stop) {
      await handle.close();
      return Readable.from([], { objectMode: false });
    }
    // Node's `end` is inclusive; ours is exclusive.
    const stream = handle.createReadStream({ start: offset, end: stop - 1, highWaterMark: READ_CHUNK });
    return markLocalFileRange(stream, { fd: handle.fd, start: offset, end: stop });
  }

  async writer(path: string, append: boolean, options?: WriterOptions): Promise<FileWriter> {
    assertValidPath(path);
    if (options?.whileExists !== undefined) await requireFile(this, options.whileExists);
    const full = this.#fullPath(path);
    const handle = await this.#inDirectory(dirname(full), path, () => open(full, append ? "a" : "w"));
    const size = append ? (await handle.stat()).size : 0;
    return new FilesystemFileWriter(full, handle, size, this.#ops);
  }

  async stat(path: string): Promise<FileInfo> {
    assertValidPath(path);
    try {
      const stats = await stat(this.#fullPath(path));
      const isDir = stats.isDirectory();
      return { path, size: isDir ? 0 : stats.size, modTime: stats.mtime, isDir };
    } catch (err) {
      throw this.#mapError(err, path);
    }
  }

  async list(path: string): Promise<string[]> {
    assertValidPath(path);
    let names: string[];
    try {
      names = await readdir(this.#fullPath(path));
    } catch (err) {
      throw this.#mapError(err, path);
    }
    const prefix = path === "/" ? "/" : `${path}/`;
    return names.filter(isContentName).map((name) => prefix + name);
  }

  async move(sourcePath: string, destPath: string): Promise<void> {
    assertValidPath(sourcePath);
    assertValidPath(destPath);
    const source = this.#fullPath(sourcePath);
    const dest = this.#fullPath(destPath);
    await this.#inDirectory(dirname(dest), sourcePath, async () => {
      try {
        await this.#ops.move(source, dest, dirname(dest));
      } catch (err) {
        // The source itself being gone is final; only a vanished destination directory is retried.
        if (isNotFound(err)) await lstat(source).catch(() => Promise.reject(new PathNotFoundError(sourcePath, this.name)));
        throw err;
      }
    });
  }

  async delete(path: string): Promise<void> {
    assertValidPath(path);
    const full = this.#fullPath(path);
    let isDirectory: boolean;
    try {
      isDirectory = (await lstat(full)).isDirectory();
    } catch (err) {
      throw this.#mapError(err, path);
    }
    if (!isDirectory) {
      // A file goes in one more call; removeTree would first try to list it.
      await unlink(full).catch(ignoreNotFound);
      return;
    }
    if (path === "/") {
      // The root may be a mount point, which cannot be removed; empty it instead.
      const children = await readdir(full);
      await Promise.all(children.map((name) => removeTree(join(full, name))));
      return;
    }
    await removeTree(full);
  }

  async redirectURL(path: string, _method: "GET" | "HEAD"): Promise<string | undefined> {
    assertValidPath(path);
    return undefined;
  }

  async appendLog(path: string): Promise<AppendLog> {
    assertValidPath(path);
    const full = this.#fullPath(path);
    const handle = await this.#inDirectory(dirname(full), path, () => open(full, "a"));
    try {
      return new FilesystemAppendLog(handle, (await handle.stat()).size, () => this.#ops.syncDirectory(dirname(full)));
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw this.#mapError(err, path);
    }
  }

  async walk(path: string, visit: Visitor, options?: WalkOptions): Promise<void> {
    assertValidPath(path);
    const after = options?.startAfter === undefined ? [] : segmentsBelow(path, options.startAfter);
    await this.#walkAfter(path, await this.list(path), after, visit);
  }

  /**
   * The children of `dir` (and what is under them) that come after the path `after` names below
   * it. True when the visitor stopped the walk.
   */
  async #walkAfter(dir: string, children: string[], after: string[], visit: Visitor): Promise<boolean> {
    if (after.length === 0) return this.#walkChildren(children, visit);
    const [first, ...rest] = after as [string, ...string[]];
    const firstPath = dir === "/" ? `/${first}` : `${dir}/${first}`;
    if (rest.length > 0) {
      const grandchildren = await this.#listIfPresent(firstPath);
      if (grandchildren !== undefined && (await this.#walkAfter(firstPath, grandchildren, rest, visit))) return true;
    }
    return this.#walkChildren(children.filter((child) => child.slice(child.lastIndexOf("/") + 1) > first), visit);
  }

  /** True when the visitor stopped the walk. */
  async #walkChildren(children: string[], visit: Visitor): Promise<boolean> {
    for (const child of children.sort()) {
      const info = await this.#statIfPresent(child);
      if (info === undefined) continue;
      const decision = await visit(info);
      if (decision === "stop") return true;
      if (!info.isDir || decision === "skip") continue;
      const grandchildren = await this.#listIfPresent(child);
      if (grandchildren !== undefined && (await this.#walkChildren(grandchildren, visit))) return true;
    }
    return false;
  }

  /** Entries removed while a walk is under way are skipped rather than failing the walk. */
  async #statIfPresent(path: string): Promise<FileInfo | undefined> {
    return this.stat(path).catch(undefinedIfNotFound);
  }

  async #listIfPresent(path: string): Promise<string[] | undefined> {
    return this.list(path).catch(undefinedIfNotFound);
  }

  /** Opens before checking the kind, so that a concurrent delete cannot slip in between. */
  async #openFile(path: string): Promise<{ handle: FileHandle; size: number }> {
    let handle: FileHandle;
    try {
      handle = await open(this.#fullPath(path), "r");
    } catch (err) {
      throw this.#mapError(err, path);
    }
    const stats = await handle.stat().catch(() => undefined);
    // Opening a directory read-only succeeds on Linux; only a regular file holds content.
    if (stats?.isFile()) return { handle, size: stats.size };
    await handle.close();
    throw new PathNotFoundError(path, this.name);
  }

  /**
   * Runs `operation` in `dir`, creating the directory when the operation finds it missing. Trying
   * first saves a mkdir round trip through the threadpool on every write to an existing directory
   * (most of them). A concurrent delete may remove the directory again before the retry (another
   * request deleting the same repository path); the directory is then made again, so racing
   * writers and deleters each finish instead of failing.
   */
  async #inDirectory<T>(dir: string, path: string, operation: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await operation();
      } catch (err) {
        if (err instanceof PathNotFoundError) throw err;
        if (!isNotFound(err) || attempt > DIRECTORY_RACE_RETRIES) throw this.#mapError(err, path);
      }
      try {
        await makeDirectory(dir, this.rootDirectory);
      } catch (err) {
        // A file where a directory belongs, or no permission: the operation's own error says it better.
        if (!isNotFound(err)) throw this.#mapError(err, path);
      }
    }
  }

  #fullPath(path: string): string {
    return join(this.rootDirectory, path);
  }

  #mapError(err: unknown, path: string): unknown {
    return isNotFound(err) ? new PathNotFoundError(path, this.name) : err;
  }
}

type WriterState = "open" | "closed" | "committed" | "cancelled";

/** Appends up to this size that need not be synced are written on the spot (see FilesystemAppendLog). */
const INLINE_APPEND_MAX = 64 * 1024;
/** An inline append slower than this means the kernel is holding writers back (dirty page throttling). */
const SLOW_INLINE_APPEND_MS = 2;
/** How long appends then go through the threadpool again, keeping the event loop out of it. */
const INLINE_APPEND_BACKOFF_MS = 10_000;

/**
 * Appends through one descriptor opened with O_APPEND. A small append that need not be synced is
 * written on the spot with a synchronous write(2) into the page cache: a few microseconds, where a
 * round trip through libuv's threadpool costs tens of microseconds of CPU (measured on the 2-core
 * VMs this project runs on: 35-55 µs per operation, 3-4 µs for a 1 KiB write(2)). Should one take
 * longer than SLOW_INLINE_APPEND_MS (the kernel throttling a writer while much is dirty), appends go
 * through the threadpool for INLINE_APPEND_BACKOFF_MS, so the event loop is held up once, briefly.
 */
class FilesystemAppendLog implements AppendLog {
  #size: number;
  #inlineAfter = 0;
  /** The file's name survives a power loss: its directory was synced after it was created. */
  #nameSynced = false;

  constructor(
    private readonly handle: FileHandle,
    size: number,
    /** Syncs the directory: once, before the first synced append counts as durable. */
    private readonly syncName: () => Promise<void>,
  ) {
    this.#size = size;
  }

  get size(): number {
    return this.#size;
  }

  async append(data: Uint8Array, sync: boolean): Promise<void> {
    if (!sync && data.byteLength <= INLINE_APPEND_MAX && Date.now() >= this.#inlineAfter) {
      const started = performance.now();
      for (let offset = 0; offset < data.byteLength; ) offset += writeSync(this.handle.fd, data, offset, data.byteLength - offset);
      if (performance.now() - started > SLOW_INLINE_APPEND_MS) this.#inlineAfter = Date.now() + INLINE_APPEND_BACKOFF_MS;
      this.#size += data.byteLength;
      return;
    }
    for (let offset = 0; offset < data.byteLength; ) {
      // A regular file takes a write whole unless the disk fills; what is short is written again.
      const { bytesWritten } = await this.handle.write(data, offset, data.byteLength - offset);
      offset += bytesWritten;
    }
    if (sync) {
      await this.handle.datasync();
      // Only then: a log that never holds a synced append never pays for a directory fsync.
      if (!this.#nameSynced) await this.syncName();
      this.#nameSynced = true;
    }
    this.#size += data.byteLength;
  }

  async truncate(size: number): Promise<void> {
    await this.handle.truncate(size);
    this.#size = size;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/**
 * Writes straight into the target file, as distribution does for `_uploads/<id>/data`. Chunks are
 * copied into a buffer from `writeBuffers` and written one full buffer at a time; the caller's
 * chunk is never held (see WriteBufferPool).
 */
class FilesystemFileWriter implements FileWriter {
  readonly copiesChunks = true;
  #size: number;
  #state: WriterState = "open";
  /** The buffer gathering bytes for the next flush, taken from `writeBuffers`. */
  #buffer: Buffer | undefined;
  #filled = 0;
  /** Serialises flushes; a failed flush leaves it rejected so every later operation fails too. */
  #flushed: Promise<void> = Promise.resolve();
  /** The first failed flush: later writes reject with it at once. */
  #failure: Error | undefined;
  /** Bytes flushed since the last early writeback started. */
  #unsynced = 0;
  /** The early writeback in flight, if any (see #startWriteback). */
  #syncing: Promise<void> | undefined;
  #finished: Promise<void> = Promise.resolve();

  constructor(
    private readonly fullPath: string,
    private readonly handle: FileHandle,
    size: number,
    private readonly ops: DurableFileOps,
  ) {
    this.#size = size;
  }

  get size(): number {
    return this.#size;
  }

  /**
   * Double-buffered: chunks are copied into one buffer while the previous one is written in the
   * threadpool, and the caller waits only when a full buffer must queue behind a write still in
   * flight, so a writer fed chunks smaller than a buffer holds at most two. Waiting on every
   * write would stop reading the socket during each one, leaving the network and the disk to take
   * turns.
   */
  write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== "open") return Promise.reject(new Error(`writer is ${this.#state}: ${this.fullPath}`));
    if (this.#failure) return Promise.reject(this.#failure);
    let wait = RESOLVED;
    for (let offset = 0; offset < chunk.byteLength; ) {
      this.#buffer ??= writeBuffers.take();
      const copied = Math.min(chunk.byteLength - offset, this.#buffer.length - this.#filled);
      this.#buffer.set(chunk.subarray(offset, offset + copied), this.#filled);
      this.#filled += copied;
      this.#size += copied;
      offset += copied;
      if (this.#filled === this.#buffer.length) {
        wait = this.#flushed;
        void this.#flush().catch(() => undefined);
      }
    }
    return wait;
  }

  close(): Promise<void> {
    if (this.#state !== "open") return this.#finished.catch(() => undefined);
    return this.#finish("closed", () => this.#flushAndClose());
  }

  commit(options: CommitOptions = {}): Promise<void> {
    if (this.#state === "committed") return this.#finished;
    if (this.#state !== "open") return Promise.reject(new Error(`cannot commit a ${this.#state} writer: ${this.fullPath}`));
    return this.#finish("committed", async () => {
      try {
        await this.#flushAndClose(true);
      } catch (err) {
        // The descriptor is gone: the writer can no longer commit, but can still be cancelled.
        this.#state = "closed";
        throw err;
      }
      if (options.durableName ?? true) await this.ops.syncDirectory(dirname(this.fullPath));
    });
  }

  cancel(): Promise<void> {
    if (this.#state === "cancelled") return this.#finished;
    if (this.#state === "committed") return Promise.reject(new Error(`writer already committed: ${this.fullPath}`));
    const wasOpen = this.#state === "open";
    const previous = this.#finished;
    return this.#finish("cancelled", async () => {
      this.#releaseBuffer();
      if (wasOpen) {
        await this.#flushed.catch(() => undefined);
        await this.#syncing;
        await this.handle.close();
      } else {
        await previous.catch(() => undefined);
      }
      await rm(this.fullPath, { force: true });
    });
  }

  #finish(state: WriterState, operation: () => Promise<void>): Promise<void> {
    this.#state = state;
    this.#finished = operation();
    return this.#finished;
  }

  async #flushAndClose(sync = false): Promise<void> {
    let closeLater: Promise<void> | undefined;
    try {
      await this.#flush();
      if (sync) {
        await this.#syncing;
        await this.handle.datasync();
      } else {
        // The bytes are in the file already; a writeback still running need not hold up the
        // caller (a chunked upload's next PATCH opens its own descriptor). The descriptor closes
        // when the writeback ends.
        closeLater = this.#syncing;
      }
    } finally {
      if (closeLater) void closeLater.finally(() => this.handle.close().catch(() => undefined));
      else await this.handle.close();
    }
  }

  #flush(): Promise<void> {
    const buffer = this.#buffer;
    const bytes = this.#filled;
    this.#buffer = undefined;
    this.#filled = 0;
    if (buffer) {
      this.#flushed = this.#flushed
        .then(async () => {
          await writeAll(this.handle, buffer.subarray(0, bytes));
          this.#unsynced += bytes;
          if (this.#unsynced >= EARLY_WRITEBACK_BYTES) this.#startWriteback();
        })
        .finally(() => writeBuffers.give(buffer));
      this.#flushed.catch((err: unknown) => {
        this.#failure ??= err instanceof Error ? err : new Error(String(err));
      });
    }
    return this.#flushed;
  }

  #releaseBuffer(): void {
    if (this.#buffer) writeBuffers.give(this.#buffer);
    this.#buffer = undefined;
    this.#filled = 0;
  }

  /**
   * Starts writing dirty pages to disk while more bytes arrive, without waiting for it. The kernel
   * would otherwise hold a whole multi-GiB upload in the page cache until commit, and the commit's
   * fdatasync would then stall the client for the full write-out. Only one runs at a time; a
   * failure here is reported by the commit's own fdatasync.
   */
  #startWriteback(): void {
    if (this.#syncing) return;
    this.#unsynced = 0;
    this.#syncing = this.handle
      .datasync()
      .catch(() => undefined)
      .finally(() => {
        this.#syncing = undefined;
      });
  }
}

async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  for (let offset = 0; offset < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    if (bytesWritten === 0) throw new Error("write wrote nothing");
    offset += bytesWritten;
  }
}

/**
 * Unique among processes sharing a root (a random part drawn once per process) and within this
 * one (a counter): one random draw per process instead of one per write, which showed up in
 * profiles of many small pushes (each draw also asks the kernel for the pid, for fork safety).
 */
const tempPrefix = randomBytes(4).toString("hex");
let tempCounter = 0;

function tempName(target: string): string {
  tempCounter = (tempCounter + 1) % 0x1_0000_0000;
  // Truncated so that the temporary name stays within NAME_MAX.
  return `.${basename(target).slice(0, 200)}.tmp-${tempPrefix}${tempCounter.toString(16).padStart(8, "0")}`;
}

/**
 * Hides our temporary files and anything that is not a valid path segment (such as `lost+found`
 * at the root of a mounted volume), which no caller could pass back to the driver.
 */
function isContentName(name: string): boolean {
  if (name.startsWith(".") && TEMP_SUFFIX.test(name)) return false;
  return VALID_SEGMENT.test(name);
}


/**
 * mkdir -p. Node's recursive mkdir reports ENOENT when it cannot make a missing parent, whatever the
 * reason (it stats the parent after the failure and reports that): on read-only storage, a full disk
 * or a directory it may not write, a write into a new directory would then look like a missing
 * path. When it says ENOENT, the directories are made one at a time from `root` down, so that the
 * real error (EROFS, ENOSPC, EACCES) is the one thrown; ENOENT then only means a concurrent delete.
 */
async function makeDirectory(dir: string, root: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    return;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const below = relative(root, dir);
  let current = root;
  for (const segment of ["", ...(below === "" ? [] : below.split(sep))]) {
    current = segment === "" ? current : join(current, segment);
    try {
      await mkdir(current);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

function undefinedIfNotFound(err: unknown): undefined {
  if (err instanceof PathNotFoundError) return undefined;
  throw err;
}

/**
 * rm -r that tolerates files appearing while it runs (a concurrent write into the tree being
 * deleted makes rmdir fail with ENOTEMPTY): it tries again, and the delete wins. A missing path is
 * not an error. One listing per directory (entries come with their types) instead of fs.rm's stat
 * of every entry: removing an upload directory after its blob was moved out costs three calls
 * instead of eight.
 */
async function removeTree(full: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await removeEntry(full);
      return;
    } catch (err) {
      // A concurrent writer added an entry while the directory was emptied: go round again.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" || attempt >= DIRECTORY_RACE_RETRIES) throw err;
    }
  }
}

async function removeEntry(full: string): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await readdir(full, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return;
    if (code !== "ENOTDIR") throw err;
    await unlink(full).catch(ignoreNotFound);
    return;
  }
  // A bounded number at a time: a repository's tree can hold many thousands of entries.
  for (let i = 0; i < entries.length; i += REMOVE_CONCURRENCY) {
    await Promise.all(
      entries.slice(i, i + REMOVE_CONCURRENCY).map((entry) => {
        const child = join(full, entry.name);
        return entry.isDirectory() ? removeEntry(child) : unlink(child).catch(ignoreNotFound);
      }),
    );
  }
  await rmdir(full).catch(ignoreNotFound);
}

function ignoreNotFound(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
}
