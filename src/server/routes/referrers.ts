import { Digest } from "../../reference/digest.js";
import { OCI_INDEX } from "../../manifest/media-types.js";
import type { RequestContext } from "../request-context.js";

/**
 * GET /v2/<name>/referrers/<digest>?artifactType=: an OCI image index of the manifests whose
 * subject is the digest. An unknown subject has no referrers: 200 with an empty index.
 */
export async function getReferrers(ctx: RequestContext): Promise<void> {
  const repository = ctx.registry.repository(ctx.params.name);
  const subject = Digest.parse(ctx.params.reference);
  const artifactType = ctx.query.get("artifactType") ?? undefined;
  const referrers = await repository.referrers(subject, artifactType);
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: referrers.map((d) => ({
      mediaType: d.mediaType,
      digest: d.digest.toString(),
      size: d.size,
      ...(d.artifactType !== undefined ? { artifactType: d.artifactType } : {}),
      ...(d.annotations !== undefined ? { annotations: d.annotations } : {}),
    })),
  });
  const headers: Record<string, string | number> = { "Content-Type": OCI_INDEX, "Content-Length": Buffer.byteLength(body) };
  if (artifactType !== undefined) headers["OCI-Filters-Applied"] = "artifactType";
  ctx.res.writeHead(200, headers);
  ctx.res.end(ctx.req.method === "HEAD" ? undefined : body);
}
