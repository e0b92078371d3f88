import { ERROR_CODES, type ErrorCode } from "./error-codes.js";

/**
 * A failure a client caused or must be told about, carrying its registry error code. The server's
 * error renderer turns it into `{"errors":[{code,message,detail}]}` with the table's status.
 * Anything thrown that is not a RegistryError is an internal failure: logged, answered 500 UNKNOWN.
 */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  /** Safe to show to clients: never paths, stack traces or internal messages. */
  readonly detail: unknown;
  /** Extra response headers the spec requires with this error (Range on 416, for example). */
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message?: string, detail?: unknown, headers: Record<string, string> = {}) {
    super(message ?? ERROR_CODES[code].message);
    this.name = "RegistryError";
    this.code = code;
    this.detail = detail;
    this.headers = headers;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}
