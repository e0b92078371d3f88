import type { Readable } from "node:stream";

/**
 * Who a redirect URL is for. Drivers ignore it; a storage middleware may choose by it (CloudFront's
 * AWS IP filter sends clients inside AWS to S3 directly). Absent outside a client's request.
 */
export interface RedirectClient {
  /** The client's address as distribution takes it: X-Forwarded-For's first, X-Real-Ip, the peer. */
  ip: string | undefined;
}

/**
 * A StorageDriver stores bytes at slash-separated absolute paths ("/docker/registry/v2/…").
 * It knows nothing of blobs, digests or repositories: that is the storage layer's job.
 *
 * Contract shared by every driver (filesystem, inmemory, s3), checked by test/driver-suite.ts:
 * - Paths are validated by `assertValidPath` before a driver sees them: absolute, no empty
 *   segment, no "." or "..", characters from [A-Za-z0-9._:/-] only. A driver may rely on it.
 * - A missing path is reported as `PathNotFoundError`, never as a driver-specific error.
 * - Directories are implicit: writing a file creates its parents; deleting the last file in a
 *   directory may or may not leave the directory (object stores have none), so callers never
 *   depend on empty directories existing.
 * - Every method is safe to call concurrently on different paths. Concurrent writers on the same
 *   path are the caller's business (the upload layer serialises them).
 */
export interface StorageDriver {
  /** Short name for logs and errors: "filesystem", "inmemory", "s3". */
  readonly name: string;
  /**
   * true where every operation is a request to a remote store (S3, GCS, Azure). Content-addressed
   * bytes are then written without asking first whether they are there (the same bytes replace the
   * same bytes): asking is a request each time. On local storage asking is cheaper than a rewrite.
   */
  readonly remote?: boolean;

  /** The whole content of a small object. PathNotFoundError when absent or a directory. */
  getContent(path: string): Promise<Buffer>;

  /**
   * Stores a small object atomically and durably: readers see the old or the new content, never a
   * mix, and once the promise resolves the content survives a crash of the process (and of the
   * machine). With `durable: false` it is still atomic but may be lost in a machine crash: for
   * what the caller can do without or rebuild (hash states, markers, heartbeats), where waiting
   * for the disk buys nothing.
   */
  putContent(path: string, content: Uint8Array, options?: PutOptions): Promise<void>;

  /**
   * A stream of the object's bytes from `offset` (inclusive) to `end` (exclusive, default the end of
   * the object). PathNotFoundError when absent. An offset past the end yields an empty stream.
   * The caller destroys the stream when it stops reading early.
   */
  reader(path: string, offset?: number, end?: number): Promise<Readable>;

  /**
   * A resumable writer. With `append` false any previous content (committed or not) is discarded.
   * With `append` true the writer continues what an earlier writer left with `close()` (or what
   * was committed), and `size` starts at that length.
   */
  writer(path: string, append: boolean, options?: WriterOptions): Promise<FileWriter>;

  /** Size, modification time and kind of a path. PathNotFoundError when absent. */
  stat(path: string, options?: StatOptions): Promise<FileInfo>;

  /**
   * Absolute paths of the direct children of a directory, in no particular order.
   * PathNotFoundError when the directory does not exist (or has no children, for object stores).
   */
  list(path: string): Promise<string[]>;

  /**
   * Moves an object. The destination appears whole or not at all and is replaced if present.
   * PathNotFoundError when the source is absent.
   */
  move(sourcePath: string, destPath: string, options?: MoveOptions): Promise<void>;

  /**
   * Deletes an object or a directory tree. PathNotFoundError when nothing is there. On the
   * filesystem a directory leaves listings whole or not at all, even when the process dies part
   * way; an object store deletes key by key, so a caller to whom the order matters deletes the
   * parts itself, the one that makes the rest visible last (TagStore.untag).
   */
  delete(path: string, options?: DeleteOptions): Promise<void>;

  /**
   * A URL from which a client may fetch the object directly (presigned S3 URL, CDN), or undefined
   * when the driver serves bytes only through `reader`.
   */
  redirectURL(path: string, method: "GET" | "HEAD", client?: RedirectClient): Promise<string | undefined>;

  /**
   * Depth-first traversal under `path` (not including it), children in lexical order (the order
   * `compareWalkOrder` defines). `visit` returning "skip" for a directory does not descend into it;
   * returning "stop" ends the walk. With `startAfter`, only what comes after that path and everything under it is visited: a
   * traversal resumed where an earlier one stopped, at a cost that does not grow with what lies
   * before. PathNotFoundError when `path` is absent.
   */
  walk(path: string, visit: Visitor, options?: WalkOptions): Promise<void>;

  /**
   * Optional: opens `path` for appending, creating it and its parents (content already there is
   * kept). Object stores cannot append and leave it out; callers then write whole objects. Drivers
   * with it make small appends cheap: one write to an open file instead of a new object each.
   */
  appendLog?(path: string): Promise<AppendLog>;

  /**
   * Optional: removes what interrupted operations left under hidden temporary names, last changed
   * before `olderThan`, and resolves to how many (the S3 driver: unfinished multipart uploads).
   * Drivers whose operations leave nothing behind (memory) leave it out. Run by the upload purge
   * and by garbage collection.
   */
  removeTemporaries?(olderThan: Date): Promise<number>;
}

/**
 * What a caller knows about a path, so that a driver can skip requests it would make to find out
 * (an object store pays for each). Drivers that learn nothing from storage ignore them.
 */
export interface StatOptions {
  /** Only a file at the path matters: a directory there may be reported as absent (PathNotFoundError). */
  fileOnly?: boolean;
}

export interface MoveOptions {
  /** The source's size in bytes, as the caller knows it. */
  size?: number;
  /**
   * The caller removes the source right after, with its directory: a driver that moves by copying
   * may leave the source for that removal instead of deleting it on its own.
   */
  sourceRemovedByCaller?: boolean;
}

export interface WriterOptions {
  /**
   * Open only while this file exists, else PathNotFoundError naming it: an upload's `startedat`,
   * which goes with the upload. A driver may learn it from the request that reads the writer's
   * state (the S3 driver lists their directory once when both share it).
   */
  whileExists?: string;
}

/**
 * What `walk` calls for each path: "skip" on a directory passes over what is under it, "stop" ends
 * the walk there (it resolves; nothing more is visited or listed).
 */
export type Visitor = (info: FileInfo) => Promise<WalkDecision> | WalkDecision;
export type WalkDecision = void | "skip" | "stop";

export interface WalkOptions {
  /**
   * A valid path strictly under the walked one (it need not exist): the walk visits only the paths
   * that come after it in walk order, leaving out it and everything under it.
   */
  startAfter?: string;
}

/**
 * The order of `walk`: depth-first with children in lexical (code-unit) order, so paths compare
 * segment by segment and a directory comes before what is under it. Not the order of the paths as
 * strings: "a/b" comes before "a-b" (the segment "a" is less than "a-b").
 */
export function compareWalkOrder(a: string, b: string): number {
  const as = a.split("/");
  const bs = b.split("/");
  for (let i = 0; i < Math.min(as.length, bs.length); i++) {
    if (as[i] !== bs[i]) return as[i]! < bs[i]! ? -1 : 1;
  }
  return as.length - bs.length;
}

/**
 * The segments of `startAfter` below the walked `path`, validated: InvalidPathError when it is not
 * a valid path strictly under `path`.
 */
export function segmentsBelow(path: string, startAfter: string): string[] {
  assertValidPath(startAfter);
  const prefix = path === "/" ? "/" : `${path}/`;
  if (!startAfter.startsWith(prefix) || startAfter.length === prefix.length) throw new InvalidPathError(startAfter, `not under ${path}`);
  return startAfter.slice(prefix.length).split("/");
}

export interface DeleteOptions {
  /** The path is a directory: no object of that very name is looked for. */
  directory?: boolean;
  /**
   * Every writer the caller opened under the path was committed or cancelled: an unfinished
   * multipart upload still there is one a killed writer left. An object store then does not look
   * for such uploads (a request on every removal); its removeTemporaries aborts them later.
   */
  writersSettled?: boolean;
  /**
   * Default true: once the delete resolves it survives a power cut (the filesystem driver syncs
   * the parent directory), and a directory leaves listings whole even when the process dies part
   * way. False for what may come back or be left part way harmlessly, such as an upload's files
   * after its blob was stored.
   */
  durable?: boolean;
}

/**
 * A file that only grows. One appender at a time (the caller serialises appends); readers use
 * `getContent`/`reader` on the same path and see every append that has resolved.
 */
export interface AppendLog {
  /** Bytes in the file, as of the last append that resolved. */
  readonly size: number;
  /**
   * Appends `data` whole. Once it resolves the bytes survive a crash of the process, and with
   * `sync` a crash of the machine. A failed append may leave part of `data` behind; `truncate`
   * takes it back off.
   */
  append(data: Uint8Array, sync: boolean): Promise<void>;
  /** Cuts the file back to `size` bytes (after a failed append). */
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Where a reader's bytes lie when they are a range of a local file: a server may hand
 * [start, end) of `fd` to the kernel (sendfile) instead of consuming the stream. Using `fd` and
 * reading the stream are alternatives; either way the stream is destroyed afterwards, which
 * closes the file.
 */
export interface LocalFileRange {
  readonly fd: number;
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
  /**
   * For a file still being written (a pull-through cache's download): resolves, once bytes past
   * `position` are readable, to how far they are; rejects when the file will never be complete.
   * Absent: all of [start, end) is there now. The stream must then stay open until the range is
   * sent, since the descriptor is used again for each part.
   */
  readonly available?: (position: number) => Promise<number>;
}

const localFileRanges = new WeakMap<Readable, LocalFileRange>();

/** Records that `stream` reads `range` (drivers with local files call this on their readers). */
export function markLocalFileRange(stream: Readable, range: LocalFileRange): Readable {
  localFileRanges.set(stream, range);
  return stream;
}

const ownedChunkStreams = new WeakSet<Readable>();

/**
 * Records that every chunk `stream` gives out is memory of its own, referenced by nothing else
 * once read (a driver's reader over a network response): its consumer may free each one as soon
 * as it is done with it (releaseChunk), rather than leave it to the collector.
 */
export function markOwnedChunks(stream: Readable): Readable {
  ownedChunkStreams.add(stream);
  return stream;
}

/** Whether `stream`'s chunks are the consumer's to free (see markOwnedChunks). */
export function hasOwnedChunks(stream: Readable): boolean {
  return ownedChunkStreams.has(stream);
}

/**
 * A reader's bytes that are still in a socket (an object store's answer on a plain TCP
 * connection): a server may have the kernel move them to its client (splice) instead of reading
 * them.
 */
export interface SocketSource {
  /**
   * Stops the stream reading and gives its socket over: the bytes the stream has read already (to
   * be sent first; null when none), the socket's descriptor, how many of the body's bytes follow
   * in it, and how long the source may go without sending (0: no limit). Undefined, having
   * changed nothing, when that cannot be done (the stream has begun giving out its bytes, or
   * they are already all read).
   */
  takeOver(): { buffered: Buffer | null; fd: number; length: number; stallMs: number } | undefined;
  /** After takeOver: the `length` bytes were moved (true), or the move failed (false). Ends the stream. */
  finish(moved: boolean): void;
}

const socketSources = new WeakMap<Readable, SocketSource>();

/** Records that `stream`'s bytes can be taken from a socket (see SocketSource). */
export function markSocketSource(stream: Readable, source: SocketSource): Readable {
  socketSources.set(stream, source);
  return stream;
}

/** The socket behind a driver's reader, when its bytes can be taken from one. */
export function socketSourceOf(stream: Readable): SocketSource | undefined {
  return socketSources.get(stream);
}

/** The local file range behind a driver's reader, when it has one. */
export function localFileRangeOf(stream: Readable): LocalFileRange | undefined {
  return localFileRanges.get(stream);
}

export interface PutOptions {
  /**
   * Default true: the content survives a power cut once the put resolves, and on the filesystem a
   * directory the put makes appears with the file in it. False for what may be lost or left part
   * made harmlessly (an upload's `startedat` and hash states): cheaper, and a kill may leave the
   * put's new directory empty.
   */
  durable?: boolean;
}

export interface FileInfo {
  path: string;
  /** Bytes for a file; 0 for a directory. */
  size: number;
  modTime: Date;
  isDir: boolean;
}

/**
 * Writes one object in pieces, possibly across processes (close, then `writer(path, true)`).
 * `write` resolves when the chunk has been accepted; awaiting it is the backpressure.
 * After `commit`, `cancel` or `close`, further writes reject.
 */
export interface FileWriter {
  /** Bytes written so far, including those of earlier writers on the same path. */
  readonly size: number;
  /**
   * true when write() has copied the chunk by the time it returns, so the caller may reuse or free
   * the chunk's memory at once. Otherwise the writer may keep the chunk by reference until it
   * flushes, and the caller must leave its memory alone.
   */
  readonly copiesChunks?: boolean;
  /**
   * Optional. Offers the writer a SHA-256 state (OpenSSL's SHA256_CTX, src/hash/resumable-sha256.ts)
   * to update with every byte it writes from now on, in order, in the job that writes them, so the
   * caller need not hash on the event loop. true when taken: only before the first write, and only
   * where writes run in such jobs (the filesystem driver with its native addon). The state then
   * changes off the event loop until close, commit or cancel has settled, and must not be read
   * before; it has seen exactly the bytes that reached the file, so its length matching `size`
   * afterwards says it saw them all.
   */
  hashWhileWriting?(sha256State: Buffer): boolean;
  write(chunk: Uint8Array): Promise<void>;
  /** Makes what was written resumable by a later `writer(path, true)`. Idempotent. */
  close(): Promise<void>;
  /** Makes the content durable and visible at the path. */
  commit(options?: CommitOptions): Promise<void>;
  /**
   * Optional: commits the content at `path` in place of the writer's own, where the driver can put
   * it there without storing it at its own path first (the S3 driver, when its bytes are a tail
   * in memory or in its side object: one PutObject or CopyObject to `path`, where commit and move
   * cost two). `path` is replaced if present. Resolves false, having done nothing, where it cannot:
   * the caller then commits and moves. What the writer kept beside its own path is left to the
   * caller's removal of that directory, as with `directoryRemovedNext`.
   */
  commitAt?(path: string): Promise<boolean>;
  /** Discards everything written, including earlier sessions. Safe to call more than once. */
  cancel(): Promise<void>;
}

export interface CommitOptions {
  /**
   * Default true. false: only the bytes need be durable now, because the caller moves the object
   * next and `move` makes its destination durable; a driver may skip making this name durable
   * (the filesystem driver then saves a directory fsync per upload).
   */
  durableName?: boolean;
  /**
   * The caller moves the object and removes its directory next: a driver may leave what it keeps
   * beside the object (the S3 driver's side object) to that removal.
   */
  directoryRemovedNext?: boolean;
}

export class PathNotFoundError extends Error {
  constructor(readonly path: string, readonly driverName: string) {
    super(`${driverName}: path not found: ${path}`);
    this.name = "PathNotFoundError";
  }
}

export class InvalidPathError extends Error {
  constructor(readonly path: string, reason: string) {
    super(`invalid storage path ${JSON.stringify(path)}: ${reason}`);
    this.name = "InvalidPathError";
  }
}

const PATH_CHARS = /^[A-Za-z0-9._:/-]+$/;

/** Validates a driver path; throws InvalidPathError. Called by every driver method. */
export function assertValidPath(path: string): void {
  if (path === "/") return;
  if (!path.startsWith("/")) throw new InvalidPathError(path, "not absolute");
  if (!PATH_CHARS.test(path)) throw new InvalidPathError(path, "characters outside [A-Za-z0-9._:/-]");
  const segments = path.slice(1).split("/");
  for (const segment of segments) {
    if (segment === "") throw new InvalidPathError(path, "empty segment");
    if (segment === "." || segment === "..") throw new InvalidPathError(path, "relative segment");
  }
}

/** Validates a reader's byte range (offsets are the caller's, not the network's); RangeError. */
export function assertOffset(offset: number, end: number | undefined): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid offset ${offset}`);
  if (end !== undefined && (!Number.isSafeInteger(end) || end < 0)) throw new RangeError(`invalid end ${end}`);
}

export function isPathNotFound(err: unknown): err is PathNotFoundError {
  return err instanceof PathNotFoundError;
}

/** The children of a directory, or none when it does not exist. */
export async function listOrEmpty(driver: StorageDriver, path: string): Promise<string[]> {
  try {
    return await driver.list(path);
  } catch (err) {
    if (isPathNotFound(err)) return [];
    throw err;
  }
}

/** A small object's content, or undefined when it does not exist. */
export async function getContentIfPresent(driver: StorageDriver, path: string): Promise<Buffer | undefined> {
  try {
    return await driver.getContent(path);
  } catch (err) {
    if (isPathNotFound(err)) return undefined;
    throw err;
  }
}

/** Deletes a path; one that is already gone is not an error. */
export async function deleteIfPresent(driver: StorageDriver, path: string): Promise<void> {
  try {
    await driver.delete(path);
  } catch (err) {
    if (!isPathNotFound(err)) throw err;
  }
}

/** WriterOptions.whileExists for drivers that check it with a stat of its own: PathNotFoundError unless a file is there. */
export async function requireFile(driver: StorageDriver, path: string): Promise<void> {
  const info = await driver.stat(path, { fileOnly: true });
  if (info.isDir) throw new PathNotFoundError(path, driver.name);
}
