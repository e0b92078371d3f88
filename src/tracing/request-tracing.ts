import type { IncomingHttpHeaders } from "node:http";
import type { TLSSocket } from "node:tls";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace, type Attributes, type TextMapGetter, type TextMapPropagator, type Tracer } from "@opentelemetry/api";
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
} from "@opentelemetry/semantic-conventions";
import { isRegistryError } from "../errcode/registry-error.js";
import type { RequestInterceptor, RoutedRequest } from "../server/request-interceptor.js";
import { ATTR_REPOSITORY_NAME } from "./attributes.js";

/** berth's route names (src/server/router.ts) as the route templates spans are named by. */
const ROUTE_TEMPLATES: Readonly<Record<string, string>> = {
  base: "/v2/",
  catalog: "/v2/_catalog",
  tags: "/v2/{name}/tags/list",
  manifest: "/v2/{name}/manifests/{reference}",
  uploads: "/v2/{name}/blobs/uploads/",
  upload: "/v2/{name}/blobs/uploads/{uuid}",
  blob: "/v2/{name}/blobs/{digest}",
  referrers: "/v2/{name}/referrers/{digest}",
  health: "/debug/health",
  live: "/debug/health/live",
  ready: "/debug/health/ready",
  status: "/debug/status",
  // The web UI (src/ui/): its page and assets, and its JSON view; the path attribute has the rest.
  ui: "/ui/",
  ui_api: "/ui/api/",
  ui_api_catalog: "/ui/api/catalog",
  ui_api_settings: "/ui/api/settings",
  ui_api_tags: "/ui/api/repositories/{name}/tags",
  ui_api_config: "/ui/api/repositories/{name}/configs/{digest}",
};

const HEADER_GETTER: TextMapGetter<IncomingHttpHeaders> = {
  keys: (headers) => Object.keys(headers),
  get: (headers, key) => headers[key],
};

/**
 * A server span around each routed request: named by method and route template
 * ("GET /v2/{name}/manifests/{reference}"), joined to the caller's trace when the request carries
 * trace context, and active while the access check and handler run, so storage, Redis and upstream
 * spans become its children. It ends when the response closes, with the status actually sent (an
 * error thrown by the handler is rendered after this interceptor returns).
 */
export class RequestTracing implements RequestInterceptor {
  /** Span names by route, then method: built once each, not per request. */
  private readonly names = new Map<string, Map<string, string>>();

  constructor(
    private readonly tracer: Tracer,
    private readonly propagator: TextMapPropagator,
  ) {}

  async around(request: RoutedRequest, next: () => Promise<void>): Promise<void> {
    const { req, res, route, method } = request;
    const parent = this.propagator.extract(ROOT_CONTEXT, req.headers, HEADER_GETTER);
    const template = ROUTE_TEMPLATES[route] ?? route;
    const path = request.path;
    const attributes: Attributes = {
      [ATTR_HTTP_REQUEST_METHOD]: method,
      [ATTR_HTTP_ROUTE]: template,
      [ATTR_URL_PATH]: path,
      [ATTR_URL_SCHEME]: (req.socket as TLSSocket | undefined)?.encrypted === true ? "https" : "http",
      [ATTR_NETWORK_PROTOCOL_VERSION]: req.httpVersion,
    };
    if (request.repository !== "") attributes[ATTR_REPOSITORY_NAME] = request.repository;
    const span = this.tracer.startSpan(this.spanName(route, method, template), { kind: SpanKind.SERVER, attributes }, parent);
    res.once("close", () => {
      const status = res.statusCode;
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      // Server spans: a 4xx is the client's mistake, not a failure of the server (semantic conventions).
      if (status >= 500) {
        span.setStatus({ code: SpanStatusCode.ERROR });
        span.setAttribute(ATTR_ERROR_TYPE, String(status));
      }
      span.end();
    });
    try {
      await context.with(trace.setSpan(parent, span), next);
    } catch (err) {
      // The registry error code (MANIFEST_UNKNOWN, …) says more than the status it becomes.
      if (isRegistryError(err)) span.setAttribute("berth.error.code", err.code);
      else span.recordException(err instanceof Error ? err : String(err));
      throw err;
    }
  }

  private spanName(route: string, method: string, template: string): string {
    let byMethod = this.names.get(route);
    if (byMethod === undefined) this.names.set(route, (byMethod = new Map()));
    let name = byMethod.get(method);
    if (name === undefined) byMethod.set(method, (name = `${method} ${template}`));
    return name;
  }
}

