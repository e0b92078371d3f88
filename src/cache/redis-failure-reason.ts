/**
 * What a Redis failure is, in a few words for health and the log: no addresses, keys or server
 * internals. ioredis hides much of it behind Sentinel and Cluster wrappers; these read through them.
 */
import { ReplyError } from "ioredis";

/** An error reply from Redis (as opposed to a connection problem or a timeout). */
export function isReplyError(err: unknown): err is Error {
  return err instanceof (ReplyError as unknown as typeof Error);
}

/** Reasons that say a connection failed but not why. */
export const OPAQUE_FAILURES = new Set(["connection lost", "sentinels unreachable", "connection failed"]);

/** A short reason for health: what went wrong, without addresses, keys or server internals. */
export function describeFailure(err: unknown): string {
  // A Cluster that reached no node wraps the last node's error.
  if (err instanceof Error && "lastNodeError" in err && err.lastNodeError instanceof Error) return describeFailure(err.lastNodeError);
  if (isReplyError(err)) {
    const code = /^[A-Z]+/.exec(err.message)?.[0];
    if (code === "NOAUTH" || code === "WRONGPASS") return "authentication failed";
    return `error reply${code === undefined ? "" : ` ${code}`}`;
  }
  const code = err instanceof Error && "code" in err ? String(err.code) : "";
  const message = err instanceof Error ? err.message : String(err);
  if (message === "Command timed out") return "command timed out";
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ETIMEDOUT") return "connect timed out";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "host not found";
  // An alert is the server's word: it asked for a client certificate and had none it accepts.
  if (/ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN)/.test(code)) return "TLS client certificate refused";
  if (/CERT|UNABLE_TO_VERIFY|SELF_SIGNED/.test(code)) return "TLS certificate not trusted";
  if (code.startsWith("ERR_SSL") || code.startsWith("ERR_TLS")) return "TLS handshake failed";
  if (code === "ECONNRESET" || message === "connection lost" || message === "Connection is closed.") return "connection lost";
  if (message.startsWith("Stream isn't writeable")) return "not connected";
  // ioredis reports unreachable sentinels with the last one's error as text only.
  const lastError = /All sentinels are unreachable\..* Last error: (.*)$/s.exec(message)?.[1];
  if (lastError !== undefined) return describeSentinelError(lastError);
  return "connection failed";
}

/** describeFailure for the text of a sentinel's error (Node's and OpenSSL's messages, without their codes). */
function describeSentinelError(message: string): string {
  if (/alert (certificate required|bad certificate|unknown ca|certificate unknown)/i.test(message)) return "TLS client certificate refused";
  if (/certificate|unable to verify|unable to get (local )?issuer/i.test(message)) return "TLS certificate not trusted";
  if (/ECONNREFUSED/.test(message)) return "connection refused";
  if (/timed? ?out/i.test(message)) return "connect timed out";
  if (/ssl|tls/i.test(message)) return "TLS handshake failed";
  return "sentinels unreachable";
}
