import type { RandomFile } from "./registry-ops.js";
import type { RunningServer } from "./servers.js";

export interface Sizes {
  /** The big blob of the upload and download cases. */
  blobBytes: number;
  /** PATCH chunk size of chunked-upload. */
  chunkBytes: number;
  /** Seconds of each wrk run (after a warm-up of `warmupSec`). */
  wrkSec: number;
  warmupSec: number;
  /** push-50-images: images and layers per image, layer size. */
  images: number;
  layersPerImage: number;
  layerBytes: number;
  /** skopeo: layers and bytes per layer. */
  skopeoLayers: number;
  skopeoLayerBytes: number;
  /** tags-list: tags in the repository. */
  tags: number;
  /** s3-pull: pulls of the skopeo-sized image per run (reported together). */
  s3Pulls: number;
  /** s3-repos: repositories created per run; s3-tags: tags created per run. */
  s3Repos: number;
  s3Tags: number;
}

export interface BenchContext {
  quick: boolean;
  sizes: Sizes;
  /** Scratch directory of this benchmark run (removed at the end). */
  tmpRoot: string;
  /** The pre-generated random blob (generated on first use). */
  blob(): Promise<RandomFile>;
  /** berth `serve --workers N`, when asked for (--berth-workers). */
  berthWorkers?: number;
  /** Data prepared once per benchmark run by a case, keyed by case. */
  shared: Map<string, unknown>;
  /**
   * Registers a clean-up (stop a server shared by several cases) to run once at the end of the
   * benchmark run, also when it failed or was interrupted; the last registered runs first.
   */
  atExit(fn: () => Promise<void>): void;
}

/**
 * A number a case reports beside its value, from `Measurement.extra[key]`: the summary gives its
 * median per server kind and the ratio berth / distribution.
 */
export interface Figure {
  key: string;
  /** e.g. "S3 requests per tag". */
  label: string;
  higherIsBetter: boolean;
  /** The target for berth / distribution, e.g. "≤ 0.6". */
  target?: string;
}

export interface Measurement {
  /** The case's metric (MB/s, req/s or seconds). */
  value: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Anything else worth keeping in the JSON record. */
  extra?: Record<string, unknown>;
  /**
   * The same workload with one thing changed (the case's `baseline.label`, e.g. without
   * notifications), measured in the same run on its own fresh server: the report adds the ratio
   * value / baseline per server kind.
   */
  baseline?: { value: number; p50Ms?: number; p99Ms?: number };
}

export interface BenchCase<S = unknown> {
  name: string;
  /** One line: what is measured. */
  description: string;
  unit: "MB/s" | "req/s" | "s" | "ms" | "MiB" | "repos/s" | "tags/s";
  higherIsBetter: boolean;
  /** Reports p50/p99 latency. */
  latency?: boolean;
  /**
   * The case measures itself against a baseline in every run (see `Measurement.baseline`): what
   * the baseline is, and the target for value / baseline (e.g. "≥ 0.90").
   */
  baseline?: { label: string; target?: string };
  /** The target for the value's ratio berth / distribution, e.g. "≥ 1.5" (shown in the summary). */
  target?: string;
  /** Further figures from `Measurement.extra`, summarised like the value (see Figure). */
  figures?: Figure[];
  /** Run `sync` before the timed part (push-50, skopeo; upload cases settle the page cache instead). */
  syncBefore?: boolean;
  /**
   * Start the timed part from a settled page cache (bench/page-cache.ts): synced, dropped where the
   * harness may, and these files (what the timed part reads) read back in.
   */
  settlePageCache?(ctx: BenchContext): Promise<string[]>;
  /** Why the case cannot run on this machine (a program missing), or undefined: the harness then skips it. */
  unavailable?(): string | undefined;
  /** Once per benchmark run, before any server starts (not timed). */
  prepare?(ctx: BenchContext): Promise<void>;
  /** Per run, on the fresh server (not timed; its peak RSS is reset afterwards). */
  setup?(srv: RunningServer, ctx: BenchContext): Promise<S>;
  /** The timed part. */
  run(srv: RunningServer, ctx: BenchContext, state: S): Promise<Measurement>;
  /** After the run (not timed), also when it failed: close connections and files. */
  teardown?(state: S): Promise<void>;
}

export const MB = 1e6;
export const MiB = 1 << 20;
