import { randomBytes } from "node:crypto";
import { getPriority, setPriority } from "node:os";
import { parseArgs } from "node:util";
import { CPU_SHARE_EXPECTED, parseCpuShare } from "../config/build-storage.js";
import { loadConfig } from "../config/load-config.js";
import { garbageCollect, StorageInUseError, type GcSummary } from "../gc/garbage-collect.js";
import { createProgress, formatBytes, type GcProgress } from "../gc/progress.js";
import { CollectorBusyError } from "../gc/online/collector-lease.js";
import { collectOnline, type OnlineGcSummary } from "../gc/online/online-collector.js";
import { DEFAULT_GC_TIMING, testTimingFromEnv } from "../gc/online/timing.js";
import { ManifestDeletionError } from "../gc/sweep.js";
import { createLogger } from "../log/logger.js";
import type { Config } from "../config/config.js";
import { createDriver, describeStorage, forgetSharedBlobDescriptors } from "./compose.js";

export const GC_USAGE = `Usage: berth garbage-collect [config.yml] [--dry-run] [--delete-untagged] [--online]

Deletes the blobs no manifest refers to, as distribution's "registry garbage-collect" does, on the
same storage. Progress goes to standard error, the summary to standard output.

  -d, --dry-run          report what would be deleted; delete nothing
  -m, --delete-untagged  also delete manifests no tag reaches (the children of a tagged index and
                         the referrers of a kept manifest, such as signatures, are kept)
      --online           collect while registries serve the storage: take part in berth's online
                         protocol (docs/garbage-collection.md) instead of requiring them stopped;
                         storage.maintenance.gc.graceperiod applies. Exit status 3 when another
                         online collection holds the collector lease
      --max-cpu SHARE    with --online: the share of one core the scan and the deletes may take,
                         from above 0 to 1 (unpaced); default storage.maintenance.gc.maxcpu (0.25).
                         An online collection also runs at nice 10 (or lower if started lower)
  -h, --help             print this help

Without --online it refuses to run while a registry that writes to the storage is running (berth
serve announces itself there); run it with the registry stopped or read-only
(storage.maintenance.readonly.enabled).
With storage.cache.blobdescriptor: redis, the Redis cache is cleared once something was deleted
(registries sharing it would otherwise go on describing the deleted blobs).
SIGINT or SIGTERM stops an online collection at its next storage call: it ends its run (if one was
under way) and releases the collector lease, so the next collector need not wait for it to expire.
A second signal stops it at once (while it waits to take over a dead collector's lease, only that).
Exit status: 0 done, 1 failed or stopped (nothing unsafe was deleted), 2 usage, 3 storage in use.
`;

export const EXIT_STORAGE_IN_USE = 3;

/** `berth garbage-collect …`: resolves to the process exit status. */
export async function runGarbageCollect(argv: string[]): Promise<number> {
  let values: { "dry-run"?: boolean; "delete-untagged"?: boolean; online?: boolean; "max-cpu"?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        "dry-run": { type: "boolean", short: "d" },
        "delete-untagged": { type: "boolean", short: "m" },
        online: { type: "boolean" },
        "max-cpu": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`berth garbage-collect: ${err instanceof Error ? err.message : String(err)}\n\n${GC_USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(GC_USAGE);
    return 0;
  }
  if (positionals.length > 1) {
    process.stderr.write(`berth garbage-collect: at most one configuration file, got ${positionals.length}\n\n${GC_USAGE}`);
    return 2;
  }
  if (values["max-cpu"] !== undefined && !values.online) {
    process.stderr.write(`berth garbage-collect: --max-cpu paces an online collection; give --online too\n\n${GC_USAGE}`);
    return 2;
  }
  const maxCpu = values["max-cpu"] === undefined ? undefined : parseCpuShare(values["max-cpu"]);
  if (values["max-cpu"] !== undefined && maxCpu === undefined) {
    process.stderr.write(`berth garbage-collect: --max-cpu: expected ${CPU_SHARE_EXPECTED}, got ${JSON.stringify(values["max-cpu"])}\n\n${GC_USAGE}`);
    return 2;
  }
  const { config, warnings } = await loadConfig({ file: positionals[0], env: process.env });
  for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`);
  if (config.storage.driver.kind === "inmemory") {
    process.stderr.write("berth garbage-collect: storage is inmemory: there is nothing persistent to collect\n");
    return 1;
  }
  const options = { dryRun: values["dry-run"] === true, deleteUntagged: values["delete-untagged"] === true };
  const progress = createProgress(process.stderr);
  progress.info(
    `berth garbage-collect: ${describeStorage(config)}` +
      `${options.deleteUntagged ? ", deleting untagged manifests" : ""}${options.dryRun ? " (dry run: nothing is deleted)" : ""}`,
  );
  if (values.online) return runOnline(config, { ...options, maxCpu: maxCpu ?? config.storage.gc.maxCpu }, progress);
  let summary: GcSummary;
  try {
    summary = await garbageCollect(await createDriver(config), options, progress);
  } catch (err) {
    progress.finish();
    if (err instanceof StorageInUseError) {
      process.stderr.write(`berth garbage-collect: ${err.message}\n`);
      return EXIT_STORAGE_IN_USE;
    }
    if (err instanceof ManifestDeletionError) {
      process.stderr.write(`berth garbage-collect: ${err.message}\nNo blob was deleted. Fix the cause and run it again.\n`);
      // Manifests before the one that failed may be gone.
      await forgetCachedDescriptors(config);
      return 1;
    }
    throw err;
  }
  process.stdout.write(formatSummary(summary));
  const deleted = !summary.dryRun && summary.blobsDeleted + summary.manifestsDeleted + summary.layerLinksRemoved > 0;
  const cacheCleared = deleted ? await forgetCachedDescriptors(config) : true;
  return summary.sweepRefused || summary.failures > 0 || !cacheCleared ? 1 : 0;
}

/** The CPU priority (nice value) of an online collection from the command line, at least. */
export const ONLINE_COLLECTOR_NICE = 10;

/**
 * Inside `berth serve` a collection slows down while its node is busy (its pace counts the
 * requests' CPU too); a collector process of its own gets the same manners from the scheduler, at a
 * lower priority than the registries beside it on the machine: it takes the CPU they leave, and
 * --max-cpu still caps it when they leave much. (Measured beside a registry serving manifest GETs
 * on 2 cores: the registry kept 0.79 of its rate at the default pace alone, 0.89 with this.)
 */
function yieldCpuToRegistries(): void {
  try {
    if (getPriority() < ONLINE_COLLECTOR_NICE) setPriority(ONLINE_COLLECTOR_NICE);
  } catch {
    // Lowering one's own priority is always allowed; a sandbox that refuses it only costs speed.
  }
}

/** `--online`: one run of the protocol as a collector, beside whatever registries serve the storage. */
async function runOnline(config: Config, options: { dryRun: boolean; deleteUntagged: boolean; maxCpu: number }, progress: GcProgress): Promise<number> {
  yieldCpuToRegistries();
  const test = testTimingFromEnv(process.env);
  // Killed outright, the collector would leave its lease for the next one to wait out (T_expire).
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => stop.abort(new CollectionStoppedError(signal));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let summary: OnlineGcSummary;
  try {
    summary = await collectOnline(
      await createDriver(config),
      {
        ...options,
        graceMs: test?.graceMs ?? config.storage.gc.graceMs,
        holder: `cli-${randomBytes(6).toString("hex")}`,
        signal: stop.signal,
        timing: test?.timing ?? DEFAULT_GC_TIMING,
      },
      progress,
    );
  } catch (err) {
    progress.finish();
    if (err instanceof CollectorBusyError) {
      process.stderr.write(`berth garbage-collect: ${err.message}\n`);
      return EXIT_STORAGE_IN_USE;
    }
    if (err instanceof CollectionStoppedError) {
      process.stderr.write(`berth garbage-collect: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  process.stdout.write(formatOnlineSummary(summary));
  const deleted = summary.blobsDeleted + summary.manifestsDeleted + summary.layerLinksRemoved > 0;
  const cacheCleared = deleted ? await forgetCachedDescriptors(config) : true;
  return summary.outcome === "refused" || summary.outcome === "failed" || summary.failures > 0 || !cacheCleared ? 1 : 0;
}

/** An online collection stopped by a signal, after it ended its run and released its lease. */
class CollectionStoppedError extends Error {
  constructor(signal: NodeJS.Signals) {
    super(`stopped by ${signal}: nothing more was deleted, the run (if one was under way) was ended and the collector lease released`);
    this.name = "CollectionStoppedError";
  }
}

/** The closing report of an online run. */
export function formatOnlineSummary(s: OnlineGcSummary): string {
  const lines = [
    `Online garbage collection: ${s.outcome}${s.runId === undefined ? "" : ` (run ${s.runId})`}${s.reason === undefined ? "" : `: ${s.reason}`}.`,
    `  repositories scanned: ${s.repositories}`,
    `  candidates: ${s.candidates.blobs} blobs (${s.candidates.bytes} bytes), ${s.candidates.revisions} untagged manifests, ${s.candidates.layerLinks} layer links`,
    `  rescued by requests during the run: ${s.rescued}`,
    `  serving nodes that took part: ${s.nodes}`,
    `  blobs deleted: ${s.blobsDeleted} (${s.bytesDeleted} bytes, ${formatBytes(s.bytesDeleted)})`,
    `  manifests deleted: ${s.manifestsDeleted}`,
    `  layer links removed: ${s.layerLinksRemoved}`,
    `  duration: ${(s.durationMs / 1000).toFixed(1)} s (${(s.pausedMs / 1000).toFixed(1)} s of it paused to stay under --max-cpu)`,
  ];
  if (s.failures > 0) lines.push(`  failed deletions: ${s.failures} (above)`);
  return `${lines.join("\n")}\n`;
}

/**
 * A Redis blob descriptor cache outlives the registries that filled it: after a collection it
 * would still say the deleted blobs exist. Clears it; false (reported) when that failed.
 */
async function forgetCachedDescriptors(config: Config): Promise<boolean> {
  const log = createLogger({ level: "error", formatter: "text" });
  try {
    const done = await forgetSharedBlobDescriptors(config, log);
    if (done !== undefined) process.stderr.write(`berth garbage-collect: ${done}\n`);
    return true;
  } catch (err) {
    process.stderr.write(
      `berth garbage-collect: could not clear the Redis blob descriptor cache (${err instanceof Error ? err.message : String(err)}): ` +
        `it still describes the deleted blobs. Clear it before registries use it again (delete the keys blobs::* and repository::*::blobs*).\n`,
    );
    return false;
  }
}

/** The closing report: what was deleted, or what would be. */
export function formatSummary(s: GcSummary): string {
  const would = s.dryRun || s.sweepRefused;
  const verb = (done: string): string => (would ? `would be ${done}` : done);
  const lines: string[] = [];
  if (s.sweepRefused) {
    lines.push(`Garbage collection stopped before the sweep: nothing was deleted.`);
    lines.push(`${s.unreadable.length} manifest(s) could not be parsed, so what they refer to is unknown:`);
    for (const m of s.unreadable) lines.push(`  ${m.repository}@${m.digest}: ${m.reason}`);
    lines.push(`Repair or delete them (DELETE /v2/<name>/manifests/<digest>) and run garbage-collect again.`);
  } else if (s.dryRun) {
    lines.push(`Garbage collection dry run: nothing was deleted.`);
  } else {
    lines.push(s.failures > 0 ? `Garbage collection finished with ${s.failures} failed deletion(s).` : `Garbage collection finished.`);
  }
  lines.push(`  repositories scanned: ${s.repositories}`);
  lines.push(`  manifests scanned: ${s.manifestsScanned}`);
  lines.push(`  blobs marked: ${s.blobsMarked}`);
  lines.push(`  blobs ${verb("deleted")}: ${s.blobsDeleted} (${s.bytesDeleted} bytes, ${formatBytes(s.bytesDeleted)})`);
  lines.push(`  manifests ${verb("deleted")}: ${s.manifestsDeleted}${s.deleteUntagged ? "" : " (untagged manifests are kept without --delete-untagged)"}`);
  lines.push(`  layer links ${verb("removed")}: ${s.layerLinksRemoved}`);
  if (s.temporariesRemoved > 0) lines.push(`  temporary files removed: ${s.temporariesRemoved}`);
  if (s.warnings > 0) lines.push(`  warnings: ${s.warnings} (above)`);
  return `${lines.join("\n")}\n`;
}
