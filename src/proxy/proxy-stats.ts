/** What the pull-through cache served, for one kind of content (distribution's proxy Metrics). */
export interface ProxyContentStats {
  /** Reads served through the mirror. */
  requests: number;
  /** Of those, served from what was already cached. */
  hits: number;
  /** Fetches from the upstream (one per fetch, however many requests waited for it). */
  misses: number;
  /** Bytes received from the upstream. */
  pulledBytes: number;
  /** Bytes sent to clients. */
  pushedBytes: number;
}

export interface ProxyStats {
  blob: ProxyContentStats;
  manifest: ProxyContentStats;
}

/** The mirror's running counts; increments only, read by `snapshot` when metrics are scraped. */
export class ProxyCounters {
  readonly blob: ProxyContentStats = emptyStats();
  readonly manifest: ProxyContentStats = emptyStats();

  snapshot(): ProxyStats {
    return { blob: { ...this.blob }, manifest: { ...this.manifest } };
  }
}

function emptyStats(): ProxyContentStats {
  return { requests: 0, hits: 0, misses: 0, pulledBytes: 0, pushedBytes: 0 };
}
