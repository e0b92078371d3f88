import { sendJSON, type RequestContext } from "../request-context.js";

const NO_STORE = { "Cache-Control": "no-store" };

/**
 * GET /debug/status: what background components report (notification queues and delivery
 * counts). It needs the access the catalog needs: operators, not anonymous callers.
 */
export async function getStatus(ctx: RequestContext): Promise<void> {
  sendJSON(ctx, 200, ctx.registry.diagnostics(), NO_STORE);
}

/**
 * GET /debug/health, where distribution serves its health checks: 200 `{}` when all is well, 503
 * with one short problem per failing check or component otherwise (`{"/srv/drain":"file exists"}`,
 * `{"redis":"unreachable: connection refused"}`). It needs no credentials (load balancers probe
 * it), so it tells nothing beyond that.
 */
export async function getHealth(ctx: RequestContext): Promise<void> {
  const problems = await ctx.health.problems();
  sendJSON(ctx, Object.keys(problems).length === 0 ? 200 : 503, problems, NO_STORE);
}

/** GET /debug/health/ready: can this process serve? The problems, and 503 at once when it stops. */
export async function getReady(ctx: RequestContext): Promise<void> {
  const problems = await ctx.health.readiness();
  sendJSON(ctx, Object.keys(problems).length === 0 ? 200 : 503, problems, NO_STORE);
}

/** GET /debug/health/live: the process answers. Never fails for a dependency: restarting would not mend it. */
export async function getLive(ctx: RequestContext): Promise<void> {
  sendJSON(ctx, 200, {}, NO_STORE);
}
