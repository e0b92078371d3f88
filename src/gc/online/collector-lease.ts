import { hostname } from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { StorageDriver } from "../../driver/storage-driver.js";
import { getContentIfPresent, isPathNotFound } from "../../driver/storage-driver.js";
import { COLLECTOR_LEASE_PATH } from "./gc-paths.js";
import { ObjectWatch } from "./object-watch.js";
import type { GcTiming } from "./timing.js";

/** The content of `/berth/gc/lease`. `renewals` makes every renewal a change watchers can see. */
export interface CollectorLeaseRecord {
  holder: string;
  pid: number;
  host: string;
  renewals: number;
}

/** Another collector holds a live lease: this one does not run. */
export class CollectorBusyError extends Error {
  constructor(readonly current: CollectorLeaseRecord | undefined) {
    super(
      `another online collection holds the collector lease ${COLLECTOR_LEASE_PATH}` +
        (current ? ` (holder ${current.holder}, pid ${current.pid} on host ${current.host})` : "") +
        `; it is live while it keeps renewing it`,
    );
    this.name = "CollectorBusyError";
  }
}

/** The collector's lease is no longer fresh enough (or was taken over): it must not delete anything. */
export class CollectorFencedError extends Error {
  constructor(reason: string) {
    super(`online collection stopped before deleting: ${reason}`);
    this.name = "CollectorFencedError";
  }
}

/**
 * One collector at a time across every node sharing the storage. A node takes the lease when it
 * is absent, or after watching it unchanged for T_expire of its own monotonic clock (its holder
 * died). The holder renews it every `collectorRenewMs` and deletes only while its last successful
 * renewal *started* less than T_self ago (`assertHeld`): a watcher saw that renewal's content no
 * earlier than it started, so when a watcher declares the holder dead (T_expire > T_self later on
 * its clock), the holder has stopped deleting.
 *
 * Without conditional writes two nodes that take an expired lease at the same moment both write
 * it; each reads it back a moment later (a renewal interval, at most 1 s) and the one that finds
 * the other's record gives up, and every renewal checks the record is still its own (see
 * docs/garbage-collection.md for the window that remains).
 */
export class CollectorLease {
  private renewals = 0;
  private lastRenewStart = -Infinity;
  private lost: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private released = false;

  private constructor(
    private readonly driver: StorageDriver,
    readonly holder: string,
    private readonly timing: GcTiming,
  ) {}

  /**
   * Takes the lease, waiting up to T_expire to learn whether a present one is dead.
   * CollectorBusyError when another holder renews it meanwhile or wins a simultaneous takeover.
   */
  static async acquire(driver: StorageDriver, holder: string, timing: GcTiming): Promise<CollectorLease> {
    const watch = new ObjectWatch(timing.leaseExpireMs);
    let current = await readLease(driver);
    if (current !== undefined) {
      watch.observe(COLLECTOR_LEASE_PATH, JSON.stringify(current));
      const pollMs = Math.min(timing.collectorRenewMs, timing.activePollMs * 5);
      while (!watch.expired(COLLECTOR_LEASE_PATH)) {
        await sleep(pollMs);
        current = await readLease(driver);
        if (current === undefined) break; // released meanwhile
        if (watch.observe(COLLECTOR_LEASE_PATH, JSON.stringify(current))) throw new CollectorBusyError(current);
      }
    }
    const lease = new CollectorLease(driver, holder, timing);
    await lease.renew();
    // A simultaneous taker wrote too: the later write stands, and both read it back before going on.
    await sleep(Math.min(timing.collectorRenewMs, 1_000));
    const after = await readLease(driver);
    if (after?.holder !== holder) {
      lease.released = true;
      throw new CollectorBusyError(after);
    }
    lease.schedule();
    return lease;
  }

  /** True while deleting is safe: the last renewal started within T_self and the lease is still ours. */
  canDelete(): boolean {
    return this.lost === undefined && !this.released && performance.now() - this.lastRenewStart < this.timing.collectorFenceMs;
  }

  /** Throws CollectorFencedError unless `canDelete()`. */
  assertHeld(): void {
    if (this.lost !== undefined) throw new CollectorFencedError(this.lost);
    if (!this.canDelete()) {
      throw new CollectorFencedError(`the collector lease was last renewed ${Math.round(performance.now() - this.lastRenewStart)} ms ago`);
    }
  }

  /** Stops renewing and removes the lease if it is still this holder's. Safe to call more than once. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer) clearTimeout(this.timer);
    await this.renewing;
    try {
      if ((await readLease(this.driver))?.holder === this.holder) await this.driver.delete(COLLECTOR_LEASE_PATH);
    } catch (err) {
      if (!isPathNotFound(err)) throw err;
    }
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.renewing = this.checkAndRenew()
        .catch(() => {
          // A failed renewal is not fatal: assertHeld fences once renewals stay failed for T_self.
        })
        .finally(() => {
          this.renewing = undefined;
          if (!this.released) this.schedule();
        });
    }, this.timing.collectorRenewMs);
    this.timer.unref();
  }

  private async checkAndRenew(): Promise<void> {
    const current = await readLease(this.driver);
    if (current?.holder !== this.holder) {
      this.lost = `the collector lease was taken over by ${current?.holder ?? "nobody (removed)"}`;
      return;
    }
    await this.renew();
  }

  private async renew(): Promise<void> {
    if (this.released || this.lost !== undefined) return;
    const started = performance.now();
    this.renewals++;
    const record: CollectorLeaseRecord = { holder: this.holder, pid: process.pid, host: hostname(), renewals: this.renewals };
    await this.driver.putContent(COLLECTOR_LEASE_PATH, Buffer.from(`${JSON.stringify(record)}\n`), { durable: false });
    this.lastRenewStart = started;
  }
}

export async function readLease(driver: StorageDriver): Promise<CollectorLeaseRecord | undefined> {
  const content = await getContentIfPresent(driver, COLLECTOR_LEASE_PATH);
  if (content === undefined) return undefined;
  try {
    const value = JSON.parse(content.toString("utf8")) as CollectorLeaseRecord;
    if (typeof value.holder === "string") return value;
  } catch {
    // unreadable: treated as a holder nobody is, so it must expire before anyone takes over
  }
  return { holder: `unreadable:${content.toString("hex").slice(0, 32)}`, pid: 0, host: "?", renewals: 0 };
}
