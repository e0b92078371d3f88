import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "../log/logger.js";
import type { DebugRoute } from "./debug-route.js";

/**
 * The debug listener (`http.debug.addr`): plain HTTP serving the routes capabilities contribute
 * (metrics, health), each at its exact path, GET and HEAD only. Other paths answer 404 unless a
 * `fallback` takes them (the `--workers` primary forwards them to its workers). It knows none of
 * the routes; a route that throws answers 500, and the error is logged.
 */
export function createDebugServer(routes: readonly DebugRoute[], log: Logger, fallback?: DebugRoute["handle"]): Server {
  const byPath = new Map(routes.map((route) => [route.path, route]));
  return createServer((req, res) => {
    void serveDebug(req, res, byPath, log, fallback);
  });
}

async function serveDebug(req: IncomingMessage, res: ServerResponse, byPath: Map<string, DebugRoute>, log: Logger, fallback: DebugRoute["handle"] | undefined): Promise<void> {
  const url = req.url ?? "/";
  const queryStart = url.indexOf("?");
  const path = queryStart === -1 ? url : url.slice(0, queryStart);
  const route = byPath.get(path);
  if (route === undefined && fallback === undefined) return sendText(res, 404, "404 page not found\n");
  if (req.method !== "GET" && req.method !== "HEAD") return sendText(res, 405, "405 method not allowed\n", { Allow: "GET, HEAD" });
  try {
    await (route === undefined ? fallback!(req, res) : route.handle(req, res));
  } catch (err) {
    log.error({ err, path }, "debug listener: the page failed");
    if (!res.headersSent) sendText(res, 500, "500 internal server error\n");
    else res.destroy();
  }
}

function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(text), "X-Content-Type-Options": "nosniff", ...headers });
  res.end(text);
}
