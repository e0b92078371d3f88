import { sendJSON, type RequestContext } from "../request-context.js";

/**
 * GET or HEAD /v2: distribution's router (gorilla/mux with StrictSlash) answers 301 to /v2/ before
 * anything else runs, authentication included. Location is a path, as there.
 */
export async function redirectToBase(ctx: RequestContext): Promise<void> {
  ctx.res.writeHead(301, { Location: ctx.settings.prefix.apply("/v2/"), "Content-Length": "0" });
  ctx.res.end();
}

/** GET /v2/: the API version check every client makes first. */
export async function getBase(ctx: RequestContext): Promise<void> {
  sendJSON(ctx, 200, {});
}
