import type { Registry } from "../../registry/registry.js";
import type { DebugRoute } from "../debug-route.js";
import { sendJSON, type RequestContext } from "../request-context.js";

/**
 * GET /debug/status: what background components report (notification queues and delivery
 * counts). It needs the access the catalog needs: operators, not anonymous callers.
 */
export async function getStatus(ctx: RequestContext): Promise<void> {
  sendJSON(ctx, 200, ctx.registry.diagnostics(), { "Cache-Control": "no-store" });
}

/**
 * GET /debug/health, where distribution serves its health checks: 200 `{}` when all is well, 503
 * with one short problem per component otherwise (`{"redis":"unreachable: connection refused"}`).
 * It needs no credentials (load balancers probe it), so it tells nothing beyond that.
 */
export async function getHealth(ctx: RequestContext): Promise<void> {
  const problems = await ctx.registry.health();
  const healthy = Object.keys(problems).length === 0;
  sendJSON(ctx, healthy ? 200 : 503, problems, { "Cache-Control": "no-store" });
}

/** The same view on the debug listener (http.debug.addr), where distribution serves it too. */
export function healthDebugRoute(registry: Registry): DebugRoute {
  return {
    path: "/debug/health",
    async handle(req, res) {
      const problems = await registry.health();
      const body = JSON.stringify(problems);
      res.writeHead(Object.keys(problems).length === 0 ? 200 : 503, {
        "Content-Type": "application/json; charset=utf-8",
        "Content-Length": Buffer.byteLength(body),
        "Cache-Control": "no-store",
      });
      res.end(req.method === "HEAD" ? undefined : body);
    },
  };
}
