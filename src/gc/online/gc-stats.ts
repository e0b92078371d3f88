/**
 * Counters of online collection on this node, read by metrics at scrape time (Registry.stats()).
 * Participant counters are kept on every node; run counters on the node that collected.
 */
export interface OnlineGcStats {
  /** Finished runs by outcome: completed, dryrun, nothing (no candidates), refused, abandoned, failed. */
  runs: Record<string, number>;
  blobsDeleted: number;
  bytesDeleted: number;
  manifestsDeleted: number;
  layerLinksRemoved: number;
  /** Seconds the last run took, or undefined before the first. */
  lastDurationSeconds: number | undefined;
  /** Rescue markers this node wrote for requests that vouched for a candidate. */
  rescues: number;
  /** Requests answered as if the digest were gone (it was doomed), or refused (fenced, wait ran out). */
  doomedAnswers: number;
  refusals: number;
}

export function emptyGcStats(): OnlineGcStats {
  return { runs: {}, blobsDeleted: 0, bytesDeleted: 0, manifestsDeleted: 0, layerLinksRemoved: 0, lastDurationSeconds: undefined, rescues: 0, doomedAnswers: 0, refusals: 0 };
}
