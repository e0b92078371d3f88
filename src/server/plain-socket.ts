/**
 * What a response needs before and while the native pump writes its body behind Node's back
 * (sendfile or splice): a plain HTTP/1 socket, the headers already out of Node, Node's inactivity
 * timer handed to the pump, and the transfer cancelled when the client goes.
 */
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { plainSocketFd, sendfilePump, type SendfilePump, type SendfileTransfer } from "../native/sendfile-pump.js";

const EMPTY = Buffer.alloc(0);

/** A response's connection as the pump can write to it. */
export interface PumpTarget {
  pump: SendfilePump;
  socket: Socket;
  fd: number;
}

/**
 * The pump and the response's socket, or undefined when the pump cannot write the body: TLS or
 * HTTP/2 (the bytes must pass through their framing), or the native pump not built.
 */
export function pumpTarget(res: ServerResponse): PumpTarget | undefined {
  const pump = sendfilePump();
  const socket = res.socket;
  const fd = socket ? plainSocketFd(socket) : undefined;
  if (!pump || !socket || fd === undefined || res.req.httpVersionMajor !== 1) return undefined;
  return { pump, socket, fd };
}

/**
 * Runs `transfers` once everything written to `res` so far is in the kernel, with the socket the
 * pump's: Node sees no writes while the kernel sends, so its inactivity timer (which would cut a
 * long download) is off, and `transfers` gets its limit to apply to the peer's progress instead.
 * Each transfer it starts goes through `follow`, which cancels it when the socket closes. The
 * timer is back once `transfers` has resolved.
 */
export async function whilePumpWrites(
  res: ServerResponse,
  socket: Socket,
  transfers: (inactivityMs: number, follow: (transfer: SendfileTransfer) => Promise<void>) => Promise<void>,
): Promise<void> {
  await headersFlushed(res, socket);
  const inactivityMs = socket.timeout ?? 0;
  socket.setTimeout(0);
  let current: SendfileTransfer | undefined;
  let closed = false;
  const cancel = (): void => {
    closed = true;
    current?.cancel();
  };
  socket.once("close", cancel);
  try {
    await transfers(inactivityMs, (transfer) => {
      current = transfer;
      if (closed) transfer.cancel();
      return transfer.done;
    });
  } finally {
    socket.off("close", cancel);
  }
  socket.setTimeout(inactivityMs);
}

/**
 * Resolves once the status line and headers have left Node for the kernel. An empty write's
 * callback runs after every earlier write on the socket completed; if the socket closes first,
 * Node drops that callback, hence the race with 'close'.
 */
function headersFlushed(res: ServerResponse, socket: Socket): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onClose = () => reject(Object.assign(new Error("connection closed before the body"), { code: "ECONNRESET" }));
    socket.once("close", onClose);
    res.write(EMPTY, (err) => {
      socket.off("close", onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}
