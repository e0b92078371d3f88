import { RegistryError } from "../../errcode/registry-error.js";
import { Digest } from "../../reference/digest.js";
import { isValidRepositoryName } from "../../reference/names.js";
import type { Repository } from "../../registry/repository.js";
import { rangeHeader, type ChunkExpectation, type UploadSession } from "../../storage/upload-store.js";
import { bodyChunks } from "../request-body.js";
import { declaredLength, hasBody, locationFor, sendEmpty, type RequestContext } from "../request-context.js";

/**
 * POST /v2/<name>/blobs/uploads/: start an upload (202), push a whole blob (`?digest=`, 201), or
 * mount one from another repository (`?mount=&from=`, 201, or 202 and a new upload when the
 * source does not have it).
 */
export async function startUpload(ctx: RequestContext): Promise<void> {
  const repository = ctx.registry.repository(ctx.params.name);
  const mount = ctx.query.get("mount");
  const from = ctx.query.get("from");
  if (mount !== null && from !== null) {
    // A mount whose digest or source name is invalid falls back to an ordinary upload, as the spec
    // and distribution do: the client then pushes the blob instead.
    const digest = Digest.tryParse(mount);
    if (digest && isValidRepositoryName(from)) {
      const mounted = await repository.mountBlob(digest, ctx.registry.repository(from));
      if (mounted) {
        sendBlobCreated(ctx, repository, digest);
        return;
      }
    }
  }
  const digestParam = ctx.query.get("digest");
  if (digestParam !== null) {
    const digest = Digest.parse(digestParam);
    const session = await repository.startUpload();
    try {
      await repository.completeUpload(session, digest, bodyChunks(ctx.req), { length: declaredLength(ctx.req) });
    } catch (err) {
      await cancelQuietly(repository, session);
      throw err;
    }
    sendBlobCreated(ctx, repository, digest);
    return;
  }
  const session = await repository.startUpload();
  sendUploadAccepted(ctx, 202, session, 0);
}

/**
 * PATCH <location>: append a chunk (with Content-Range, which must start at the upload's end:
 * else 416) or a stream (without). 202 with the new Range.
 */
export async function patchUpload(ctx: RequestContext): Promise<void> {
  const { repository, session } = await openUpload(ctx);
  const expect = chunkExpectation(ctx);
  const size = await repository.appendUpload(session, bodyChunks(ctx.req), expect);
  sendUploadAccepted(ctx, 202, session, size);
}

/** PUT <location>?digest=: the optional last chunk, then digest verification. 201. */
export async function completeUpload(ctx: RequestContext): Promise<void> {
  const { repository, session } = await openUpload(ctx);
  const digestParam = ctx.query.get("digest");
  if (digestParam === null) throw new RegistryError("DIGEST_INVALID", "the digest parameter is required");
  const digest = Digest.parse(digestParam);
  const body = hasBody(ctx.req) ? bodyChunks(ctx.req) : undefined;
  await repository.completeUpload(session, digest, body, body ? chunkExpectation(ctx) : {});
  sendBlobCreated(ctx, repository, digest);
}

/** GET <location>: 204 with the upload's current Range. */
export async function getUploadStatus(ctx: RequestContext): Promise<void> {
  const { repository, session } = await openUpload(ctx);
  sendUploadAccepted(ctx, 204, session, await repository.uploadSize(session));
}

/** DELETE <location>: cancels the upload (204). */
export async function cancelUpload(ctx: RequestContext): Promise<void> {
  const { repository, session } = await openUpload(ctx);
  await repository.cancelUpload(session);
  sendEmpty(ctx.res, 204);
}

async function openUpload(ctx: RequestContext): Promise<{ repository: Repository; session: UploadSession }> {
  const repository = ctx.registry.repository(ctx.params.name);
  const id = ctx.params.reference;
  const state = ctx.query.get("_state");
  const verified = state !== null ? ctx.signer.verify(state, { name: repository.name, id }) : undefined;
  const session = await repository.openUpload(id, verified ? new Date(verified.startedAt) : undefined);
  return { repository, session };
}

/**
 * What the chunk says of itself. Content-Range is "<start>-<end>" (inclusive; docker and the
 * spec send it bare, some clients with a "bytes " prefix) and must agree with Content-Length.
 */
function chunkExpectation(ctx: RequestContext): ChunkExpectation {
  const length = declaredLength(ctx.req);
  const header = ctx.req.headers["content-range"];
  if (header === undefined) return { length };
  const match = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d{1,15}|\*))?$/.exec(header.trim());
  if (!match) throw new RegistryError("RANGE_INVALID", "malformed Content-Range", undefined);
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) throw new RegistryError("RANGE_INVALID", "Content-Range ends before it starts");
  if (length !== undefined && length !== end - start + 1) {
    throw new RegistryError("SIZE_INVALID", "Content-Length does not match Content-Range");
  }
  return { start, length: end - start + 1 };
}

function sendUploadAccepted(ctx: RequestContext, status: number, session: UploadSession, size: number): void {
  const token = ctx.signer.sign({ name: session.repository, id: session.id, startedAt: session.startedAt.getTime() });
  sendEmpty(ctx.res, status, {
    Location: locationFor(ctx, `/v2/${session.repository}/blobs/uploads/${session.id}?_state=${token}`),
    "Docker-Upload-UUID": session.id,
    ...rangeHeader(size),
  });
}

function sendBlobCreated(ctx: RequestContext, repository: Repository, digest: Digest): void {
  sendEmpty(ctx.res, 201, {
    Location: locationFor(ctx, `/v2/${repository.name}/blobs/${digest.toString()}`),
    "Docker-Content-Digest": digest.toString(),
  });
}

async function cancelQuietly(repository: Repository, session: UploadSession): Promise<void> {
  try {
    await repository.cancelUpload(session);
  } catch {
    // The upload is unreachable without its id; purging removes whatever is left.
  }
}
