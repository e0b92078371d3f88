import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";

/**
 * The client's IP as distribution's requestutil.RemoteIP takes it: the first X-Forwarded-For entry,
 * else X-Real-Ip, when it is an IP address; else the peer's address. Headers a client sets are
 * trusted as distribution trusts them: this chooses a download URL, never grants access.
 */
export function clientIP(req: IncomingMessage): string | undefined {
  const forwarded = req.headers["x-forwarded-for"];
  const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(",")[0]?.trim();
  if (first !== undefined && isIP(first) !== 0) return first;
  const realIP = req.headers["x-real-ip"];
  const real = (Array.isArray(realIP) ? realIP[0] : realIP)?.trim();
  if (real !== undefined && isIP(real) !== 0) return real;
  return req.socket.remoteAddress;
}
