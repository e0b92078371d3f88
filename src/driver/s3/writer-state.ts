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
 * parts, the side object's tail when its tags match them, or else the committed object. Four
 * requests (ListMultipartUploads, the side object, HeadObject, ListParts); see resumeWithMarker for
 * the two a caller's marker file makes possible.
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
  return continueCommitted(b, key, state, committed.size);
}

/** No writer state: the committed object is continued. */
async function continueCommitted(b: Bucket, key: string, state: WriterState, size: number): Promise<WriterState> {
  if (size < MIN_PART_SIZE) {
    // Small enough to become the head of the next part (or of a PutObject), in memory.
    state.tail = (await b.getObject(key)).bytes;
    state.base = { size, copied: true };
  } else {
    // Copied server-side into the upload's first parts when the upload starts.
    state.base = { size, copied: false };
  }
  return state;
}

/** resumeWithMarker's answer when the marker is not there. */
export const MARKER_MISSING = Symbol("marker missing");

/**
 * resumeState for a key whose caller requires `markerKey` to exist in the same directory (an
 * upload's `data` beside its `startedat`): one delimited listing of the directory answers both.
 *
 * - Only the marker there: nothing was written yet. A multipart upload of a session that died
 *   before its close may exist; it was never acknowledged, so it is not continued, and removing
 *   the directory aborts it (S3Driver.delete lists the uploads under it).
 * - The side object there: since a close always stores it when there is anything to continue
 *   (MultipartWriter#persist), it names the upload to continue, so ListParts replaces the search
 *   for the newest upload (and no ListParts when it names none). A side object whose upload is gone
 *   (a crash between completing it and deleting the side object) falls back to resumeState.
 * - Anything else (a committed object, or what another writer left: distribution's uploads, an
 *   older berth's): resumeState.
 */
export async function resumeWithMarker(b: Bucket, key: string, markerKey: string): Promise<WriterState | typeof MARKER_MISSING> {
  const dir = key.slice(0, key.lastIndexOf("/") + 1);
  const page = await b.listPage({ Prefix: dir, Delimiter: "/" });
  if (page.IsTruncated) {
    // A directory of more than a page (a listing page size set very small): as without the marker.
    if ((await b.head(markerKey)) === undefined) return MARKER_MISSING;
    return resumeState(b, key);
  }
  const names = new Set((page.Contents ?? []).map((object) => object.Key!));
  if (!names.has(markerKey)) return MARKER_MISSING;
  const others = (page.CommonPrefixes ?? []).length + [...names].filter((name) => name !== markerKey && name !== key && name !== pendingKey(key)).length;
  if (!names.has(pendingKey(key))) return !names.has(key) && others === 0 ? emptyState(false) : resumeState(b, key);
  const pending = await readPending(b, key);
  if (pending === undefined) return resumeState(b, key); // removed meanwhile: a commit or a cancel
  const state: WriterState = { ...emptyState(false), pendingStored: true };
  if (pending.uploadId !== NO_UPLOAD) {
    const parts = await b.listParts(key, pending.uploadId);
    if (parts === undefined) return resumeState(b, key);
    state.uploadId = pending.uploadId;
    state.parts = parts;
    // More parts than the side object follows: a later session took its bytes into a part and died
    // before storing its own tail. As resumeState, the parts win.
    if (pending.parts !== parts.length) return state;
  } else if (pending.parts !== 0) {
    return resumeState(b, key);
  }
  state.tail = pending.bytes;
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
