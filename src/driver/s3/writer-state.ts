/**
 * What a multipart writer starts from: a clean slate, or what earlier sessions left of the key (a
 * multipart upload, its parts, and the small tail kept in a `<key>~pending…` side object).
 */
import type { Bucket, ListedObject, Part } from "./bucket.js";
import { unlessNotFound } from "./s3-errors.js";
import { MIN_PART_SIZE } from "./s3-limits.js";

/**
 * Start of the name of the side object that keeps a closed writer's small tail (see
 * MultipartWriter). `~` is not in the path alphabet, so no driver path can name it, and list/walk
 * never show it; it shares the path's prefix, so a recursive delete removes it.
 */
export const PENDING_SUFFIX = "~pending";
/**
 * The side object's name carries its tags, the number of parts its tail follows and the upload
 * (base64url, or NO_UPLOAD): `<key>~pending~<parts>~<upload>`. So the listing that finds it tells
 * which upload to continue, and a commit can copy the tail into the last part server-side without
 * reading it. Older berths named it `<key>~pending`, with the tags in its metadata: still read.
 */
const TAG_SEPARATOR = "~";
const NO_UPLOAD = "none";
/** The legacy side object's metadata tags. */
const META_UPLOAD_ID = "berth-upload-id";
const META_PARTS = "berth-parts";

/** The legacy side object's name (a prefix of every newer one's). */
export function pendingKey(key: string): string {
  return key + PENDING_SUFFIX;
}

/** The side object of a tail that follows `parts` parts of `uploadId` (or no upload). */
export function pendingObjectKey(key: string, uploadId: string | undefined, parts: number): string {
  const upload = uploadId === undefined ? NO_UPLOAD : Buffer.from(uploadId, "utf8").toString("base64url");
  return `${pendingKey(key)}${TAG_SEPARATOR}${parts}${TAG_SEPARATOR}${upload}`;
}

/** Whether `candidate` is a side object of `key`, of either naming. */
export function isPendingKeyOf(candidate: string, key: string): boolean {
  const legacy = pendingKey(key);
  return candidate === legacy || candidate.startsWith(legacy + TAG_SEPARATOR);
}

/** A side object found by listing: its key, size, and tags (undefined for a legacy one: they are in its metadata). */
interface SideObject {
  key: string;
  size: number;
  tags: { uploadId: string; parts: number } | undefined;
}

function sideObject(object: ListedObject, key: string): SideObject | undefined {
  const name = object.Key;
  if (name === undefined || !isPendingKeyOf(name, key)) return undefined;
  const size = object.Size ?? 0;
  if (name === pendingKey(key)) return { key: name, size, tags: undefined };
  const [parts, upload, ...rest] = name.slice(pendingKey(key).length + 1).split(TAG_SEPARATOR);
  if (rest.length > 0 || parts === undefined || upload === undefined || !/^\d+$/.test(parts)) return undefined;
  const uploadId = upload === NO_UPLOAD ? NO_UPLOAD : Buffer.from(upload, "base64url").toString("utf8");
  return { key: name, size, tags: { uploadId, parts: Number(parts) } };
}

/** The side object a resume starts from: of the tagged ones the one with the most parts; a legacy one only alone. */
function latestSideObject(found: SideObject[]): SideObject | undefined {
  const parts = (side: SideObject): number => side.tags?.parts ?? -1;
  return found.reduce<SideObject | undefined>((best, side) => (best === undefined || parts(side) > parts(best) ? side : best), undefined);
}

/** Every side object of `key` (one listing of their shared prefix). */
export async function listSideObjects(b: Bucket, key: string): Promise<SideObject[]> {
  const found: SideObject[] = [];
  for await (const page of b.listPages({ Prefix: pendingKey(key) })) {
    for (const object of page.Contents ?? []) {
      const side = sideObject(object, key);
      if (side !== undefined) found.push(side);
    }
  }
  return found;
}

/** Removes every side object of `key`. */
export async function deleteSideObjects(b: Bucket, key: string): Promise<void> {
  const found = await listSideObjects(b, key);
  if (found.length > 0) await b.deleteKeys(found.map((side) => side.key));
}

export interface WriterState {
  uploadId: string | undefined;
  parts: Part[];
  /** Bytes not yet in a part: a pending tail, or a small committed object being continued. */
  tail: Buffer;
  /** The side object holding the pending tail, not read yet (`tail` is then empty). */
  tailObject: { key: string; size: number } | undefined;
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
  return { uploadId: undefined, parts: [], tail: Buffer.alloc(0), tailObject: undefined, pendingStored: false, stale: [], base: undefined, fresh };
}

/**
 * The state a writer with `append` continues: the newest multipart upload of the key and its
 * parts, the side object's tail when its tags match them, or else the committed object. Four
 * requests (ListMultipartUploads, a listing of the side objects, HeadObject, ListParts); see
 * resumeWithMarker for the two a caller's marker file makes possible.
 */
export async function resumeState(b: Bucket, key: string): Promise<WriterState> {
  const [uploads, sides, committed] = await Promise.all([b.listUploads(key, (k) => k === key), listSideObjects(b, key), b.head(key)]);
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
    pendingStored: sides.length > 0,
    stale: uploads.map((upload) => upload.uploadId),
  };
  const matches = (tags: { uploadId: string; parts: number }): boolean => tags.uploadId === (live?.uploadId ?? NO_UPLOAD) && tags.parts === parts.length;
  const tagged = sides.find((side) => side.tags !== undefined && matches(side.tags));
  let pendingValid = tagged !== undefined;
  if (tagged !== undefined) setTail(state, tagged);
  else if (sides.some((side) => side.tags === undefined)) {
    const legacy = await readLegacyPending(b, key);
    if (legacy !== undefined && matches(legacy)) {
      state.tail = legacy.bytes;
      pendingValid = true;
    }
  }
  if (live !== undefined || pendingValid || committed === undefined) return state;
  return continueCommitted(b, key, state, committed.size);
}

/** The tail is the side object's: read when bytes follow it, copied server-side when none do. */
function setTail(state: WriterState, side: SideObject): void {
  if (side.size > 0) state.tailObject = { key: side.key, size: side.size };
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
 *   before its close may exist; it was never acknowledged, so it is not continued (the directory's
 *   removal or S3Driver.removeTemporaries aborts it).
 * - A side object there: since a close always stores one when there is anything to continue
 *   (MultipartWriter#persist), its name says which upload to continue and after how many parts, so
 *   ListParts replaces the search for the newest upload (and no ListParts when it names none), and
 *   its tail is not read unless bytes follow it. Side objects of earlier closes may be there too
 *   (they are left to the directory's removal): the one with the most parts is the last close's. A
 *   side object whose upload is gone (a crash between completing it and removing the directory)
 *   falls back to resumeState, and so does a legacy one (its tags are in its metadata).
 * - Anything else (a committed object, or what another writer left: distribution's uploads):
 *   resumeState.
 */
export async function resumeWithMarker(b: Bucket, key: string, markerKey: string): Promise<WriterState | typeof MARKER_MISSING> {
  const dir = key.slice(0, key.lastIndexOf("/") + 1);
  const page = await b.listPage({ Prefix: dir, Delimiter: "/" });
  if (page.IsTruncated) {
    // A directory of more than a page (a listing page size set very small): as without the marker.
    if ((await b.head(markerKey)) === undefined) return MARKER_MISSING;
    return resumeState(b, key);
  }
  const objects = page.Contents ?? [];
  if (!objects.some((object) => object.Key === markerKey)) return MARKER_MISSING;
  const sides = objects.map((object) => sideObject(object, key)).filter((side): side is SideObject => side !== undefined);
  const others = (page.CommonPrefixes ?? []).length + objects.filter((object) => object.Key !== markerKey && object.Key !== key && !isPendingKeyOf(object.Key ?? "", key)).length;
  const latest = latestSideObject(sides);
  if (latest === undefined) return !objects.some((object) => object.Key === key) && others === 0 ? emptyState(false) : resumeState(b, key);
  if (latest.tags === undefined) return resumeState(b, key);
  const state: WriterState = { ...emptyState(false), pendingStored: true };
  if (latest.tags.uploadId !== NO_UPLOAD) {
    const parts = await b.listParts(key, latest.tags.uploadId);
    if (parts === undefined) return resumeState(b, key);
    state.uploadId = latest.tags.uploadId;
    state.parts = parts;
    // More parts than the side object follows: a later session took its bytes into a part and died
    // before storing its own tail. As resumeState, the parts win.
    if (latest.tags.parts !== parts.length) return state;
  } else if (latest.tags.parts !== 0) {
    return resumeState(b, key);
  }
  setTail(state, latest);
  return state;
}

/** A writer without `append` discards earlier sessions: their uploads and side objects. */
export async function freshState(b: Bucket, key: string): Promise<WriterState> {
  const [uploads] = await Promise.all([b.listUploads(key, (k) => k === key), deleteSideObjects(b, key)]);
  await Promise.all(uploads.map((upload) => b.abortUpload(key, upload.uploadId)));
  return emptyState(true);
}

/** Stores a closed writer's tail under a name that says which upload (if any) and how many parts it follows. */
export async function storePending(b: Bucket, key: string, tail: Buffer, uploadId: string | undefined, parts: number): Promise<void> {
  await b.putObject(pendingObjectKey(key, uploadId, parts), tail);
}

/** The side object an older berth wrote (`<key>~pending`, tags in its metadata). */
async function readLegacyPending(b: Bucket, key: string): Promise<{ bytes: Buffer; uploadId: string; parts: number } | undefined> {
  const pending = await unlessNotFound(b.getObject(pendingKey(key)));
  if (pending === undefined) return undefined;
  const { bytes, metadata } = pending;
  return { bytes, uploadId: metadata[META_UPLOAD_ID] ?? "", parts: Number(metadata[META_PARTS] ?? NaN) };
}
