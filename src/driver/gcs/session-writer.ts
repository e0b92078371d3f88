/** The FileWriter of the GCS driver: a resumable upload session that a later process can continue. */
import type { CommitOptions, FileWriter } from "../storage-driver.js";
import type { GcsBucket } from "./gcs-bucket.js";
import { CHUNK_QUANTUM } from "./resumable-session.js";

/**
 * Suffix of the side object that keeps a closed writer's state. `~` is not in the path alphabet,
 * so no driver path names it and list/walk never show it; it shares the path's prefix, so a
 * recursive delete removes it.
 */
export const PENDING_SUFFIX = "~pending";
const META_SESSION = "berth-session";
const META_OFFSET = "berth-offset";
const NO_SESSION = "none";

export function pendingKey(key: string): string {
  return key + PENDING_SUFFIX;
}

export interface WriterState {
  session: string | undefined;
  /** Bytes the session holds. */
  offset: number;
  /** Bytes after them, not yet sent (under 256 KiB after a close). */
  tail: Buffer;
  pendingStored: boolean;
  fresh: boolean;
}

/** A writer without `append`: earlier sessions' state is dropped (their sessions expire unused). */
export async function freshState(b: GcsBucket, key: string): Promise<WriterState> {
  await b.deleteKey(pendingKey(key));
  return { session: undefined, offset: 0, tail: Buffer.alloc(0), pendingStored: false, fresh: true };
}

/**
 * What a writer with `append` continues: the side object's session and tail, checked against what
 * the session holds; else the committed object; else nothing.
 *
 * The side object is written at each close with the bytes the session held then. A session that
 * holds more (a later writer sent chunks and died before its close) wins, as the S3 driver's parts
 * do, and that writer's tail, never stored, is lost: the upload layer sees the size and answers the
 * client with it. A session that finished (a commit that died before removing the side object) is
 * the committed object; one that is gone (expired after a week, cancelled) leaves the tail only
 * when nothing had been sent.
 */
export async function resumeState(b: GcsBucket, key: string): Promise<WriterState> {
  const pending = await b.head(pendingKey(key));
  if (pending !== undefined) {
    const tail = (await b.getBytes(pendingKey(key))) ?? Buffer.alloc(0);
    const session = pending.metadata[META_SESSION];
    const offset = Number(pending.metadata[META_OFFSET] ?? NaN);
    if (session === NO_SESSION || session === undefined) {
      return { session: undefined, offset: 0, tail, pendingStored: true, fresh: false };
    }
    const status = await b.querySession(session);
    if (status.kind === "open") {
      if (status.stored === offset) return { session, offset, tail, pendingStored: true, fresh: false };
      return { session, offset: status.stored, tail: Buffer.alloc(0), pendingStored: true, fresh: false };
    }
    if (status.kind === "gone") {
      return { session: undefined, offset: 0, tail: offset === 0 ? tail : Buffer.alloc(0), pendingStored: true, fresh: false };
    }
  }
  const committed = await b.head(key);
  const state: WriterState = { session: undefined, offset: 0, tail: Buffer.alloc(0), pendingStored: pending !== undefined, fresh: false };
  if (committed === undefined) return state;
  return continueCommitted(b, key, state, committed.size);
}

/**
 * GCS cannot append to an object, and a session cannot start from one, so continuing a committed
 * object sends its bytes into a new session (streamed, one chunk in memory). The registry never
 * does this (an upload is committed once, then moved); the contract allows it, so it works, at the
 * cost of reading the object once.
 */
async function continueCommitted(b: GcsBucket, key: string, state: WriterState, size: number): Promise<WriterState> {
  const aligned = size - (size % CHUNK_QUANTUM);
  if (aligned > 0) {
    state.session = await b.startSession(key);
    let pending = Buffer.alloc(0);
    const head = await b.download(key, 0, aligned);
    if (head === undefined) return state;
    for await (const piece of head) {
      pending = Buffer.concat([pending, piece as Buffer]);
      if (pending.length >= b.chunkSize) {
        const send = pending.length - (pending.length % CHUNK_QUANTUM);
        state.offset = await b.putChunk(state.session, state.offset, pending.subarray(0, send));
        pending = pending.subarray(send);
      }
    }
    if (pending.length > 0) state.offset = await b.putChunk(state.session, state.offset, pending);
  }
  const rest: Buffer[] = [];
  const tail = size > aligned ? await b.download(key, aligned, size) : undefined;
  if (tail !== undefined) for await (const piece of tail) rest.push(piece as Buffer);
  state.tail = Buffer.concat(rest);
  return state;
}

type Phase = "open" | "closed" | "committed" | "cancelled";

/**
 * Bytes are gathered up to `chunksize` and sent to the session as one request while the next
 * chunk fills (at most two chunks in memory; awaiting `write` is the backpressure). The session is
 * started at the first full chunk, so a small object is one plain upload at commit.
 *
 * `close()` sends what is a multiple of 256 KiB and stores the rest (under 256 KiB) in the side
 * object `<key>~pending`, with the session URI and the bytes it holds as metadata: that is what a
 * writer in another process continues from. `commit()` sends the last bytes with the total size,
 * which creates the object, and removes the side object. `cancel()` cancels the session and
 * removes the side object and any committed object.
 */
export class SessionWriter implements FileWriter {
  readonly #b: GcsBucket;
  readonly #key: string;
  #session: string | undefined;
  #offset: number;
  #buffer: Buffer;
  #fill: number;
  #size: number;
  #pendingStored: boolean;
  #dirty: boolean;
  #phase: Phase = "open";
  /** The chunk being sent, if any: a failure is kept in #error. */
  #sending: Promise<void> = Promise.resolve();
  #writing: Promise<void> = Promise.resolve();
  #error: unknown;
  #finished: Promise<void> = Promise.resolve();

  constructor(bucket: GcsBucket, key: string, state: WriterState) {
    this.#b = bucket;
    this.#key = key;
    this.#session = state.session;
    this.#offset = state.offset;
    this.#buffer = state.tail;
    this.#fill = state.tail.length;
    this.#size = state.offset + state.tail.length;
    this.#pendingStored = state.pendingStored;
    this.#dirty = state.fresh;
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
    const absorbed = this.#writing.then(() => this.#absorb(chunk));
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
      this.#phase = "closed";
      throw err;
    });
    return this.#finished;
  }

  cancel(): Promise<void> {
    if (this.#phase === "cancelled") return this.#finished;
    if (this.#phase === "committed") return Promise.reject(new Error(`writer already committed: ${this.#key}`));
    const previous = this.#finished;
    this.#phase = "cancelled";
    this.#finished = (async () => {
      await previous.catch(() => undefined);
      await this.#writing.catch(() => undefined);
      await this.#sending.catch(() => undefined);
      this.#buffer = Buffer.alloc(0);
      this.#fill = 0;
      const session = this.#session;
      this.#session = undefined;
      await Promise.all([
        session === undefined ? undefined : this.#b.cancelSession(session),
        this.#b.deleteKey(pendingKey(this.#key)),
        this.#b.deleteKey(this.#key),
      ]);
    })();
    return this.#finished;
  }

  async #absorb(chunk: Uint8Array): Promise<void> {
    const chunkSize = this.#b.chunkSize;
    let offset = 0;
    while (offset < chunk.byteLength && this.#phase !== "cancelled") {
      if (this.#buffer.length < chunkSize) {
        // Grown to a full chunk only when the bytes need it: small writers stay small.
        const grown = Buffer.allocUnsafe(Math.min(chunkSize, Math.max(this.#fill + chunk.byteLength - offset, 64 * 1024, this.#buffer.length * 2)));
        this.#buffer.copy(grown, 0, 0, this.#fill);
        this.#buffer = grown;
      }
      const take = Math.min(chunk.byteLength - offset, this.#buffer.length - this.#fill);
      this.#buffer.set(chunk.subarray(offset, offset + take), this.#fill);
      this.#fill += take;
      offset += take;
      if (this.#fill === chunkSize) {
        // One chunk in flight at a time: wait for it, then send this one while the next fills.
        await this.#sending;
        const full = this.#buffer;
        this.#buffer = Buffer.alloc(0);
        this.#fill = 0;
        this.#sending = this.#send(full);
        this.#sending.catch((err: unknown) => {
          this.#error ??= err;
        });
      }
    }
  }

  async #send(bytes: Buffer): Promise<void> {
    this.#session ??= await this.#b.startSession(this.#key);
    this.#offset = await this.#b.putChunk(this.#session, this.#offset, bytes);
  }

  /** close(): the 256 KiB multiples go to the session, the rest to the side object with the session's state. */
  async #persist(): Promise<void> {
    await this.#writing;
    await this.#sending;
    if (!this.#dirty) return;
    const aligned = this.#fill - (this.#fill % CHUNK_QUANTUM);
    if (aligned > 0) {
      await this.#send(this.#buffer.subarray(0, aligned));
      this.#buffer = Buffer.from(this.#buffer.subarray(aligned, this.#fill));
      this.#fill = this.#buffer.length;
    }
    const metadata = { [META_SESSION]: this.#session ?? NO_SESSION, [META_OFFSET]: String(this.#offset) };
    await this.#b.putBytes(pendingKey(this.#key), this.#buffer.subarray(0, this.#fill), metadata);
    this.#pendingStored = true;
  }

  async #commit(directoryRemovedNext: boolean): Promise<void> {
    await this.#writing;
    await this.#sending;
    const tail = this.#buffer.subarray(0, this.#fill);
    if (this.#session === undefined) {
      // A plain upload stores the whole body or fails.
      if (tail.length !== this.#size) throw new Error(`gcs: ${this.#key}: ${tail.length} bytes to store, expected ${this.#size}`);
      await this.#b.putBytes(this.#key, tail);
    } else {
      const stored = await this.#b.putChunk(this.#session, this.#offset, tail, this.#size);
      if (stored !== this.#size) throw new Error(`gcs: ${this.#key}: stored ${stored} bytes, expected ${this.#size}`);
      this.#offset = stored;
      this.#session = undefined;
    }
    this.#buffer = Buffer.alloc(0);
    this.#fill = 0;
    if (this.#pendingStored && !directoryRemovedNext) await this.#b.deleteKey(pendingKey(this.#key));
    this.#pendingStored = false;
  }
}
