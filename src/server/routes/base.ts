import { sendJSON, type RequestContext } from "../request-context.js";

/** GET /v2/: the API version check every client makes first. */
export async function getBase(ctx: RequestContext): Promise<void> {
  sendJSON(ctx, 200, {});
}
