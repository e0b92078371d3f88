import { RegistryError } from "../errcode/registry-error.js";

/** Why an upstream request failed. */
export type UpstreamFailure =
  /** Connection refused or reset, DNS, TLS. */
  | "unreachable"
  /** No connection, response or body bytes within the configured timeout. */
  | "timeout"
  /** 5xx or 429. */
  | "status"
  /** It refused berth's credentials, or its token service did. */
  | "denied"
  /** It answered something berth must not store: bytes that miss their digest, a malformed token. */
  | "invalid";

/**
 * The upstream of a mirrored repository failed. Clients see 503 UNAVAILABLE naming the upstream
 * and the reason, never the upstream's own error body. A cached tag may still be served instead
 * (see ProxyRepository): the upstream failing is exactly when a mirror earns its keep.
 */
export class UpstreamError extends RegistryError {
  constructor(
    readonly failure: UpstreamFailure,
    readonly upstream: string,
    reason: string,
  ) {
    super("UNAVAILABLE", `upstream registry ${upstream}: ${reason}`, { upstream, reason: failure });
    this.name = "UpstreamError";
  }
}
