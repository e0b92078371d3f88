import type { ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { localFileRangeOf } from "../driver/storage-driver.js";
import { plainSocketFd, sendfilePump, type SendfileTransfer } from "../native/sendfile-pump.js";
import { headersFlushed } from "./plain-socket.js";

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
  const pump = sendfilePump();
  const socket = res.socket;
  const fd = socket ? plainSocketFd(socket) : undefined;
  if (!range || !pump || !socket || fd === undefined || res.req.httpVersionMajor !== 1) return false;

  // The pump writes behind Node's back: the headers must be in the kernel before the first byte.
  await headersFlushed(res, socket);
  // Node sees no writes while the kernel sends, so its inactivity timer would cut a long download;
  // the pump applies the same limit to the peer's progress instead.
  const inactivityMs = socket.timeout ?? 0;
  socket.setTimeout(0);
  let current: SendfileTransfer | undefined;
  let closed = false;
  const cancel = () => {
    closed = true;
    current?.cancel();
  };
  socket.once("close", cancel);
  try {
    if (!range.available) {
      current = pump.send(fd, range.fd, range.start, range.end - range.start, inactivityMs);
      // The pump holds its own descriptors now: closing the stream closes only ours.
      stream.destroy();
      await current.done;
    } else {
      // A file still being written: each part as soon as it is readable.
      for (let position = range.start; position < range.end; ) {
        const upTo = Math.min(range.end, await range.available(position));
        if (closed) throw Object.assign(new Error("connection closed mid-body"), { code: "ECONNRESET" });
        current = pump.send(fd, range.fd, position, upTo - position, inactivityMs);
        await current.done;
        position = upTo;
      }
    }
  } finally {
    socket.off("close", cancel);
    if (range.available) stream.destroy();
  }
  socket.setTimeout(inactivityMs);
  res.end();
  return true;
}
