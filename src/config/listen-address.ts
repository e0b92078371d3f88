// Listen address (http.addr, redis.addr), as Go's net.Listen("tcp", addr) accepts it.
import { isIP } from "node:net";

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/**
 * Splits "host:port" / ":port" / "[v6]:port" into host (empty: all interfaces) and port.
 * Port 0 is accepted: it asks the OS for a free port, which tests use.
 */
export function parseListenAddress(addr: string): { host: string; port: number } {
  let host: string;
  let portText: string;
  if (addr.startsWith("[")) {
    const close = addr.indexOf("]");
    if (close < 0) throw new Error("missing ']' after IPv6 address");
    host = addr.slice(1, close);
    const after = addr.slice(close + 1);
    if (!after.startsWith(":")) throw new Error('missing port (expected "[host]:port")');
    portText = after.slice(1);
    const zoneless = host.replace(/%[\w.-]+$/, "");
    if (isIP(zoneless) !== 6) throw new Error(`${JSON.stringify(host)} is not an IPv6 address`);
  } else {
    const colon = addr.lastIndexOf(":");
    if (colon < 0) throw new Error('missing port (expected "host:port" or ":port")');
    host = addr.slice(0, colon);
    portText = addr.slice(colon + 1);
    if (host.includes(":")) throw new Error('too many colons (write IPv6 addresses as "[::1]:5000")');
    if (host !== "" && isIP(host) === 0 && !HOSTNAME.test(host)) throw new Error(`${JSON.stringify(host)} is not a valid host name or IP address`);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new Error(`${JSON.stringify(portText)} is not a port number (0-65535)`);
  }
  return { host, port: Number(portText) };
}
