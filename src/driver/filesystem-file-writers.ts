/**
 * The filesystem driver's two ways of writing into one file: the append log (notification outboxes)
 * and the upload writer (buffered, hashed in its write jobs, committed with fdatasync).
 */
import { writeSync } from "node:fs";
import { rm, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import type { AppendLog, CommitOptions, FileWriter } from "./storage-driver.js";
import type { DurableFileOps } from "./durable-file-ops.js";
import { WriteBufferPool } from "./write-buffer-pool.js";

/** Flushed bytes after which the writer starts an early writeback (see #startWriteback). */
const EARLY_WRITEBACK_BYTES = 8 * 1024 * 1024;
/**
 * The writers' buffers: 256 KiB per write(2) (a single upload then runs at disk speed; 64 KiB writes
 * cost a quarter of its throughput here), falling back to 64 KiB once 8 MiB are out in large ones.
 * Each upload holds at most two (see FilesystemFileWriter.write).
 */
const writeBuffers = new WriteBufferPool({ largeSize: 256 * 1024, smallSize: 64 * 1024, largeBudget: 8 * 1024 * 1024, maxIdle: 16 });
const RESOLVED = Promise.resolve();

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
export class FilesystemAppendLog implements AppendLog {
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
export class FilesystemFileWriter implements FileWriter {
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
  /** The SHA-256 state each flush's job updates (hashWhileWriting), if one was taken. */
  #sha256State: Buffer | undefined;
  #written = false;

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
  /** Taken when the native addon can hash in its write jobs; see FileWriter. */
  hashWhileWriting(sha256State: Buffer): boolean {
    if (this.ops.writeHashed === undefined || this.#state !== "open" || this.#written || this.#sha256State !== undefined) return false;
    this.#sha256State = sha256State;
    return true;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== "open") return Promise.reject(new Error(`writer is ${this.#state}: ${this.fullPath}`));
    if (this.#failure) return Promise.reject(this.#failure);
    this.#written = true;
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
          const state = this.#sha256State;
          // writeHashed is there whenever a state was taken (hashWhileWriting).
          if (state) await this.ops.writeHashed!(this.handle.fd, buffer.subarray(0, bytes), state);
          else await writeAll(this.handle, buffer.subarray(0, bytes));
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

