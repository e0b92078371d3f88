/**
 * Whether berth traces, and how, from the standard OpenTelemetry environment variables
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/). This module
 * imports nothing of OpenTelemetry: a registry that does not trace reads these variables and stops.
 *
 * The rule: tracing is on when OTEL_TRACES_EXPORTER names an exporter (otlp, console), or, with
 * OTEL_TRACES_EXPORTER unset, when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
 * OTEL_EXPORTER_OTLP_ENDPOINT). OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true turn it off
 * whatever else is set. Everything else is off: unlike distribution 3, berth does not export to
 * localhost:4318 because nobody said otherwise.
 *
 * Values berth cannot honour (a gRPC protocol, a Zipkin exporter, a B3 propagator, a ratio of 2)
 * are a ConfigError naming the variable, before the server listens, instead of the SDK's log line
 * and silent fallback.
 */
import { ConfigError } from "../config/config.js";

export type TraceExporterKind = "otlp" | "console";
export type OtlpProtocol = "http/protobuf" | "http/json";
export type SamplerKind = "always_on" | "always_off" | "traceidratio" | "parentbased_always_on" | "parentbased_always_off" | "parentbased_traceidratio";
export type PropagatorKind = "tracecontext" | "baggage";

export interface TracingSettings {
  exporters: TraceExporterKind[];
  /** How the otlp exporter sends (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL). */
  protocol: OtlpProtocol;
  sampler: SamplerKind;
  /** The ratio of the traceidratio samplers (OTEL_TRACES_SAMPLER_ARG, default 1). */
  samplerRatio: number;
  /** What is read from incoming requests and written into upstream requests (OTEL_PROPAGATORS). */
  propagators: PropagatorKind[];
}

const EXPORTERS = ["otlp", "console"] as const;
const PROTOCOLS = ["http/protobuf", "http/json"] as const;
const SAMPLERS = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"] as const;
const PROPAGATORS = ["tracecontext", "baggage"] as const;

type Environment = Readonly<Record<string, string | undefined>>;

/** The tracing `env` asks for, or undefined when tracing is off. Throws ConfigError for a value berth cannot honour. */
export function readTracingSettings(env: Environment): TracingSettings | undefined {
  if (parseBoolean(env, "OTEL_SDK_DISABLED")) return undefined;
  const exporters = parseExporters(env);
  if (exporters.length === 0) return undefined;
  for (const key of ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]) {
    const value = nonEmpty(env, key);
    if (value !== undefined && !isHttpURL(value)) throw new ConfigError(key, `${JSON.stringify(value)} is not an http:// or https:// URL`);
  }
  const protocolKey = nonEmpty(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") === undefined ? "OTEL_EXPORTER_OTLP_PROTOCOL" : "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
  const protocol = oneOf(env, protocolKey, PROTOCOLS, "http/protobuf", "grpc is not supported: use http/protobuf or http/json");
  const sampler = oneOf(env, "OTEL_TRACES_SAMPLER", SAMPLERS, "parentbased_always_on");
  return {
    exporters,
    protocol,
    sampler,
    samplerRatio: sampler.endsWith("traceidratio") ? parseRatio(env) : 1,
    propagators: parsePropagators(env),
  };
}

function parseExporters(env: Environment): TraceExporterKind[] {
  const value = nonEmpty(env, "OTEL_TRACES_EXPORTER");
  if (value === undefined) {
    const endpoint = nonEmpty(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ?? nonEmpty(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
    return endpoint === undefined ? [] : ["otlp"];
  }
  const names = value.split(",").map((name) => name.trim().toLowerCase());
  if (names.includes("none")) {
    if (names.length > 1) throw new ConfigError("OTEL_TRACES_EXPORTER", `"none" cannot be combined with other exporters (got ${JSON.stringify(value)})`);
    return [];
  }
  const exporters: TraceExporterKind[] = [];
  for (const name of names) {
    if (!(EXPORTERS as readonly string[]).includes(name)) {
      throw new ConfigError("OTEL_TRACES_EXPORTER", `unsupported exporter ${JSON.stringify(name)} (berth supports otlp, console, none)`);
    }
    if (!exporters.includes(name as TraceExporterKind)) exporters.push(name as TraceExporterKind);
  }
  return exporters;
}

function parsePropagators(env: Environment): PropagatorKind[] {
  const value = nonEmpty(env, "OTEL_PROPAGATORS");
  if (value === undefined) return ["tracecontext", "baggage"];
  const names = value.split(",").map((name) => name.trim().toLowerCase());
  if (names.includes("none")) {
    if (names.length > 1) throw new ConfigError("OTEL_PROPAGATORS", `"none" cannot be combined with other propagators (got ${JSON.stringify(value)})`);
    return [];
  }
  const propagators: PropagatorKind[] = [];
  for (const name of names) {
    if (!(PROPAGATORS as readonly string[]).includes(name)) {
      throw new ConfigError("OTEL_PROPAGATORS", `unsupported propagator ${JSON.stringify(name)} (berth supports tracecontext, baggage, none)`);
    }
    if (!propagators.includes(name as PropagatorKind)) propagators.push(name as PropagatorKind);
  }
  return propagators;
}

function parseRatio(env: Environment): number {
  const value = nonEmpty(env, "OTEL_TRACES_SAMPLER_ARG");
  if (value === undefined) return 1;
  const ratio = Number(value);
  if (!/^\s*[0-9.eE+-]+\s*$/.test(value) || !Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    throw new ConfigError("OTEL_TRACES_SAMPLER_ARG", `${JSON.stringify(value)} is not a ratio between 0 and 1`);
  }
  return ratio;
}

function oneOf<T extends string>(env: Environment, key: string, allowed: readonly T[], fallback: T, hint?: string): T {
  const value = nonEmpty(env, key)?.toLowerCase();
  if (value === undefined) return fallback;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  const detail = value === "grpc" && hint !== undefined ? hint : `expected one of ${allowed.join(", ")}`;
  throw new ConfigError(key, `unsupported value ${JSON.stringify(value)}: ${detail}`);
}

/** The specification's booleans: "true" or "false" in any case; anything else is a mistake worth saying. */
function parseBoolean(env: Environment, key: string): boolean {
  const value = nonEmpty(env, key)?.toLowerCase();
  if (value === undefined || value === "false") return false;
  if (value === "true") return true;
  throw new ConfigError(key, `${JSON.stringify(env[key])} is not true or false`);
}

/** The specification treats an empty variable as unset. */
function nonEmpty(env: Environment, key: string): string | undefined {
  const value = env[key]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

function isHttpURL(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}
