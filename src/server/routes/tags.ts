import { paginate } from "../pagination.js";
import { locationFor, sendJSON, type RequestContext } from "../request-context.js";

/** GET /v2/<name>/tags/list?n=&last=: tags in lexical order, with a Link to the next page. */
export async function getTags(ctx: RequestContext): Promise<void> {
  const repository = ctx.registry.repository(ctx.params.name);
  const page = paginate(await repository.listTags(), ctx.query, undefined);
  const headers: Record<string, string> = {};
  if (page.next) headers.Link = `<${locationFor(ctx, `/v2/${repository.name}/tags/list?${page.next}`)}>; rel="next"`;
  sendJSON(ctx, 200, { name: repository.name, tags: page.items }, headers);
}
