import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";

/** What Node's HTTP/1 server answers to bytes it cannot parse, by the parser's error code (Node's own texts). */
const UNPARSABLE_ANSWERS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: "431 Request Header Fields Too Large",
  HPE_CHUNK_EXTENSIONS_OVERFLOW: "413 Payload Too Large",
  ERR_HTTP_REQUEST_TIMEOUT: "408 Request Timeout",
};

function unparsableAnswer(err: NodeJS.ErrnoException): string {
  return `HTTP/1.1 ${UNPARSABLE_ANSWERS[err.code ?? ""] ?? "400 Bad Request"}\r\nConnection: close\r\n\r\n`;
}

/**
 * The response in flight on an HTTP/1 connection, if any: Node's own field, which its default
 * 'clientError' handling reads too. Read there rather than tracked per request by berth, which
 * would cost every request a listener.
 */
function inFlight(socket: Socket): ServerResponse | undefined {
  const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  return res && !res.writableFinished && !res.destroyed ? res : undefined;
}

/** Once the responses of the requests before the bad bytes are written, answers those bytes and ends the connection. */
function answerAfterInFlight(err: NodeJS.ErrnoException, socket: Socket): void {
  const res = inFlight(socket);
  if (!res) {
    // Ended, not destroyed: what was written still reaches the client.
    if (socket.writable) socket.end(unparsableAnswer(err));
    return;
  }
  // Node hands the connection to the next pipelined response as this one finishes: look again then.
  res.once("close", () => setImmediate(() => answerAfterInFlight(err, socket)));
}

/**
 * The HTTP/1 server's 'clientError', as Node's own handling (400, or 408, 413, 431 by the error,
 * unless an answer has begun; then the connection is closed) with one difference. Requests are
 * served at the end of the turn they were read in (servedAtTurnEnd), so bytes that cannot be parsed
 * right behind a whole request (a DELETE whose client sent a body without saying how long it is)
 * are met before that request is answered, and Node would answer 400 in its place. Here such a
 * request is answered first, then the bytes after it, as when they arrive later.
 */
export function answerUnparsable(err: NodeJS.ErrnoException, socket: Socket): void {
  const res = inFlight(socket);
  if (res && res.req.complete) {
    answerAfterInFlight(err, socket);
    return;
  }
  if (socket.writable && (!res || !res.headersSent)) socket.write(unparsableAnswer(err));
  socket.destroy(err);
}
