import { performance } from "node:perf_hooks";

/**
 * Liveness judged by one observer's own monotonic clock: an object (a lease) is dead once its
 * content has not changed for `expireMs` of this process's time while it watched. No timestamp
 * written by another machine is ever compared with this machine's clock, so clock skew between
 * nodes does not matter; only clock *rate* does (docs/garbage-collection.md, "Timing").
 */
export class ObjectWatch {
  private readonly seen = new Map<string, { content: string; sinceMs: number }>();

  constructor(
    private readonly expireMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Records what `path` holds now (undefined: absent). Returns true when it changed (or is new). */
  observe(path: string, content: string | undefined): boolean {
    const value = content ?? "\u0000absent";
    const known = this.seen.get(path);
    if (known?.content === value) return false;
    this.seen.set(path, { content: value, sinceMs: this.now() });
    return true;
  }

  /** True once `path` was observed unchanged for the expiry; false for a path never observed. */
  expired(path: string): boolean {
    const known = this.seen.get(path);
    return known !== undefined && this.now() - known.sinceMs >= this.expireMs;
  }

  /** How long `path` has been unchanged, in ms (0 when never observed). */
  unchangedFor(path: string): number {
    const known = this.seen.get(path);
    return known === undefined ? 0 : this.now() - known.sinceMs;
  }

  forget(path: string): void {
    this.seen.delete(path);
  }
}
