import { nextPageQuery, pageSize } from "../pagination.js";
import { locationFor, sendJSON, type RequestContext } from "../request-context.js";

const DEFAULT_CATALOG_PAGE = 1000;

/**
 * GET /v2/_catalog?n=&last=: repository names in catalog order (distribution's: segment by
 * segment), with a Link to the next page when more follow. A page costs its own names, not the
 * registry before it.
 */
export async function getCatalog(ctx: RequestContext): Promise<void> {
  const size = pageSize(ctx.query) ?? DEFAULT_CATALOG_PAGE;
  const last = ctx.query.get("last");
  const page = await ctx.registry.catalog(last === null || last === "" ? undefined : last, size);
  const headers: Record<string, string> = {};
  const final = page.names.at(-1);
  if (page.more && final !== undefined) headers.Link = `<${locationFor(ctx, `/v2/_catalog?${nextPageQuery(size, final)}`)}>; rel="next"`;
  sendJSON(ctx, 200, { repositories: page.names }, headers);
}
