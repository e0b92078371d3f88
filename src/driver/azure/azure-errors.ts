/** Recognising the Azure Blob service's errors (RestError from @azure/storage-blob) by their codes. */
import { PathNotFoundError } from "../storage-driver.js";

/** The service's error code (x-ms-error-code), when `err` is an answer of the service. */
export function azureErrorCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const details = (err as { details?: unknown }).details;
  if (typeof details === "object" && details !== null) {
    const code = (details as { errorCode?: unknown }).errorCode;
    if (typeof code === "string") return code;
  }
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

function statusOf(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const status = (err as { statusCode?: unknown }).statusCode;
  return typeof status === "number" ? status : undefined;
}

/**
 * Nothing at the name: the blob (or, for a copy, its source) is absent. ContainerNotFound is not
 * among them: a missing container is a configuration error, which must not pass for an empty store.
 */
export function isBlobNotFound(err: unknown): boolean {
  const code = azureErrorCode(err);
  if (code === "BlobNotFound" || code === "CannotVerifyCopySource") return true;
  // A HEAD (Get Blob Properties) has no body, hence no code: its 404 alone says it.
  return code === undefined && statusOf(err) === 404;
}

/** 416: a read starting at or past the end of the blob. */
export function isInvalidRange(err: unknown): boolean {
  return azureErrorCode(err) === "InvalidRange" || statusOf(err) === 416;
}

/** The blob exists with another type (an append blob written by distribution's writer). */
export function isInvalidBlobType(err: unknown): boolean {
  return azureErrorCode(err) === "InvalidBlobType";
}

/** `err` as PathNotFoundError for `path` when it says the blob is absent; otherwise `err` itself. */
export function asPathNotFound(err: unknown, path: string, driverName: string): unknown {
  return isBlobNotFound(err) ? new PathNotFoundError(path, driverName) : err;
}

/** The promise's value, or undefined when the blob is absent. */
export async function unlessBlobNotFound<T>(promise: Promise<T>): Promise<T | undefined> {
  try {
    return await promise;
  } catch (err) {
    if (isBlobNotFound(err)) return undefined;
    throw err;
  }
}
