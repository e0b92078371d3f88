import { SpanKind, SpanStatusCode, type Tracer } from "@opentelemetry/api";
import { ATTR_DB_NAMESPACE, ATTR_DB_OPERATION_NAME, ATTR_DB_SYSTEM_NAME, ATTR_ERROR_TYPE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT } from "@opentelemetry/semantic-conventions";
import type { RedisCommandObserver } from "../cache/redis-blob-descriptor-cache.js";
import { ATTR_REPOSITORY_NAME } from "./attributes.js";

export interface RedisTarget {
  host: string;
  port: number;
  db: number;
}

const SPAN_NAMES = { get: "redis blob descriptor get", set: "redis blob descriptor set", clear: "redis blob descriptor clear" } as const;

/**
 * A client span per round trip of the Redis blob descriptor cache, a child of the active span.
 * One span per cache operation rather than per Redis command: a repository-scoped get is one
 * MULTI of three commands, sent and answered together.
 */
export function redisTracing(tracer: Tracer, target: RedisTarget): RedisCommandObserver {
  const namespace = String(target.db);
  return {
    start(operation, repository) {
      const span = tracer.startSpan(SPAN_NAMES[operation], {
        kind: SpanKind.CLIENT,
        attributes: {
          [ATTR_DB_SYSTEM_NAME]: "redis",
          [ATTR_DB_NAMESPACE]: namespace,
          // A global get is one HMGET; everything else is a MULTI.
          [ATTR_DB_OPERATION_NAME]: operation === "get" && repository === undefined ? "HMGET" : "MULTI",
          [ATTR_SERVER_ADDRESS]: target.host,
          [ATTR_SERVER_PORT]: target.port,
          ...(repository === undefined ? {} : { [ATTR_REPOSITORY_NAME]: repository }),
        },
      });
      return (error) => {
        if (error !== undefined) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
          span.setAttribute(ATTR_ERROR_TYPE, error instanceof Error ? error.name : typeof error);
        }
        span.end();
      };
    },
  };
}
