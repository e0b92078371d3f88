/**
 * HTTPS for the registry (http.tls): the certificate, mutual TLS (http.tls.clientcas), the minimum
 * version and the TLS 1.2 cipher suites, and HTTP/2 with HTTP/1.1 beside it (ALPN picks).
 *
 * HTTP/2 is served by node:http2's compatibility API (createSecureServer with allowHTTP1), whose
 * request and response objects stand in for node:http's: the handlers see the same interface
 * (headers, a readable body, setHeader/writeHead/write/end). `http.http2.disabled: true` serves
 * HTTP/1.1 alone through node:https.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from "node:http2";
import { createServer as createHttpsServer } from "node:https";
import type { Server as NetServer, Socket } from "node:net";
import { createSecureContext, type SecureContext, type SecureContextOptions, type TLSSocket } from "node:tls";
import { ConfigError, type TlsConfig } from "../config/config.js";
import { answerUnparsable } from "./client-error.js";

/** A listening server of any kind (HTTP, HTTPS, HTTP/2), as serve.ts drives it. */
export type RegistryServer = NetServer & {
  /** Closes connections with no request in progress (HTTP/2: asks each session to finish). */
  closeIdleConnections(): void;
  /** Cuts every connection, in progress or not. */
  closeAllConnections(): void;
};

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** The HTTP/1 limits of src/server/app.ts, applied to HTTP/1.1 over TLS too. */
export interface Http1Limits {
  headersTimeout: number;
  keepAliveTimeout: number;
  connectionsCheckingInterval: number;
  /** Inactivity on a connection (HTTP/1) or session (HTTP/2) before it is closed. */
  inactivityMs: number;
}

/**
 * distribution's default TLS 1.2 suites (ECDHE with AEAD only), in OpenSSL's names, after the
 * TLS 1.3 suites (always all enabled, as Go does).
 */
const TLS13_SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];
const DEFAULT_TLS12_SUITES = [
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
];

/** Options every TLS context of the server carries: client CAs (mutual TLS), versions, suites. */
type BaseTlsOptions = SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean };

function readConfigFile(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(key, `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * The settings of http.tls that do not depend on where the certificate comes from: client CAs,
 * minimum version and TLS 1.2 suites. Throws a ConfigError naming http.tls.clientcas when a CA
 * file is missing or holds no certificate.
 */
export function loadBaseTlsOptions(tls: TlsConfig): BaseTlsOptions {
  const ca = tls.clientCAs.map((file) => {
    const pem = readConfigFile("http.tls.clientcas", file);
    if (!pem.toString("latin1").includes("-----BEGIN CERTIFICATE-----")) {
      throw new ConfigError("http.tls.clientcas", `${file} holds no PEM certificate`);
    }
    return pem;
  });
  return {
    ...(ca.length > 0 ? { ca } : {}),
    minVersion: tls.minimumVersion,
    ciphers: [...TLS13_SUITES, ...(tls.cipherSuites.length > 0 ? tls.cipherSuites : DEFAULT_TLS12_SUITES)].join(":"),
    honorCipherOrder: true,
    // Mutual TLS as distribution does it (RequireAndVerifyClientCert): no certificate, no connection.
    requestCert: ca.length > 0,
    rejectUnauthorized: ca.length > 0,
  };
}

/**
 * Reads the certificate, key and client CAs and checks that they make a usable TLS context.
 * Throws a ConfigError naming the key whose file is missing, unreadable or wrong, so start-up
 * fails before listening.
 */
export function loadTlsOptions(tls: TlsConfig): BaseTlsOptions {
  const cert = readConfigFile("http.tls.certificate", tls.certificate);
  const key = readConfigFile("http.tls.key", tls.key);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new ConfigError("http.tls.certificate", `${tls.certificate} holds no usable PEM certificate: ${err instanceof Error ? err.message : String(err)}`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new ConfigError("http.tls.key", `${tls.key} holds no usable unencrypted PEM private key: ${err instanceof Error ? err.message : String(err)}`);
  }
  // OpenSSL keeps a key of another type than the certificate's without complaint: check the pair.
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new ConfigError("http.tls.key", `${tls.key} is not the private key of the certificate in ${tls.certificate}`);
  }
  const options = { ...loadBaseTlsOptions(tls), cert, key };
  try {
    createSecureContext(options);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    const which = /key/i.test(reason) ? "http.tls.key" : /cipher/i.test(reason) ? "http.tls.ciphersuites" : "http.tls.certificate";
    throw new ConfigError(which, `cannot use ${tls.certificate} with ${tls.key}: ${reason}`);
  }
  return options;
}

/**
 * Certificates chosen per handshake instead of one from files (http.tls.letsencrypt: src/acme/).
 * The server knows nothing of where they come from.
 */
export interface CertificateProvider {
  /** Picks the context for the client's server name; an error fails the handshake. */
  SNICallback(servername: string, callback: (err: Error | null, context?: SecureContext) => void): void;
  /**
   * Sees each connection before TLS starts. Calls `handOn(socket)` to give it to the server with
   * nothing consumed, or keeps it (and then owns it). The server cuts a connection that sends
   * nothing for the header timeout meanwhile.
   */
  acceptConnection?(socket: Socket, handOn: (socket: Socket) => void): void;
}

type TlsServerOptions = BaseTlsOptions & { SNICallback?: CertificateProvider["SNICallback"] };

/** An HTTPS server: HTTP/2 with HTTP/1.1 fallback, or HTTP/1.1 only when `http2` is false. */
export function createTlsServer(tls: TlsConfig, http2: boolean, limits: Http1Limits, listener: RequestListener, certificates?: CertificateProvider): RegistryServer {
  const options = certificates === undefined ? loadTlsOptions(tls) : { ...loadBaseTlsOptions(tls), SNICallback: certificates.SNICallback.bind(certificates) };
  const server = http2 ? createHttp2Server(options, limits, listener) : createHttp1Server(options, limits, listener);
  if (certificates?.acceptConnection !== undefined) interceptConnections(server, limits.headersTimeout, certificates.acceptConnection.bind(certificates));
  return server;
}

/**
 * Puts `accept` in front of the TLS server's own 'connection' listeners (node:tls starts the
 * handshake in one), which then run only for the sockets handed on.
 */
function interceptConnections(server: RegistryServer, silenceMs: number, accept: NonNullable<CertificateProvider["acceptConnection"]>): void {
  const tlsListeners = server.listeners("connection") as ((socket: Socket) => void)[];
  server.removeAllListeners("connection");
  server.on("connection", (socket: Socket) => {
    socket.setTimeout(silenceMs, () => socket.destroy());
    accept(socket, (handed) => {
      handed.setTimeout(0);
      for (const tlsListener of tlsListeners) tlsListener.call(server, handed);
    });
  });
}

function createHttp1Server(options: TlsServerOptions, limits: Http1Limits, listener: RequestListener): RegistryServer {
  const server = createHttpsServer(
    {
      ...options,
      headersTimeout: limits.headersTimeout,
      requestTimeout: 0,
      keepAliveTimeout: limits.keepAliveTimeout,
      connectionsCheckingInterval: limits.connectionsCheckingInterval,
    },
    listener,
  );
  server.setTimeout(limits.inactivityMs, (socket) => socket.destroy());
  server.on("clientError", answerUnparsable);
  return server;
}

function createHttp2Server(options: TlsServerOptions, limits: Http1Limits, listener: RequestListener): RegistryServer {
  const sessions = new Set<Http2Session>();
  /** HTTP/1.1 connections, with the number of requests in progress on each. */
  const http1 = new Map<TLSSocket, number>();
  let closing = false;

  // Go's HTTP/2 server (distribution's) allows 250 concurrent streams per connection; Node's
  // default is unbounded.
  const server = createSecureServer({ ...options, allowHTTP1: true, settings: { maxConcurrentStreams: 250 } }, (req: Http2ServerRequest, res: Http2ServerResponse) => {
    if (req.httpVersionMajor === 1) {
      // An HTTP/1.1 request over the same server: its socket is a real TLS socket.
      const socket = (req as unknown as IncomingMessage).socket as TLSSocket;
      http1.set(socket, (http1.get(socket) ?? 0) + 1);
      res.once("close", () => {
        const left = (http1.get(socket) ?? 1) - 1;
        if (http1.has(socket)) http1.set(socket, left);
        if (closing && left === 0) socket.end();
      });
    }
    listener(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  });
  // Node applies these to the HTTP/1.1 connections of an allowHTTP1 server. A request may take as
  // long as it needs (a multi-GiB push); inactivity is bounded below.
  Object.assign(server, {
    headersTimeout: limits.headersTimeout,
    requestTimeout: 0,
    keepAliveTimeout: limits.keepAliveTimeout,
    connectionsCheckingInterval: limits.connectionsCheckingInterval,
  });
  server.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (closing) session.close();
  });
  server.on("secureConnection", (socket: TLSSocket) => {
    if (socket.alpnProtocol === "h2") return;
    http1.set(socket, http1.get(socket) ?? 0);
    socket.once("close", () => http1.delete(socket));
  });
  // HTTP/2 sessions and HTTP/1.1 sockets alike are closed after this long without activity.
  server.setTimeout(limits.inactivityMs, ((target: Http2Session | Socket | undefined) => target?.destroy()) as () => void);

  return Object.assign(server, {
    closeIdleConnections(): void {
      closing = true;
      for (const session of sessions) session.close();
      for (const [socket, inProgress] of http1) if (inProgress === 0) socket.end();
    },
    closeAllConnections(): void {
      closing = true;
      for (const session of sessions) session.destroy();
      for (const socket of http1.keys()) socket.destroy();
    },
  });
}
