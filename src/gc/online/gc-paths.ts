import type { Digest } from "../../reference/digest.js";

/**
 * Where online collection keeps its protocol state: beside distribution's tree (like the serve
 * leases under /berth/leases), so distribution neither sees nor trips over it.
 *
 * ```
 * /berth/gc/lease                                   the collector's lease (one collector at a time)
 * /berth/gc/run                                     the run state: {runId, phase, …}
 * /berth/gc/clock                                   a probe whose mtime is the storage's "now"
 * /berth/gc/runs/<runId>/candidates.json            what the collector may delete
 * /berth/gc/runs/<runId>/doomed.json                what it will delete, unless rescued
 * /berth/gc/runs/<runId>/rescued/<alg>/<hex>        a digest some request vouched for
 * /berth/gc/runs/<runId>/acks/<phase>/<nodeId>      a node saw <phase> and drained older requests
 * ```
 */
export const GC_ROOT = "/berth/gc";
export const COLLECTOR_LEASE_PATH = `${GC_ROOT}/lease`;
export const RUN_STATE_PATH = `${GC_ROOT}/run`;
export const CLOCK_PROBE_PATH = `${GC_ROOT}/clock`;
export const RUNS_ROOT = `${GC_ROOT}/runs`;

/** A run id names a directory: hex only. */
const RUN_ID = /^[0-9a-f]{8,64}$/;

export function assertRunId(runId: string): void {
  if (!RUN_ID.test(runId)) throw new Error(`not a run id: ${JSON.stringify(runId)}`);
}

export function runDir(runId: string): string {
  assertRunId(runId);
  return `${RUNS_ROOT}/${runId}`;
}

export function runListPath(runId: string, list: "candidates" | "doomed"): string {
  return `${runDir(runId)}/${list}.json`;
}

export function rescuedDir(runId: string): string {
  return `${runDir(runId)}/rescued`;
}

export function rescuePath(runId: string, digest: Digest): string {
  return `${rescuedDir(runId)}/${digest.algorithm}/${digest.hex}`;
}

export function acksDir(runId: string, phase: "candidates" | "doomed"): string {
  return `${runDir(runId)}/acks/${phase}`;
}

export function ackPath(runId: string, phase: "candidates" | "doomed", nodeId: string): string {
  return `${acksDir(runId, phase)}/${nodeId}`;
}
