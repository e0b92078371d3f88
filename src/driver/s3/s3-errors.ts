/**
 * Recognises the SDK's errors by what they mean to the driver. S3-compatible servers disagree on
 * error names (Ceph 16 answers NoSuchKey where AWS answers NoSuchUpload), so each check accepts
 * every answer seen for its case.
 */
import { PathNotFoundError } from "../storage-driver.js";

interface SdkError {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
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
