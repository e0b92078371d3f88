import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * One page of the debug listener (`http.debug.addr`): metrics, health, the effective
 * configuration. Each capability contributes its own routes; the composition root hands them all
 * to the debug server, which knows none of them.
 */
export interface DebugRoute {
  /** Exact path, matched without the query ("/metrics", "/debug/health"). */
  path: string;
  /** GET and HEAD reach it; the debug server answers 405 to other methods. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> | void;
}
