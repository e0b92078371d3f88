import type { IncomingMessage, ServerResponse } from "node:http";
import { ERROR_CODES } from "../errcode/error-codes.js";
import { RegistryError } from "../errcode/registry-error.js";
import { registryErrorOf } from "../errcode/storage-errors.js";
import type { Logger } from "../log/logger.js";

/**
 * The one place errors become HTTP. A RegistryError answers with its table status and a spec error
 * body; a storage failure (src/driver/storage-fault.ts) is logged and answered `503 UNAVAILABLE`
 * naming its kind; anything else is an internal failure: logged with its detail, answered
 * `500 UNKNOWN` with none. When the response has already started, the connection is cut instead, since a
 * half-sent blob must not look complete.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, err: unknown, log: Logger): void {
  const registryError = registryErrorOf(err);
  if (!(err instanceof RegistryError)) log.error({ err, method: req.method, url: req.url }, registryError ? "storage failure" : "internal error");
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const code = registryError?.code ?? "UNKNOWN";
  const entry: Record<string, unknown> = { code, message: registryError?.message ?? ERROR_CODES.UNKNOWN.message };
  if (registryError?.detail !== undefined) entry.detail = registryError.detail;
  const body = JSON.stringify({ errors: [entry] });
  res.statusCode = ERROR_CODES[code].status;
  for (const [name, value] of Object.entries(registryError?.headers ?? {})) res.setHeader(name, value);
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(req.method === "HEAD" ? undefined : body);
}
