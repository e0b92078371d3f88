import type { ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { localFileRangeOf } from "../driver/storage-driver.js";
import { pumpTarget, whilePumpWrites } from "./plain-socket.js";

/** Errors of a transfer that mean the client is gone or stopped reading, not that the server failed. */
const CLIENT_GONE = new Set(["EPIPE", "ECONNRESET", "ECANCELED", "ETIMEDOUT"]);

export function isClientGone(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && CLIENT_GONE.has(code);
}

/**
 * Sends the body of `res` (status and headers already given to writeHead): the bytes `stream`
 * would read, taken with sendfile(2) from the local file behind it (see `localFileRangeOf`) — no
 * copy through JavaScript, no buffers for the garbage collector. This is how Go's net/http (and
 * so distribution) serves files.
 *
 * Returns false, having touched neither, when the stream has no local file or the connection
 * cannot take it — TLS or HTTP/2 (the bytes must pass through their framing), or the native pump
 * is not built — and the caller streams instead. Otherwise the stream is destroyed (its file
 * closed) as soon as the pump holds its own descriptors. Rejects when the transfer fails, the
 * response half sent; `isClientGone` tells the client's failures from the server's.
 */
export async function sendFileRange(res: ServerResponse, stream: Readable): Promise<boolean> {
  const range = localFileRangeOf(stream);
  const target = range && pumpTarget(res);
  if (!range || !target) return false;
  const { pump, socket, fd } = target;
  try {
    await whilePumpWrites(res, socket, async (inactivityMs, follow) => {
      if (!range.available) {
        const transfer = pump.send(fd, range.fd, range.start, range.end - range.start, inactivityMs);
        // The pump holds its own descriptors now: closing the stream closes only ours.
        stream.destroy();
        await follow(transfer);
        return;
      }
      // A file still being written: each part as soon as it is readable.
      for (let position = range.start; position < range.end; ) {
        const upTo = Math.min(range.end, await range.available(position));
        await follow(pump.send(fd, range.fd, position, upTo - position, inactivityMs));
        position = upTo;
      }
    });
  } finally {
    if (range.available) stream.destroy();
  }
  res.end();
  return true;
}
