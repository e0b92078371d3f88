import { maskURLPassword } from "../config/build-notifications.js";
import type { Config } from "../config/config.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import type { Logger } from "../log/logger.js";
import type { Registry } from "../registry/registry.js";
import type { DebugRoute } from "../server/debug-route.js";
import type { RequestInterceptor } from "../server/request-interceptor.js";
import { configDebugRoute, healthDebugRoutes } from "./debug-routes.js";
import { drainInterceptor } from "./drain-interceptor.js";
import { HealthStatus } from "./health-status.js";
import { PeriodicCheck, type Probe } from "./periodic-check.js";
import { fileProbe, httpProbe, storageDriverProbe, tcpProbe } from "./probes.js";
import { resolveCheckHosts } from "./resolve-check-hosts.js";

/** Longest wait for the storage when readiness asks and no storagedriver check polls it. */
const READINESS_STORAGE_TIMEOUT_MS = 2_000;

/** The health part of a running registry, as the composition root wires it. */
export interface Health {
  /** What the main port's health routes show. */
  status: HealthStatus;
  /** The drain (503 UNAVAILABLE while a check is down); only when the `health` section configures a check. */
  interceptor: RequestInterceptor | undefined;
  /** /debug/health, /debug/health/live, /debug/health/ready and /debug/config, for the debug listener. */
  debugRoutes: DebugRoute[];
  /** Starts the checks, once the server listens. */
  start(): void;
  /** Readiness fails from now on (SIGTERM): load balancers stop sending while in-flight requests finish. */
  drain(): void;
  /** Stops the checks. */
  close(): void;
}

/**
 * The checks of the `health` section and the views over them. Hosts the checks name are resolved
 * first: an unresolvable one is a ConfigError naming its key, before the server listens.
 */
export async function createHealth(config: Config, driver: StorageDriver, registry: Registry, log: Logger): Promise<Health> {
  const status = new HealthStatus(() => registry.health());
  const health = config.health;
  if (health !== undefined) {
    await resolveCheckHosts(health);
    const add = (name: string, probe: Probe, options: { intervalMs: number; timeoutMs: number; threshold: number }): void => {
      status.add(new PeriodicCheck(name, probe, options, () => status.recompute(), log));
    };
    if (health.storageDriver !== undefined) {
      const { intervalMs, threshold } = health.storageDriver;
      // distribution gives the stat no deadline; one interval keeps a hanging backend from piling up stats.
      add(`storagedriver_${config.storage.driver.kind}`, storageDriverProbe(driver, log), { intervalMs, timeoutMs: intervalMs, threshold });
    }
    for (const check of health.files) add(check.file, fileProbe(check.path), { ...check, timeoutMs: check.intervalMs });
    // A password in the URI stays out of /debug/health, which anyone may read.
    for (const check of health.http) add(maskURLPassword(check.uri), httpProbe(check), check);
    for (const check of health.tcp) add(check.addr, tcpProbe(check), check);
  }
  if (health?.storageDriver === undefined) {
    // Readiness covers storage even when no storagedriver check polls it: looked at when asked.
    const options = { intervalMs: READINESS_STORAGE_TIMEOUT_MS, timeoutMs: READINESS_STORAGE_TIMEOUT_MS, threshold: 1 };
    status.addReadinessCheck(new PeriodicCheck(`storagedriver_${config.storage.driver.kind}`, storageDriverProbe(driver, log), options, () => undefined, log));
  }
  return {
    status,
    interceptor: health === undefined ? undefined : drainInterceptor(status),
    debugRoutes: [...healthDebugRoutes(status), configDebugRoute(config)],
    start: () => status.start(),
    drain: () => {
      status.draining = true;
    },
    close: () => status.stop(),
  };
}
