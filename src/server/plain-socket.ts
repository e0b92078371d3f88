/**
 * What a response needs before the kernel writes its body behind Node's back (sendfile or splice
 * from the native pump): the headers already out of Node.
 */
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";

const EMPTY = Buffer.alloc(0);

/**
 * Resolves once the status line and headers have left Node for the kernel. An empty write's
 * callback runs after every earlier write on the socket completed; if the socket closes first,
 * Node drops that callback, hence the race with 'close'.
 */
export function headersFlushed(res: ServerResponse, socket: Socket): Promise<void> {
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
