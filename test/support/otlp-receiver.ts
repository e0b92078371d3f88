/**
 * An OTLP/HTTP trace receiver for the tracing tests: a real HTTP server on loopback that accepts
 * `POST /v1/traces` as an OpenTelemetry collector does and keeps the spans.
 *
 * JSON requests (OTEL_EXPORTER_OTLP_PROTOCOL=http/json, gzip or not) are decoded into flat spans:
 * ids as hex, attributes as plain values, the service name from the resource. Protobuf requests
 * (the default protocol) are counted but not decoded: a test can see that they arrived and what
 * content type they had. Anything else is answered 404 (wrong path) or 415 (unknown content type).
 *
 * Only node built-ins. `close()` destroys every socket.
 */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { gunzipSync } from "node:zlib";

export type AttributeValue = string | number | boolean | AttributeValue[] | null;

/** One span as exported, flattened. Kinds and status codes are OTLP's numbers. */
export interface ReceivedSpan {
  service: string;
  scope: string;
  traceId: string;
  spanId: string;
  /** "" for a root span. */
  parentSpanId: string;
  traceState: string;
  name: string;
  /** 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttributeValue>;
  /** 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
}

export interface ReceivedRequest {
  path: string;
  headers: IncomingHttpHeaders;
  bytes: number;
}

export const SPAN_KIND_INTERNAL = 1;
export const SPAN_KIND_SERVER = 2;
export const SPAN_KIND_CLIENT = 3;
export const STATUS_UNSET = 0;
export const STATUS_ERROR = 2;

export interface OtlpReceiver {
  /** "http://127.0.0.1:<port>": OTEL_EXPORTER_OTLP_ENDPOINT; add "/v1/traces" for OTEL_EXPORTER_OTLP_TRACES_ENDPOINT. */
  url: string;
  /** Every span received so far, in arrival order. */
  readonly spans: readonly ReceivedSpan[];
  /** Every export request, JSON or not. */
  readonly requests: readonly ReceivedRequest[];
  /** Resolves with the spans that match once `ready(spans)` is true for them; rejects after `timeoutMs`. */
  waitFor(filter: (span: ReceivedSpan) => boolean, ready: (spans: ReceivedSpan[]) => boolean, what: string, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      requests.push({ path: req.url ?? "", headers: req.headers, bytes: body.length });
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      const type = req.headers["content-type"] ?? "";
      if (type.startsWith("application/x-protobuf")) {
        res.writeHead(200, { "Content-Type": "application/x-protobuf" }).end();
        return;
      }
      if (!type.startsWith("application/json")) {
        res.writeHead(415).end();
        return;
      }
      try {
        if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
        spans.push(...flatten(JSON.parse(body.toString("utf8")) as unknown));
      } catch (err) {
        res.writeHead(400, { "Content-Type": "application/json" }).end(JSON.stringify({ code: 3, message: String(err) }));
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json" }).end("{}");
    });
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    requests,
    async waitFor(filter, ready, what, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const matching = spans.filter(filter);
        if (ready(matching)) return matching;
        if (Date.now() > deadline) {
          throw new Error(`OTLP receiver: timed out waiting for ${what}; have ${matching.length} matching of ${spans.length}: ${matching.map((s) => s.name).join(", ")}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** ExportTraceServiceRequest (OTLP/JSON) → flat spans. */
function flatten(request: unknown): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const resourceSpans of array(field(request, "resourceSpans"))) {
    const resource = attributes(field(field(resourceSpans, "resource"), "attributes"));
    const service = typeof resource["service.name"] === "string" ? resource["service.name"] : "";
    for (const scopeSpans of array(field(resourceSpans, "scopeSpans"))) {
      const scope = String(field(field(scopeSpans, "scope"), "name") ?? "");
      for (const span of array(field(scopeSpans, "spans"))) {
        const status = field(span, "status");
        out.push({
          service,
          scope,
          traceId: String(field(span, "traceId") ?? ""),
          spanId: String(field(span, "spanId") ?? ""),
          parentSpanId: String(field(span, "parentSpanId") ?? ""),
          traceState: String(field(span, "traceState") ?? ""),
          name: String(field(span, "name") ?? ""),
          kind: Number(field(span, "kind") ?? 0),
          startNs: BigInt(String(field(span, "startTimeUnixNano") ?? "0")),
          endNs: BigInt(String(field(span, "endTimeUnixNano") ?? "0")),
          attributes: attributes(field(span, "attributes")),
          status: { code: Number(field(status, "code") ?? 0), message: String(field(status, "message") ?? "") },
        });
      }
    }
  }
  return out;
}

function attributes(list: unknown): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const entry of array(list)) out[String(field(entry, "key"))] = anyValue(field(entry, "value"));
  return out;
}

/** OTLP's AnyValue: int64 may arrive as a string; it becomes a number (test values are small). */
function anyValue(value: unknown): AttributeValue {
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  if ("stringValue" in v) return String(v.stringValue);
  if ("boolValue" in v) return Boolean(v.boolValue);
  if ("intValue" in v) return Number(v.intValue);
  if ("doubleValue" in v) return Number(v.doubleValue);
  if ("arrayValue" in v) return array(field(v.arrayValue, "values")).map(anyValue);
  return null;
}

function field(value: unknown, key: string): unknown {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

function array(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}
