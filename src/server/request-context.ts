import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../log/logger.js";
import type { Registry } from "../registry/registry.js";
import type { HealthView } from "./health-view.js";
import type { PathPrefix } from "./path-prefix.js";
import type { UploadStateSigner } from "./upload-state-token.js";

/** Server-wide settings the handlers need, derived from the configuration once. */
export interface ServerSettings {
  /** Absolute base URL for Location headers ("https://registry.example.com"), or undefined. */
  baseURL: string | undefined;
  relativeURLs: boolean;
  /** http.prefix: where the routed paths are served; every generated URL carries it. */
  prefix: PathPrefix;
  redirectsEnabled: boolean;
  /** Extra headers on every response (http.headers). */
  headers: Array<[string, string[]]>;
  /** catalog.maxentries: the largest `n` /v2/_catalog accepts; undefined: any (lowered to MAX_PAGE_SIZE). */
  catalogMaxEntries?: number | undefined;
}

/** Everything one request's handler works with. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Decoded route parameters, validated by the handler that uses them. */
  params: { name: string; reference: string };
  query: URLSearchParams;
  registry: Registry;
  /** What the health routes show. */
  health: HealthView;
  signer: UploadStateSigner;
  settings: ServerSettings;
  log: Logger;
}

export type Handler = (ctx: RequestContext) => Promise<void>;

/**
 * An absolute (or, with http.relativeurls, relative) URL for a registry path ("/v2/…"), under
 * http.prefix. distribution leaves the prefix out of relative URLs and of those built on http.host
 * (its URL builder takes the prefix from the request path only when neither is set); berth puts
 * it in every one, since only then does the URL name what berth serves.
 */
export function locationFor(ctx: RequestContext, routedPath: string): string {
  const path = ctx.settings.prefix.apply(routedPath);
  if (ctx.settings.relativeURLs) return path;
  if (ctx.settings.baseURL) return ctx.settings.baseURL + path;
  const forwardedProto = firstHeader(ctx.req.headers["x-forwarded-proto"]);
  const forwardedHost = firstHeader(ctx.req.headers["x-forwarded-host"]);
  const proto = forwardedProto ?? ("encrypted" in ctx.req.socket && ctx.req.socket.encrypted ? "https" : "http");
  // HTTP/2 carries the host in the :authority pseudo-header (a Host header is optional there).
  const host = forwardedHost ?? ctx.req.headers.host ?? firstHeader(ctx.req.headers[":authority"]);
  return host ? `${proto}://${host}${path}` : path;
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  return first?.split(",")[0]?.trim() || undefined;
}

/** Sends a response without a body (HEAD-safe), with Content-Length 0 unless given. */
export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string | number> = {}): void {
  res.writeHead(status, { "Content-Length": 0, ...headers });
  res.end();
}

/** Sends a JSON body (omitted for HEAD). */
export function sendJSON(ctx: RequestContext, status: number, value: unknown, headers: Record<string, string | number> = {}): void {
  const body = JSON.stringify(value);
  ctx.res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
    ...headers,
  });
  ctx.res.end(ctx.req.method === "HEAD" ? undefined : body);
}

/** True when the request carries a body: a non-zero Content-Length or chunked encoding. */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  if (length !== undefined) return length !== "0";
  return req.headers["transfer-encoding"] !== undefined;
}

/** The declared Content-Length, or undefined when absent (chunked). */
export function declaredLength(req: IncomingMessage): number | undefined {
  const length = req.headers["content-length"];
  return length === undefined ? undefined : Number(length);
}
