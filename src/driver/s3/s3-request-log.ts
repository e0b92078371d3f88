/**
 * `storage.s3.loglevel`: distribution hands it to the AWS SDK for Go, which then logs S3 requests
 * whatever the registry's own log level. berth logs one line per attempt (operation, key, status,
 * time, attempt number, error) at `info`, so that the lines appear with the default log level as
 * distribution's do; the sub-levels add what the SDK's add. Secrets never appear: neither the
 * Authorization header nor the session token, not even inside a canonical request.
 */
import type { S3Request } from "./s3-transport.js";

export const S3_LOG_LEVELS = [
  "off",
  "debug",
  "debugwithsigning",
  "debugwithhttpbody",
  "debugwithrequestretries",
  "debugwithrequesterrors",
  "debugwitheventstreambody",
] as const;
export type S3LogLevel = (typeof S3_LOG_LEVELS)[number];

/** Documents logged with debugwithhttpbody are cut to this: listings can be large. */
const MAX_LOGGED_BODY = 4096;

/** One attempt at a request, as the transport saw it. */
export interface S3Attempt {
  request: Readonly<S3Request>;
  /** 1 for the first attempt. */
  attempt: number;
  /** The answer's status; undefined when none came (connection refused, reset, timeout). */
  status: number | undefined;
  error: unknown;
  ms: number;
  /** The canonical request that was signed. */
  canonicalRequest: string;
  /** The answer's body when the transport read it whole (never object data). */
  responseBody: Buffer | undefined;
}

/** Where the lines go: berth's logger, or a test's. */
export type S3LogSink = (fields: Record<string, unknown>, message: string) => void;

export class S3RequestLog {
  constructor(
    readonly level: Exclude<S3LogLevel, "off">,
    private readonly sink: S3LogSink,
  ) {}

  /** The transport keeps the canonical request only for this level. */
  get wantsSigning(): boolean {
    return this.level === "debugwithsigning";
  }

  record(a: S3Attempt): void {
    const fields: Record<string, unknown> = {
      operation: a.request.operation,
      method: a.request.method,
      key: a.request.key ?? "",
      status: a.status ?? 0,
      durationMs: Math.round(a.ms * 10) / 10,
      attempt: a.attempt,
    };
    if (a.request.query !== undefined && a.request.query.length > 0) fields.query = a.request.query.map(([k, v]) => (v === "" ? k : `${k}=${v}`)).join("&");
    if (a.error !== undefined) fields.err = describe(a.error);
    if (this.level === "debugwithsigning") fields.canonicalRequest = withoutSecrets(a.canonicalRequest);
    if (this.level === "debugwithhttpbody") {
      // Only documents berth built (XML) and the answers read whole: never blob bytes.
      if (a.request.signedBody && a.request.body !== undefined) fields.requestBody = text(a.request.body);
      if (a.responseBody !== undefined && a.responseBody.length > 0) fields.responseBody = text(a.responseBody);
    }
    this.sink(fields, a.error === undefined ? "s3 request" : "s3 request failed");
  }
}

/** The session token is a credential; the SDK would print it in the canonical headers. */
function withoutSecrets(canonical: string): string {
  return canonical.replace(/^x-amz-security-token:.*$/m, "x-amz-security-token:********");
}

function text(body: Uint8Array): string {
  const s = Buffer.from(body.buffer, body.byteOffset, Math.min(body.byteLength, MAX_LOGGED_BODY)).toString("utf8");
  return body.byteLength > MAX_LOGGED_BODY ? `${s}… (${body.byteLength} bytes)` : s;
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
