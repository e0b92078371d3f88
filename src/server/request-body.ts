import type { IncomingMessage, ServerResponse } from "node:http";
import type { RegistryError } from "../errcode/registry-error.js";
import type { UploadBody } from "../storage/upload-store.js";
import { declaredLength } from "./request-context.js";

/**
 * How much of a refused body is still read and dropped so that the client, which may still be
 * sending, gets the error answer instead of a reset connection (Go's net/http lingers the same
 * way). Past this the connection is cut: a refused multi-GiB push is not read to its end.
 */
const DISCARD_LIMIT = 16 * 1024 * 1024;
/**
 * How long a connection that is closing stays half-open after the error answer, reading and
 * dropping what the client still sends, so that the answer reaches it before the connection is cut.
 */
const LINGER_MS = 2_000;
/** What a lingering connection reads at most before it is cut all the same: a refusal stays cheap. */
const LINGER_DISCARD_LIMIT = 4 * DISCARD_LIMIT;

/**
 * Reads a small body whole (a manifest). Refuses before reading when Content-Length is over the
 * limit, and stops reading a chunked body as soon as it goes over it. The request is left paused,
 * never destroyed: the error is still answered on it (see discardUnreadBody).
 */
export async function readLimitedBody(req: IncomingMessage, limit: number, tooLarge: () => RegistryError): Promise<Buffer> {
  const declared = declaredLength(req);
  if (declared !== undefined && declared > limit) throw tooLarge();
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limit) {
        stop();
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      stop();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    };
    const onError = (err: Error): void => {
      stop();
      reject(err);
    };
    const onClose = (): void => {
      // Closed before the end: the client went away mid-body.
      if (!req.complete) onError(new Error("request body ended early"));
    };
    const stop = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/**
 * Reads and drops what is left of a request body that will not be used (the request failed before
 * or while reading it), so that the client, still sending, gets the error answer rather than a
 * reset connection. Past DISCARD_LIMIT, or when the connection closes after the answer
 * (`Connection: close`), the connection lingers: the answer is sent, then a FIN, and the client
 * has LINGER_MS (and LINGER_DISCARD_LIMIT bytes in all) to finish sending before the connection is
 * cut. Closing at once with unread bytes makes the kernel answer with a reset, on which the client
 * may lose the answer unread.
 */
export function discardUnreadBody(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete || req.destroyed) return;
  let discarded = 0;
  req.on("error", () => undefined);
  // HTTP/1 only: an HTTP/2 stream is reset on its own, its connection goes on.
  const lingerAfterAnswer = req.httpVersionMajor === 1 ? lingeringClose(req.socket, res) : () => req.socket.destroy();
  req.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > LINGER_DISCARD_LIMIT) req.socket.destroy();
    else if (discarded > DISCARD_LIMIT) lingerAfterAnswer();
  });
  req.resume();
}

/**
 * Makes `socket` close gracefully once `res` is sent: Node's own close after an answer that ends
 * the connection (destroySoon) is replaced for this socket, and the returned function starts the
 * same close for a body too long to read to its end.
 */
function lingeringClose(socket: IncomingMessage["socket"], res: ServerResponse): () => void {
  let started = false;
  const linger = (): void => {
    if (started) return;
    started = true;
    const close = (): void => {
      socket.end();
      const timer = setTimeout(() => socket.destroy(), LINGER_MS);
      timer.unref();
      socket.once("close", () => clearTimeout(timer));
    };
    if (res.writableFinished) close();
    else res.once("finish", close);
  };
  socket.destroySoon = linger;
  return linger;
}

/**
 * The request body as chunks, for streaming into storage. Unlike iterating the request itself,
 * stopping early (a chunk refused midway) does not destroy the request, so the refusal can still
 * be answered. Over HTTP/1 every chunk is a fresh copy made by Node's parser, which the upload may
 * free once written; HTTP/2 delivers slices of a buffer shared by the session.
 */
export function bodyChunks(req: IncomingMessage): UploadBody {
  return {
    [Symbol.asyncIterator]: () => req.iterator({ destroyOnReturn: false }),
    chunksReleasable: req.httpVersionMajor === 1,
  };
}
