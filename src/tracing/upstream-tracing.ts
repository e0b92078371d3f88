import { SpanKind, SpanStatusCode, context, defaultTextMapSetter, trace, type TextMapPropagator, type Tracer } from "@opentelemetry/api";
import { ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_URL_FULL } from "@opentelemetry/semantic-conventions";
import type { UpstreamExchangeObserver } from "../proxy/upstream-client.js";

/**
 * A client span per HTTP exchange of the pull-through cache with an upstream (token fetches and
 * redirect hops each count), a child of the active span, its trace context sent in the request's
 * headers (`traceparent`) so the upstream's own trace joins it. The span lasts until the response
 * body closes: for a blob that is the whole download.
 */
export function upstreamTracing(tracer: Tracer, propagator: TextMapPropagator): UpstreamExchangeObserver {
  return {
    start(method, url, headers) {
      const span = tracer.startSpan(method, {
        kind: SpanKind.CLIENT,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: method,
          // Without the query: a token service's carries the account name.
          [ATTR_URL_FULL]: `${url.protocol}//${url.host}${url.pathname}`,
          [ATTR_SERVER_ADDRESS]: url.hostname,
          [ATTR_SERVER_PORT]: url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port),
        },
      });
      propagator.inject(trace.setSpan(context.active(), span), headers, defaultTextMapSetter);
      return ({ status, error }) => {
        if (status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
        // Client spans: any 4xx or 5xx is a failure of this request (semantic conventions).
        if (error !== undefined) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
          span.setAttribute(ATTR_ERROR_TYPE, error instanceof Error ? error.name : typeof error);
        } else if (status !== undefined && status >= 400) {
          span.setStatus({ code: SpanStatusCode.ERROR });
          span.setAttribute(ATTR_ERROR_TYPE, String(status));
        }
        span.end();
      };
    },
  };
}
