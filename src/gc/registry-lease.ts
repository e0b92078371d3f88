import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";

/** Where a lease reports trouble refreshing itself (a pino logger fits). */
export interface LeaseLog {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/**
 * A running `berth serve` announces itself in the storage it serves, so that `berth
 * garbage-collect` can tell whether someone is writing there: a small JSON file per process,
 * refreshed every LEASE_REFRESH_MS and removed on a clean shutdown. A lease refreshed within
 * LEASE_FRESH_MS is live; one older than that belongs to a process that stopped without cleaning
 * up (killed, crashed, lost its storage) and is ignored.
 *
 * A collection that deletes takes a lease too (role "garbage-collect"), and each side writes its
 * own lease before it looks for the other's: a writable registry does not start while a
 * collection runs, a collection does not start while a writable registry runs, and two that start
 * at the same moment both see each other and both refuse, never both proceed.
 *
 * Leases live beside distribution's tree, not in it: distribution only ever reads and writes under
 * /docker/registry/v2, so it neither sees nor trips over /berth. They go through the storage driver,
 * so every node sharing an object store sees every other node's lease.
 */
export const LEASES_ROOT = "/berth/leases";
/** Twice a minute: an idle node's only steady S3 request (an object store bills each one). */
export const LEASE_REFRESH_MS = 30_000;
/** Three refreshes: one slow or failed write does not make a live process look gone. */
export const LEASE_FRESH_MS = 90_000;

export type LeaseRole = "serve" | "garbage-collect";

export interface LeaseRecord {
  /** Absent in a lease means "serve". */
  role: LeaseRole;
  pid: number;
  host: string;
  /** ISO 8601. */
  startedAt: string;
  refreshedAt: string;
  /** A read-only registry writes nothing: the collector may run beside it. */
  readOnly: boolean;
}

export function leasePath(nodeId: string): string {
  return `${LEASES_ROOT}/${nodeId}`;
}

/** The lease a process holds while it serves (or collects). */
export class RegistryLease {
  private timer: NodeJS.Timeout | undefined;
  private released = false;
  private refreshing: Promise<void> | undefined;

  private constructor(
    private readonly driver: StorageDriver,
    readonly path: string,
    private readonly record: LeaseRecord,
    private readonly log: LeaseLog,
    private readonly refreshMs: number,
  ) {}

  /**
   * Writes the lease and keeps it fresh. Throws when it cannot be written: a registry that would
   * write to storage must not run unannounced (a collector would delete what it is pushing).
   */
  static async acquire(
    driver: StorageDriver,
    options: { readOnly: boolean; log: LeaseLog; role?: LeaseRole; refreshMs?: number; nodeId?: string },
  ): Promise<RegistryLease> {
    const now = new Date().toISOString();
    const lease = new RegistryLease(
      driver,
      leasePath(options.nodeId ?? randomBytes(8).toString("hex")),
      { role: options.role ?? "serve", pid: process.pid, host: hostname(), startedAt: now, refreshedAt: now, readOnly: options.readOnly },
      options.log,
      options.refreshMs ?? LEASE_REFRESH_MS,
    );
    await lease.write();
    lease.schedule();
    return lease;
  }

  /** Stops refreshing and removes the lease. Safe to call more than once. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer) clearTimeout(this.timer);
    await this.refreshing;
    try {
      await this.driver.delete(this.path);
    } catch (err) {
      if (!isPathNotFound(err)) this.log.warn({ err, lease: this.path }, "could not remove the registry lease");
    }
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.refreshing = this.write()
        .catch((err: unknown) => {
          this.log.error({ err, lease: this.path }, "could not refresh the registry lease; garbage-collect may not see this registry");
        })
        .finally(() => {
          this.refreshing = undefined;
          if (!this.released) this.schedule();
        });
    }, this.refreshMs);
    this.timer.unref();
  }

  private async write(): Promise<void> {
    if (this.released) return;
    this.record.refreshedAt = new Date().toISOString();
    // Not durable: after a machine crash the registry that wrote it is gone as well.
    await this.driver.putContent(this.path, Buffer.from(`${JSON.stringify(this.record)}\n`), { durable: false });
  }
}

/** A collection is running: a writable registry must not start beside it. */
export class CollectionRunningError extends Error {
  constructor(readonly leases: LeaseStatus[]) {
    super(
      `garbage-collect is running on this storage; a registry that writes must not start beside it:\n` +
        leases.map((lease) => `  ${describeLease(lease)}\n`).join("") +
        `Start it when the collection has finished, or read-only (storage.maintenance.readonly.enabled: true) now.`,
    );
    this.name = "CollectionRunningError";
  }
}

/**
 * The lease of `berth serve`. A writable registry writes it, then refuses to start
 * (CollectionRunningError, its lease removed) while a collection holds a live lease.
 */
export async function acquireServeLease(
  driver: StorageDriver,
  options: { readOnly: boolean; log: LeaseLog; nodeId?: string; refreshMs?: number },
): Promise<RegistryLease> {
  const lease = await RegistryLease.acquire(driver, { readOnly: options.readOnly, log: options.log, role: "serve", nodeId: options.nodeId, refreshMs: options.refreshMs });
  if (options.readOnly) return lease;
  const collections = (await readLeases(driver, new Date(), lease.path)).filter((l) => l.fresh && l.role === "garbage-collect");
  if (collections.length > 0) {
    await lease.release();
    throw new CollectionRunningError(collections);
  }
  return lease;
}

/** A lease found in storage, judged. */
export interface LeaseStatus {
  path: string;
  /** Undefined when the file is not a lease berth can read. */
  record: LeaseRecord | undefined;
  modTime: Date;
  /** Refreshed within LEASE_FRESH_MS, by its own clock or the storage's. */
  fresh: boolean;
  /** Whether it announces a process that may write or delete (unreadable leases are assumed to). */
  writable: boolean;
  /** Unreadable leases are taken for registries. */
  role: LeaseRole;
}

/**
 * Every lease in storage. A lease counts as fresh when either its `refreshedAt` or the storage's
 * modification time is recent, so a clock that runs behind on one node cannot hide it.
 */
export async function readLeases(driver: StorageDriver, now = new Date(), ownPath?: string): Promise<LeaseStatus[]> {
  let paths: string[];
  try {
    paths = await driver.list(LEASES_ROOT);
  } catch (err) {
    if (isPathNotFound(err)) return [];
    throw err;
  }
  const leases: LeaseStatus[] = [];
  for (const path of paths.sort()) {
    if (path === ownPath) continue;
    let modTime: Date;
    let content: Buffer;
    try {
      const info = await driver.stat(path);
      if (info.isDir) continue;
      modTime = info.modTime;
      content = await driver.getContent(path);
    } catch (err) {
      if (isPathNotFound(err)) continue; // released meanwhile
      throw err;
    }
    const record = parseLease(content);
    const refreshed = record ? Date.parse(record.refreshedAt) : Number.NaN;
    const recent = (time: number): boolean => Number.isFinite(time) && now.getTime() - time < LEASE_FRESH_MS;
    leases.push({
      path,
      record,
      modTime,
      fresh: recent(refreshed) || recent(modTime.getTime()),
      writable: record ? !record.readOnly : true,
      role: record?.role ?? "serve",
    });
  }
  return leases;
}

function parseLease(content: Buffer): LeaseRecord | undefined {
  try {
    const value = JSON.parse(content.toString("utf8")) as Partial<LeaseRecord>;
    value.role ??= "serve";
    if (
      (value.role === "serve" || value.role === "garbage-collect") &&
      typeof value.pid === "number" &&
      typeof value.host === "string" &&
      typeof value.startedAt === "string" &&
      typeof value.refreshedAt === "string" &&
      typeof value.readOnly === "boolean"
    ) {
      return value as LeaseRecord;
    }
  } catch {
    // not JSON: an unreadable lease
  }
  return undefined;
}

/** "berth serve, pid 4242 on host build-7, started …, refreshed … [path]" for messages. */
export function describeLease(lease: LeaseStatus): string {
  if (!lease.record) return `${lease.path} (unreadable, modified ${lease.modTime.toISOString()})`;
  const { role, pid, host, startedAt, refreshedAt, readOnly } = lease.record;
  const what = role === "garbage-collect" ? "garbage-collect" : `berth serve${readOnly ? " (read-only)" : ""}`;
  return `${what}, pid ${pid} on host ${host}, started ${startedAt}, refreshed ${refreshedAt} [${lease.path}]`;
}
