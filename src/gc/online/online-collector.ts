import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { StorageDriver } from "../../driver/storage-driver.js";
import { deleteIfPresent, isPathNotFound, listOrEmpty } from "../../driver/storage-driver.js";
import { LEASES_ROOT, readLeases } from "../registry-lease.js";
import type { ManifestReferences } from "../manifest-references.js";
import { mark, type MarkResult } from "../mark.js";
import { formatBytes, type GcProgress } from "../progress.js";
import { isSoundLink, walkBlobs } from "../storage-scan.js";
import { executeSweep, type BlobToDelete, type LayerLinkToRemove, type SweepPlan } from "../sweep.js";
import { CollectorLease } from "./collector-lease.js";
import { CpuPace, pacedDriver } from "./cpu-pace.js";
import { fencedDriver } from "./fenced-driver.js";
import { CLOCK_PROBE_PATH, RUNS_ROOT, acksDir, rescuedDir, runDir } from "./gc-paths.js";
import type { GcHooks } from "./gc-hooks.js";
import { ObjectWatch } from "./object-watch.js";
import { keptWith } from "./rescue-closure.js";
import { readRunState, repositoryItemKey, writeRunList, writeRunState, type RunList } from "./run-state.js";
import type { GcTiming } from "./timing.js";

export interface OnlineGcOptions {
  dryRun: boolean;
  deleteUntagged: boolean;
  /** Nothing written less than this long ago (by the storage's clock) is a candidate. */
  graceMs: number;
  /**
   * The share of one core the scan and the deletes may take (storage.maintenance.gc.maxcpu,
   * `--max-cpu`); 1 is unpaced. The lease, the run state and the acks are never held back.
   */
  maxCpu: number;
  /**
   * Stops the collection at its next storage call or poll (the CLI's SIGINT/SIGTERM): the run, if
   * one was published, is ended as abandoned, and the lease is released for the next collector.
   */
  signal?: AbortSignal;
  /** Names this collector in its lease and the run state. */
  holder: string;
  timing: GcTiming;
  hooks?: GcHooks;
}

export type OnlineGcOutcome = "completed" | "dryrun" | "nothing" | "refused" | "failed";

export interface OnlineGcSummary {
  runId: string | undefined;
  outcome: OnlineGcOutcome;
  repositories: number;
  candidates: { blobs: number; revisions: number; layerLinks: number; bytes: number };
  rescued: number;
  blobsDeleted: number;
  bytesDeleted: number;
  manifestsDeleted: number;
  layerLinksRemoved: number;
  failures: number;
  /** Serving nodes whose acks the run waited for (the most in one phase). */
  nodes: number;
  durationMs: number;
  /** Of durationMs, how long the collector paused to stay under maxCpu. */
  pausedMs: number;
  /** Why a refused or failed run stopped. */
  reason?: string;
}

/** The collector waited for a live node's ack longer than ackTimeoutMs: it deletes nothing. */
export class AckTimeoutError extends Error {
  constructor(phase: string, nodes: string[]) {
    super(`no ack for phase ${phase} from ${nodes.join(", ")} in time; the run deleted nothing`);
    this.name = "AckTimeoutError";
  }
}

/**
 * One online collection (docs/garbage-collection.md): takes the collector lease (CollectorBusyError
 * when another collector holds it), ends any run a dead collector left, then mark → candidates →
 * acks → mark again → doomed → acks → delete what is still doomed and was not rescued → done.
 */
export async function collectOnline(driver: StorageDriver, options: OnlineGcOptions, progress: GcProgress): Promise<OnlineGcSummary> {
  const lease = await CollectorLease.acquire(driver, options.holder, options.timing);
  try {
    return await new OnlineCollection(driver, options, progress, lease).run();
  } finally {
    await lease.release();
  }
}

interface Candidates {
  blobs: Map<string, BlobToDelete>;
  /** repository@digest → the manifest to delete. */
  revisions: Map<string, MarkResult["toDelete"][number]>;
  layerLinks: Map<string, LayerLinkToRemove>;
  /** Digests of every blob stored at the first mark. */
  stored: Set<string>;
}

class OnlineCollection {
  private readonly started = performance.now();
  private readonly references = new Map<string, ManifestReferences>();
  private readonly summary: OnlineGcSummary = {
    runId: undefined,
    outcome: "completed",
    repositories: 0,
    candidates: { blobs: 0, revisions: 0, layerLinks: 0, bytes: 0 },
    rescued: 0,
    blobsDeleted: 0,
    bytesDeleted: 0,
    manifestsDeleted: 0,
    layerLinksRemoved: 0,
    failures: 0,
    nodes: 0,
    durationMs: 0,
    pausedMs: 0,
  };
  private readonly pace: CpuPace;
  /** The driver of the scan and the deletes: paced to options.maxCpu. */
  private readonly paced: StorageDriver;

  constructor(
    private readonly driver: StorageDriver,
    private readonly options: OnlineGcOptions,
    private readonly progress: GcProgress,
    private readonly lease: CollectorLease,
  ) {
    this.pace = new CpuPace(options.maxCpu, options.signal);
    this.paced = pacedDriver(driver, this.pace);
  }

  async run(): Promise<OnlineGcSummary> {
    await this.endUnfinishedRun();
    const cutoff = new Date((await this.storageNow()).getTime() - this.options.graceMs);
    this.progress.info(`online gc: collecting what nothing refers to and nothing wrote since ${cutoff.toISOString()} (storage clock)`);
    const first = await this.mark(cutoff);
    await this.step("marked");
    if (first.unreadable.length > 0) return this.finish("refused", `${first.unreadable.length} manifest(s) cannot be parsed`);
    const candidates = await this.findCandidates(first, cutoff);
    const { blobs, revisions, layerLinks } = candidates;
    this.summary.candidates = {
      blobs: blobs.size,
      revisions: revisions.size,
      layerLinks: layerLinks.size,
      bytes: [...blobs.values()].reduce((sum, blob) => sum + blob.size, 0),
    };
    this.progress.info(
      `online gc: candidates: ${blobs.size} blobs (${formatBytes(this.summary.candidates.bytes)}), ${revisions.size} untagged manifests, ${layerLinks.size} layer links`,
    );
    if (blobs.size + revisions.size + layerLinks.size === 0) return this.finish("nothing");
    if (this.options.dryRun) return this.finish("dryrun");

    const runId = randomBytes(8).toString("hex");
    this.summary.runId = runId;
    try {
      await writeRunList(this.driver, runId, "candidates", listOf(candidates.blobs.keys(), revisions.keys(), layerLinks.keys()));
      await this.publish(runId, "candidates");
      await this.awaitAcks(runId, "candidates");
      await this.step("candidates-acked");

      const second = await this.mark(cutoff);
      if (second.unreadable.length > 0) return await this.endRun(runId, "refused", `${second.unreadable.length} manifest(s) cannot be parsed`);
      const doomed = this.doomedAfter(candidates, second, await this.listRescues(runId));
      await writeRunList(this.driver, runId, "doomed", listOf(doomed.blobs.keys(), doomed.revisions.keys(), doomed.layerLinks.keys()));
      await this.publish(runId, "doomed");
      await this.awaitAcks(runId, "doomed");
      await this.step("doomed-acked");

      // Rescues stored after the first listing and before a node's doomed ack.
      const rescued = await this.listRescues(runId);
      this.summary.rescued = rescued.size;
      const final = this.doomedAfter(doomed, second, rescued);
      await this.step("before-delete");
      await this.sweep(final);
      return await this.endRun(runId, "completed");
    } catch (err) {
      await this.endRun(runId, "failed", err instanceof Error ? err.message : String(err)).catch(() => {});
      throw err;
    }
  }

  /** A run a dead collector left is marked done (participants stop enforcing it) and its files go. */
  private async endUnfinishedRun(): Promise<void> {
    const state = await readRunState(this.driver);
    if (state !== undefined && state.phase !== "done") {
      this.progress.warn(`online gc: run ${state.runId} by ${state.collector} was left in phase ${state.phase}; abandoning it (it deleted nothing more)`);
      await writeRunState(this.driver, { ...state, phase: "done", abandoned: true });
    }
    await deleteIfPresent(this.driver, RUNS_ROOT);
  }

  /** The storage's own "now": the modification time of an object written just now. */
  private async storageNow(): Promise<Date> {
    await this.driver.putContent(CLOCK_PROBE_PATH, Buffer.from(`${this.options.holder}\n`), { durable: false });
    return (await this.driver.stat(CLOCK_PROBE_PATH)).modTime;
  }

  private async mark(cutoff: Date): Promise<MarkResult> {
    const result = await mark(
      this.paced,
      { deleteUntagged: this.options.deleteUntagged, keepRevisionsSince: cutoff, references: this.references },
      this.progress,
    );
    this.summary.repositories = result.repositories.length;
    for (const entry of result.unreadable) this.progress.warn(`cannot read manifest ${entry.repository}@${entry.digest}: ${entry.reason}`);
    return result;
  }

  /** Unmarked blobs, untagged revisions and orphaned layer links, all older than the cutoff. */
  private async findCandidates(marked: MarkResult, cutoff: Date): Promise<Candidates> {
    const found: Candidates = { blobs: new Map(), revisions: new Map(), layerLinks: new Map(), stored: new Set() };
    // A blob linked into a repository within the grace period (uploaded or mounted for a push under
    // way) is as young as its newest link: its manifest may be on its way.
    const recentlyLinked = new Set<string>();
    for (const links of marked.layerLinks.values()) {
      for (const link of links) if (link.digest !== undefined && link.modTime >= cutoff) recentlyLinked.add(link.digest.toString());
    }
    await walkBlobs(this.paced, (blob) => {
      if (!blob.digest) return;
      const key = blob.digest.toString();
      found.stored.add(key);
      if (marked.marked.has(key) || recentlyLinked.has(key) || blob.modTime >= cutoff) return;
      found.blobs.set(key, { digest: blob.digest, dir: blob.dir, size: blob.size });
    });
    // Revisions written since the cutoff were roots of the mark: every one listed here is older.
    for (const manifest of marked.toDelete) found.revisions.set(repositoryItemKey(manifest.repository, manifest.digest.toString()), manifest);
    for (const [repository, links] of marked.layerLinks) {
      for (const link of links) {
        if (!isSoundLink(link)) continue;
        const key = link.digest.toString();
        const orphan = !found.stored.has(key) && link.modTime < cutoff;
        if (found.blobs.has(key) || orphan) found.layerLinks.set(repositoryItemKey(repository, key), { repository, digest: link.digest, dir: link.dir });
      }
    }
    return found;
  }

  /**
   * What of `from` goes: not marked now, not kept by a rescue (with everything a rescued manifest
   * refers to, through indexes and referrers), and for a layer link, its blob going or absent.
   */
  private doomedAfter(from: Candidates, marked: MarkResult, rescued: Set<string>): Candidates {
    const kept = keptWith(rescued, this.references);
    const stillUntagged = new Set(marked.toDelete.map((m) => repositoryItemKey(m.repository, m.digest.toString())));
    const doomed: Candidates = { blobs: new Map(), revisions: new Map(), layerLinks: new Map(), stored: from.stored };
    for (const [key, blob] of from.blobs) if (!marked.marked.has(key) && !kept.has(key)) doomed.blobs.set(key, blob);
    for (const [key, manifest] of from.revisions) {
      if (stillUntagged.has(key) && !kept.has(manifest.digest.toString())) doomed.revisions.set(key, manifest);
    }
    for (const [key, link] of from.layerLinks) {
      const digest = link.digest.toString();
      if (!kept.has(digest) && (doomed.blobs.has(digest) || !from.stored.has(digest))) doomed.layerLinks.set(key, link);
    }
    return doomed;
  }

  private async publish(runId: string, phase: "candidates" | "doomed"): Promise<void> {
    this.lease.assertHeld();
    await writeRunState(this.driver, { runId, phase, collector: this.options.holder });
    this.progress.info(`online gc: run ${runId}: phase ${phase}, waiting for every serving node's ack`);
    await this.step(phase === "candidates" ? "candidates-published" : "doomed-published");
  }

  /**
   * Until every writable serve lease that is alive (changed within T_expire of this process's clock
   * while it watches) has acked `phase`. Leases that appear meanwhile must ack too.
   */
  private async awaitAcks(runId: string, phase: "candidates" | "doomed"): Promise<void> {
    const { timing } = this.options;
    const watch = new ObjectWatch(timing.leaseExpireMs);
    const deadline = performance.now() + timing.ackTimeoutMs;
    for (;;) {
      this.options.signal?.throwIfAborted();
      this.lease.assertHeld();
      const leases = (await readLeases(this.driver)).filter((lease) => lease.role === "serve" && lease.writable);
      for (const lease of leases) watch.observe(lease.path, JSON.stringify(lease.record) ?? lease.modTime.toISOString());
      const live = leases.filter((lease) => !watch.expired(lease.path)).map((lease) => lease.path.slice(LEASES_ROOT.length + 1));
      const acked = new Set(await this.listNames(acksDir(runId, phase)));
      const missing = live.filter((node) => !acked.has(node));
      this.summary.nodes = Math.max(this.summary.nodes, live.length);
      if (missing.length === 0) return;
      if (performance.now() > deadline) throw new AckTimeoutError(phase, missing);
      await sleep(timing.activePollMs);
    }
  }

  private async listRescues(runId: string): Promise<Set<string>> {
    const rescued = new Set<string>();
    const root = rescuedDir(runId);
    try {
      await this.driver.walk(root, (info) => {
        if (info.isDir) return;
        const [algorithm, hex] = info.path.slice(root.length + 1).split("/");
        if (algorithm !== undefined && hex !== undefined) rescued.add(`${algorithm}:${hex}`);
      });
    } catch (err) {
      if (!isPathNotFound(err)) throw err;
    }
    return rescued;
  }

  private async listNames(dir: string): Promise<string[]> {
    return (await listOrEmpty(this.driver, dir)).map((path) => path.slice(path.lastIndexOf("/") + 1));
  }

  /**
   * Deletes through a driver that refuses once the lease is no longer fresh (self-fencing). The
   * pace waits before the fence checks, so no pause comes between a check and its delete.
   */
  private async sweep(doomed: Candidates): Promise<void> {
    this.lease.assertHeld();
    const plan: SweepPlan = {
      manifests: [...doomed.revisions.values()],
      blobs: [...doomed.blobs.values()],
      bytes: [...doomed.blobs.values()].reduce((sum, blob) => sum + blob.size, 0),
      layerLinks: [...doomed.layerLinks.values()],
    };
    const result = await executeSweep(pacedDriver(fencedDriver(this.driver, this.lease), this.pace), plan, this.progress);
    Object.assign(this.summary, {
      blobsDeleted: result.blobsDeleted,
      bytesDeleted: result.bytesDeleted,
      manifestsDeleted: result.manifestsDeleted,
      layerLinksRemoved: result.layerLinksRemoved,
      failures: result.failures,
    });
  }

  private async endRun(runId: string, outcome: OnlineGcOutcome, reason?: string): Promise<OnlineGcSummary> {
    await writeRunState(this.driver, { runId, phase: "done", collector: this.options.holder, ...(outcome === "completed" ? {} : { abandoned: true }) });
    await deleteIfPresent(this.driver, runDir(runId));
    return this.finish(outcome, reason);
  }

  private async finish(outcome: OnlineGcOutcome, reason?: string): Promise<OnlineGcSummary> {
    this.summary.outcome = outcome;
    if (reason !== undefined) this.summary.reason = reason;
    this.summary.durationMs = Math.round(performance.now() - this.started);
    this.summary.pausedMs = Math.round(this.pace.pausedMs);
    await this.step("done");
    return this.summary;
  }

  private async step(step: Parameters<NonNullable<GcHooks["collector"]>>[0]): Promise<void> {
    await this.options.hooks?.collector?.(step);
  }
}

function listOf(blobs: Iterable<string>, revisions: Iterable<string>, layerLinks: Iterable<string>): RunList {
  return { blobs: [...blobs], revisions: [...revisions], layerLinks: [...layerLinks] };
}
