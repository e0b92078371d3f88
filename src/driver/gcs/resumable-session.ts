/**
 * GCS's resumable upload protocol, on a session URI (https://cloud.google.com/storage/docs/performing-resumable-uploads).
 * The SDK starts sessions but can only send a whole stream to one; berth needs to stop part way
 * (a PATCH ends, the process may too) and continue from another process, so the chunks are sent
 * here. The URI is the credential for the session: these requests carry no other.
 *
 * A session accepts chunks in multiples of 256 KiB, each starting where the stored bytes end, and
 * creates the object only at the request that states the total size. Until then nothing is
 * visible at the object's name. GCS keeps a session for a week.
 */
export const CHUNK_QUANTUM = 256 * 1024;

export class SessionError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "SessionError";
  }
}

/** What a session has: bytes stored so far, or finished (the object exists), or gone (expired, cancelled). */
export type SessionStatus = { kind: "open"; stored: number } | { kind: "finished"; size: number } | { kind: "gone" };

function storedFrom(response: Response): number {
  // "Range: bytes=0-<last>"; absent when nothing is stored yet.
  const range = response.headers.get("range");
  const match = range === null ? null : /^bytes=0-(\d+)$/.exec(range);
  return match === null ? 0 : Number(match[1]) + 1;
}

async function finishedSize(response: Response): Promise<number> {
  const body: unknown = await response.json();
  const size = (body as { size?: unknown } | null)?.size;
  if (typeof size !== "string" && typeof size !== "number") throw new SessionError(response.status, "session finished without an object size");
  return Number(size);
}

/** How many bytes the session holds (a PUT of no bytes with an unknown range and total). */
export async function querySession(uri: string): Promise<SessionStatus> {
  const response = await fetch(uri, { method: "PUT", headers: { "Content-Range": "bytes */*", "Content-Length": "0" } });
  if (response.status === 308) {
    await response.arrayBuffer();
    return { kind: "open", stored: storedFrom(response) };
  }
  if (response.status === 200 || response.status === 201) return { kind: "finished", size: await finishedSize(response) };
  await response.arrayBuffer();
  if (response.status === 404 || response.status === 410 || response.status === 499) return { kind: "gone" };
  throw new SessionError(response.status, `resumable session status: HTTP ${response.status}`);
}

/**
 * Sends `bytes` at `offset`. Without `total` they must be a multiple of 256 KiB and the session
 * stays open; with it they are the last and the object is created, whose size is returned.
 */
export async function putChunk(uri: string, offset: number, bytes: Uint8Array, total?: number): Promise<number> {
  const range =
    bytes.byteLength === 0 ? `bytes */${total ?? "*"}` : `bytes ${offset}-${offset + bytes.byteLength - 1}/${total ?? "*"}`;
  const response = await fetch(uri, { method: "PUT", headers: { "Content-Range": range }, body: bytes as unknown as ArrayBuffer });
  if (total === undefined) {
    if (response.status !== 308) {
      const text = await response.text();
      throw new SessionError(response.status, `resumable session chunk ${range}: HTTP ${response.status} ${text.slice(0, 200)}`);
    }
    await response.arrayBuffer();
    const stored = storedFrom(response);
    if (stored !== offset + bytes.byteLength) throw new SessionError(308, `resumable session holds ${stored} bytes after chunk ${range}`);
    return stored;
  }
  if (response.status !== 200 && response.status !== 201) {
    const text = await response.text();
    throw new SessionError(response.status, `resumable session final chunk ${range}: HTTP ${response.status} ${text.slice(0, 200)}`);
  }
  return finishedSize(response);
}

/** Cancels the session (GCS answers 499); one already gone is not an error. */
export async function cancelSession(uri: string): Promise<void> {
  const response = await fetch(uri, { method: "DELETE" });
  await response.arrayBuffer();
  if (response.status !== 499 && response.status !== 204 && response.status !== 200 && response.status !== 404 && response.status !== 410) {
    throw new SessionError(response.status, `cancel resumable session: HTTP ${response.status}`);
  }
}
