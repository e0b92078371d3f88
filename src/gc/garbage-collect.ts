import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import { mark, type UnreadableManifest } from "./mark.js";
import type { GcProgress } from "./progress.js";
import { LEASE_FRESH_MS, RegistryLease, describeLease, readLeases, type LeaseStatus } from "./registry-lease.js";
import { describePlan, executeSweep, planSweep } from "./sweep.js";

export interface GcOptions {
  dryRun: boolean;
  deleteUntagged: boolean;
}

export interface GcSummary {
  dryRun: boolean;
  deleteUntagged: boolean;
  repositories: number;
  manifestsScanned: number;
  blobsMarked: number;
  /** Deleted, or (dry run, or refused sweep) that would be. */
  manifestsDeleted: number;
  blobsDeleted: number;
  bytesDeleted: number;
  layerLinksRemoved: number;
  /** Hidden leftovers of interrupted writes and deletes removed (drivers with removeTemporaries). */
  temporariesRemoved: number;
  /** Deletions that failed; the rest of the sweep went on. */
  failures: number;
  warnings: number;
  /** Manifests that could not be parsed. When any, nothing is deleted. */
  unreadable: UnreadableManifest[];
  /** True when something was (or, in a dry run, would have been) stopped: see `unreadable`. */
  sweepRefused: boolean;
}

/** A registry that may write, or another collection, is running on this storage. */
export class StorageInUseError extends Error {
  constructor(readonly leases: LeaseStatus[]) {
    const collecting = leases.some((lease) => lease.role === "garbage-collect");
    super(
      `refusing to collect garbage: ${collecting ? "this storage is in use" : "a registry that writes to this storage is running"}:\n` +
        leases.map((lease) => `  ${describeLease(lease)}\n`).join("") +
        `Stop the registry, or restart it read-only (storage.maintenance.readonly.enabled: true)` +
        `${collecting ? ", or wait for the other collection to finish" : ""}, and run garbage-collect again.\n` +
        `A lease is live while refreshed within the last ${LEASE_FRESH_MS / 1000} s: ` +
        `a process that was killed stops counting ${LEASE_FRESH_MS / 1000} s after its last refresh.`,
    );
    this.name = "StorageInUseError";
  }
}

/**
 * Mark and sweep, as distribution's `registry garbage-collect` does, on the same tree.
 *
 * Writable registries and other collections (live leases) stop it before it starts and again
 * before it deletes anything; a dry run only warns (and takes no lease: it writes nothing). A
 * manifest that cannot be parsed stops the sweep (nothing is deleted), naming it: its references
 * cannot be known.
 */
export async function garbageCollect(driver: StorageDriver, options: GcOptions, progress: GcProgress): Promise<GcSummary> {
  // A collection that deletes announces itself first, so a writable registry will not start now.
  const lease = options.dryRun
    ? undefined
    : await RegistryLease.acquire(driver, {
        role: "garbage-collect",
        readOnly: false,
        log: { warn: (_fields, message) => progress.warn(message), error: (_fields, message) => progress.warn(message) },
      }).catch((err: unknown) => {
        throw new Error(`cannot write the collection's lease (is the storage writable?): ${err instanceof Error ? err.message : String(err)}`, {
          cause: err,
        });
      });
  try {
    return await collect(driver, options, progress, lease?.path);
  } finally {
    await lease?.release();
  }
}

async function collect(driver: StorageDriver, options: GcOptions, progress: GcProgress, ownLease: string | undefined): Promise<GcSummary> {
  const collectionStarted = new Date();
  await checkLeases(driver, options, progress, true, ownLease);
  const marked = await mark(driver, { deleteUntagged: options.deleteUntagged }, progress);
  progress.update({ repositories: marked.repositories.length, manifests: marked.manifests, blobsMarked: marked.marked.size });
  progress.info(
    `marked ${marked.marked.size} blobs in ${marked.repositories.length} repositories (${marked.manifests} manifests scanned)`,
  );
  const plan = await planSweep(driver, marked, progress);
  const summary: GcSummary = {
    dryRun: options.dryRun,
    deleteUntagged: options.deleteUntagged,
    repositories: marked.repositories.length,
    manifestsScanned: marked.manifests,
    blobsMarked: marked.marked.size,
    manifestsDeleted: plan.manifests.length,
    blobsDeleted: plan.blobs.length,
    bytesDeleted: plan.bytes,
    layerLinksRemoved: plan.layerLinks.length,
    temporariesRemoved: 0,
    failures: 0,
    warnings: 0,
    unreadable: marked.unreadable,
    sweepRefused: marked.unreadable.length > 0,
  };
  for (const entry of marked.unreadable) {
    progress.warn(`cannot read manifest ${entry.repository}@${entry.digest}: ${entry.reason}`);
  }
  if (options.dryRun || summary.sweepRefused) {
    describePlan(plan, progress);
  } else {
    await checkLeases(driver, options, progress, false, ownLease);
    const swept = await executeSweep(driver, plan, progress);
    Object.assign(summary, swept);
  }
  if (!options.dryRun && driver.removeTemporaries) {
    // Every one, whatever its age: the lease keeps writing registries from running meanwhile, so
    // any temporary name that existed when the collection started belongs to an operation a kill
    // cut short.
    summary.temporariesRemoved = await driver.removeTemporaries(collectionStarted);
    if (summary.temporariesRemoved > 0) progress.info(`removed ${summary.temporariesRemoved} temporary files left by interrupted writes`);
  }
  progress.update({ phase: "done" });
  progress.finish();
  summary.warnings = progress.warnings;
  return summary;
}

async function checkLeases(
  driver: StorageDriver,
  options: GcOptions,
  progress: GcProgress,
  first: boolean,
  ownLease: string | undefined,
): Promise<void> {
  const leases = await readLeases(driver, new Date(), ownLease);
  const live = leases.filter((lease) => lease.fresh && lease.writable);
  if (live.length > 0) {
    if (!options.dryRun) throw new StorageInUseError(live);
    if (first) {
      for (const lease of live) {
        progress.warn(`storage in use (${describeLease(lease)}): the dry run's figures may be out of date by the time you collect`);
      }
    }
  }
  if (!first) return;
  const seconds = LEASE_FRESH_MS / 1000;
  for (const lease of leases.filter((l) => l.fresh && !l.writable)) {
    progress.info(`running beside a read-only registry: ${describeLease(lease)}`);
  }
  for (const lease of leases.filter((l) => !l.fresh)) {
    if (options.dryRun) {
      progress.info(`ignoring stale lease (no refresh in ${seconds} s): ${describeLease(lease)}`);
      continue;
    }
    try {
      await driver.delete(lease.path);
      progress.info(`removed stale lease (no refresh in ${seconds} s): ${describeLease(lease)}`);
    } catch (err) {
      if (!isPathNotFound(err)) throw err;
    }
  }
}
