import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * A capability that answers its own paths outside /v2/ on the registry's port (the web UI,
 * src/ui/). The server asks each mount, in order, before routing a request to the registry API;
 * the first that owns the path answers it, and the registry router never sees that request.
 * A mount's requests go through the same interceptors as the API's, under the route name it gives.
 * A mount does its own access checks; an error it throws is rendered like any handler's
 * (src/server/error-response.ts). Mounts must never own a path under /v2/. Paths reach a mount
 * without http.prefix (src/server/path-prefix.ts); a URL it generates must add it back.
 */
export interface PathMount {
  owns(path: string): boolean;
  /**
   * The route name interceptors (metrics, tracing, drain) see for an owned path, as the router
   * names /v2/ routes: "ui", "ui_api_catalog", … for the web UI.
   */
  route(path: string): string;
  handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void>;
}
