import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "../log/logger.js";
import type { Registry } from "../registry/registry.js";
import { sendError } from "./error-response.js";
import { discardUnreadBody } from "./request-body.js";
import type { RequestContext, ServerSettings } from "./request-context.js";
import { route } from "./router.js";
import { UploadStateSigner } from "./upload-state-token.js";

export interface ServerOptions {
  registry: Registry;
  settings: ServerSettings;
  secret: string;
  log: Logger;
  accessLog: boolean;
}

/** Timeouts that keep a few slow or idle connections from holding the server. */
const HEADERS_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Inactivity on a socket, not a bound on transfers: a multi-GiB push may take as long as it needs. */
const SOCKET_IDLE_TIMEOUT_MS = 300_000;

/** The HTTP server: decodes the route, runs its handler, renders any error in one place. */
export function createRegistryServer(options: ServerOptions): Server {
  const signer = new UploadStateSigner(options.secret);
  const server = createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: 0, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) => {
    void handle(req, res, options, signer);
  });
  server.setTimeout(SOCKET_IDLE_TIMEOUT_MS, (socket) => socket.destroy());
  return server;
}

async function handle(req: IncomingMessage, res: ServerResponse, options: ServerOptions, signer: UploadStateSigner): Promise<void> {
  const started = process.hrtime.bigint();
  res.setHeader("Docker-Distribution-API-Version", "registry/2.0");
  for (const [name, values] of options.settings.headers) res.setHeader(name, values);
  const rawURL = req.url ?? "/";
  const queryStart = rawURL.indexOf("?");
  const path = queryStart === -1 ? rawURL : rawURL.slice(0, queryStart);
  const query = new URLSearchParams(queryStart === -1 ? "" : rawURL.slice(queryStart + 1));
  let routeName = "none";
  try {
    const match = route(req.method ?? "GET", path);
    routeName = match.route;
    const ctx: RequestContext = {
      req,
      res,
      params: match.params,
      query,
      registry: options.registry,
      signer,
      settings: options.settings,
      log: options.log,
    };
    await match.handler(ctx);
  } catch (err) {
    if (isClientGone(req, res)) {
      options.log.info({ method: req.method, route: routeName }, "client disconnected before the request completed");
      res.destroy();
    } else {
      discardUnreadBody(req);
      sendError(req, res, err, options.log);
    }
  } finally {
    if (options.accessLog) {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      options.log.info({ method: req.method, path, route: routeName, status: res.statusCode, ms: Math.round(ms * 10) / 10 }, "request");
    }
  }
}

/** The request body ended early (the client aborted or hung up): nobody is left to answer. */
function isClientGone(req: IncomingMessage, res: ServerResponse): boolean {
  return (req.destroyed && !req.complete) || res.destroyed || (req.socket?.destroyed ?? false);
}
