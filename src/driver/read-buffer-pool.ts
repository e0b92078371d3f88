/**
 * Buffers for socket reads, used again once their bytes have been sent on. A download through an
 * object store reads every byte into memory once; in fresh memory each time (Node's HTTP client
 * copies every body chunk into a new allocation), the page faults, the zeroing and the collector
 * cost more CPU than the rest of the download: 0.85–0.92 ms per MB against 0.33–0.42 with reused
 * buffers, measured reading a 120 MB object from radosgw into a socket (docs/benchmarks.md).
 *
 * A buffer handed out is either read into and given back (its bytes copied or not needed), or lent
 * with a chunk of it to a stream's consumer, which gives it back by releasing the chunk
 * (releaseChunk, once the chunk's bytes are in the kernel). A consumer that never releases its
 * chunks leaves them to the collector, and the pool makes new buffers: nothing is reused that
 * anyone may still read. A buffer comes back once at most, so no two readers ever share one.
 */
import { lendChunkMemory, type ChunkLender } from "../native/release-buffer.js";

export class ReadBufferPool implements ChunkLender {
  readonly #free: Buffer[] = [];
  /** Buffers handed out and not given back: only these are taken back. */
  readonly #out = new WeakSet<ArrayBuffer>();

  /**
   * @param size bytes of each buffer: the most one socket read takes.
   * @param maxFree buffers kept for reuse; those given back beyond are left to the collector.
   */
  constructor(
    readonly size: number,
    readonly maxFree: number,
  ) {}

  take(): Buffer {
    const buffer = this.#free.pop() ?? this.#fresh();
    this.#out.add(buffer.buffer as ArrayBuffer);
    return buffer;
  }

  giveBack(memory: ArrayBuffer): boolean {
    if (!this.#out.delete(memory)) return false;
    if (this.#free.length < this.maxFree) this.#free.push(Buffer.from(memory, 0, this.size));
    return true;
  }

  /** Buffers waiting to be used again. */
  get free(): number {
    return this.#free.length;
  }

  #fresh(): Buffer {
    // Its own ArrayBuffer (not a slice of Node's pool), so that a chunk of it names it.
    const buffer = Buffer.allocUnsafeSlow(this.size);
    lendChunkMemory(buffer.buffer as ArrayBuffer, this);
    return buffer;
  }
}
