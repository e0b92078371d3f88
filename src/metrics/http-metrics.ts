import type { IncomingMessage, ServerResponse } from "node:http";
import type { Registry } from "prom-client";
import type { RequestInterceptor, RoutedRequest } from "../server/request-interceptor.js";
import { UploadStateSigner } from "../server/upload-state-token.js";
import { FastCounter, FastGauge, FastHistogram, type CounterChild, type GaugeChild, type HistogramChild } from "./fast-metrics.js";
import { HANDLER_BY_ROUTE, HANDLERS, methodLabel, UI_HANDLER_BY_ROUTE } from "./handler-label.js";
import type { RepositoryBytes } from "./repository-bytes.js";

/** go-metrics' default duration buckets (distribution's registry_http_request_duration_seconds). */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60];
/** go-metrics' size buckets: prometheus.ExponentialBuckets(1024, 2, 22), 1 KiB to 2 GiB. */
export const SIZE_BUCKETS = Array.from({ length: 22 }, (_, i) => 1024 * 2 ** i);
/** berth's upload duration buckets: a push of a large layer takes minutes. */
export const UPLOAD_DURATION_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

/** One handler's series; children by method and status are created on first use and kept. */
class HandlerSeries {
  readonly inFlight: GaugeChild;
  readonly requestSize: HistogramChild;
  readonly responseSize: HistogramChild;
  private readonly durations = new Map<string, HistogramChild>();
  private readonly counts = new Map<string, Map<number, CounterChild>>();

  constructor(
    private readonly handler: string,
    private readonly metrics: HttpMetricSet,
  ) {
    this.inFlight = metrics.inFlight.labels(handler);
    this.requestSize = metrics.requestSize.labels(handler);
    this.responseSize = metrics.responseSize.labels(handler);
  }

  duration(method: string): HistogramChild {
    let child = this.durations.get(method);
    if (child === undefined) {
      child = this.metrics.duration.labels(this.handler, methodLabel(method));
      this.durations.set(method, child);
    }
    return child;
  }

  count(method: string, status: number): CounterChild {
    let byStatus = this.counts.get(method);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.counts.set(method, byStatus);
    }
    let child = byStatus.get(status);
    if (child === undefined) {
      child = this.metrics.requests.labels(this.handler, String(status), methodLabel(method));
      byStatus.set(status, child);
    }
    return child;
  }
}

interface HttpMetricSet {
  inFlight: FastGauge;
  requests: FastCounter;
  duration: FastHistogram;
  requestSize: FastHistogram;
  responseSize: FastHistogram;
}

/**
 * distribution's HTTP metrics (go-metrics' NewDefaultHttpMetrics per route, measured as Go's
 * promhttp measures them), as a RequestInterceptor: in-flight requests, a count by status and
 * method, the duration until the handler is done, the approximate request size (URL, method,
 * protocol, headers and Content-Length) and the response body's size. Plus berth's upload
 * durations and, when configured, bytes by repository.
 */
export class HttpMetrics implements RequestInterceptor {
  private readonly series = new Map<string, HandlerSeries>();
  private readonly uploadDuration: FastHistogram;

  constructor(
    register: Registry,
    private readonly repositoryBytes: RepositoryBytes | undefined,
  ) {
    const registers = [register];
    const metrics: HttpMetricSet = {
      inFlight: new FastGauge({ name: "registry_http_in_flight_requests", help: "The in-flight HTTP requests", labelNames: ["handler"], registers }),
      requests: new FastCounter({ name: "registry_http_requests_total", help: "Total number of HTTP requests made.", labelNames: ["handler", "code", "method"], registers }),
      duration: new FastHistogram({ name: "registry_http_request_duration_seconds", help: "The HTTP request latencies in seconds.", labelNames: ["handler", "method"], buckets: DURATION_BUCKETS, registers }),
      requestSize: new FastHistogram({ name: "registry_http_request_size_bytes", help: "The HTTP request sizes in bytes.", labelNames: ["handler"], buckets: SIZE_BUCKETS, registers }),
      responseSize: new FastHistogram({ name: "registry_http_response_size_bytes", help: "The HTTP response sizes in bytes.", labelNames: ["handler"], buckets: SIZE_BUCKETS, registers }),
    };
    const byHandler = new Map<string, HandlerSeries>();
    for (const [route, handler] of Object.entries({ ...HANDLER_BY_ROUTE, ...UI_HANDLER_BY_ROUTE })) {
      let series = byHandler.get(handler);
      if (series === undefined) byHandler.set(handler, (series = new HandlerSeries(handler, metrics)));
      this.series.set(route, series);
    }
    // Every handler's in-flight gauge is there from the start, at 0, as distribution registers them.
    for (const handler of HANDLERS) metrics.inFlight.labels(handler).set(0);
    this.uploadDuration = new FastHistogram({
      name: "berth_blob_upload_duration_seconds",
      help: "Time from the start of a blob upload (POST) to its completion (PUT answered 201).",
      buckets: UPLOAD_DURATION_BUCKETS,
      registers,
    });
  }

  /** Not async, and one `then` on the handler's promise: the only promise metrics add to a request. */
  around(request: RoutedRequest, next: () => Promise<void>): Promise<void> {
    const series = this.series.get(request.route);
    if (series === undefined) return next();
    const started = performance.now();
    // Only uploads need it: a chunked PATCH says nothing of its length before it ends.
    const bytesReadBefore = request.route === "upload" ? (request.req.socket?.bytesRead ?? 0) : 0;
    series.inFlight.inc();
    let handled: Promise<void>;
    try {
      handled = next();
    } catch (err) {
      // An interceptor may throw instead of returning a rejection: counted the same way.
      handled = Promise.reject(err);
    }
    return handled.then(
      () => this.record(series, request, started, bytesReadBefore),
      (err: unknown) => {
        // The error becomes the answer after this returns: count it once it is sent.
        request.res.once("close", () => this.record(series, request, started, bytesReadBefore));
        throw err;
      },
    );
  }

  private record(series: HandlerSeries, request: RoutedRequest, started: number, bytesReadBefore: number): void {
    const { req, res, method } = request;
    const seconds = (performance.now() - started) / 1000;
    series.inFlight.dec();
    const status = res.statusCode;
    series.count(method, status).inc();
    series.duration(method).observe(seconds);
    series.requestSize.observe(approximateRequestSize(req));
    const sent = bodyBytesSent(res, method, status);
    series.responseSize.observe(sent);
    if (request.route === "upload" && method === "PUT" && status === 201) this.observeUpload(req);
    if (this.repositoryBytes !== undefined) this.countRepositoryBytes(this.repositoryBytes, request, status, sent, bytesReadBefore);
  }

  /** The upload's start, from its state token (already verified: the upload just completed). */
  private observeUpload(req: IncomingMessage): void {
    const startedAt = uploadStartedAt(req.url ?? "");
    if (startedAt !== undefined) this.uploadDuration.observe(Math.max(0, Date.now() - startedAt) / 1000);
  }

  private countRepositoryBytes(bytes: RepositoryBytes, request: RoutedRequest, status: number, sent: number, bytesReadBefore: number): void {
    const { route, method, req } = request;
    if (status >= 300) return;
    if (method === "GET" && (route === "blob" || route === "manifest")) {
      bytes.pulled(request.repository, sent);
    } else if ((route === "upload" && (method === "PATCH" || method === "PUT")) || (method === "PUT" && route === "manifest") || (method === "POST" && route === "uploads" && status === 201)) {
      const length = Number(req.headers["content-length"]);
      const received = Number.isSafeInteger(length) ? length : Math.max(0, (req.socket?.bytesRead ?? 0) - bytesReadBefore);
      bytes.pushed(request.repository, received);
    }
  }
}

/** Go's promhttp computeApproximateRequestSize: URL, method, protocol, header names and values, Content-Length. */
export function approximateRequestSize(req: IncomingMessage): number {
  let size = (req.url?.length ?? 0) + (req.method?.length ?? 0) + 5 + req.httpVersion.length;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i++) size += raw[i]!.length;
  // Go keeps Host out of the header map and counts only its value (as r.Host).
  if (req.headers.host !== undefined) size -= 4;
  const length = req.headers["content-length"];
  if (length !== undefined) {
    const n = Number(length);
    if (Number.isSafeInteger(n)) size += n;
  }
  return size;
}

/** Body bytes of the response (what promhttp counts as written), from its Content-Length. */
function bodyBytesSent(res: ServerResponse, method: string, status: number): number {
  if (method === "HEAD" || status === 204 || status === 304) return 0;
  const length = res.getHeader("content-length");
  const n = typeof length === "number" ? length : Number(length);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

/** startedAt from an upload Location's `_state` token (src/server/upload-state-token.ts). */
function uploadStartedAt(url: string): number | undefined {
  const at = url.indexOf("_state=");
  if (at < 0) return undefined;
  try {
    return UploadStateSigner.startedAt(decodeURIComponent(url.slice(at + 7).split("&", 1)[0]!));
  } catch {
    return undefined;
  }
}
