import type { ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { socketSourceOf } from "../driver/storage-driver.js";
import { plainSocketFd, sendfilePump, type SendfileTransfer } from "../native/sendfile-pump.js";
import { releaseChunk } from "../native/release-buffer.js";
import { headersFlushed } from "./plain-socket.js";

/**
 * Sends the body of `res` (status and headers already given to writeHead) from a stream whose
 * bytes are still in a socket (`socketSourceOf`: an object store's answer on plain TCP): the
 * kernel moves them from that socket to the client's with splice(2), in the native pump's thread.
 * Read through JavaScript, every chunk of a pull through S3 cost a copy into memory, a pass
 * through the stream machinery and a write(2); moved this way, none.
 *
 * Returns false, having touched neither, when that cannot be done: the stream is no socket's, the
 * client's connection is TLS or HTTP/2, or the native pump is not built; the caller streams
 * instead. Rejects when the transfer fails, the response half sent (`isClientGone` tells the
 * client's failures from the server's).
 */
export async function sendSplicedBody(res: ServerResponse, stream: Readable): Promise<boolean> {
  const source = socketSourceOf(stream);
  const pump = sendfilePump();
  const socket = res.socket;
  const fd = socket ? plainSocketFd(socket) : undefined;
  if (!source || !pump || !socket || fd === undefined || res.req.httpVersionMajor !== 1) return false;
  const taken = source.takeOver();
  if (taken === undefined) return false;
  let moved = false;
  try {
    // What the stream had read already goes first, and the pump writes behind Node's back: both
    // must be in the kernel before its first byte.
    if (taken.buffered !== null) {
      const buffered = taken.buffered;
      res.write(buffered, () => releaseChunk(buffered));
    }
    await headersFlushed(res, socket);
    // Node sees no writes while the kernel moves the bytes; the pump applies the client's limit,
    // or the object store's when that is shorter.
    const inactivityMs = socket.timeout ?? 0;
    socket.setTimeout(0);
    const stallMs = inactivityMs > 0 && taken.stallMs > 0 ? Math.min(inactivityMs, taken.stallMs) : inactivityMs || taken.stallMs;
    let transfer: SendfileTransfer | undefined;
    const cancel = (): void => transfer?.cancel();
    socket.once("close", cancel);
    try {
      transfer = pump.splice(fd, taken.fd, taken.length, stallMs);
      await transfer.done;
    } finally {
      socket.off("close", cancel);
    }
    moved = true;
    socket.setTimeout(inactivityMs);
  } finally {
    source.finish(moved);
  }
  res.end();
  return true;
}
