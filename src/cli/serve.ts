import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import type { Config } from "../config/config.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import { createHealth } from "../health/create-health.js";
import { CollectionRunningError, acquireServeLease, type RegistryLease } from "../gc/registry-lease.js";
import { createLogger, type Logger } from "../log/logger.js";
import { createRegistryServer } from "../server/app.js";
import type { RegistryServer } from "../server/tls-server.js";
import { lastOnTheirConnections } from "../server/turn-end.js";
import { purgeUploads } from "../storage/upload-purger.js";
import { createCertificateProvider, createDebugRoutes, createDriver, createMetrics, createOnlineGc, createRegistry, createStorageMiddleware, createTracing, createWebUi, describeStorage, serverSettings } from "./compose.js";
import type { GcHooks } from "../gc/online/gc-hooks.js";
import type { GcTiming } from "../gc/online/timing.js";
import { startDebugListener, type DebugListener } from "./debug-listener.js";
import { checkStartPrerequisites } from "./start-checks.js";
import { answerDebugRequests } from "./worker-debug.js";
import { isWorker } from "./workers.js";
import { IdleMemoryReturn } from "../process/idle-memory-return.js";
import { setHeapGrowth } from "../process/heap-growth.js";

export interface RunningRegistry {
  server: RegistryServer;
  url: string;
  /** The debug listener's URL (http.debug.addr), when this process serves one. */
  debugUrl: string | undefined;
  close(): Promise<void>;
}

/** What an embedding program (a test) may change in the composition; nothing a configuration can say. */
export interface ServeHooks {
  /**
   * Wraps the configured driver before anything uses it (test/support/faulty-driver.ts injects
   * storage faults this way). Metrics and tracing, when on, wrap the result.
   */
  wrapDriver?: (driver: StorageDriver) => StorageDriver;
  /** Online collection's clocks, grace period and pause points (test/gc-online-*.test.ts). */
  gc?: { timing?: GcTiming; graceMs?: number; hooks?: GcHooks };
}

/** Starts the registry described by `config` and resolves once it listens. */
export async function serve(config: Config, warnings: string[], logOverride?: Logger, hooks: ServeHooks = {}): Promise<RunningRegistry> {
  const log =
    logOverride ?? createLogger(config.log);
  for (const warning of warnings) log.warn(warning);
  if (config.http.secretGenerated) {
    log.warn("http.secret is not set: generated one for this process; set it when running more than one node");
  }
  // Before anything opens: a start refused here leaves nothing to close (and config check runs the same).
  const { access } = await checkStartPrerequisites(config, process.env, log);
  // Then the CA: an unreachable one or an unusable cache directory stops the start.
  const certificates = await createCertificateProvider(config, log);
  // A storage middleware that cannot start (an unreadable key) fails before anything holds the process open.
  const middleware = await createStorageMiddleware(config, await createDriver(config, log), log);
  const metrics = await createMetrics(config);
  const tracing = await createTracing(process.env, log);
  // Each capability wraps the driver only when it is on: metrics outermost, timing what callers wait for.
  const created = middleware.driver;
  const plain = hooks.wrapDriver === undefined ? created : hooks.wrapDriver(created);
  const traced = tracing === undefined ? plain : tracing.traceDriver(plain);
  const driver = metrics === undefined ? traced : metrics.meterDriver(traced);
  setHeapGrowth(driver.remote === true);
  // The lease's id names this process's notification outboxes too (src/notifications/).
  const nodeId = randomBytes(8).toString("hex");
  const gc = await createOnlineGc(config, driver, nodeId, log, hooks.gc);
  const registry = await createRegistry(config, driver, log, { nodeId, sourceAddr: sourceAddr(config) }, tracing, gc);
  metrics?.watch(registry);
  const health = await createHealth(config, driver, registry, log);
  const ui = await createWebUi(config, registry, driver, access);
  const server = createRegistryServer({
    registry,
    settings: serverSettings(config),
    secret: config.http.secret,
    log,
    accessLog: !config.log.accessLogDisabled,
    timeouts: config.http.timeouts,
    // An upload older than the purging age may be purged at any moment: its token expires with it.
    uploadStateMaxAgeMs: config.storage.uploadPurging.ageMs,
    access,
    health: health.status,
    // Tracing outermost (its span covers everything), then metrics: they count the requests the drain refuses.
    // The UI's cross-site guard innermost: it refuses before the access check and the handler run.
    interceptors: [tracing?.interceptor, metrics?.interceptor, health.interceptor, ui?.interceptor].filter((interceptor) => interceptor !== undefined),
    mounts: ui === undefined ? [] : [ui.mount],
    ...(config.http.tls === undefined ? { h2c: config.http.h2c } : { tls: config.http.tls, http2: !config.http.http2Disabled }),
    ...(certificates === undefined ? {} : { certificates }),
  });
  // Announce the registry in its storage before it can write there, so garbage-collect refuses to run.
  const lease = await acquireLease(config, driver, log, nodeId, gc?.timing.serveLeaseRefreshMs);
  // Then the run state, before any request: a collection that started before the lease appeared is
  // known before this node vouches for anything (docs/garbage-collection.md).
  await gc?.start();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      const listening = (): void => {
        server.off("error", reject);
        resolve();
      };
      if (config.http.net === "unix") server.listen(config.http.addr, listening);
      else server.listen(config.http.listenPort, config.http.listenHost || undefined, listening);
    });
  } catch (err) {
    await lease?.release();
    throw err;
  }
  // Only now does the cache connect (Redis): a start that failed above leaves nothing open.
  registry.open();
  health.start();
  gc?.startSchedule();
  const url = listenURL(server.address(), config.http.tls !== undefined);
  log.info(
    {
      listen: url,
      storage: describeStorage(config),
      readOnly: config.storage.readOnly,
      deleteEnabled: config.storage.deleteEnabled,
      auth: config.auth?.kind ?? "none",
      ...(config.http.tls === undefined ? (config.http.h2c ? { h2c: true } : {}) : { tls: config.http.tls.minimumVersion, mutualTLS: config.http.tls.clientCAs.length > 0, http2: !config.http.http2Disabled }),
    },
    `berth listening on ${url}, storing in ${describeStorage(config)}`,
  );

  // Under --workers the primary owns the debug listener and asks each worker for its pages.
  let debugListener: DebugListener | undefined;
  if (config.http.debug.addr !== undefined) {
    const routes = createDebugRoutes(config, health.debugRoutes, metrics);
    if (isWorker()) {
      answerDebugRequests(routes);
    } else {
      try {
        debugListener = await startDebugListener(config.http.debug, routes, log);
      } catch (err) {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await registry.close();
        health.close();
        await lease?.release();
        throw err;
      }
      log.info({ listen: debugListener.url, paths: routes.map((route) => route.path) }, `debug listener on ${debugListener.url}`);
    }
  }

  const purging = config.storage.uploadPurging;
  // setTimeout fires at once for delays past 2^31-1 ms (~24.8 days); a longer interval waits that long.
  const intervalMs = Math.min(purging.intervalMs, 2 ** 31 - 1);
  let purgeTimer: NodeJS.Timeout | undefined;
  if (purging.enabled && !config.storage.readOnly) {
    const purge = async (): Promise<void> => {
      const olderThan = new Date(Date.now() - purging.ageMs);
      const result = await purgeUploads(driver, olderThan, purging.dryRun, log);
      if (result.purged.length > 0 || result.errors > 0) {
        log.info({ purged: result.purged.length, errors: result.errors, dryRun: purging.dryRun }, "purged stale uploads");
      }
      // What kills left under hidden names (the filesystem driver's), by the same age: the knob an
      // operator already sets for leftovers, and far longer than any operation takes. Logged every
      // pass, so that the crash campaign (tools/push-crash.ts) can tell when one has run.
      if (driver.removeTemporaries && !purging.dryRun) {
        const removed = await driver.removeTemporaries(olderThan);
        log.info({ removed, olderThan: olderThan.toISOString() }, "removed stale temporary files");
      }
    };
    const schedule = (): void => {
      purgeTimer = setTimeout(() => {
        purge().catch((err: unknown) => log.error({ err }, "upload purge failed")).finally(schedule);
      }, intervalMs);
      purgeTimer.unref();
    };
    // distribution waits a random part of the first interval so restarts do not purge in step.
    purgeTimer = setTimeout(() => {
      purge().catch((err: unknown) => log.error({ err }, "upload purge failed")).finally(schedule);
    }, Math.min(intervalMs, Math.floor(Math.random() * 60_000)));
    purgeTimer.unref();
  }

  const memoryReturn = new IdleMemoryReturn();
  memoryReturn.start();

  return {
    server,
    url,
    debugUrl: debugListener?.url,
    close: async () => {
      // First: readiness fails while in-flight requests finish, so load balancers stop sending.
      health.drain();
      if (purgeTimer) clearTimeout(purgeTimer);
      gc?.close();
      certificates?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        lastOnTheirConnections();
      });
      // The registry first: notifications drain while the lease still says this process lives,
      // so no other node adopts its outbox meanwhile.
      await registry.close();
      health.close();
      middleware.close();
      // Readiness stays visible there (503 draining) until everything above is done.
      await debugListener?.close();
      await lease?.release();
      // Last: the spans of everything above are exported before the process ends.
      await tracing?.shutdown();
      await memoryReturn.close();
    },
  };
}

/**
 * The lease garbage-collect looks for (src/gc/registry-lease.ts). A writable registry that cannot
 * write it, or that finds a collection running, does not start; a read-only one runs without it if
 * it must (its storage may well be read-only).
 */
async function acquireLease(config: Config, driver: StorageDriver, log: Logger, nodeId: string, refreshMs?: number): Promise<RegistryLease | undefined> {
  if (config.storage.driver.kind === "inmemory") return undefined;
  try {
    return await acquireServeLease(driver, { readOnly: config.storage.readOnly, log, nodeId, refreshMs });
  } catch (err) {
    if (err instanceof CollectionRunningError) throw err;
    if (!config.storage.readOnly) {
      throw new Error(`cannot write the registry lease that keeps garbage-collect away: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    log.warn({ err }, "read-only registry: could not write its lease (harmless: garbage-collect may run beside a read-only registry)");
    return undefined;
  }
}

/** distribution's event source address: the machine's hostname with the configured port. */
function sourceAddr(config: Config): string {
  return config.http.net === "unix" ? hostname() : `${hostname()}:${config.http.listenPort}`;
}

/** http(s)://host:port, or unix:<path> for a Unix socket (server.address() is then the path). */
function listenURL(address: AddressInfo | string | null, tls: boolean): string {
  if (typeof address === "string" || address === null) return `unix:${address ?? ""}`;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return `${tls ? "https" : "http"}://${host}:${address.port}`;
}
