import { RegistryError } from "../../errcode/registry-error.js";
import { MAX_MANIFEST_BYTES } from "../../manifest/parse-manifest.js";
import { parseReference, type Reference } from "../../registry/repository.js";
import { acceptedManifests, negotiateManifest } from "../manifest-negotiation.js";
import { readLimitedBody } from "../request-body.js";
import { locationFor, sendEmpty, type RequestContext } from "../request-context.js";


/**
 * HEAD/GET /v2/<name>/manifests/<reference>: the bytes exactly as pushed, of the manifest the
 * Accept header allows (src/server/manifest-negotiation.ts).
 */
export async function getManifest(ctx: RequestContext): Promise<void> {
  const repository = ctx.registry.repository(ctx.params.name);
  const reference = existingReference(ctx.params.reference);
  const stored = await repository.getManifest(reference);
  // As distribution: a client's cached copy of what the reference names is fresh whatever it accepts.
  const storedTag = `"${stored.digest.toString()}"`;
  if (ctx.req.headers["if-none-match"] === storedTag) {
    ctx.res.writeHead(304, { "Docker-Content-Digest": stored.digest.toString(), ETag: storedTag });
    ctx.res.end();
    return;
  }
  const accepted = acceptedManifests(ctx.req.headers.accept);
  const manifest = accepted === undefined ? stored : await negotiateManifest(stored, accepted, reference, repository);
  const digest = manifest.digest.toString();
  const etag = `"${digest}"`;
  const headers = {
    "Content-Type": manifest.mediaType,
    "Content-Length": manifest.content.length,
    "Docker-Content-Digest": digest,
    ETag: etag,
  };
  ctx.res.writeHead(200, headers);
  ctx.res.end(ctx.req.method === "HEAD" ? undefined : manifest.content);
}

/** PUT /v2/<name>/manifests/<reference>[?tag=…]: 201 with the manifest's digest and Location. */
export async function putManifest(ctx: RequestContext): Promise<void> {
  const repository = ctx.registry.repository(ctx.params.name);
  const reference = parseReference(ctx.params.reference);
  const content = await readLimitedBody(ctx.req, MAX_MANIFEST_BYTES, () => new RegistryError("MANIFEST_TOO_LARGE", undefined, { limit: MAX_MANIFEST_BYTES }));
  const { digest, subject } = await repository.putManifest(reference, content, ctx.req.headers["content-type"], ctx.query.getAll("tag"));
  const headers: Record<string, string | number> = {
    Location: locationFor(ctx, `/v2/${repository.name}/manifests/${digest.toString()}`),
    "Docker-Content-Digest": digest.toString(),
  };
  if (subject) headers["OCI-Subject"] = subject.digest.toString();
  // The spec: a registry that applies `?tag=` tags names each of them in OCI-Tag.
  const queryTags = [...new Set(ctx.query.getAll("tag"))];
  if (queryTags.length > 0) headers["OCI-Tag"] = queryTags.join(", ");
  sendEmpty(ctx.res, 201, headers);
}

/**
 * The reference of a manifest to read or delete. A tag outside the tag grammar can never have been
 * pushed, so it names no manifest: 404 MANIFEST_UNKNOWN, as distribution (whose routes do not
 * match such a tag) and the conformance suite expect, rather than the 400 a push gets.
 */
function existingReference(value: string): Reference {
  try {
    return parseReference(value);
  } catch (err) {
    if (err instanceof RegistryError && err.code === "TAG_INVALID") {
      throw new RegistryError("MANIFEST_UNKNOWN", undefined, { tag: value.slice(0, 200) });
    }
    throw err;
  }
}

/** DELETE /v2/<name>/manifests/<reference>: by digest the manifest, by tag the tag only. */
export async function deleteManifest(ctx: RequestContext): Promise<void> {
  const repository = ctx.registry.repository(ctx.params.name);
  await repository.deleteManifest(existingReference(ctx.params.reference));
  sendEmpty(ctx.res, 202);
}
