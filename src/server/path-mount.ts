import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * A capability that answers its own paths outside /v2/ on the registry's port (the web UI,
 * src/ui/). The server asks each mount, in order, before routing a request to the registry API;
 * the first that owns the path answers it, and the registry router never sees that request.
 * A mount does its own access checks; an error it throws is rendered like any handler's
 * (src/server/error-response.ts). Mounts must never own a path under /v2/. Paths reach a mount
 * without http.prefix (src/server/path-prefix.ts); a URL it generates must add it back.
 */
export interface PathMount {
  owns(path: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void>;
}
