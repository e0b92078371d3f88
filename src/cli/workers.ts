import cluster, { type Worker } from "node:cluster";
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import type { Config } from "../config/config.js";
import { createLogger } from "../log/logger.js";
import type { DebugRoute } from "../server/debug-route.js";
import { startDebugListener, type DebugListener } from "./debug-listener.js";
import { forwardToWorkers } from "./worker-debug.js";

/** Set in each worker's environment: its index, so a worker knows it shares the port with others. */
export const WORKER_INDEX_ENV = "BERTH_WORKER_INDEX";

/** "auto" → one per core; otherwise a positive integer. undefined for anything else. */
export function parseWorkerCount(value: string): number | undefined {
  if (value === "auto") return availableParallelism();
  if (!/^\d{1,3}$/.test(value)) return undefined;
  const count = Number(value);
  return count >= 1 ? count : undefined;
}

export function isWorker(): boolean {
  return cluster.isWorker;
}

/**
 * Runs `count` copies of `berth serve` sharing one port (node:cluster; the primary accepts and
 * hands connections to workers in turn). Workers are nodes like any other: upload state travels in
 * the signed token, upload bytes and hash state in storage, so any worker continues what another
 * started. The primary only supervises: it restarts a worker that dies and forwards SIGINT/SIGTERM.
 */
export async function runWorkers(count: number, config: Config): Promise<number> {
  if (config.storage.driver.kind === "inmemory") {
    throw new Error("--workers needs shared storage: with storage.inmemory every worker would hold its own registry");
  }
  const env: Record<string, string> = {};
  // Every worker must sign and verify upload state with the same key.
  if (config.http.secretGenerated) env.REGISTRY_HTTP_SECRET = randomBytes(32).toString("hex");
  let stopping = false;
  const fork = (index: number): Worker => {
    const worker = cluster.fork({ ...env, [WORKER_INDEX_ENV]: String(index) });
    worker.on("exit", (code, signal) => {
      if (stopping) return;
      process.stderr.write(`berth: worker ${index} exited (${signal ?? code}); starting another\n`);
      // A worker that dies at once (bad storage, port taken) must not spin: wait a moment.
      setTimeout(() => {
        if (!stopping) fork(index);
      }, 1000).unref();
    });
    return worker;
  };
  // First: a debug port that cannot be bound stops the start before any worker runs.
  const debugListener = await startPrimaryDebugListener(config);
  process.stderr.write(`berth: starting ${count} workers sharing ${config.http.addr}\n`);
  for (let i = 0; i < count; i++) fork(i);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      stopping = true;
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGTERM");
      void debugListener?.close();
      const check = setInterval(() => {
        if (Object.keys(cluster.workers ?? {}).length === 0) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  return 0;
}

/**
 * The debug listener under --workers: the primary's, since the workers cannot all bind its port.
 * Metrics are every worker's summed (prom-client's AggregatorRegistry asks each over the cluster
 * channel); every other page is asked of each worker (src/cli/worker-debug.ts).
 */
async function startPrimaryDebugListener(config: Config): Promise<DebugListener | undefined> {
  const debug = config.http.debug;
  if (debug.addr === undefined) return undefined;
  const routes: DebugRoute[] = [];
  if (debug.prometheus.enabled) {
    const { aggregatedMetricsRoute } = await import("../metrics/prometheus-metrics.js");
    routes.push(aggregatedMetricsRoute(debug.prometheus.path));
  }
  const log = createLogger(config.log);
  const listener = await startDebugListener(debug, routes, log, forwardToWorkers());
  process.stderr.write(`berth: debug listener on ${listener.url}\n`);
  return listener;
}
