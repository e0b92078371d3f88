import { paginate } from "../pagination.js";
import { locationFor, sendJSON, type RequestContext } from "../request-context.js";

const DEFAULT_CATALOG_PAGE = 1000;

/** GET /v2/_catalog?n=&last=: repository names in lexical order, with a Link to the next page. */
export async function getCatalog(ctx: RequestContext): Promise<void> {
  const page = paginate(await ctx.registry.catalog(), ctx.query, DEFAULT_CATALOG_PAGE);
  const headers: Record<string, string> = {};
  if (page.next) headers.Link = `<${locationFor(ctx, `/v2/_catalog?${page.next}`)}>; rel="next"`;
  sendJSON(ctx, 200, { repositories: page.items }, headers);
}
