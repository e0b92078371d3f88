import { setTimeout as sleep } from "node:timers/promises";
import type { StorageDriver, Visitor } from "../../driver/storage-driver.js";

/**
 * How much work (wall time) passes between two looks at the CPU clock: short, so that what the
 * collector runs flat out before a pause is a burst of milliseconds beside the requests.
 */
const WINDOW_MS = 10;
/**
 * A pause is at most this many times the window it follows, so the collector keeps a tenth of its
 * unpaced speed however busy its process is (inside `berth serve` the process's CPU includes the
 * requests it serves): a collection under constant load still ends.
 */
const MAX_PAUSE_FACTOR = 9;

function processCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * Keeps an online collection under a share of one core. Before each storage operation the
 * collector asks for its turn; once per WINDOW_MS of wall time the process's CPU time is compared
 * with `share` of that wall time, and the collector pauses for as long as brings the window back to
 * `share`. The measure is the whole process's CPU: exactly the collector's in `berth
 * garbage-collect --online`; inside `berth serve` it includes the requests served, so a busy node
 * collects more slowly and an idle one at `share` (never slower than a tenth of the unpaced speed).
 */
export class CpuPace {
  /** Milliseconds spent paused so far. */
  pausedMs = 0;
  private windowStart = performance.now();
  private cpuStart = processCpuMs();
  private pausing: Promise<void> | undefined;

  /** `signal`: once aborted, every turn throws its reason, so the collection unwinds at its next storage call. */
  constructor(
    private readonly share: number,
    private readonly signal?: AbortSignal,
  ) {
    if (!(share > 0 && share <= 1)) throw new RangeError(`CPU share must be in (0, 1], got ${share}`);
  }

  /** undefined: go on now; a promise: go on once it resolves. Throws once the signal is aborted. */
  turn(): Promise<void> | undefined {
    this.signal?.throwIfAborted();
    if (this.pausing !== undefined) return this.pausing;
    if (this.share === 1) return undefined;
    const now = performance.now();
    const elapsed = now - this.windowStart;
    if (elapsed < WINDOW_MS) return undefined;
    const used = processCpuMs() - this.cpuStart;
    const pause = Math.min(used / this.share - elapsed, MAX_PAUSE_FACTOR * elapsed);
    if (pause < 1) {
      this.restart();
      return undefined;
    }
    this.pausedMs += pause;
    this.pausing = sleep(pause).then(() => {
      this.pausing = undefined;
      this.restart();
    });
    return this.pausing;
  }

  private restart(): void {
    this.windowStart = performance.now();
    this.cpuStart = processCpuMs();
  }
}

/**
 * `driver` with every call, and every entry a walk visits, waiting for the pace's turn first: the
 * collector's reads and deletes. (A visitor may return a promise: every driver's walk awaits it.)
 */
export function pacedDriver(driver: StorageDriver, pace: CpuPace): StorageDriver {
  return new Proxy(driver, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      const method = value as (...args: unknown[]) => unknown;
      if (property === "walk") {
        return async (path: string, visit: Visitor, ...rest: unknown[]) => {
          await pace.turn();
          const pacedVisit: Visitor = (info) => {
            const wait = pace.turn();
            return wait === undefined ? visit(info) : wait.then(() => visit(info));
          };
          return method.call(target, path, pacedVisit, ...rest);
        };
      }
      return async (...args: unknown[]) => {
        await pace.turn();
        return method.apply(target, args);
      };
    },
  });
}
