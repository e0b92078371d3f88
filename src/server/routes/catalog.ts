import { RegistryError } from "../../errcode/registry-error.js";
import { nextPageQuery, pageSize } from "../pagination.js";
import { locationFor, sendJSON, type RequestContext } from "../request-context.js";

const DEFAULT_CATALOG_PAGE = 1000;

/**
 * GET /v2/_catalog?n=&last=: repository names in catalog order (distribution's: segment by
 * segment), with a Link to the next page when more follow. A page costs its own names, not the
 * registry before it.
 */
export async function getCatalog(ctx: RequestContext): Promise<void> {
  const size = catalogPageSize(ctx);
  const last = ctx.query.get("last");
  const page = await ctx.registry.catalog(last === null || last === "" ? undefined : last, size);
  const headers: Record<string, string> = {};
  const final = page.names.at(-1);
  if (page.more && final !== undefined) headers.Link = `<${locationFor(ctx, `/v2/_catalog?${nextPageQuery(size, final)}`)}>; rel="next"`;
  sendJSON(ctx, 200, { repositories: page.names }, headers);
}

/**
 * `n`, or the default page. With catalog.maxentries, as distribution 3: an `n` above it is
 * PAGINATION_NUMBER_INVALID (not lowered), and the default page is no larger than it.
 */
function catalogPageSize(ctx: RequestContext): number {
  const max = ctx.settings.catalogMaxEntries;
  const asked = pageSize(ctx.query);
  if (max === undefined) return asked ?? DEFAULT_CATALOG_PAGE;
  if (asked === undefined) return Math.min(DEFAULT_CATALOG_PAGE, max);
  // pageSize lowers a huge n to MAX_PAGE_SIZE: compare the n the client sent.
  if (Number(ctx.query.get("n")) > max) throw new RegistryError("PAGINATION_NUMBER_INVALID", undefined, { n: Number(ctx.query.get("n")) });
  return asked;
}
