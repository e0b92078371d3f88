import type { BlobDescriptorCache } from "../../cache/blob-descriptor-cache.js";
import type { OnlineGcConfig } from "../../config/config.js";
import type { StorageDriver } from "../../driver/storage-driver.js";
import type { Logger } from "../../log/logger.js";
import type { Registry } from "../../registry/registry.js";
import { CollectorBusyError } from "./collector-lease.js";
import { GcAwareRegistry } from "./gc-aware-registry.js";
import type { GcHooks } from "./gc-hooks.js";
import { emptyGcStats, type OnlineGcStats } from "./gc-stats.js";
import { LogProgress } from "./log-progress.js";
import { collectOnline, type OnlineGcSummary } from "./online-collector.js";
import { GcParticipant } from "./participant.js";
import type { GcTiming } from "./timing.js";

export interface OnlineGcNodeOptions {
  driver: StorageDriver;
  /** The serve lease's id: acks are written under it. */
  nodeId: string;
  config: OnlineGcConfig;
  timing: GcTiming;
  /** Replace config.graceMs and config.intervalMs (tests only: BERTH_TEST_GC_TIMING). */
  graceMs?: number;
  intervalMs?: number;
  hooks?: GcHooks;
  log: Logger;
}

/**
 * Online collection on one writable serving node: the participant every such node runs (so that
 * a collection started anywhere, `berth garbage-collect --online` included, is safe beside it) and,
 * with storage.maintenance.gc.enabled, the schedule that makes this node try to collect.
 */
export class OnlineGcNode {
  readonly participant: GcParticipant;
  readonly stats: OnlineGcStats = emptyGcStats();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  get timing(): GcTiming {
    return this.options.timing;
  }

  constructor(private readonly options: OnlineGcNodeOptions) {
    this.participant = new GcParticipant(options.driver, options.nodeId, options.timing, options.log);
  }

  /** The registry requests see: vouching operations take part in runs. */
  wrap(registry: Registry, cache: BlobDescriptorCache | undefined): Registry {
    return new GcAwareRegistry(registry, { participant: this.participant, timing: this.options.timing, stats: this.stats, hooks: this.options.hooks }, cache);
  }

  /** After the serve lease is written, before the server listens (see GcParticipant.start). */
  start(): Promise<void> {
    return this.participant.start();
  }

  /** With storage.maintenance.gc.enabled: a collection one interval after each previous one ends. */
  startSchedule(): void {
    if (!this.options.config.enabled || this.closed) return;
    // setTimeout fires at once for delays past 2^31-1 ms (~24.8 days).
    const delay = Math.min(this.options.intervalMs ?? this.options.config.intervalMs, 2 ** 31 - 1);
    this.timer = setTimeout(() => {
      this.collect()
        .catch((err: unknown) => this.options.log.error({ err }, "online gc: collection failed"))
        .finally(() => this.startSchedule());
    }, delay);
    this.timer.unref();
  }

  /** One collection now, if no other node is collecting. undefined when another collector holds the lease. */
  async collect(): Promise<OnlineGcSummary | undefined> {
    const { driver, config, timing, hooks, log, nodeId } = this.options;
    let summary: OnlineGcSummary;
    try {
      summary = await collectOnline(
        driver,
        { dryRun: config.dryRun, deleteUntagged: config.deleteUntagged, graceMs: this.options.graceMs ?? config.graceMs, maxCpu: config.maxCpu, holder: nodeId, timing, hooks },
        new LogProgress(log),
      );
    } catch (err) {
      if (err instanceof CollectorBusyError) {
        log.info({ err: err.message }, "online gc: another node is collecting; skipped");
        return undefined;
      }
      this.count("failed");
      throw err;
    }
    this.count(summary.outcome);
    this.stats.blobsDeleted += summary.blobsDeleted;
    this.stats.bytesDeleted += summary.bytesDeleted;
    this.stats.manifestsDeleted += summary.manifestsDeleted;
    this.stats.layerLinksRemoved += summary.layerLinksRemoved;
    this.stats.lastDurationSeconds = summary.durationMs / 1000;
    log.info({ gc: summary }, `online gc: ${summary.outcome}: ${summary.blobsDeleted} blobs (${summary.bytesDeleted} bytes), ${summary.manifestsDeleted} manifests, ${summary.layerLinksRemoved} layer links deleted in ${summary.durationMs} ms`);
    return summary;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private count(outcome: string): void {
    this.stats.runs[outcome] = (this.stats.runs[outcome] ?? 0) + 1;
  }
}
