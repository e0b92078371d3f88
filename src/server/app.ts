import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { OPEN_ACCESS, type AccessController } from "../auth/access-controller.js";
import { isPublicRoute, requiredAccess } from "../auth/required-access.js";
import type { TlsConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import type { Registry } from "../registry/registry.js";
import { RegistryError } from "../errcode/registry-error.js";
import { answerUnparsable } from "./client-error.js";
import { sendError } from "./error-response.js";
import { serveH2cBeside } from "./h2c-listener.js";
import { registryHealthView, type HealthView } from "./health-view.js";
import type { PathMount } from "./path-mount.js";
import { discardUnreadBody } from "./request-body.js";
import { locationFor, type RequestContext, type ServerSettings } from "./request-context.js";
import { route } from "./router.js";
import { chainInterceptors, type RequestInterceptor } from "./request-interceptor.js";
import { createTlsServer, type CertificateProvider, type RegistryServer } from "./tls-server.js";
import { servedAtTurnEnd } from "./turn-end.js";
import { UploadStateSigner } from "./upload-state-token.js";

export interface ServerOptions {
  registry: Registry;
  settings: ServerSettings;
  secret: string;
  log: Logger;
  accessLog: boolean;
  /** Connection timeouts (http.timeout.*); the defaults when absent. */
  timeouts?: ServerTimeouts;
  /** Upload state tokens older than this are refused (storage.maintenance.uploadpurging.age). */
  uploadStateMaxAgeMs?: number;
  /** Who may do what (the `auth` section); an open registry when absent. */
  access?: AccessController;
  /** Serve HTTPS (http.tls); plain HTTP when absent. */
  tls?: TlsConfig;
  /** Over TLS, certificates chosen per handshake (http.tls.letsencrypt) instead of http.tls.certificate. */
  certificates?: CertificateProvider;
  /** Over TLS, offer HTTP/2 beside HTTP/1.1 (default true; http.http2.disabled turns it off). */
  http2?: boolean;
  /** Without TLS, serve HTTP/2 with prior knowledge beside HTTP/1.1 (http.h2c.enabled). */
  h2c?: boolean;
  /** What capabilities add around each routed request (metrics, tracing, health), outermost first. */
  interceptors?: readonly RequestInterceptor[];
  /** What the health routes show (src/health/); the registry's component problems when absent. */
  health?: HealthView;
  /** Paths outside /v2/ that capabilities answer themselves (the web UI), asked before the API router. */
  mounts?: readonly PathMount[];
}

/** Timeouts that keep a few slow or idle connections from holding the server, in milliseconds. */
export interface ServerTimeouts {
  /** From a request's first byte to the end of its headers: slow-header (slowloris) clients. */
  readHeaderMs: number;
  /** A kept-alive connection between requests. */
  idleMs: number;
  /** Inactivity on a socket, not a bound on transfers: a multi-GiB push may take as long as it needs. */
  inactivityMs: number;
}

export const DEFAULT_SERVER_TIMEOUTS: ServerTimeouts = { readHeaderMs: 30_000, idleMs: 5_000, inactivityMs: 300_000 };

/** Node's timers fire at once for delays past 2^31-1 ms: a longer configured timeout waits that long. */
function timerMs(ms: number): number {
  return Math.min(2 ** 31 - 1, Math.max(1, Math.round(ms)));
}

/** The HTTP server: decodes the route, runs its handler, renders any error in one place. */
export function createRegistryServer(serverOptions: ServerOptions): RegistryServer {
  const options = { ...serverOptions, health: serverOptions.health ?? registryHealthView(serverOptions.registry) };
  const signer = new UploadStateSigner(options.secret, options.uploadStateMaxAgeMs);
  const interceptor = chainInterceptors(options.interceptors ?? []);
  const timeouts = options.timeouts ?? DEFAULT_SERVER_TIMEOUTS;
  const headersTimeout = timerMs(timeouts.readHeaderMs);
  if (options.tls !== undefined) {
    const limits = {
      headersTimeout,
      keepAliveTimeout: timerMs(timeouts.idleMs),
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(headersTimeout / 4))),
      inactivityMs: timerMs(timeouts.inactivityMs),
    };
    return createTlsServer(
      options.tls,
      options.http2 ?? true,
      limits,
      (req, res) => {
        void handle(req, res, options, signer, interceptor);
      },
      options.certificates,
    );
  }
  const server = createServer(
    {
      headersTimeout,
      requestTimeout: 0,
      keepAliveTimeout: timerMs(timeouts.idleMs),
      // Node checks header deadlines on this interval (30 s by default): a short header timeout
      // needs a shorter interval to be kept.
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(headersTimeout / 4))),
    },
    (req, res) => {
      void handle(req, res, options, signer, interceptor);
    },
  );
  server.setTimeout(timerMs(timeouts.inactivityMs), (socket) => socket.destroy());
  server.on("clientError", answerUnparsable);
  if (options.h2c === true) {
    return serveH2cBeside(server, { headersTimeout, inactivityMs: timerMs(timeouts.inactivityMs) }, (req, res) => {
      void handle(req, res, options, signer, interceptor);
    });
  }
  return server;
}

async function handle(req: IncomingMessage, res: ServerResponse, options: ServerOptions & { health: HealthView }, signer: UploadStateSigner, interceptor: RequestInterceptor | undefined): Promise<void> {
  const started = process.hrtime.bigint();
  // Served with every other request read this turn, once all of them are read.
  if (await servedAtTurnEnd()) res.shouldKeepAlive = false;
  res.setHeader("Docker-Distribution-API-Version", "registry/2.0");
  for (const [name, values] of options.settings.headers) res.setHeader(name, values);
  // An absolute-form target ("GET http://host/v2/ HTTP/1.1", as sent to a proxy) is routed by its
  // path, as HTTP/1.1 servers must; the authority in it is ignored like any Host header.
  const rawURL = (req.url ?? "/").replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "") || "/";
  const queryStart = rawURL.indexOf("?");
  const publicPath = queryStart === -1 ? rawURL : rawURL.slice(0, queryStart);
  const query = new URLSearchParams(queryStart === -1 ? "" : rawURL.slice(queryStart + 1));
  let routeName = "none";
  let user: string | undefined;
  try {
    // http.prefix: from here on every path is the routed one ("/v2/…"); outside the prefix, 404.
    const path = options.settings.prefix.strip(publicPath);
    if (path === undefined) throw new RegistryError("NOT_FOUND");
    const mount = options.mounts?.find((candidate) => candidate.owns(path));
    if (mount !== undefined) {
      routeName = mount.route(path);
      const serveMount = (): Promise<void> => mount.handle(req, res, path, query);
      await (interceptor === undefined ? serveMount() : interceptor.around({ req, res, route: routeName, method: req.method ?? "GET", path, repository: "" }, serveMount));
      return;
    }
    const match = route(req.method ?? "GET", path);
    routeName = match.route;
    const serve = async (): Promise<void> => {
      if (match.params.name !== "") {
        // A mirror maps containerd's ?ns=<registry host> to the repository that caches it.
        const resolved = options.registry.resolveName(match.params.name, query.get("ns") ?? undefined);
        match.params.name = resolved.name;
        if (resolved.namespace !== undefined) res.setHeader("OCI-Namespace", resolved.namespace);
      }
      // The one access check: before the handler reads a byte of the body or touches storage.
      const needed = requiredAccess(match.route, req.method ?? "GET", match.params.name, query);
      if (!isPublicRoute(match.route)) ({ user } = await (options.access ?? OPEN_ACCESS).authorize(req, needed));
      const ctx: RequestContext = {
        req,
        res,
        params: match.params,
        query,
        registry: options.registry,
        health: options.health,
        signer,
        settings: options.settings,
        log: options.log,
      };
      ctx.registry = options.registry.forRequest({ req, user, urlFor: (path) => locationFor(ctx, path) });
      await match.handler(ctx);
    };
    await (interceptor === undefined ? serve() : interceptor.around({ req, res, route: match.route, method: req.method ?? "GET", path, repository: match.params.name }, serve));
  } catch (err) {
    if (isClientGone(req, res)) {
      options.log.info({ method: req.method, route: routeName }, "client disconnected before the request completed");
      res.destroy();
    } else {
      discardUnreadBody(req, res);
      sendError(req, res, err, options.log);
    }
  } finally {
    if (options.accessLog) {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      options.log.info({ method: req.method, path: publicPath, route: routeName, status: res.statusCode, ms: Math.round(ms * 10) / 10, ...(user === undefined ? {} : { user }) }, "request");
    }
  }
}

/** The request body ended early (the client aborted or hung up): nobody is left to answer. */
function isClientGone(req: IncomingMessage, res: ServerResponse): boolean {
  return (req.destroyed && !req.complete) || res.destroyed || (req.socket?.destroyed ?? false);
}
