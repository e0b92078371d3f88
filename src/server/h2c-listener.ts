/**
 * http.h2c: HTTP/2 over cleartext with prior knowledge (RFC 9113 §3.3) beside HTTP/1.1 on the
 * plain listener, as distribution 3 serves it (Go's http.Protocols with UnencryptedHTTP2).
 *
 * node:http2's createServer speaks only HTTP/2 on a socket, node:http only HTTP/1.1; neither can
 * take the other's connections. So each new connection's first bytes are read before either server
 * sees it: a client with prior knowledge opens with the 24-byte connection preface, which no
 * HTTP/1.1 request line can start with ("PRI" is no method either server serves). Those bytes are
 * put back unread and the socket is handed to the server that speaks its protocol, the way
 * src/acme/tls-alpn-responder.ts routes on a ClientHello. Only installed when h2c is on: with it
 * off, the HTTP/1.1 server takes connections directly.
 *
 * The `Upgrade: h2c` path (RFC 7540 §3.2, removed from RFC 9113) is not offered: such a request is
 * answered over HTTP/1.1, which the upgrade rules allow. Go's server does not offer it either.
 */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";
import { createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from "node:http2";
import type { Socket } from "node:net";
import type { RegistryServer, RequestListener } from "./tls-server.js";

/** The client connection preface of HTTP/2 (RFC 9113 §3.4). */
export const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** How the first bytes of a connection read: not yet known, the HTTP/2 preface, or anything else. */
export type ConnectionStart = "undecided" | "http2" | "http1";

/**
 * Judges a connection by its first bytes. "http1" as soon as a byte differs from the preface
 * (usually the second: "PUT"/"POST"/"PATCH" share only the "P"), so an HTTP/1.1 request is never
 * held back for more bytes than it has sent.
 */
export function connectionStart(head: Buffer): ConnectionStart {
  const n = Math.min(head.length, HTTP2_PREFACE.length);
  if (head.subarray(0, n).compare(HTTP2_PREFACE, 0, n) !== 0) return "http1";
  return n === HTTP2_PREFACE.length ? "http2" : "undecided";
}

export interface H2cLimits {
  /** A connection that sends too little to be judged is cut after this long (slowloris). */
  headersTimeout: number;
  /** An HTTP/2 session without activity for this long is closed. */
  inactivityMs: number;
}

/**
 * Makes `http1` (not yet listening) also serve HTTP/2 with prior knowledge. Its 'connection'
 * listeners then run only for connections that do not start with the preface; the others go to
 * an HTTP/2 server of their own that calls `listener` with node:http2's compatibility request and
 * response (the same objects HTTP/2 over TLS gives handlers: src/server/tls-server.ts).
 */
export function serveH2cBeside(http1: HttpServer, limits: H2cLimits, listener: RequestListener): RegistryServer {
  // Go's HTTP/2 server (distribution's) allows 250 concurrent streams per connection, as over TLS.
  const http2 = createHttp2Server({ settings: { maxConcurrentStreams: 250 } }, (req: Http2ServerRequest, res: Http2ServerResponse) => {
    listener(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  });
  const sessions = new Set<Http2Session>();
  let closing = false;
  http2.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (closing) session.close();
  });
  http2.setTimeout(limits.inactivityMs, ((session: Http2Session | undefined) => session?.destroy()) as () => void);

  const http1Listeners = http1.listeners("connection") as ((socket: Socket) => void)[];
  http1.removeAllListeners("connection");
  http1.on("connection", (socket: Socket) => {
    let head: Buffer = Buffer.alloc(0);
    const handOn = (start: "http1" | "http2"): void => {
      socket.off("data", onData);
      socket.off("error", onError);
      socket.setTimeout(0);
      socket.pause();
      // Read again by whichever server takes the socket, as if nothing had been read.
      socket.unshift(head);
      if (start === "http2") http2.emit("connection", socket);
      else {
        for (const http1Listener of http1Listeners) http1Listener.call(http1, socket);
        // node:http reads the socket's handle itself from now on; what was put back reaches its
        // parser only as a 'data' event, which a paused socket never emits.
        socket.resume();
      }
    };
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const start = connectionStart(head);
      if (start !== "undecided") handOn(start);
    };
    const onError = (): void => {
      socket.destroy();
    };
    socket.setTimeout(limits.headersTimeout, () => socket.destroy());
    socket.on("data", onData);
    socket.on("error", onError);
  });

  const closeIdle = http1.closeIdleConnections.bind(http1);
  const closeAll = http1.closeAllConnections.bind(http1);
  return Object.assign(http1, {
    closeIdleConnections(): void {
      closing = true;
      closeIdle();
      for (const session of sessions) session.close();
    },
    closeAllConnections(): void {
      closing = true;
      closeAll();
      for (const session of sessions) session.destroy();
    },
  });
}
