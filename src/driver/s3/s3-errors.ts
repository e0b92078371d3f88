/**
 * S3's failures as typed errors, and what they mean to the driver. S3-compatible servers disagree
 * on error codes (Ceph 16 answers NoSuchKey where AWS answers NoSuchUpload), so each check accepts
 * every answer seen for its case.
 */
import { PathNotFoundError } from "../storage-driver.js";
import { StorageFaultError } from "../storage-fault.js";

/**
 * S3 answered, and the answer is a failure: an HTTP status of 300 or more, or (CopyObject,
 * UploadPartCopy, CompleteMultipartUpload) a 200 whose body is an `<Error>`. `code` is S3's
 * error code (NoSuchKey, SlowDown…), or for an answer without a body (HEAD) a name derived from
 * the status (NotFound, Forbidden…).
 */
export class S3ResponseError extends Error {
  constructor(
    readonly operation: string,
    readonly status: number,
    readonly code: string,
    detail: string,
  ) {
    super(`s3: ${operation}: ${code} (HTTP ${status})${detail === "" ? "" : `: ${detail}`}`);
    this.name = "S3ResponseError";
  }
}

/** No byte came from S3 for `socketTimeoutMs` (or the connection was not made in time). */
export class S3TimeoutError extends Error {
  readonly code = "ETIMEDOUT";
  constructor(message: string) {
    super(message);
    this.name = "S3TimeoutError";
  }
}

/** S3 answered something the driver cannot read (not the XML the operation answers). */
export class S3ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "S3ProtocolError";
  }
}

/** The code S3 gives no body for: the answers to HEAD requests. */
export function codeOfStatus(status: number): string {
  switch (status) {
    case 400:
      return "BadRequest";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 412:
      return "PreconditionFailed";
    case 416:
      return "InvalidRange";
    case 503:
      return "ServiceUnavailable";
    default:
      return `HTTP${status}`;
  }
}

/** Failures to get any answer from S3: the connection refused, reset or cut, a name not resolved, a timeout. */
const NETWORK_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ERR_STREAM_PREMATURE_CLOSE"]);
/** Answers that say "later" whatever their status (S3 answers SlowDown 503, some servers 400). */
const THROTTLING_CODES = new Set(["SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequests"]);

/** No answer at all: the request may be sent again. */
export function isNetworkFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && NETWORK_CODES.has(code);
}

/** S3 asks to slow down. */
export function isThrottling(err: unknown): boolean {
  return err instanceof S3ResponseError && (err.status === 429 || THROTTLING_CODES.has(err.code));
}

/**
 * The storage failure an error is, or the error itself when it is an answer about the request
 * (404, 416, a precondition) or not S3's at all. Called once retries are over: a 5xx (500
 * InternalError, 503 SlowDown) or 429 answer, or no answer at all, is the object store being
 * unavailable; a 403 is access refused (credentials, bucket policy).
 */
export function asStorageFault(err: unknown): unknown {
  if (err instanceof StorageFaultError) return err;
  if (err instanceof S3ResponseError) {
    if (err.status >= 500 || isThrottling(err)) return new StorageFaultError("unavailable", err.message, { cause: err });
    if (err.status === 403) return new StorageFaultError("access-denied", err.message, { cause: err });
    return err;
  }
  if (isNetworkFailure(err)) return new StorageFaultError("unavailable", `s3: ${(err as Error).message}`, { cause: err });
  return err;
}

function isNotFound(err: unknown): boolean {
  return err instanceof S3ResponseError && err.code !== "NoSuchBucket" && (err.code === "NoSuchKey" || err.status === 404);
}

/** AWS answers NoSuchUpload for an upload that is gone; Ceph 16 answers NoSuchKey to ListParts. */
export function isNoSuchUpload(err: unknown): boolean {
  return err instanceof S3ResponseError && (err.code === "NoSuchUpload" || err.code === "NoSuchKey" || err.status === 404);
}

export function isInvalidRange(err: unknown): boolean {
  return err instanceof S3ResponseError && (err.code === "InvalidRange" || err.status === 416);
}

/** What the request answers, or undefined when S3 answers that there is no such object. */
export async function unlessNotFound<T>(request: Promise<T>): Promise<T | undefined> {
  try {
    return await request;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** A missing object as the PathNotFoundError the driver contract asks for; any other error as it is. */
export function asPathNotFound(err: unknown, path: string, driverName: string): unknown {
  return isNotFound(err) ? new PathNotFoundError(path, driverName) : err;
}
