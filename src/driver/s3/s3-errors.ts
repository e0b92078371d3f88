/**
 * Recognises the SDK's errors by what they mean to the driver. S3-compatible servers disagree on
 * error names (Ceph 16 answers NoSuchKey where AWS answers NoSuchUpload), so each check accepts
 * every answer seen for its case.
 */
import { PathNotFoundError } from "../storage-driver.js";
import { StorageFaultError } from "../storage-fault.js";

interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** Failures to get any answer from S3: the connection refused, reset or cut, a name not resolved, a timeout. */
const NETWORK_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ERR_STREAM_PREMATURE_CLOSE"]);
const TIMEOUT_NAMES = new Set(["TimeoutError", "RequestTimeout", "RequestTimeoutException"]);

/**
 * The storage failure an S3 error is, or the error itself when it is an answer about the request
 * (404, 416, a precondition) or not S3's at all. Called once the SDK has given up retrying:
 * a 5xx (500 InternalError, 503 SlowDown) or 429 answer, or no answer at all, is the object store
 * being unavailable; a 403 is access refused (credentials, bucket policy).
 */
export function asStorageFault(err: unknown): unknown {
  if (err instanceof StorageFaultError) return err;
  const e = err as SdkError | undefined;
  const status = e?.$metadata?.httpStatusCode;
  const what = `s3: ${e?.name ?? "error"}${status === undefined ? "" : ` (HTTP ${status})`}: ${e?.message ?? ""}`;
  if (status !== undefined && (status >= 500 || status === 429)) return new StorageFaultError("unavailable", what, { cause: err });
  if (status === 403) return new StorageFaultError("access-denied", what, { cause: err });
  if (status === undefined && ((e?.code !== undefined && NETWORK_CODES.has(e.code)) || (e?.name !== undefined && TIMEOUT_NAMES.has(e.name)))) {
    return new StorageFaultError("unavailable", what, { cause: err });
  }
  return err;
}

function isNotFound(err: unknown): boolean {
  const e = err as SdkError | undefined;
  if (e?.name === "NoSuchBucket" || e?.Code === "NoSuchBucket") return false;
  return e?.name === "NoSuchKey" || e?.name === "NotFound" || e?.$metadata?.httpStatusCode === 404;
}

/** AWS answers NoSuchUpload for an upload that is gone; Ceph 16 answers NoSuchKey to ListParts. */
export function isNoSuchUpload(err: unknown): boolean {
  const e = err as SdkError | undefined;
  return e?.name === "NoSuchUpload" || e?.name === "NoSuchKey" || e?.$metadata?.httpStatusCode === 404;
}

export function isInvalidRange(err: unknown): boolean {
  const e = err as SdkError | undefined;
  return e?.name === "InvalidRange" || e?.$metadata?.httpStatusCode === 416;
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
