import type { ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { socketSourceOf } from "../driver/storage-driver.js";
import { releaseChunk } from "../native/release-buffer.js";
import { pumpTarget, whilePumpWrites } from "./plain-socket.js";

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
  const target = source && pumpTarget(res);
  if (!source || !target) return false;
  const taken = source.takeOver();
  if (taken === undefined) return false;
  const { pump, socket, fd } = target;
  let moved = false;
  try {
    // What the stream had read already goes first: it is in the kernel before the pump's first byte.
    if (taken.buffered !== null) {
      const buffered = taken.buffered;
      res.write(buffered, () => releaseChunk(buffered));
    }
    await whilePumpWrites(res, socket, async (inactivityMs, follow) => {
      // The client's limit, or the object store's when that is shorter.
      const stallMs = inactivityMs > 0 && taken.stallMs > 0 ? Math.min(inactivityMs, taken.stallMs) : inactivityMs || taken.stallMs;
      await follow(pump.splice(fd, taken.fd, taken.length, stallMs));
    });
    moved = true;
  } finally {
    source.finish(moved);
  }
  res.end();
  return true;
}
