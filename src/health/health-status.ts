import type { HealthView } from "../server/health-view.js";
import type { PeriodicCheck } from "./periodic-check.js";

/** How long a readiness check's answer is reused. */
const READINESS_FRESH_MS = 1_000;

/** What readiness shows while the process is stopping. */
export const DRAINING_PROBLEM = "the registry is stopping: in-flight requests are finishing";

/**
 * The one registry of check results: the periodic checks of the `health` section, and the
 * problems the components report themselves (Redis, notification outboxes: `Registry.health()`).
 *
 * `down` is the one boolean the drain reads per request: kept by the checks when they change, so
 * a request costs a property read.
 */
export class HealthStatus implements HealthView {
  /** Some periodic check is down: API requests answer 503 UNAVAILABLE (src/health/drain-interceptor.ts). */
  down = false;
  /** The process is stopping (SIGTERM): readiness fails at once, in-flight requests finish. */
  draining = false;
  private readonly checks: PeriodicCheck[] = [];
  /** Looked at when readiness is asked, not on a timer, and never draining the API (storage, when no storagedriver check polls it). */
  private readonly readinessChecks: PeriodicCheck[] = [];
  private readonly readinessLookedAt = new Map<PeriodicCheck, number>();

  constructor(
    /** Problems by component (Registry.health()), asked on each health request: cheap, no I/O. */
    private readonly components: () => Promise<Record<string, string>>,
  ) {}

  /** Adds a check that readiness runs when asked (at most once per READINESS_FRESH_MS); it never drains the API. */
  addReadinessCheck(check: PeriodicCheck): void {
    this.readinessChecks.push(check);
  }

  /** Adds a check (not started). Names are unique: a second check of the same file, URI or address is refused at load. */
  add(check: PeriodicCheck): void {
    this.checks.push(check);
  }

  /** Called by a check that went down or came up. */
  recompute(): void {
    this.down = this.checks.some((check) => check.error !== undefined);
  }

  start(): void {
    for (const check of this.checks) check.start();
  }

  stop(): void {
    for (const check of this.checks) check.stop();
  }

  /** distribution's /debug/health body: failing check name → its error; empty when all is well. */
  async problems(): Promise<Record<string, string>> {
    const problems: Record<string, string> = {};
    for (const check of this.checks) if (check.error !== undefined) problems[check.name] = check.error;
    return Object.assign(problems, await this.components());
  }

  /** Readiness: the problems, the readiness checks, and draining while the process stops. */
  async readiness(): Promise<Record<string, string>> {
    const problems = await this.problems();
    await Promise.all(
      this.readinessChecks.map(async (check) => {
        const now = performance.now();
        // Probes every few seconds from each load balancer must not each cost a storage request.
        if (now - (this.readinessLookedAt.get(check) ?? -Infinity) >= READINESS_FRESH_MS) {
          this.readinessLookedAt.set(check, now);
          await check.runOnce();
        }
        if (check.error !== undefined) problems[check.name] = check.error;
      }),
    );
    if (this.draining) problems["draining"] = DRAINING_PROBLEM;
    return problems;
  }
}
