import type { IncomingMessage, ServerResponse } from "node:http";
import type { Config } from "../config/config.js";
import { describeConfig } from "../config/describe-config.js";
import type { DebugRoute } from "../server/debug-route.js";
import type { HealthView } from "../server/health-view.js";

/** The health views for the debug listener (http.debug.addr), the same as on the main port. */
export function healthDebugRoutes(view: HealthView): DebugRoute[] {
  return [
    { path: "/debug/health", handle: async (req, res) => sendProblems(req, res, await view.problems()) },
    { path: "/debug/health/live", handle: (req, res) => sendProblems(req, res, {}) },
    { path: "/debug/health/ready", handle: async (req, res) => sendProblems(req, res, await view.readiness()) },
  ];
}

/**
 * GET /debug/config: the effective configuration, secrets masked (src/config/describe-config.ts).
 * Only on the debug listener: it tells how the registry is built, which the public port never does.
 */
export function configDebugRoute(config: Config): DebugRoute {
  // The configuration never changes while the process runs.
  const body = JSON.stringify(describeConfig(config), null, 2);
  return { path: "/debug/config", handle: (req, res) => sendBody(req, res, 200, body) };
}

function sendProblems(req: IncomingMessage, res: ServerResponse, problems: Record<string, string>): void {
  sendBody(req, res, Object.keys(problems).length === 0 ? 200 : 503, JSON.stringify(problems));
}

function sendBody(req: IncomingMessage, res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": "no-store",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}
