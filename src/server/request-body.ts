import type { IncomingMessage } from "node:http";
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
 * or while reading it), up to DISCARD_LIMIT, then cuts the connection. Without this the answer
 * would sit behind an unread body, or Node would read an unbounded one to its end.
 */
export function discardUnreadBody(req: IncomingMessage): void {
  if (req.complete || req.destroyed) return;
  let discarded = 0;
  req.on("error", () => undefined);
  req.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DISCARD_LIMIT) req.socket.destroy();
  });
  req.resume();
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
