import type { Registry } from "../registry/registry.js";

/**
 * What the health routes show (src/server/routes/health.ts): the composition root passes the
 * health section's results (src/health/); without one, the registry's own component problems.
 */
export interface HealthView {
  /** GET /debug/health: failing check or component → short reason; empty when all is well. */
  problems(): Promise<Record<string, string>>;
  /** GET /debug/health/ready: the problems, plus "draining" while the process stops. */
  readiness(): Promise<Record<string, string>>;
}

/** The registry's component problems (Redis, notification outboxes) as the whole view. */
export function registryHealthView(registry: Registry): HealthView {
  return { problems: () => registry.health(), readiness: () => registry.health() };
}
