/**
 * What a multipart writer starts from: a clean slate, or what earlier sessions left of the key (a
 * multipart upload, its parts, and the small tail kept in the `<key>~pending` side object).
 */
import type { Bucket, Part } from "./bucket.js";
import { unlessNotFound } from "./s3-errors.js";
import { MIN_PART_SIZE } from "./s3-limits.js";

/**
 * Suffix of the side object that keeps a closed writer's small tail (see MultipartWriter). `~` is
 * not in the path alphabet, so no driver path can name it, and list/walk never show it; it shares
 * the path's prefix, so a recursive delete removes it.
 */
export const PENDING_SUFFIX = "~pending";
/** The side object's tags: the upload and the number of its parts the tail follows. */
const META_UPLOAD_ID = "berth-upload-id";
const META_PARTS = "berth-parts";
const NO_UPLOAD = "none";

export function pendingKey(key: string): string {
  return key + PENDING_SUFFIX;
}

export interface WriterState {
  uploadId: string | undefined;
  parts: Part[];
  /** Bytes not yet in a part: a pending tail, or a small committed object being continued. */
  tail: Buffer;
  /** A `<key>~pending` side object may exist and must be replaced or removed. */
  pendingStored: boolean;
  /** Uploads of the same key found alongside the live one: aborted at commit or cancel. */
  stale: string[];
  /** A committed object being continued; `copied` once its bytes are in parts (or in `tail`). */
  base: { size: number; copied: boolean } | undefined;
  /** Opened without `append`: the content starts empty even if nothing is written. */
  fresh: boolean;
}

function emptyState(fresh: boolean): WriterState {
  return { uploadId: undefined, parts: [], tail: Buffer.alloc(0), pendingStored: false, stale: [], base: undefined, fresh };
}

/**
 * The state a writer with `append` continues: the newest multipart upload of the key and its
 * parts, the side object's tail when its tags match them, or else the committed object.
 */
export async function resumeState(b: Bucket, key: string): Promise<WriterState> {
  const [uploads, pending, committed] = await Promise.all([
    b.listUploads(key, (k) => k === key),
    readPending(b, key),
    b.head(key),
  ]);
  // The newest upload is the live one; older ones are leftovers of abandoned sessions.
  uploads.sort((x, y) => x.initiated - y.initiated);
  let live = uploads.pop();
  let parts: Part[] = [];
  if (live !== undefined) {
    const listed = await b.listParts(key, live.uploadId);
    if (listed === undefined) live = undefined;
    else parts = listed;
  }
  const state: WriterState = {
    ...emptyState(false),
    uploadId: live?.uploadId,
    parts,
    pendingStored: pending !== undefined,
    stale: uploads.map((upload) => upload.uploadId),
  };
  const pendingValid = pending !== undefined && pending.uploadId === (live?.uploadId ?? NO_UPLOAD) && pending.parts === parts.length;
  if (pendingValid) state.tail = pending.bytes;
  if (live !== undefined || pendingValid || committed === undefined) return state;
  // No writer state: continue the committed object.
  if (committed.size < MIN_PART_SIZE) {
    // Small enough to become the head of the next part (or of a PutObject), in memory.
    state.tail = (await b.getObject(key)).bytes;
    state.base = { size: committed.size, copied: true };
  } else {
    // Copied server-side into the upload's first parts when the upload starts.
    state.base = { size: committed.size, copied: false };
  }
  return state;
}

/** A writer without `append` discards earlier sessions: their uploads and side object. */
export async function freshState(b: Bucket, key: string): Promise<WriterState> {
  const [uploads] = await Promise.all([b.listUploads(key, (k) => k === key), b.deleteKey(pendingKey(key))]);
  await Promise.all(uploads.map((upload) => b.abortUpload(key, upload.uploadId)));
  return emptyState(true);
}

/** Stores a closed writer's tail, tagged with the upload (if any) and the number of parts it follows. */
export async function storePending(b: Bucket, key: string, tail: Buffer, uploadId: string | undefined, parts: number): Promise<void> {
  await b.putObject(pendingKey(key), tail, { [META_UPLOAD_ID]: uploadId ?? NO_UPLOAD, [META_PARTS]: String(parts) });
}

async function readPending(b: Bucket, key: string): Promise<{ bytes: Buffer; uploadId: string; parts: number } | undefined> {
  const pending = await unlessNotFound(b.getObject(pendingKey(key)));
  if (pending === undefined) return undefined;
  const { bytes, metadata } = pending;
  return { bytes, uploadId: metadata[META_UPLOAD_ID] ?? "", parts: Number(metadata[META_PARTS] ?? NaN) };
}
