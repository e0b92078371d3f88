/** The FileWriter of the S3 driver: a multipart upload that a later session can continue. */
import { releaseChunk } from "../../native/release-buffer.js";
import type { CommitOptions, FileWriter } from "../storage-driver.js";
import type { Bucket, Part } from "./bucket.js";
import { KiB, MIN_PART_SIZE } from "./s3-limits.js";
import { deleteSideObjects, storePending, type WriterState } from "./writer-state.js";

type Phase = "open" | "closed" | "committed" | "cancelled";

/**
 * S3 has no append, so a writer streams into a multipart upload: bytes are gathered up to
 * `chunksize`, then uploaded as one part while the next one fills (at most two parts in memory;
 * awaiting `write` is the backpressure).
 *
 * `close()` leaves the multipart upload open: a later `writer(path, true)` finds it
 * (ListMultipartUploads for the key, or the side object below) and its parts (ListParts) and
 * continues. The only bytes that cannot go into a part at close are a tail under 5 MiB (S3 accepts
 * a part that small only as the last one of a completed upload). That tail is stored as a side
 * object `<key>~pending~<parts>~<upload>` (at every close, even empty), named after the upload and
 * the number of parts it follows. A later session that writes reads it back (it is under 5 MiB) as
 * the start of its buffer, so it becomes the head of that session's next part; a commit with
 * nothing more to write copies it into the last part server-side (UploadPartCopy; CopyObject when
 * there is no upload), never reading it. The tags make a crash harmless: a side object whose
 * upload or part count does not match (because a later part already took its bytes, or the upload
 * was completed or aborted) is ignored, and left to the directory's removal.
 * distribution instead uploads the small tail as a part, and on the next write completes the upload
 * and starts a new one whose first part is a copy of the whole object (re-copying everything so
 * far on every small-tail session, and exposing a partial object at the path in between); the side
 * object costs one small PUT per close and one GET per reopen instead.
 *
 * `commit()` uploads the buffer as the last part and completes the upload (a writer that never
 * filled a part commits with a single PutObject, empty or not). `cancel()` aborts the upload and
 * removes the side objects and any committed object.
 */
export class MultipartWriter implements FileWriter {
  readonly #b: Bucket;
  readonly #key: string;
  readonly #chunkSize: number;
  #uploadId: string | undefined;
  #parts: Part[];
  #partBytes: number;
  #stale: string[];
  #pendingStored: boolean;
  /** The side object holding the tail, until bytes follow it (then read into `#buffer`) or a commit copies it. */
  #tailObject: { key: string; size: number } | undefined;
  #base: { size: number; copied: boolean } | undefined;
  #phase: Phase = "open";
  #size: number;
  /** True once this session has changed anything (from the start without `append`). */
  #dirty: boolean;
  /**
   * The part being filled. Grows geometrically up to chunkSize, so small writers stay small; once a
   * part has been cut, full-size buffers are recycled (see #queuePart).
   */
  #buffer: Buffer;
  /** Full-size buffers whose part upload finished, ready to fill again. */
  #free: Buffer[] = [];
  /**
   * The memory of the buffers this writer allocated, freed (releaseChunk) as soon as it is done
   * with one rather than whenever V8 collects it: a chunked upload opens a writer per PATCH, and
   * each left its 10 MiB part buffers as external memory until a full collection (a 2 GiB upload
   * in 16 MiB PATCHes peaked at 154 MiB of RSS on S3, against 67 MiB on the filesystem).
   */
  readonly #owned = new Set<ArrayBufferLike>();
  #cutParts = 0;
  #fill: number;
  /** Writes absorbed one after another on this chain; a failure leaves it rejected. */
  #writing: Promise<void> = Promise.resolve();
  /** Part uploads run one after another on this chain; a failure leaves it rejected. */
  #chain: Promise<void> = Promise.resolve();
  #queued: Array<Promise<void>> = [];
  #error: unknown;
  #finished: Promise<void> = Promise.resolve();

  constructor(bucket: Bucket, key: string, state: WriterState) {
    this.#b = bucket;
    this.#key = key;
    this.#chunkSize = bucket.o.chunkSize;
    this.#uploadId = state.uploadId;
    this.#parts = state.parts;
    this.#partBytes = state.parts.reduce((sum, part) => sum + part.size, 0);
    this.#stale = state.stale;
    this.#pendingStored = state.pendingStored;
    this.#tailObject = state.tailObject;
    this.#base = state.base;
    this.#dirty = state.fresh;
    this.#buffer = state.tail;
    this.#fill = state.tail.length;
    this.#size = this.#partBytes + this.#fill + (state.tailObject?.size ?? 0) + (state.base && !state.base.copied ? state.base.size : 0);
  }

  get size(): number {
    return this.#size;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#phase !== "open") return Promise.reject(new Error(`writer is ${this.#phase}: ${this.#key}`));
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (chunk.byteLength === 0) return this.#writing;
    this.#dirty = true;
    this.#size += chunk.byteLength;
    const tailObject = this.#takeTailObject();
    // Chained, so that writes not awaited keep their order while one waits for a free buffer.
    const absorbed = this.#writing.then(async () => {
      if (tailObject !== undefined) await this.#readTail(tailObject);
      await this.#absorb(chunk);
    });
    absorbed.catch((err: unknown) => {
      this.#error ??= err;
    });
    this.#writing = absorbed;
    return absorbed;
  }

  close(): Promise<void> {
    if (this.#phase !== "open") return this.#finished.catch(() => undefined);
    this.#phase = "closed";
    this.#finished = this.#persist();
    return this.#finished;
  }

  commit(options?: CommitOptions): Promise<void> {
    if (this.#phase === "committed") return this.#finished;
    if (this.#phase !== "open") return Promise.reject(new Error(`cannot commit a ${this.#phase} writer: ${this.#key}`));
    this.#phase = "committed";
    this.#finished = this.#commit(options?.directoryRemovedNext === true).catch((err: unknown) => {
      // It can still be cancelled; a later writer resumes from what was stored.
      this.#phase = "closed";
      throw err;
    });
    return this.#finished;
  }

  /**
   * Where nothing went into parts (a tail in memory or in the side object), stores it at `path`'s
   * key directly: one PutObject or CopyObject, where commit and a move cost two requests and a
   * second copy of the bytes. The side object stays for the caller's removal of the directory.
   */
  async commitAt(path: string): Promise<boolean> {
    if (this.#phase !== "open") throw new Error(`cannot commit a ${this.#phase} writer: ${this.#key}`);
    await this.#writing;
    await this.#chain;
    if (this.#error !== undefined) throw this.#error;
    if (this.#phase !== "open" || !this.#noParts()) return false;
    this.#phase = "committed";
    this.#finished = (async () => {
      await this.#storeWhole(this.#b.key(path), this.#takeBuffer(), this.#takeTailObject());
      await this.#settle(false);
    })().catch((err: unknown) => {
      // It can still be cancelled; a later writer resumes from what was stored.
      this.#phase = "closed";
      throw err;
    });
    await this.#finished;
    return true;
  }

  cancel(): Promise<void> {
    if (this.#phase === "cancelled") return this.#finished;
    if (this.#phase === "committed") return Promise.reject(new Error(`writer already committed: ${this.#key}`));
    const previous = this.#finished;
    this.#phase = "cancelled";
    this.#finished = (async () => {
      await previous.catch(() => undefined);
      await this.#writing.catch(() => undefined);
      await this.#chain.catch(() => undefined);
      this.#release(this.#buffer);
      this.#buffer = Buffer.alloc(0);
      this.#fill = 0;
      this.#releaseFree();
      const uploads = [...this.#stale, ...(this.#uploadId === undefined ? [] : [this.#uploadId])];
      await Promise.all([...uploads.map((id) => this.#b.abortUpload(this.#key, id)), deleteSideObjects(this.#b, this.#key), this.#b.deleteKey(this.#key)]);
      this.#uploadId = undefined;
    })();
    return this.#finished;
  }

  /** The side object's tail, read as the head of the part being filled (which is empty until then). */
  async #readTail(source: { key: string; size: number }): Promise<void> {
    const { bytes } = await this.#b.getObject(source.key);
    // Changed since it was listed: another session wrote the upload meanwhile.
    if (bytes.length !== source.size) throw new Error(`s3: ${source.key}: ${bytes.length} bytes, listed with ${source.size}`);
    this.#reserve(bytes.length);
    bytes.copy(this.#buffer, this.#fill);
    this.#fill += bytes.length;
  }

  /**
   * Copies a chunk into the part being filled, cutting parts as they fill. Once a part is cut while
   * the previous one is still uploading, it waits for that upload: at most two parts exist, one
   * uploading and one filling (or waiting to upload).
   */
  async #absorb(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.byteLength && this.#phase !== "cancelled") {
      const take = Math.min(chunk.byteLength - offset, this.#chunkSize - this.#fill);
      this.#reserve(this.#fill + take);
      this.#buffer.set(chunk.subarray(offset, offset + take), this.#fill);
      this.#fill += take;
      offset += take;
      if (this.#fill === this.#chunkSize) {
        this.#queuePart(this.#takeBuffer());
        if (this.#queued.length >= 2) await this.#queued[this.#queued.length - 2];
      }
    }
  }

  #reserve(needed: number): void {
    if (this.#buffer.length >= needed) return;
    const capacity =
      this.#cutParts > 0 ? this.#chunkSize : Math.min(this.#chunkSize, Math.max(needed, 64 * KiB, this.#buffer.length * 2));
    const grown = (capacity === this.#chunkSize ? this.#free.pop() : undefined) ?? this.#allocate(capacity);
    this.#buffer.copy(grown, 0, 0, this.#fill);
    this.#release(this.#buffer);
    this.#buffer = grown;
  }

  /** At least 64 KiB, so never a slice of Node's shared pool: the buffer owns its memory. */
  #allocate(size: number): Buffer {
    const buffer = Buffer.allocUnsafe(size);
    this.#owned.add(buffer.buffer);
    return buffer;
  }

  /** Frees the memory behind `bytes` now, if this writer allocated it and nothing uses it any more. */
  #release(bytes: Buffer): void {
    if (this.#owned.delete(bytes.buffer)) releaseChunk(new Uint8Array(bytes.buffer));
  }

  #releaseFree(): void {
    for (const buffer of this.#free.splice(0)) this.#release(buffer);
  }

  #takeBuffer(): Buffer {
    const bytes = this.#buffer.subarray(0, this.#fill);
    this.#buffer = Buffer.alloc(0);
    this.#fill = 0;
    return bytes;
  }

  /**
   * Uploads `bytes` after the parts queued before it. A full-size buffer goes back to the free list
   * once its part is stored: the SDK keeps a reference to a request's body for a while after the
   * request, so allocating a fresh buffer per part would keep one more part alive than the two that
   * backpressure allows.
   */
  #queuePart(bytes: Buffer): void {
    this.#cutParts++;
    const link = this.#chain.then(async () => {
      await this.#uploadPart(bytes);
      if (bytes.buffer.byteLength >= this.#chunkSize && bytes.byteOffset === 0 && this.#free.length < 2 && this.#phase === "open") {
        this.#free.push(Buffer.from(bytes.buffer, 0, this.#chunkSize));
      } else {
        this.#release(bytes);
      }
    });
    // Recorded here so that a failure no one awaits is not an unhandled rejection.
    link.catch((err: unknown) => {
      this.#error ??= err;
    });
    this.#chain = link;
    this.#queued.push(link);
    const forget = (): void => {
      this.#queued.splice(this.#queued.indexOf(link), 1);
    };
    link.then(forget, forget);
  }

  async #ensureUpload(): Promise<string> {
    if (this.#uploadId === undefined) this.#uploadId = await this.#b.createUpload(this.#key);
    if (this.#base !== undefined && !this.#base.copied) {
      // Continuing a committed object of 5 MiB or more: its bytes become the first parts, server-side.
      const copied = await this.#b.copyParts(this.#key, this.#base.size, this.#key, this.#uploadId, this.#parts.length + 1);
      this.#parts.push(...copied);
      this.#partBytes += this.#base.size;
      this.#base.copied = true;
    }
    return this.#uploadId;
  }

  async #uploadPart(bytes: Buffer): Promise<void> {
    const uploadId = await this.#ensureUpload();
    const part = await this.#b.uploadPart(this.#key, uploadId, this.#parts.length + 1, bytes);
    this.#parts.push(part);
    this.#partBytes += part.size;
  }

  /** close(): everything written becomes parts, except a tail under 5 MiB, which goes to the side object. */
  async #persist(): Promise<void> {
    await this.#writing;
    if (!this.#dirty) {
      await this.#chain;
      return;
    }
    if (this.#fill >= MIN_PART_SIZE) this.#queuePart(this.#takeBuffer());
    await this.#chain;
    const tail = this.#takeBuffer();
    // A committed object being continued must be in the upload before a tail can follow it.
    if (this.#base !== undefined && !this.#base.copied) await this.#ensureUpload();
    // Stored even when empty. Without an upload it stands for the content in place of any committed
    // object (which a writer without `append` discards); with one, it names the upload, so that the
    // next session finds it without searching (resumeWithMarker).
    await storePending(this.#b, this.#key, tail, this.#uploadId, this.#parts.length);
    this.#pendingStored = true;
    this.#release(tail);
    this.#releaseFree();
  }

  /**
   * `directoryRemovedNext`: the side object is left to the caller's removal of the directory. Should
   * that removal never come (a crash), the side object names an upload that is gone, which a later
   * writer recognises (resumeWithMarker falls back to resumeState).
   */
  async #commit(directoryRemovedNext: boolean): Promise<void> {
    if (!this.#dirty && this.#base !== undefined && this.#uploadId === undefined && !this.#pendingStored) {
      return; // a committed object reopened and left as it was
    }
    await this.#writing;
    await this.#chain;
    const tail = this.#takeBuffer();
    // Nothing was written after the side object's tail: it is copied where it goes, not read.
    const tailObject = this.#takeTailObject();
    if (this.#noParts()) {
      await this.#storeWhole(this.#key, tail, tailObject);
    } else {
      if (tailObject !== undefined) {
        const uploadId = await this.#ensureUpload();
        this.#parts.push(...(await this.#b.copyParts(tailObject.key, tailObject.size, this.#key, uploadId, this.#parts.length + 1)));
      } else if (tail.length > 0) this.#queuePart(tail);
      else await this.#ensureUpload();
      await this.#chain;
      await this.#b.completeUpload(this.#key, this.#uploadId!, this.#parts, this.#size);
      this.#uploadId = undefined;
    }
    await this.#settle(this.#pendingStored && !directoryRemovedNext);
  }

  /** Nothing is in parts, nor must be copied into them: the content is one tail, in memory or in the side object. */
  #noParts(): boolean {
    return this.#parts.length === 0 && (this.#base === undefined || this.#base.copied);
  }

  #takeTailObject(): { key: string; size: number } | undefined {
    const tailObject = this.#tailObject;
    this.#tailObject = undefined;
    return tailObject;
  }

  /**
   * Stores content that is one tail at `dest`: a CopyObject of the side object, or a PutObject of
   * the bytes. Either stores the whole object or fails: no HEAD checks it. An upload started for
   * nothing is aborted with the stale ones.
   */
  async #storeWhole(dest: string, tail: Buffer, tailObject: { key: string; size: number } | undefined): Promise<void> {
    const stored = tailObject?.size ?? tail.length;
    if (stored !== this.#size) throw new Error(`s3: ${this.#key}: ${stored} bytes to store at ${dest}, expected ${this.#size}`);
    if (tailObject !== undefined) await this.#b.copyObject(tailObject.key, dest);
    else await this.#b.putObject(dest, tail);
    this.#release(tail);
    if (this.#uploadId !== undefined) this.#stale.push(this.#uploadId);
    this.#uploadId = undefined;
  }

  /** After a commit: stale uploads aborted, the side objects removed where asked, spare buffers freed. */
  async #settle(removeSideObjects: boolean): Promise<void> {
    await Promise.all([...this.#stale.map((id) => this.#b.abortUpload(this.#key, id)), removeSideObjects ? deleteSideObjects(this.#b, this.#key) : undefined]);
    this.#stale = [];
    this.#pendingStored = false;
    this.#releaseFree();
  }
}
