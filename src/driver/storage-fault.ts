/**
 * Failures of the storage itself, as opposed to a request's own mistakes or a bug: a full disk,
 * storage that has turned read-only, access refused by the filesystem or the object store, an I/O
 * error, an object store that keeps failing or cannot be reached. They say nothing of blobs or
 * repositories (the driver layer knows none), only what went wrong with the storage.
 *
 * A driver reports one either as Node reports a failed syscall (an error with `code` ENOSPC, EROFS…,
 * which the filesystem driver passes on as it is), or as a StorageFaultError (the S3 driver, for
 * answers that are still failures after its bounded retries). `storageFaultOf` recognises both; the
 * server answers them `503 UNAVAILABLE` with the kind in the detail (src/errcode/storage-errors.ts).
 */
export type StorageFaultKind = "full" | "read-only" | "access-denied" | "io" | "unavailable";

export class StorageFaultError extends Error {
  constructor(
    readonly kind: StorageFaultKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "StorageFaultError";
  }
}

/** errno codes of the filesystem (and of the native addon, which reports them the same way). */
const ERRNO_KINDS: Record<string, StorageFaultKind> = {
  ENOSPC: "full",
  EDQUOT: "full",
  EFBIG: "full",
  EROFS: "read-only",
  EACCES: "access-denied",
  EPERM: "access-denied",
  EIO: "io",
  ENXIO: "io",
  EREMOTEIO: "io",
  ESTALE: "io",
  ENOTCONN: "io",
};

/** The kind of storage failure `err` is, or undefined when it is something else (a bug, a client's error). */
export function storageFaultOf(err: unknown): StorageFaultKind | undefined {
  if (err instanceof StorageFaultError) return err.kind;
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? ERRNO_KINDS[code] : undefined;
}
