/** The FileWriter of the azure driver: staged blocks of a block blob, which any later session can continue. */
import type { BlockBlobClient } from "@azure/storage-blob";
import type { CommitOptions, FileWriter } from "../storage-driver.js";
import type { BlobContainer } from "./blob-container.js";
import { blockId, type Block, type WriterState } from "./block-session.js";

type Phase = "open" | "closed" | "committed" | "cancelled";

const KiB = 1024;

/**
 * Bytes are gathered up to the block size, then staged as one block (Put Block) while the next
 * one fills: at most two blocks in memory, and awaiting `write` is the backpressure. Blocks are
 * staged one after another, so a session's blocks never have a gap (block-session.ts).
 *
 * `close()` stages what is gathered, however small (the service has no minimum block size), and
 * leaves the blocks uncommitted: nothing is visible at the path, and a later `writer(path, true)`
 * on any node finds them with Get Block List. `commit()` stages the rest and commits the block list
 * (Put Block List), which makes the whole content visible at once and drops every other staged
 * block of the name. `cancel()` removes the blob and every staged block.
 */
export class BlockWriter implements FileWriter {
  readonly #c: BlobContainer;
  readonly #name: string;
  readonly #blob: BlockBlobClient;
  readonly #blockSize: number;
  readonly #state: WriterState;
  #phase: Phase = "open";
  #size: number;
  /** True once this session has staged or gathered anything, or must drop what was there. */
  #dirty: boolean;
  #buffer: Buffer = Buffer.alloc(0);
  #fill = 0;
  #free: Buffer[] = [];
  #writing: Promise<void> = Promise.resolve();
  #chain: Promise<void> = Promise.resolve();
  #queued: Array<Promise<void>> = [];
  #error: unknown;
  #finished: Promise<void> = Promise.resolve();

  constructor(container: BlobContainer, name: string, state: WriterState) {
    this.#c = container;
    this.#name = name;
    this.#blob = container.blob(name);
    this.#blockSize = container.o.blockSize;
    this.#state = state;
    this.#size = state.committedBytes + state.staged.reduce((sum, block) => sum + block.size, 0);
    this.#dirty = state.leftovers;
  }

  get size(): number {
    return this.#size;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#phase !== "open") return Promise.reject(new Error(`writer is ${this.#phase}: ${this.#name}`));
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (chunk.byteLength === 0) return this.#writing;
    this.#dirty = true;
    this.#size += chunk.byteLength;
    // Chained, so that writes not awaited keep their order while one waits for a free buffer.
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

  commit(_options?: CommitOptions): Promise<void> {
    if (this.#phase === "committed") return this.#finished;
    if (this.#phase !== "open") return Promise.reject(new Error(`cannot commit a ${this.#phase} writer: ${this.#name}`));
    this.#phase = "committed";
    this.#finished = this.#commit().catch((err: unknown) => {
      // It can still be cancelled; a later writer resumes from what was staged.
      this.#phase = "closed";
      throw err;
    });
    return this.#finished;
  }

  cancel(): Promise<void> {
    if (this.#phase === "cancelled") return this.#finished;
    if (this.#phase === "committed") return Promise.reject(new Error(`writer already committed: ${this.#name}`));
    const previous = this.#finished;
    this.#phase = "cancelled";
    this.#finished = (async () => {
      await previous.catch(() => undefined);
      await this.#writing.catch(() => undefined);
      await this.#chain.catch(() => undefined);
      this.#buffer = Buffer.alloc(0);
      this.#fill = 0;
      await this.#c.removeBlob(this.#name);
    })();
    return this.#finished;
  }

  /**
   * Stages, first of all, the bytes of a committed blob this writer continues without being able
   * to name its blocks (one written whole, or an append blob): read once, through the writer.
   */
  async restage(read: () => Promise<AsyncIterable<Uint8Array>>): Promise<void> {
    if (this.#state.restage === undefined || this.#state.restage === 0) return;
    for await (const chunk of await read()) await this.write(chunk);
    if (this.#size !== this.#state.restage) throw new Error(`azure: ${this.#name}: read ${this.#size} bytes of a blob of ${this.#state.restage}`);
  }

  async #absorb(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.byteLength && this.#phase !== "cancelled") {
      const take = Math.min(chunk.byteLength - offset, this.#blockSize - this.#fill);
      this.#reserve(this.#fill + take);
      this.#buffer.set(chunk.subarray(offset, offset + take), this.#fill);
      this.#fill += take;
      offset += take;
      if (this.#fill === this.#blockSize) {
        this.#queueBlock(this.#takeBuffer());
        if (this.#queued.length >= 2) await this.#queued[this.#queued.length - 2];
      }
    }
  }

  /** Grows the buffer geometrically up to the block size, so small writers stay small. */
  #reserve(needed: number): void {
    if (this.#buffer.length >= needed) return;
    const capacity = Math.min(this.#blockSize, Math.max(needed, 64 * KiB, this.#buffer.length * 2));
    const grown = (capacity === this.#blockSize ? this.#free.pop() : undefined) ?? Buffer.allocUnsafe(capacity);
    this.#buffer.copy(grown, 0, 0, this.#fill);
    this.#buffer = grown;
  }

  #takeBuffer(): Buffer {
    const bytes = this.#buffer.subarray(0, this.#fill);
    this.#buffer = Buffer.alloc(0);
    this.#fill = 0;
    return bytes;
  }

  /** Stages `bytes` as the next block once the blocks queued before it are staged. */
  #queueBlock(bytes: Buffer): void {
    const link = this.#chain.then(async () => {
      const block: Block = { id: blockId(this.#state.session, this.#state.staged.length), size: bytes.byteLength };
      await this.#blob.stageBlock(block.id, bytes, bytes.byteLength);
      this.#state.staged.push(block);
      if (bytes.byteOffset === 0 && bytes.buffer.byteLength >= this.#blockSize && this.#free.length < 2) {
        this.#free.push(Buffer.from(bytes.buffer, 0, this.#blockSize));
      }
    });
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

  async #stageRest(): Promise<void> {
    await this.#writing;
    if (this.#fill > 0) this.#queueBlock(this.#takeBuffer());
    await this.#chain;
  }

  /**
   * close(): everything gathered becomes a block. A writer without `append` that staged nothing
   * must still hide what was there from the next session: it removes it.
   */
  async #persist(): Promise<void> {
    await this.#stageRest();
    if (this.#dirty && this.#state.staged.length === 0 && this.#state.committed.length === 0) {
      await this.#c.removeBlob(this.#name);
    }
  }

  async #commit(): Promise<void> {
    await this.#stageRest();
    if (!this.#dirty && this.#state.staged.length === 0) return; // a committed blob reopened and left as it was
    await this.#blob.commitBlockList([...this.#state.committed, ...this.#state.staged.map((block) => block.id)]);
    // Committed blocks are kept by name by a next session; its own start a new session.
    this.#state.committed.push(...this.#state.staged.map((block) => block.id));
    this.#state.committedBytes = this.#size;
    this.#state.staged = [];
  }
}
