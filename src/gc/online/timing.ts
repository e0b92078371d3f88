/**
 * The clocks of online collection (docs/garbage-collection.md, "Timing"). Every duration is measured
 * on the measuring process's own monotonic clock; no two machines' clocks are ever compared. The
 * inequalities below are the whole of the clock argument: they must hold with room for clock *rate*
 * differences (a few percent covers any working machine).
 */
export interface GcTiming {
  /** T_expire: a lease (collector or serve) unchanged this long, as one observer watches it, is dead. */
  leaseExpireMs: number;
  /** How often the collector rewrites its lease. */
  collectorRenewMs: number;
  /** T_self < T_expire: the collector deletes only while its last renewal started less than this ago. */
  collectorFenceMs: number;
  /** How often a serve node rewrites its serve lease (< T_expire / 2, so one failed write is harmless). */
  serveLeaseRefreshMs: number;
  /** How often an idle participant reads the run state. */
  idlePollMs: number;
  /** How often a participant reads the run state and the collector lease while a run is active. */
  activePollMs: number;
  /** F_self < T_expire: a participant that has not read the run state for this long refuses vouching writes. */
  participantFenceMs: number;
  /** How long an upload (or manifest re-put) of a digest about to be deleted waits for the run to end. */
  doomedWaitMs: number;
  /** How long the collector waits for every live node's ack before abandoning the run. */
  ackTimeoutMs: number;
}

/** Production: an idle node reads one object every 30 s (with its lease refresh), a run needs ~1 min. */
export const DEFAULT_GC_TIMING: GcTiming = {
  leaseExpireMs: 90_000,
  collectorRenewMs: 15_000,
  collectorFenceMs: 60_000,
  serveLeaseRefreshMs: 30_000,
  idlePollMs: 30_000,
  activePollMs: 1_000,
  participantFenceMs: 75_000,
  doomedWaitMs: 30_000,
  ackTimeoutMs: 10 * 60_000,
};

/** The same proportions scaled to `leaseExpireMs` (tests run the protocol in seconds). */
export function scaledTiming(leaseExpireMs: number, overrides: Partial<GcTiming> = {}): GcTiming {
  const f = leaseExpireMs / DEFAULT_GC_TIMING.leaseExpireMs;
  const scaled: GcTiming = {
    leaseExpireMs,
    collectorRenewMs: Math.max(10, Math.round(DEFAULT_GC_TIMING.collectorRenewMs * f)),
    collectorFenceMs: Math.round(DEFAULT_GC_TIMING.collectorFenceMs * f),
    serveLeaseRefreshMs: Math.max(10, Math.round(DEFAULT_GC_TIMING.serveLeaseRefreshMs * f)),
    idlePollMs: Math.max(10, Math.round(DEFAULT_GC_TIMING.idlePollMs * f)),
    activePollMs: Math.max(10, Math.min(DEFAULT_GC_TIMING.activePollMs, Math.round(leaseExpireMs / 30))),
    participantFenceMs: Math.round(DEFAULT_GC_TIMING.participantFenceMs * f),
    doomedWaitMs: Math.max(1_000, Math.round(DEFAULT_GC_TIMING.doomedWaitMs * f)),
    ackTimeoutMs: Math.max(5_000, Math.round(DEFAULT_GC_TIMING.ackTimeoutMs * f)),
    ...overrides,
  };
  assertTiming(scaled);
  return scaled;
}

/** Throws unless the inequalities the safety argument rests on hold. */
export function assertTiming(t: GcTiming): void {
  const problems: string[] = [];
  if (!(t.collectorFenceMs < t.leaseExpireMs)) problems.push("collectorFenceMs must be below leaseExpireMs");
  if (!(t.collectorRenewMs * 2 < t.collectorFenceMs)) problems.push("collectorRenewMs must be below half of collectorFenceMs");
  if (!(t.participantFenceMs < t.leaseExpireMs)) problems.push("participantFenceMs must be below leaseExpireMs");
  if (!(t.idlePollMs * 2 <= t.participantFenceMs)) problems.push("idlePollMs must be at most half of participantFenceMs");
  if (!(t.serveLeaseRefreshMs * 2 < t.leaseExpireMs)) problems.push("serveLeaseRefreshMs must be below half of leaseExpireMs");
  if (problems.length > 0) throw new Error(`online garbage collection timing: ${problems.join("; ")}`);
}

/**
 * BERTH_TEST_GC_TIMING="leaseExpireMs=3000,graceMs=2000,intervalMs=500": the protocol in seconds, for tests and the
 * stress tool that run berth as separate processes. Never for production: it also lifts the minimums of the
 * grace period and the schedule's interval. Returns undefined when unset.
 */
export function testTimingFromEnv(env: NodeJS.ProcessEnv): { timing: GcTiming; graceMs?: number; intervalMs?: number } | undefined {
  const text = env.BERTH_TEST_GC_TIMING;
  if (text === undefined || text === "") return undefined;
  const values = new Map<string, number>();
  for (const part of text.split(",")) {
    const [key, value] = part.split("=");
    const n = Number(value);
    if (key === undefined || !Number.isFinite(n) || n <= 0) throw new Error(`BERTH_TEST_GC_TIMING: cannot read ${JSON.stringify(part)}`);
    values.set(key.trim(), n);
  }
  const expire = values.get("leaseExpireMs");
  if (expire === undefined) throw new Error("BERTH_TEST_GC_TIMING: leaseExpireMs is required");
  const overrides: Partial<GcTiming> = {};
  for (const [key, value] of values) if (key in DEFAULT_GC_TIMING && key !== "leaseExpireMs") overrides[key as keyof GcTiming] = value;
  return { timing: scaledTiming(expire, overrides), graceMs: values.get("graceMs"), intervalMs: values.get("intervalMs") };
}
