import { releaseChunk } from "../native/release-buffer.js";

export interface WriteBufferPoolOptions {
  /** Bytes per buffer while few are out: one large write per buffer keeps a single fast upload at disk speed. */
  largeSize: number;
  /** Bytes per buffer once `largeBudget` is used up. */
  smallSize: number;
  /** Most bytes out in large buffers at once. */
  largeBudget: number;
  /** Buffers of each size kept for reuse once given back; more are freed. */
  maxIdle: number;
}

/**
 * Reusable buffers for the filesystem writer, which copies every chunk it is given into one of
 * these. Holding the caller's chunks until a write finishes instead kept them alive long enough
 * for V8 to promote them, and promoted buffers wait for a full garbage collection; copies into
 * reused buffers are never garbage at all, and the caller can free its chunk at once.
 *
 * Memory stays bounded by use, not by the number of uploads: buffers are large until
 * `largeBudget` bytes of them are out, then small. Fifty concurrent pushes each hold two buffers;
 * at 256 KiB apiece that was 25 MiB, a quarter of berth's peak memory.
 */
export class WriteBufferPool {
  readonly #idle = new Map<number, Buffer[]>();
  #largeOut = 0;

  constructor(readonly options: WriteBufferPoolOptions) {
    for (const size of [options.largeSize, options.smallSize]) this.#idle.set(size, []);
  }

  /** Buffers waiting for reuse. */
  get idle(): number {
    let count = 0;
    for (const buffers of this.#idle.values()) count += buffers.length;
    return count;
  }

  take(): Buffer {
    const { largeSize, smallSize, largeBudget } = this.options;
    const size = this.#largeOut + largeSize <= largeBudget ? largeSize : smallSize;
    if (size === largeSize) this.#largeOut += largeSize;
    return this.#idle.get(size)!.pop() ?? Buffer.allocUnsafeSlow(size);
  }

  /** Gives back a buffer from take(); the caller must not use it afterwards. */
  give(buffer: Buffer): void {
    const idle = this.#idle.get(buffer.length);
    if (idle === undefined) throw new Error(`not a buffer of this pool: ${buffer.length} bytes`);
    if (buffer.length === this.options.largeSize) this.#largeOut -= buffer.length;
    if (idle.length < this.options.maxIdle) idle.push(buffer);
    else releaseChunk(buffer);
  }
}
