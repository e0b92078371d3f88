/**
 * A case that measures the cost of one configuration change runs the harness's server with the
 * change and, in the same run, a fresh server of the same kind without it (its baseline). This
 * module starts and stops such pairs, and kills whatever they leave running if the benchmark exits
 * early.
 */
import type { ChildProcess } from "node:child_process";
import { startServer, type RunningServer, type StartOptions } from "./servers.js";
import type { BenchContext } from "./types.js";

/** A process started beside the pair (a webhook receiver), stopped with it. */
export interface Companion {
  stop(): Promise<void>;
}

export interface ServerPair<C extends Companion = Companion> {
  /** The harness's server, restarted with the change. */
  variant: RunningServer;
  /** The same kind without it, on its own storage. */
  baseline: RunningServer;
  companions: C[];
}

/** What a server of the pair is started with, beside the harness's defaults. */
export type ServerConfig = Pick<StartOptions, "extraYaml" | "httpYaml">;

/** Children (companions, baseline servers) still running, killed if the benchmark exits early. */
const live = new Set<ChildProcess | RunningServer>();
let exitHook = false;

/** Kills `child` if the benchmark exits before untrackChild. */
export function trackChild(child: ChildProcess | RunningServer): void {
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const c of live) {
        try {
          process.kill(c.pid!, "SIGKILL");
        } catch {
          // gone already
        }
      }
    });
  }
  live.add(child);
}

export function untrackChild(child: ChildProcess | RunningServer): void {
  live.delete(child);
}

/**
 * Turns the harness's plain server into the pair: the plain server becomes the baseline (or is
 * replaced by one started with `baselineConfig`), and `srv` is pointed at a fresh server with
 * `variantConfig`, as mirror.ts does, so the harness reads the changed server's CPU and memory.
 */
export async function startPair<C extends Companion>(srv: RunningServer, ctx: BenchContext, variantConfig: ServerConfig, companions: C[], baselineConfig?: ServerConfig): Promise<ServerPair<C>> {
  let baseline: RunningServer | undefined;
  try {
    if (baselineConfig === undefined) {
      baseline = { ...srv };
    } else {
      await srv.stop();
      baseline = await startServer(srv.kind, { tmpRoot: ctx.tmpRoot, berthWorkers: ctx.berthWorkers, ...baselineConfig });
    }
    trackChild(baseline);
    const variant = await startServer(srv.kind, { tmpRoot: ctx.tmpRoot, berthWorkers: ctx.berthWorkers, ...variantConfig });
    // The harness stops `srv` (now the changed server); stopPair stops the baseline.
    Object.assign(srv, variant);
    return { variant: srv, baseline, companions };
  } catch (err) {
    if (baseline) {
      await baseline.stop().catch(() => undefined);
      untrackChild(baseline);
    }
    for (const c of companions) await c.stop().catch(() => undefined);
    throw err;
  }
}

export async function stopPair(pair: ServerPair): Promise<void> {
  await pair.baseline.stop().catch(() => undefined);
  untrackChild(pair.baseline);
  for (const c of pair.companions) await c.stop().catch(() => undefined);
}

const runCounts = new Map<string, number>();

/** Which of the pair goes first in this run, per case and server kind: alternating, the variant first in the first run. */
export function variantFirst(caseName: string, srv: RunningServer): boolean {
  const key = `${caseName}/${srv.kind}`;
  const runs = runCounts.get(key) ?? 0;
  runCounts.set(key, runs + 1);
  return runs % 2 === 0;
}
