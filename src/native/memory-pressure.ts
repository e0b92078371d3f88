import { loadAddon } from "./load-addon.js";

interface MemoryPressureAddon {
  moderate(): void;
}

const addon = loadAddon<MemoryPressureAddon>("memory_pressure", (candidate) => typeof candidate.moderate === "function");

/** Whether the JavaScript heap can be asked to shrink here (the addon was built). */
export const canReduceHeap = addon !== undefined;

/**
 * native/memory_pressure.cc: starts an incremental collection of the JavaScript heap that compacts
 * it and returns the pages it empties to the system; it finishes in steps on the event loop.
 * Answers whether it could be asked (false without the addon).
 */
export function reduceHeap(): boolean {
  if (addon === undefined) return false;
  addon.moderate();
  return true;
}
