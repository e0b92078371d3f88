import type { Logger } from "../log/logger.js";

/**
 * One look at a dependency: resolves when it is healthy, rejects with an error whose message is
 * what /debug/health shows. It should stop when `signal` aborts; one that does not is abandoned
 * all the same (its result is ignored), and no new look starts until it settles.
 */
export type Probe = (signal: AbortSignal) => Promise<void>;

export interface PeriodicCheckOptions {
  intervalMs: number;
  /** A look that takes longer fails with "timed out after …". */
  timeoutMs: number;
  /** Consecutive failures after which the check is down (1: the first failure). */
  threshold: number;
}

/**
 * A probe run every interval, down after `threshold` consecutive failures and up again at the
 * first success, as distribution's thresholdUpdater. The first look is one interval after start,
 * as distribution's ticker (start-up itself proves the storage: it writes the registry lease).
 * Its timer never keeps the process alive.
 */
export class PeriodicCheck {
  /** What /debug/health shows while the check is down; undefined while it is up. */
  error: string | undefined;
  private failures = 0;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private abort: AbortController | undefined;

  constructor(
    /** As distribution names it: "storagedriver_<driver>", the file, the URI, the address. */
    readonly name: string,
    private readonly probe: Probe,
    private readonly options: PeriodicCheckOptions,
    /** Called when the check goes down or comes back up. */
    private readonly changed: () => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.timer !== undefined) return;
    // setInterval fires at once for delays past 2^31-1 ms (~24.8 days).
    this.timer = setInterval(() => void this.runOnce(), Math.min(this.options.intervalMs, 2 ** 31 - 1));
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.abort?.abort();
  }

  /** One look, unless the previous one is still running (a slow dependency never piles up looks). */
  async runOnce(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const abort = (this.abort = new AbortController());
    let timeout: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.probe(abort.signal),
        new Promise<never>((_, reject) => {
          timeout = setTimeout(() => {
            abort.abort();
            reject(new Error(`timed out after ${formatMs(this.options.timeoutMs)}`));
          }, this.options.timeoutMs);
          timeout.unref();
        }),
      ]);
      this.record(undefined);
    } catch (err) {
      // stop() aborted it: the process is closing, nothing to report.
      if (this.stopped) return;
      this.record(err instanceof Error ? err.message : String(err));
    } finally {
      clearTimeout(timeout);
      this.running = false;
    }
  }

  private record(problem: string | undefined): void {
    const wasDown = this.error !== undefined;
    if (problem === undefined) {
      this.failures = 0;
      this.error = undefined;
    } else {
      this.failures = Math.min(this.failures + 1, this.options.threshold);
      // While down, the newest failure is the one shown; before the threshold, none is.
      if (this.failures >= this.options.threshold) this.error = problem;
    }
    const isDown = this.error !== undefined;
    if (wasDown === isDown) return;
    if (isDown) this.log.error({ check: this.name, error: this.error }, `health check ${this.name} is down after ${this.options.threshold} consecutive failure(s)`);
    else this.log.info({ check: this.name }, `health check ${this.name} is up again`);
    this.changed();
  }
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
