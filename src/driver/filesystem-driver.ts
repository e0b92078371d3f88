import { lstat, open, readdir, rename, stat, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import {
  assertOffset,
  type AppendLog,
  assertValidPath,
  type DeleteOptions,
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
import { readCachedFile } from "../native/cached-read.js";
import { nativeFileOps } from "../native/durable-file.js";
import { type DurableFileOps, nodeFileOps } from "./durable-file-ops.js";
import { FilesystemAppendLog, FilesystemFileWriter } from "./filesystem-file-writers.js";
import { LOST_RACE, makeDirectory, type NewDirectoryPlacement, populateNewDirectory } from "./new-directory.js";
import { removeTree } from "./remove-tree.js";
import { removeStaleTemporaries } from "./stale-temporaries.js";
import { isTemporaryName, temporaryName } from "./temporary-names.js";

const READ_CHUNK = 1024 * 1024;
/**
 * The largest content getContent reads on the event loop when it is in the kernel's caches: links,
 * manifests, upload state and outbox segments are all below it. Copying it blocks for well under a
 * millisecond; larger content goes through the threadpool.
 */
const CACHED_READ_MAX = 1024 * 1024;
/** Attempts at emptying a directory that concurrent writers keep adding to (as removeTree). */
const REMOVE_RETRIES = 5;
/** Attempts at a write whose directory a concurrent delete keeps removing. */
const DIRECTORY_RACE_RETRIES = 5;

const VALID_SEGMENT = /^[A-Za-z0-9._:-]+$/;

/**
 * Stores objects as plain files under a root directory, laid out like distribution's filesystem
 * driver so that an existing distribution root can be served as is.
 */
export class FilesystemDriver implements StorageDriver {
  readonly name = "filesystem";
  readonly rootDirectory: string;

  readonly #ops: DurableFileOps;
  readonly #readCached: typeof readCachedFile;

  /**
   * @param options.nativeFileOps default true: durable writes through the native addons when they
   *   are built (one threadpool job per write), and content the kernel has cached read in place;
   *   false: through node:fs, as without the addons.
   */
  constructor(rootDirectory: string, options: { nativeFileOps?: boolean } = {}) {
    this.rootDirectory = resolve(rootDirectory);
    const native = options.nativeFileOps ?? true;
    this.#ops = (native && nativeFileOps) || nodeFileOps;
    this.#readCached = native ? readCachedFile : undefined;
  }

  async getContent(path: string): Promise<Buffer> {
    assertValidPath(path);
    if (this.#readCached) {
      // Four threadpool round trips (open, fstat, read, close) cost a manifest GET three times its
      // other CPU; the kernel's caches answer most reads (native/cached_read.c).
      let cached: Buffer | null | undefined;
      try {
        cached = this.#readCached(this.#fullPath(path), CACHED_READ_MAX);
      } catch (err) {
        throw this.#mapReadError(err, path);
      }
      if (cached === null) throw new PathNotFoundError(path, this.name);
      if (cached !== undefined) return cached;
    }
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
    const name = basename(target);
    const putMakingDirectories = this.#ops.putMakingDirectories;
    await this.#inDirectory(dirname(target), path, {
      atomic: durable,
      // Not durable: one job that makes a missing directory itself, where a failed put, node's
      // recursive mkdir (a job per level) and the put again were three or more (every upload's
      // startedat is in a new directory).
      operation: (dir, place) =>
        !durable && putMakingDirectories
          ? putMakingDirectories(join(dir, temporaryName(name)), join(dir, name), content, this.rootDirectory)
          : this.#ops.put(join(dir, temporaryName(name)), join(dir, name), content, durable ? (place?.parent ?? dir) : undefined, place),
      discard: async () => undefined,
    });
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
    const handle = await this.#inDirectory(dirname(full), path, openIn(basename(full), append ? "a" : "w"));
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
      throw this.#mapReadError(err, path);
    }
  }

  async list(path: string): Promise<string[]> {
    assertValidPath(path);
    let names: string[];
    try {
      names = await readdir(this.#fullPath(path));
    } catch (err) {
      throw this.#mapReadError(err, path);
    }
    const prefix = path === "/" ? "/" : `${path}/`;
    return names.filter(isContentName).map((name) => prefix + name);
  }

  async move(sourcePath: string, destPath: string): Promise<void> {
    assertValidPath(sourcePath);
    assertValidPath(destPath);
    const source = this.#fullPath(sourcePath);
    const name = basename(this.#fullPath(destPath));
    await this.#inDirectory(dirname(this.#fullPath(destPath)), sourcePath, {
      atomic: true,
      operation: async (dir, place) => {
        try {
          await this.#ops.move(source, join(dir, name), place?.parent ?? dir, place);
        } catch (err) {
          // The source itself being gone is final; only a vanished destination directory is retried.
          // The native move names the destination when it found the source there: no lstat then.
          if (isNotFound(err) && (err as NodeJS.ErrnoException).path === source) {
            await lstat(source).catch(() => Promise.reject(new PathNotFoundError(sourcePath, this.name)));
          }
          throw err;
        }
      },
      // Moved into a stand-in that lost the race: back to where the next attempt moves it from.
      discard: (_, dir) => rename(join(dir, name), source),
    });
  }

  /**
   * A file is unlinked; a directory is first renamed to a hidden name beside it, then removed:
   * a kill part way through a recursive delete would otherwise leave part of the tree listed (a
   * tag's directory without its `current/link`). Durable by default: the parent directory is
   * synced once the name is gone, so that a delete that was answered survives a power cut. With
   * `durable: false`, neither: a directory is removed in place.
   */
  async delete(path: string, options: DeleteOptions = {}): Promise<void> {
    assertValidPath(path);
    const full = this.#fullPath(path);
    const parent = dirname(full);
    let isDirectory: boolean;
    try {
      // A caller that knows it is a directory (an upload's) saves the lstat: the rename says whether it exists.
      isDirectory = options.directory === true || (await lstat(full)).isDirectory();
    } catch (err) {
      throw this.#mapReadError(err, path);
    }
    if (path === "/") {
      // The root may be a mount point, which cannot be removed; empty it instead.
      const children = await readdir(full);
      await Promise.all(children.map((name) => removeTree(join(full, name))));
      return;
    }
    const durable = options.durable ?? true;
    if (isDirectory && !durable) {
      // What may be left part way (an upload's files after its blob was stored): removed in place,
      // without the rename, in a directory every upload of the repository shares.
      if (!(await this.#removeUploadTree(full)) && options.directory === true) throw new PathNotFoundError(path, this.name);
      return;
    }
    const hidden = isDirectory ? join(parent, temporaryName(full)) : undefined;
    try {
      // A file goes in one call; removeTree would first try to list it.
      await (hidden === undefined ? unlink(full) : rename(full, hidden));
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // Without the lstat, nothing there is the caller's to know; with it, a concurrent delete got
      // there first and the path is gone, as this one was asked to make it.
      if (options.directory === true) throw this.#mapError(err, path);
      return;
    }
    if (durable) await this.#ops.syncDirectory(parent);
    if (hidden !== undefined) await removeTree(hidden);
  }

  /**
   * removeTree, in one native job when the addon has it: what is deleted this way is an upload's
   * directory after its blob went (a few files), where node:fs costs a job per entry.
   */
  async #removeUploadTree(full: string): Promise<boolean> {
    const removeSmallTree = this.#ops.removeSmallTree;
    if (!removeSmallTree) return removeTree(full);
    for (let attempt = 1; ; attempt++) {
      try {
        return await removeSmallTree(full);
      } catch (err) {
        // A concurrent writer added an entry while the directory was emptied: go round again.
        if ((err as NodeJS.ErrnoException).code !== "ENOTEMPTY" || attempt >= REMOVE_RETRIES) throw err;
      }
    }
  }

  /** See removeStaleTemporaries. */
  removeTemporaries(olderThan: Date): Promise<number> {
    return removeStaleTemporaries(this.rootDirectory, olderThan);
  }

  async redirectURL(path: string, _method: "GET" | "HEAD"): Promise<string | undefined> {
    assertValidPath(path);
    return undefined;
  }

  async appendLog(path: string): Promise<AppendLog> {
    assertValidPath(path);
    const full = this.#fullPath(path);
    const handle = await this.#inDirectory(dirname(full), path, openIn(basename(full), "a"));
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
      throw this.#mapReadError(err, path);
    }
    const stats = await handle.stat().catch(() => undefined);
    // Opening a directory read-only succeeds on Linux; only a regular file holds content.
    if (stats?.isFile()) return { handle, size: stats.size };
    await handle.close();
    throw new PathNotFoundError(path, this.name);
  }

  /**
   * Runs `work.operation` in `dir`. Trying first saves a round trip through the threadpool on
   * every write to an existing directory (most of them). When the directory is missing, it is
   * made with the operation's result already inside (populateNewDirectory), so that no kill can
   * leave it listed but empty. A concurrent delete may remove the directory again before that
   * (another request deleting the same repository path); the operation then runs again, so
   * racing writers and deleters each finish instead of failing.
   */
  async #inDirectory<T>(dir: string, path: string, work: DirectoryWork<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work.operation(dir);
      } catch (err) {
        if (err instanceof PathNotFoundError) throw err;
        if (!isNotFound(err) || attempt > DIRECTORY_RACE_RETRIES) throw this.#mapError(err, path);
      }
      try {
        if (!work.atomic) {
          await makeDirectory(dir, this.rootDirectory);
          continue;
        }
        const made = await populateNewDirectory(dir, this.rootDirectory, this.#ops, { fill: work.operation, discard: work.discard });
        if (made !== LOST_RACE) return made;
      } catch (err) {
        if (err instanceof PathNotFoundError) throw err;
        // Not atomic: a file where a directory belongs, or no permission; the operation's own error says it better.
        if (!work.atomic && !isNotFound(err)) throw this.#mapError(err, path);
        if (!isNotFound(err) || attempt > DIRECTORY_RACE_RETRIES) throw this.#mapError(err, path);
      }
    }
  }

  #fullPath(path: string): string {
    return join(this.rootDirectory, path);
  }

  #mapError(err: unknown, path: string): unknown {
    return isNotFound(err) ? new PathNotFoundError(path, this.name) : err;
  }

  /**
   * For what only looks: a path with a name longer than the filesystem allows (ENAMETOOLONG) names
   * nothing that exists. Such a path comes from input that is not a stored name, as a catalog's
   * `last` which a walk resumes after.
   */
  #mapReadError(err: unknown, path: string): unknown {
    return (err as NodeJS.ErrnoException | undefined)?.code === "ENAMETOOLONG" ? new PathNotFoundError(path, this.name) : this.#mapError(err, path);
  }
}

/**
 * Hides our temporary files and anything that is not a valid path segment (such as `lost+found`
 * at the root of a mounted volume), which no caller could pass back to the driver.
 */
function isContentName(name: string): boolean {
  if (isTemporaryName(name)) return false;
  return VALID_SEGMENT.test(name);
}

/** An operation on one entry of a directory, which #inDirectory runs there or in its stand-in. */
interface DirectoryWork<T> {
  /**
   * A missing directory is made with the operation's entry in it (populateNewDirectory), or, for
   * what need not survive a crash whole, plainly first (makeDirectory).
   */
  atomic: boolean;
  /**
   * Runs in `dir`. With `place`, `dir` is inside a new directory's stand-in: the operation then
   * renames it into place and, when durable, syncs `place.parent` instead of `dir` (see
   * populateNewDirectory).
   */
  operation(dir: string, place?: NewDirectoryPlacement): Promise<T>;
  /** Undoes an operation done in a stand-in that lost the race. */
  discard(result: T | undefined, dir: string): Promise<void>;
}

/**
 * Opens `name` in the directory, made plainly when missing: an upload's data goes into the
 * directory its `startedat` made, and an append log's directory holds nothing listed.
 */
function openIn(name: string, flags: "a" | "w"): DirectoryWork<FileHandle> {
  return {
    atomic: false,
    operation: (dir) => open(join(dir, name), flags),
    discard: async () => undefined,
  };
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

function undefinedIfNotFound(err: unknown): undefined {
  if (err instanceof PathNotFoundError) return undefined;
  throw err;
}
