import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { open, unlink, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { markLocalFileRange } from "../driver/storage-driver.js";
import type { Digest } from "../reference/digest.js";
import { RegistryError } from "../errcode/registry-error.js";
import type { UploadBody } from "../storage/upload-store.js";
import { UpstreamError } from "./upstream-error.js";

/** The upstream's answer to a blob GET, accepted (200) by the caller. */
export interface FillSource {
  /** From Content-Length; undefined when the upstream did not say. */
  size: number | undefined;
  body: AsyncIterable<Buffer> & { destroy(error?: Error): void };
}

/** Writes the blob into storage from `body`, verifying it against its digest on the way. */
export type FillStore = (body: UploadBody, size: number | undefined) => Promise<void>;

const READ_CHUNK = 256 * 1024;
/** Received bytes kept in memory for readers that keep up, once the spool has them too. */
const MEMORY_WINDOW = 1024 * 1024;
/** How far the spool may fall behind the network before the download waits for it. */
const MAX_UNSPOOLED = 4 * 1024 * 1024;
/** Chunks written to the spool in one writev at most (IOV_MAX is 1024). */
const MAX_SPOOL_BATCH = 256;

/**
 * One upstream download of a blob, shared by every client that asks for it while it runs.
 *
 * Each chunk from the upstream is readable at once by the clients and by storage, which takes the
 * bytes through an ordinary upload that verifies the digest again and makes the blob durable.
 * Every chunk is also written to a spool file on local disk, in batches, off the download's path.
 * Over plain HTTP/1.1 clients are sent the spool with sendfile(2) as it grows, like any stored
 * blob; otherwise (TLS, HTTP/2) and for storage, readers take the most recent chunks from memory
 * and older ones from the spool. A slow client never slows the others or the fill, and one that
 * disconnects only closes its reader: the fill goes on for the others and for the cache. Memory
 * stays bounded: the recent window, plus what the spool has not written yet (the download waits
 * when that grows too large).
 *
 * The last byte of the blob is held back from every reader until the whole body has been hashed
 * and matches the digest: on a mismatch readers fail instead, so no client ever receives the
 * complete body of bytes that are not the blob it asked for.
 */
export class BlobFill {
  size: number | undefined;
  /** Bytes received from the upstream: in memory or in the spool (or both). */
  received = 0;
  verified = false;
  error: Error | undefined;
  /** Resolves once the upstream answered and the spool exists; rejects when either failed. */
  readonly ready: Promise<void>;
  /** Resolves when the blob is in storage; rejects when the download or the storing failed. */
  readonly done: Promise<void>;
  private spool: FileHandle | undefined;
  /** Bytes [0, spooled) are in the spool file. */
  private spooled = 0;
  /** Chunks received but not yet handed to a spool write, in order. */
  private readonly spoolQueue: Buffer[] = [];
  private spoolWriting: Promise<void> | undefined;
  private spoolError: Error | undefined;
  /** Recent chunks in order; every byte below `received` is here or below `spooled`. */
  private readonly recent: Array<{ start: number; bytes: Buffer }> = [];
  private references = 1;
  private wake: () => void = () => undefined;
  private progress: Promise<void>;

  constructor(
    readonly digest: Digest,
    /** The upstream's URL, for errors. */
    private readonly upstream: string,
    private readonly spoolPath: string,
    fetch: () => Promise<FillSource>,
    store: FillStore,
  ) {
    this.progress = this.nextProgress();
    let markReady: () => void = () => undefined;
    let failReady: (err: unknown) => void = () => undefined;
    this.ready = new Promise<void>((resolve, reject) => ((markReady = resolve), (failReady = reject)));
    this.done = this.run(fetch, store, markReady).then(
      () => undefined,
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        failReady(error);
        // A storage failure after a verified download leaves readers alone: their bytes are sound.
        if (!this.verified) this.failDownload(error);
        throw error;
      },
    );
    // Nobody may be waiting on either when the fill fails after every client left.
    this.ready.catch(() => undefined);
    this.done.catch(() => undefined);
  }

  /** Bytes [offset, end) as they arrive; end undefined means to the end of the blob. */
  reader(offset: number, end: number | undefined): Readable {
    this.references++;
    return new FillReader(this, offset, end);
  }

  /** Resolves at the next chunk, the verification or the failure. */
  nextChange(): Promise<void> {
    return this.progress;
  }

  /** Received bytes from `position`, at most up to `limit`: from memory when recent, else from the spool. */
  async read(position: number, limit: number): Promise<Buffer> {
    for (const chunk of this.recent) {
      const chunkEnd = chunk.start + chunk.bytes.length;
      if (position >= chunk.start && position < chunkEnd) {
        return chunk.bytes.subarray(position - chunk.start, Math.min(chunkEnd, limit) - chunk.start);
      }
    }
    if (!this.spool || position >= this.spooled) throw new Error("blob fill bytes are neither in memory nor spooled");
    const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.min(limit, this.spooled) - position));
    const { bytesRead } = await this.spool.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) throw new Error("blob fill spool ended early");
    return bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
  }

  /**
   * Resolves, once spooled bytes past `position` are readable, to how far they are (the blob's
   * last byte waits for verification); rejects when the download failed. For sendfile(2) from the
   * spool.
   */
  async spooledPast(position: number): Promise<number> {
    for (;;) {
      if (this.error) throw this.error;
      const readable = this.verified ? this.spooled : Math.min(this.spooled, this.received - 1);
      if (readable > position) return readable;
      await this.nextChange();
    }
  }

  /** The spool's descriptor, once the upstream answered and until the last reader is done. */
  get spoolFd(): number | undefined {
    return this.spool?.fd;
  }

  release(): void {
    if (--this.references === 0) void this.closeSpool();
  }

  private async run(fetch: () => Promise<FillSource>, store: FillStore, markReady: () => void): Promise<void> {
    const source = await fetch();
    this.size = source.size;
    try {
      this.spool = await open(this.spoolPath, "w+");
    } catch (err) {
      source.body.destroy();
      throw err;
    }
    markReady();
    // Storage reads the fill like a client does: a slow disk never slows the download.
    const stored = store(this.storageBody(), source.size);
    stored.catch(() => undefined);
    try {
      try {
        await this.download(source);
      } catch (err) {
        source.body.destroy();
        this.failDownload(err);
        await stored.catch(() => undefined);
        throw err;
      }
      try {
        await stored;
      } catch (err) {
        if (err instanceof RegistryError && (err.code === "DIGEST_INVALID" || err.code === "SIZE_INVALID")) {
          throw new UpstreamError("invalid", this.upstream, `it sent bytes that do not match ${this.digest.toString()}; nothing was stored`);
        }
        throw err;
      }
    } finally {
      // The fill's own reference: readers still streaming keep the spool open.
      this.release();
    }
  }

  /**
   * Receives the upstream body as fast as it comes: each chunk is readable by clients at once,
   * and on its way to the spool. The bytes are hashed on the way, so readers get the last byte as
   * soon as the body is verified, without waiting for storage to make the blob durable.
   */
  private async download(source: FillSource): Promise<void> {
    const hash = createHash(this.digest.algorithm);
    for await (const chunk of source.body) {
      if (this.spoolError) throw this.spoolError;
      if (this.size !== undefined && this.received + chunk.length > this.size) {
        throw new UpstreamError("invalid", this.upstream, `it sent more bytes than the ${this.size} it announced`);
      }
      hash.update(chunk);
      this.recent.push({ start: this.received, bytes: chunk });
      this.spoolChunk(chunk);
      this.received += chunk.length;
      this.notify();
      // The spool may lag behind the network, but not by much: what it has not written is in memory.
      if (this.received - this.spooled > MAX_UNSPOOLED) {
        await this.spoolWriting;
        if (this.spoolError) throw this.spoolError;
      }
    }
    if (this.size !== undefined && this.received !== this.size) {
      throw new UpstreamError("unreachable", this.upstream, `the blob ended after ${this.received} of ${this.size} bytes`);
    }
    if (hash.digest("hex") !== this.digest.hex) {
      throw new UpstreamError("invalid", this.upstream, `it sent bytes that do not match ${this.digest.toString()}; nothing was stored`);
    }
    this.size = this.received;
    this.verified = true;
    this.notify();
  }

  /** The bytes for storage, read from the fill as they arrive; fails when the download does. */
  private async *storageBody(): AsyncGenerator<Buffer> {
    let position = 0;
    for (;;) {
      if (this.error) throw this.error;
      if (position < this.received) {
        const bytes = await this.read(position, this.received);
        position += bytes.length;
        yield bytes;
      } else if (this.verified) {
        return;
      } else {
        await this.nextChange();
      }
    }
  }

  /** Readers (storage among them) fail from now on. */
  private failDownload(err: unknown): void {
    this.error = err instanceof Error ? err : new Error(String(err));
    this.notify();
  }

  /**
   * Queues a chunk for the spool. Writes happen off the download's path, one at a time, each
   * taking every chunk queued meanwhile in one writev: a threadpool round trip per batch rather
   * than per network read, so the spool keeps up while storage's own writes share the pool.
   */
  private spoolChunk(chunk: Buffer): void {
    this.spoolQueue.push(chunk);
    this.spoolWriting ??= this.drainSpool().finally(() => (this.spoolWriting = undefined));
  }

  private async drainSpool(): Promise<void> {
    while (this.spoolQueue.length > 0 && !this.spoolError && this.spool) {
      const batch = this.spoolQueue.splice(0, MAX_SPOOL_BATCH);
      try {
        await writeAll(this.spool, batch, this.spooled);
      } catch (err) {
        this.spoolError = err instanceof Error ? err : new Error(String(err));
        return;
      }
      for (const chunk of batch) this.spooled += chunk.length;
      this.notify();
      // Spooled chunks leave memory once they are older than the window readers keep up within.
      while (this.recent.length > 0) {
        const first = this.recent[0]!;
        const firstEnd = first.start + first.bytes.length;
        if (firstEnd > this.spooled || this.received - firstEnd < MEMORY_WINDOW) break;
        this.recent.shift();
      }
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.progress = this.nextProgress();
    wake();
  }

  private nextProgress(): Promise<void> {
    return new Promise<void>((resolve) => (this.wake = resolve));
  }

  private async closeSpool(): Promise<void> {
    await this.spoolWriting;
    const spool = this.spool;
    this.spool = undefined;
    this.recent.length = 0;
    await spool?.close().catch(() => undefined);
    await unlink(this.spoolPath).catch(() => undefined);
  }
}

/** A client's view of a fill: bytes [offset, end) as they become readable. */
class FillReader extends Readable {
  private position: number;
  private released = false;

  constructor(
    private readonly fill: BlobFill,
    offset: number,
    private readonly end: number | undefined,
  ) {
    super({ highWaterMark: READ_CHUNK });
    this.position = offset;
    // Over plain HTTP/1.1 the server sends the spool with sendfile(2) instead of reading this stream.
    const fd = fill.spoolFd;
    if (fd !== undefined && end !== undefined) markLocalFileRange(this, { fd, start: offset, end, available: (position) => fill.spooledPast(position) });
  }

  override _read(): void {
    this.pump().catch((err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))));
  }

  private async pump(): Promise<void> {
    for (;;) {
      const fill = this.fill;
      if (fill.error) throw fill.error;
      const end = this.end ?? (fill.verified ? fill.received : Number.POSITIVE_INFINITY);
      if (this.position >= end) {
        this.push(null);
        return;
      }
      // Everything received is readable except the blob's last byte, which waits for verification.
      const readable = Math.min(end, fill.verified ? fill.received : fill.received - 1);
      if (this.position < readable) {
        const bytes = await fill.read(this.position, readable);
        this.position += bytes.length;
        this.push(bytes);
        return;
      }
      await fill.nextChange();
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.released) {
      this.released = true;
      this.fill.release();
    }
    callback(err);
  }
}

/**
 * The fills in progress in this process, one per repository and digest, and the directory their
 * spool files live in (removed at close; those of processes killed before then are removed when
 * the next one starts filling).
 */
export class BlobFills {
  private readonly fills = new Map<string, BlobFill>();
  private readonly directory = join(tmpdir(), `berth-proxy-${process.pid}`);
  private sequence = 0;
  private created = false;

  /** The fill of `digest` for `repository` in progress, or a new one started with `fetch`. */
  fill(repository: string, digest: Digest, upstream: string, fetch: () => Promise<FillSource>, store: FillStore): BlobFill {
    const running = this.running(repository, digest);
    if (running) return running;
    const key = fillKey(repository, digest);
    if (!this.created) {
      removeOrphanedSpools();
      mkdirSync(this.directory, { recursive: true, mode: 0o700 });
      this.created = true;
    }
    const fill = new BlobFill(digest, upstream, join(this.directory, `${digest.hex.slice(0, 16)}-${++this.sequence}`), fetch, store);
    this.fills.set(key, fill);
    const forget = (): void => {
      if (this.fills.get(key) === fill) this.fills.delete(key);
    };
    fill.done.then(forget, forget);
    return fill;
  }

  /** The fill in progress, if any (a HEAD during a fill answers from it). */
  running(repository: string, digest: Digest): BlobFill | undefined {
    const fill = this.fills.get(fillKey(repository, digest));
    return fill && !fill.error ? fill : undefined;
  }

  close(): void {
    if (this.created) rmSync(this.directory, { recursive: true, force: true });
  }
}

function fillKey(repository: string, digest: Digest): string {
  return `${repository}@${digest.toString()}`;
}

/** Spool directories of berth processes that are gone (killed before they could remove them). */
function removeOrphanedSpools(): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const entry of entries) {
    const pid = /^berth-proxy-(\d+)$/.exec(entry)?.[1];
    if (pid === undefined || Number(pid) === process.pid || isAlive(Number(pid))) continue;
    rmSync(join(tmpdir(), entry), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, owned by someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Writes `buffers` at `position`, continuing after short writes. */
async function writeAll(file: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  const pending = [...buffers];
  while (pending.length > 0) {
    let { bytesWritten } = await file.writev(pending, position);
    position += bytesWritten;
    while (pending.length > 0 && bytesWritten >= pending[0]!.length) bytesWritten -= pending.shift()!.length;
    if (bytesWritten > 0) pending[0] = pending[0]!.subarray(bytesWritten);
  }
}
