import { loadAddon } from "./load-addon.js";

interface HeapTrimAddon {
  /** On the threadpool: malloc_trim when at least `minFreeBytes` lie free in the C heap. */
  trim(minFreeBytes: number): Promise<boolean>;
}

const addon = loadAddon<HeapTrimAddon>("heap_trim", (candidate) => typeof candidate.trim === "function");

/** Whether the C heap's free memory can be returned here (the addon was built). */
export const canTrimHeap = addon !== undefined;

/**
 * Returns the free pages of the C heap (glibc's malloc) to the system when at least `minFreeBytes`
 * lie free in it, off the event loop; resolves to whether it did. Without the addon, or off glibc,
 * it does nothing and resolves to false.
 */
export function trimHeap(minFreeBytes: number): Promise<boolean> {
  return addon === undefined ? Promise.resolve(false) : addon.trim(minFreeBytes);
}
