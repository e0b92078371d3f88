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
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";

export const CHUNK_QUANTUM = 256 * 1024;

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * One request on node:http, not fetch: undici's fetch keeps references to several past request
 * bodies (measured: ~30 MiB after forty 5 MiB PUTs, after a full GC), which would hold chunks
 * long after they were sent. Answers here are small (a status, a Range, object metadata).
 */
function send(uri: string, method: string, headers: Record<string, string>, body?: Uint8Array): Promise<Answer> {
  const url = new URL(uri);
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { ...headers, "content-length": String(body?.byteLength ?? 0) } }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (part: Buffer) => parts.push(part));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body === undefined || body.byteLength === 0 ? undefined : body);
  });
}

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

function storedFrom(answer: Answer): number {
  // "Range: bytes=0-<last>"; absent when nothing is stored yet.
  const range = answer.headers["range"];
  const match = typeof range === "string" ? /^bytes=0-(\d+)$/.exec(range) : null;
  return match === null ? 0 : Number(match[1]) + 1;
}

function finishedSize(answer: Answer): number {
  let body: unknown;
  try {
    body = JSON.parse(answer.body);
  } catch {
    body = undefined;
  }
  const size = (body as { size?: unknown } | null | undefined)?.size;
  if (typeof size !== "string" && typeof size !== "number") throw new SessionError(answer.status, "session finished without an object size");
  return Number(size);
}

/** How many bytes the session holds (a PUT of no bytes with an unknown range and total). */
export async function querySession(uri: string, headers: Record<string, string>): Promise<SessionStatus> {
  const answer = await send(uri, "PUT", { ...headers, "content-range": "bytes */*" });
  if (answer.status === 308) return { kind: "open", stored: storedFrom(answer) };
  if (answer.status === 200 || answer.status === 201) return { kind: "finished", size: finishedSize(answer) };
  if (answer.status === 404 || answer.status === 410 || answer.status === 499) return { kind: "gone" };
  throw new SessionError(answer.status, `resumable session status: HTTP ${answer.status}`);
}

/**
 * Sends `bytes` at `offset`. Without `total` they must be a multiple of 256 KiB and the session
 * stays open; with it they are the last and the object is created, whose size is returned.
 */
export async function putChunk(uri: string, offset: number, bytes: Uint8Array, total: number | undefined, headers: Record<string, string>): Promise<number> {
  const range =
    bytes.byteLength === 0 ? `bytes */${total ?? "*"}` : `bytes ${offset}-${offset + bytes.byteLength - 1}/${total ?? "*"}`;
  const answer = await send(uri, "PUT", { ...headers, "content-range": range }, bytes);
  if (total === undefined) {
    if (answer.status !== 308) throw new SessionError(answer.status, `resumable session chunk ${range}: HTTP ${answer.status} ${answer.body.slice(0, 200)}`);
    const stored = storedFrom(answer);
    if (stored !== offset + bytes.byteLength) throw new SessionError(308, `resumable session holds ${stored} bytes after chunk ${range}`);
    return stored;
  }
  if (answer.status !== 200 && answer.status !== 201) {
    throw new SessionError(answer.status, `resumable session final chunk ${range}: HTTP ${answer.status} ${answer.body.slice(0, 200)}`);
  }
  return finishedSize(answer);
}

/** Cancels the session (GCS answers 499); one already gone is not an error. */
export async function cancelSession(uri: string, headers: Record<string, string>): Promise<void> {
  const answer = await send(uri, "DELETE", headers);
  if (![499, 204, 200, 404, 410].includes(answer.status)) throw new SessionError(answer.status, `cancel resumable session: HTTP ${answer.status}`);
}
