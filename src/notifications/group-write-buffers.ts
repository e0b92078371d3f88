/** The scratch buffer's first size, and the most it grows to (larger writes get a buffer of their own). */
const SCRATCH_START_BYTES = 16 * 1024;
const SCRATCH_MAX_BYTES = 1024 * 1024;
/** Writes held for delivery are laid one after the other into slabs of this size (those over a quarter slab get a buffer of their own). */
const SLAB_BYTES = 512 * 1024;
/** Slabs nothing holds any more, kept for the next ones: at a steady rate they come back about as fast as they fill. */
const FREE_SLABS = 2;

interface Slab {
  readonly bytes: Buffer;
  used: number;
  /** Holds on its bytes: one per chunk of records kept in memory, one per piece of a delivery being written. */
  holds: number;
}

/**
 * Where an outbox's group writes put their bytes, so that thousands of writes a second do not
 * each allocate memory outside the heap (a Buffer per write cost that allocation, and the
 * collector's work to give it back).
 *
 * Slabs are reused once nothing holds them: memory outside the heap that is allocated at 20 MB/s
 * (a slab every 25 ms at 30,000 pulls a second) made V8 run a full collection every ~250 ms,
 * three times as many as without an endpoint. Whoever keeps bytes of a slab says so with `hold`
 * and gives them back with `drop`; a hold that is never dropped only means the slab is not reused
 * (the collector frees it), so a hold is dropped only once what held it can no longer read it.
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
  #slab: Slab = { bytes: Buffer.allocUnsafeSlow(SLAB_BYTES), used: 0, holds: 0 };
  /**
   * Every slab, by its memory. Weak: a slab whose holds are never all dropped (a delivery cut
   * before its body was written) is collected once nothing refers to its bytes, instead of being
   * kept here for ever.
   */
  readonly #slabs = new WeakMap<ArrayBufferLike, Slab>([[this.#slab.bytes.buffer, this.#slab]]);
  readonly #free: Slab[] = [];

  /** `size` bytes of the scratch buffer (one write at a time uses it), or of their own when more than it grows to. */
  transient(size: number): Buffer {
    if (size > this.#scratch.length) {
      if (size > SCRATCH_MAX_BYTES) return Buffer.allocUnsafe(size);
      this.#scratch = Buffer.allocUnsafeSlow(Math.max(size, Math.min(SCRATCH_MAX_BYTES, this.#scratch.length * 2)));
    }
    return this.#scratch.subarray(0, size);
  }

  /**
   * `size` bytes of the current slab, or of the next one when they do not fit; of their own when
   * more than a quarter slab. Slab bytes come held once: drop them when they are no longer kept.
   */
  held(size: number): Buffer {
    if (size > SLAB_BYTES / 4) return Buffer.allocUnsafe(size);
    let slab = this.#slab;
    if (slab.used + size > SLAB_BYTES) slab = this.#nextSlab();
    const start = slab.used;
    slab.used += size;
    slab.holds++;
    return slab.bytes.subarray(start, slab.used);
  }

  #nextSlab(): Slab {
    const full = this.#slab;
    let next = this.#free.pop();
    if (!next) {
      next = { bytes: Buffer.allocUnsafeSlow(SLAB_BYTES), used: 0, holds: 0 };
      this.#slabs.set(next.bytes.buffer, next);
    }
    next.used = 0;
    this.#slab = next;
    if (full.holds === 0) this.#letGo(full);
    return next;
  }

  /** One more hold on `bytes`, when they are a held slab's (a delivery writing them); a free slab takes none. */
  hold(bytes: Buffer): void {
    const slab = this.#slabs.get(bytes.buffer);
    if (slab && slab.holds > 0) slab.holds++;
  }

  /** Gives back a hold on `bytes` (no-op when they are not a slab's): the last one frees the slab for reuse. */
  drop(bytes: Buffer): void {
    const slab = this.#slabs.get(bytes.buffer);
    if (!slab || slab.holds === 0 || --slab.holds > 0 || slab === this.#slab) return;
    this.#letGo(slab);
  }

  #letGo(slab: Slab): void {
    if (this.#free.length < FREE_SLABS) this.#free.push(slab);
  }

  /**
   * Forgets the free slabs (the collector gives their memory back): for while no write is held,
   * such as an endpoint that fails, when they would wait unused for as long as it does.
   */
  forgetFree(): void {
    this.#free.length = 0;
  }

  /** Slabs kept for reuse (what the tests read). */
  get freeSlabs(): number {
    return this.#free.length;
  }

  /** Whether `bytes` are a slab's, which may be reused once nothing holds it. */
  isSlab(bytes: Buffer): boolean {
    return this.#slabs.has(bytes.buffer);
  }

  /** Whether `bytes` are the scratch buffer's, which the next write reuses. */
  isTransient(bytes: Buffer): boolean {
    return bytes.buffer === this.#scratch.buffer;
  }
}
