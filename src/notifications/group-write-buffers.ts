/** The scratch buffer's first size, and the most it grows to (larger writes get a buffer of their own). */
const SCRATCH_START_BYTES = 16 * 1024;
const SCRATCH_MAX_BYTES = 1024 * 1024;
/** Writes held for delivery are laid one after the other into slabs of this size (those over a quarter slab get a buffer of their own). */
const SLAB_BYTES = 512 * 1024;

/**
 * Where an outbox's group writes put their bytes, so that thousands of writes a second do not
 * each allocate memory outside the heap (a Buffer per write cost that allocation, and the
 * collector's work to give it back).
 */
export class GroupWriteBuffers {
  /**
   * For writes nothing is likely to hold (an endpoint down, the delivery window full): reused by
   * each write, so the write allocates nothing that outlives it. A Buffer per write outlived a
   * young-generation collection while written, and waited for a full one as external memory (10.9
   * against 4.8 MiB after 100,000 queued events). Records held after all are copied out of it.
   */
  #scratch = Buffer.allocUnsafeSlow(SCRATCH_START_BYTES);
  /** For writes held for delivery as they are: laid one after the other. */
  #slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  #slabUsed = 0;

  /** `size` bytes of the scratch buffer (one write at a time uses it), or of their own when more than it grows to. */
  transient(size: number): Buffer {
    if (size > this.#scratch.length) {
      if (size > SCRATCH_MAX_BYTES) return Buffer.allocUnsafe(size);
      this.#scratch = Buffer.allocUnsafeSlow(Math.max(size, Math.min(SCRATCH_MAX_BYTES, this.#scratch.length * 2)));
    }
    return this.#scratch.subarray(0, size);
  }

  /** `size` bytes of the current slab, or of a new one when they do not fit; of their own when more than a quarter slab. */
  held(size: number): Buffer {
    if (size > SLAB_BYTES / 4) return Buffer.allocUnsafe(size);
    if (this.#slabUsed + size > SLAB_BYTES) {
      this.#slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.#slabUsed = 0;
    }
    const start = this.#slabUsed;
    this.#slabUsed += size;
    return this.#slab.subarray(start, this.#slabUsed);
  }

  /** Whether `bytes` are the scratch buffer's, which the next write reuses. */
  isTransient(bytes: Buffer): boolean {
    return bytes.buffer === this.#scratch.buffer;
  }
}
