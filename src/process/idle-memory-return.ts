import { performance, type EventLoopUtilization } from "node:perf_hooks";
import { trimHeap } from "../native/heap-trim.js";
import { reduceHeap } from "../native/memory-pressure.js";

/** How often the event loop's load is looked at. */
const CHECK_MS = 500;
/** A check interval in which the event loop was busy at most this share of the time is quiet. */
const QUIET_UTILIZATION = 0.2;
/**
 * Quiet intervals in a row before the JavaScript heap is reduced: the first one after a burst still
 * holds its end. The C heap is trimmed at the next quiet check, once that collection has freed
 * what it frees (the memory of Buffers it finds dead among it).
 */
const QUIET_CHECKS = 2;
/** Less free memory than this in the C heap is not worth a trim. */
const MIN_FREE_BYTES = 1024 * 1024;

export interface IdleMemoryReturnOptions {
  /** The event loop's utilisation since `previous` (performance.eventLoopUtilization). */
  utilization?: (previous?: EventLoopUtilization) => EventLoopUtilization;
  trim?: (minFreeBytes: number) => Promise<boolean>;
  /** Starts a collection that compacts the JavaScript heap and returns its empty pages; false when it cannot. */
  reduceHeap?: () => boolean;
}

/**
 * Gives the memory a burst of work left free back to the system once the process is quiet again.
 *
 * glibc keeps what is freed below memory still in use: after 100,000 pulls berth held 7 MiB of free
 * C heap (Buffers, V8's and libraries' own allocations) resident for as long as it ran, where
 * distribution's Go runtime returns such memory on its own. V8 likewise keeps the old generation as
 * large as the burst left it, dead objects and all, until allocation starts its next collection,
 * which in a quiet process may be never: 5-9 MiB after 100,000 pulls. Once the event loop was quiet
 * for QUIET_CHECKS intervals in a row with work done since the last time, V8 is asked for a
 * collection that compacts its heap and returns the pages it empties (native/memory_pressure.cc),
 * and at the next quiet check the C heap's free pages are handed back (malloc_trim, on the
 * threadpool). Never under load: memory freed then is about to be used again.
 */
export class IdleMemoryReturn {
  /** Trims done, and trims that found too little free to do anything. */
  trims = 0;
  skipped = 0;
  /** Collections asked of V8 to shrink its heap. */
  heapReductions = 0;
  private timer: NodeJS.Timeout | undefined;
  private last: EventLoopUtilization;
  /** Work was done since the last trim (the start is work too). */
  private busySinceTrim = true;
  private quietChecks = 0;
  /** The JavaScript heap was reduced in this quiet spell: the C heap's trim comes next. */
  private heapReduced = false;
  private trimming: Promise<void> | undefined;
  private readonly utilization: (previous?: EventLoopUtilization) => EventLoopUtilization;
  private readonly trim: (minFreeBytes: number) => Promise<boolean>;
  private readonly reduceHeap: () => boolean;

  constructor(options: IdleMemoryReturnOptions = {}) {
    this.utilization = options.utilization ?? ((previous) => performance.eventLoopUtilization(previous));
    this.trim = options.trim ?? trimHeap;
    this.reduceHeap = options.reduceHeap ?? reduceHeap;
    this.last = this.utilization();
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  /**
   * One look at the load since the previous one: when it was quiet after work, reduces the
   * JavaScript heap, then (at the next quiet look) trims the C heap.
   */
  check(): Promise<void> | undefined {
    const now = this.utilization();
    const since = this.utilization(this.last);
    this.last = now;
    if (since.utilization > QUIET_UTILIZATION) {
      this.busySinceTrim = true;
      this.quietChecks = 0;
      this.heapReduced = false;
      return undefined;
    }
    if (++this.quietChecks < QUIET_CHECKS || !this.busySinceTrim || this.trimming) return undefined;
    // Without the addon nothing is reduced, and the trim comes at once.
    if (!this.heapReduced && this.reduceHeap()) {
      this.heapReduced = true;
      this.heapReductions++;
      return undefined;
    }
    this.busySinceTrim = false;
    this.heapReduced = false;
    this.trimming = this.trim(MIN_FREE_BYTES)
      .then(
        (trimmed) => {
          if (trimmed) this.trims++;
          else this.skipped++;
        },
        // A trim that fails costs nothing but the memory it would have returned.
        () => {
          this.skipped++;
        },
      )
      .finally(() => {
        this.trimming = undefined;
      });
    return this.trimming;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.trimming;
  }
}
