/**
 * OpenTelemetry tracing, set up from TracingSettings (src/tracing/tracing-settings.ts). Only the
 * composition root imports this module, and only when tracing is on: it loads the OpenTelemetry
 * SDK, which a registry that does not trace never pays for.
 */
import { DiagLogLevel, context, diag, type TextMapPropagator } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import type { RedisCommandObserver } from "../cache/redis-blob-descriptor-cache.js";
import { berthVersion } from "../berth-version.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import type { Logger } from "../log/logger.js";
import type { UpstreamExchangeObserver } from "../proxy/upstream-client.js";
import type { RequestInterceptor } from "../server/request-interceptor.js";
import { redisTracing, type RedisTarget } from "./redis-tracing.js";
import { RequestTracing } from "./request-tracing.js";
import { TracedDriver } from "./traced-driver.js";
import type { TracingSettings } from "./tracing-settings.js";
import { upstreamTracing } from "./upstream-tracing.js";

/** What tracing contributes to the composition: one piece per boundary it instruments. */
export interface Tracing {
  /** The server span of each routed request. */
  readonly interceptor: RequestInterceptor;
  /** The driver, with a span per call. */
  traceDriver(driver: StorageDriver): StorageDriver;
  /** Spans for the Redis blob descriptor cache at `target`. */
  redisObserver(target: RedisTarget): RedisCommandObserver;
  /** Spans, and trace context sent, for the pull-through cache's upstream requests. */
  readonly upstreamObserver: UpstreamExchangeObserver;
  /** Exports what is still buffered and stops. Resolves even when the export fails (it is logged). */
  shutdown(): Promise<void>;
}

const INSTRUMENTATION_SCOPE = "berth";

export async function startTracing(settings: TracingSettings, log: Logger): Promise<Tracing> {
  // The SDK reports failures (an unreachable collector) through diag, silent unless given a logger.
  diag.setLogger(
    {
      error: (message, ...args) => log.warn({ otel: args.map(String) }, `tracing: ${message}`),
      warn: (message, ...args) => log.warn({ otel: args.map(String) }, `tracing: ${message}`),
      info: () => undefined,
      debug: () => undefined,
      verbose: () => undefined,
    },
    DiagLogLevel.WARN,
  );
  const exporters = await Promise.all(settings.exporters.map((kind) => createExporter(kind, settings)));
  const provider = new BasicTracerProvider({
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override berth's defaults.
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: "berth", [ATTR_SERVICE_VERSION]: berthVersion() }).merge(detectResources({ detectors: [envDetector] })),
    sampler: createSampler(settings),
    // Batch size, queue and delay from OTEL_BSP_*.
    spanProcessors: exporters.map((exporter) => new BatchSpanProcessor(exporter)),
  });
  // Without a context manager no span would be active across an await: storage spans would be roots.
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  const tracer = provider.getTracer(INSTRUMENTATION_SCOPE, berthVersion());
  const propagator = createPropagator(settings);
  log.info(
    { exporters: settings.exporters, protocol: settings.exporters.includes("otlp") ? settings.protocol : undefined, sampler: settings.sampler, propagators: settings.propagators },
    "tracing on (OpenTelemetry)",
  );
  let stopped: Promise<void> | undefined;
  return {
    interceptor: new RequestTracing(tracer, propagator),
    traceDriver: (driver) => new TracedDriver(driver, tracer),
    redisObserver: (target) => redisTracing(tracer, target),
    upstreamObserver: upstreamTracing(tracer, propagator),
    shutdown() {
      stopped ??= provider
        .shutdown()
        .catch((err: unknown) => log.warn({ err }, "tracing: spans still buffered at shutdown could not be exported"))
        .finally(() => {
          context.disable();
          diag.disable();
        });
      return stopped;
    },
  };
}

async function createExporter(kind: TracingSettings["exporters"][number], settings: TracingSettings): Promise<SpanExporter> {
  if (kind === "console") return new ConsoleSpanExporter();
  // Endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_(TRACES_)*.
  if (settings.protocol === "http/json") {
    const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
    return new OTLPTraceExporter();
  }
  const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto");
  return new OTLPTraceExporter();
}

function createSampler(settings: TracingSettings): Sampler {
  switch (settings.sampler) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(settings.samplerRatio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.samplerRatio) });
  }
}

function createPropagator(settings: TracingSettings): TextMapPropagator {
  return new CompositePropagator({
    propagators: settings.propagators.map((kind) => (kind === "tracecontext" ? new W3CTraceContextPropagator() : new W3CBaggagePropagator())),
  });
}

