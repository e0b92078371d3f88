import { loadAddon } from "./load-addon.js";

interface ReleaseBufferAddon {
  /** Detaches the ArrayBuffer, which frees its memory when nothing else shares it; false if not detachable. */
  release(buffer: ArrayBuffer): boolean;
}

const addon = loadAddon<ReleaseBufferAddon>("release_buffer", (candidate) => typeof candidate.release === "function");

/** What lends a chunk's memory (a ReadBufferPool): a released chunk goes back to it. */
export interface ChunkLender {
  /** Takes the memory back; false when it was not out on loan (never lent, or given back already). */
  giveBack(buffer: ArrayBuffer): boolean;
}

const lenders = new WeakMap<ArrayBuffer, ChunkLender>();

/** Records that `buffer`'s chunks are lent by `lender`: releasing one gives the memory back to it. */
export function lendChunkMemory(buffer: ArrayBuffer, lender: ChunkLender): void {
  lenders.set(buffer, lender);
}

/** Whether chunks can be released here (the native addon was built). */
export const canReleaseChunks = addon !== undefined;

/**
 * Frees the memory behind `chunk` now, instead of whenever V8 collects it, and says whether it did.
 * A chunk whose memory a pool lent (lendChunkMemory) goes back to its pool instead, whatever part
 * of the pool's buffer it views, for the pool's next read to overwrite.
 *
 * V8 frees an ArrayBuffer's memory only when it collects the object. An upload's body chunk that
 * is still referenced while a few young-generation collections pass (its copy waiting for a flush)
 * is promoted, and then waits for a full collection, which V8 starts only after external memory
 * has grown by 64 MiB: under 50 concurrent pushes that garbage was about a third of berth's peak
 * memory.
 *
 * The caller must own the memory: afterwards every view of it is empty. Only a chunk spanning its
 * whole ArrayBuffer is released, so a view into a shared allocation (Node's pool for small
 * Buffers, an HTTP/2 session's read buffer) is left alone. Without the addon this does nothing and
 * the collector frees the chunk as before.
 */
export function releaseChunk(chunk: Uint8Array): boolean {
  const buffer = chunk.buffer;
  if (!(buffer instanceof ArrayBuffer)) return false;
  const lender = lenders.get(buffer);
  if (lender !== undefined) return lender.giveBack(buffer);
  if (addon === undefined) return false;
  if (chunk.byteOffset !== 0 || chunk.byteLength !== buffer.byteLength || buffer.byteLength === 0) return false;
  return addon.release(buffer);
}
