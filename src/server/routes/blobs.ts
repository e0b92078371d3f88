import { pipeline } from "node:stream/promises";
import { Digest } from "../../reference/digest.js";
import { parseRange } from "../byte-range.js";
import { clientIP } from "../client-address.js";
import { isClientGone, sendFileRange } from "../send-file-range.js";
import { sendOwnedChunks } from "../send-owned-chunks.js";
import { sendSplicedBody } from "../send-spliced-body.js";
import { sendEmpty, type RequestContext } from "../request-context.js";

/**
 * HEAD/GET /v2/<name>/blobs/<digest>: the bytes, whole or one Range (206), or a 307 to the
 * driver's URL when redirects are on. The blob must be linked in the repository.
 */
export async function getBlob(ctx: RequestContext): Promise<void> {
  const repository = ctx.registry.repository(ctx.params.name);
  const digest = Digest.parse(ctx.params.reference);
  const descriptor = await repository.statBlob(digest);
  const method = ctx.req.method === "HEAD" ? "HEAD" : "GET";
  if (ctx.settings.redirectsEnabled) {
    const url = await repository.blobRedirectURL(digest, method, { ip: clientIP(ctx.req) });
    if (url) {
      sendEmpty(ctx.res, 307, { Location: url, "Docker-Content-Digest": digest.toString() });
      return;
    }
  }
  const range = parseRange(ctx.req.headers.range, descriptor.size);
  const headers: Record<string, string | number> = {
    "Content-Type": descriptor.mediaType,
    "Docker-Content-Digest": digest.toString(),
    ETag: `"${digest.toString()}"`,
    "Accept-Ranges": "bytes",
    "Cache-Control": "max-age=31536000",
  };
  const start = range?.start ?? 0;
  const end = range ? range.end + 1 : descriptor.size;
  headers["Content-Length"] = end - start;
  if (range) headers["Content-Range"] = `bytes ${range.start}-${range.end}/${descriptor.size}`;
  const status = range ? 206 : 200;
  if (method === "HEAD" || end === start) {
    ctx.res.writeHead(status, headers);
    ctx.res.end();
    return;
  }
  const stream = await repository.openBlob(digest, start, end);
  ctx.res.writeHead(status, headers);
  try {
    if (await sendFileRange(ctx.res, stream)) return;
    if (await sendSplicedBody(ctx.res, stream)) return;
    if (await sendOwnedChunks(ctx.res, stream)) return;
    await pipeline(stream, ctx.res);
  } catch (err) {
    stream.destroy();
    // A client that stops reading is not a server failure; cut the response and move on.
    if (isClientGone(err) || ctx.res.destroyed || ctx.req.destroyed) {
      ctx.res.destroy();
      ctx.log.debug({ digest: digest.toString(), err }, "client went away during blob download");
      return;
    }
    throw err;
  }
}

/** DELETE /v2/<name>/blobs/<digest>: unlinks the blob from the repository (202). */
export async function deleteBlob(ctx: RequestContext): Promise<void> {
  const repository = ctx.registry.repository(ctx.params.name);
  await repository.deleteBlob(Digest.parse(ctx.params.reference));
  sendEmpty(ctx.res, 202);
}

