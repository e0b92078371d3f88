// http, apart from TLS (build-tls.ts): listen address, public URL, headers and timeouts.
import { randomBytes } from "node:crypto";
import type { Config } from "./config.js";
import { parseListenAddress } from "./listen-address.js";
import { child, fail, readBool, readDuration, readSection, readString } from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

const DEFAULT_HTTP_ADDR = ":5000";
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Node's setHeader rejects anything outside these (notably CR/LF), which would fail per request.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export function buildHttp(root: RawMap): Omit<Config["http"], "tls" | "http2Disabled" | "debug"> {
  const http = readSection(child(root, "http"), "http");

  const netNode = child(http, "net");
  const netText = readString(netNode, "http.net") ?? "";
  // distribution: empty means tcp; Go's net.Listen also takes tcp4/tcp6, which berth does not.
  if (netText !== "tcp" && netText !== "unix" && netText !== "") throw fail("http.net", netNode, `${JSON.stringify(netText)} is not supported; use tcp or unix`);
  const net = netText === "unix" ? "unix" : "tcp";

  const addrNode = child(http, "addr");
  const addr = readString(addrNode, "http.addr") ?? DEFAULT_HTTP_ADDR;
  let listen: { host: string; port: number };
  if (net === "unix") {
    // The socket file's path, as Go's net.Listen("unix", addr) takes it.
    if (child(http, "addr") === undefined || addr === "") throw fail("http.addr", addrNode, "required with http.net: unix: the path of the socket file");
    if (addr.includes("\0")) throw fail("http.addr", addrNode, "a socket path cannot contain NUL");
    listen = { host: "", port: 0 };
  } else {
    try {
      listen = parseListenAddress(addr);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw fail("http.addr", addrNode, `invalid listen address ${JSON.stringify(addr)}: ${reason}`);
    }
  }

  const prefixNode = child(http, "prefix");
  const prefix = parsePathPrefix(readString(prefixNode, "http.prefix") ?? "", prefixNode);

  const hostNode = child(http, "host");
  const hostText = readString(hostNode, "http.host");
  const host = hostText === undefined || hostText === "" ? undefined : parseBaseUrl(hostText, hostNode, prefix);

  const h2c = readSection(child(http, "h2c"), "http.h2c");
  const h2cEnabled = readBool(child(h2c, "enabled"), "http.h2c.enabled") ?? false;

  const configuredSecret = readString(child(http, "secret"), "http.secret");
  const secretGenerated = configuredSecret === undefined || configuredSecret === "";

  return {
    addr,
    net,
    listenHost: listen.host,
    listenPort: listen.port,
    host,
    prefix,
    h2c: h2cEnabled,
    secret: secretGenerated ? randomBytes(32).toString("hex") : configuredSecret,
    secretGenerated,
    headers: readHeaders(child(http, "headers")),
    relativeUrls: readBool(child(http, "relativeurls"), "http.relativeurls") ?? false,
    drainTimeoutMs: readDuration(child(http, "draintimeout"), "http.draintimeout") ?? 0,
    timeouts: readTimeouts(child(http, "timeout")),
  };
}

/** Defaults for http.timeout.*: Node's keep-alive default, and generous bounds for slow links. */
export const DEFAULT_HTTP_TIMEOUTS: Config["http"]["timeouts"] = { readHeaderMs: 30_000, idleMs: 5_000, inactivityMs: 300_000 };

/** http.timeout (berth's, not distribution's): each a duration greater than zero. */
function readTimeouts(node: Raw | undefined): Config["http"]["timeouts"] {
  const section = readSection(node, "http.timeout");
  const read = (key: "readheader" | "idle" | "inactivity", fallback: number): number => {
    const valueNode = child(section, key);
    const value = readDuration(valueNode, `http.timeout.${key}`) ?? fallback;
    if (value <= 0) throw fail(`http.timeout.${key}`, valueNode, "must be greater than zero");
    return value;
  };
  return {
    readHeaderMs: read("readheader", DEFAULT_HTTP_TIMEOUTS.readHeaderMs),
    idleMs: read("idle", DEFAULT_HTTP_TIMEOUTS.idleMs),
    inactivityMs: read("inactivity", DEFAULT_HTTP_TIMEOUTS.inactivityMs),
  };
}

/**
 * http.prefix, normalised to "/" (none) or "/<path>/". distribution mounts its router under the
 * prefix with gorilla/mux, which drops trailing slashes before appending "/v2/": "/registry" and
 * "/registry/" serve the same paths, and "" or "/" none. A prefix without its leading slash makes
 * mux's router fail, so distribution then answers 404 to everything: refused here instead. So is
 * what it could not serve either: a "v2" segment (its URL builder cuts generated URLs at the first
 * "/v2/" of the request path), empty, "." or ".." segments (clients and proxies rewrite those), and
 * characters that need percent-encoding or that mux reads as a pattern ("{", "}").
 */
export function parsePathPrefix(text: string, node: Raw | undefined): string {
  const trimmed = text.replace(/\/+$/, "");
  if (trimmed === "") return "/";
  if (!trimmed.startsWith("/")) throw fail("http.prefix", node, `must start with "/", as in "/registry/"; got ${JSON.stringify(text)}`);
  const segments = trimmed.slice(1).split("/");
  for (const segment of segments) {
    if (segment === "" || segment === "." || segment === "..") throw fail("http.prefix", node, `${JSON.stringify(text)} has an empty, "." or ".." segment`);
    if (segment === "v2") throw fail("http.prefix", node, `${JSON.stringify(text)} has a "v2" segment: generated URLs would be cut at it, as distribution cuts them`);
    if (!PREFIX_SEGMENT.test(segment)) throw fail("http.prefix", node, `${JSON.stringify(text)}: a segment may hold letters, digits and - . _ ~ ! $ & ' ( ) * + , ; = : @ only`);
  }
  return `${trimmed}/`;
}

// RFC 3986 pchar without percent-encoding.
const PREFIX_SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]+$/;

/**
 * http.host becomes the origin Location headers are built on, so only scheme://host[:port].
 * distribution takes it as the whole root of generated URLs, so its users put the prefix in it
 * too ("https://example.com/registry/"): that path is accepted when it is the prefix, which berth
 * adds to every URL anyway.
 */
function parseBaseUrl(text: string, node: Raw | undefined, prefix: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw fail("http.host", node, `expected an absolute URL such as "https://registry.example.com", got ${JSON.stringify(text)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw fail("http.host", node, `expected an http or https URL, got ${JSON.stringify(text)}`);
  }
  if (url.hostname === "") throw fail("http.host", node, `URL has no host: ${JSON.stringify(text)}`);
  if (url.username !== "" || url.password !== "") throw fail("http.host", node, "must not contain credentials");
  const pathIsPrefix = url.pathname === "/" || url.pathname.replace(/\/*$/, "/") === prefix;
  if (!pathIsPrefix || url.search !== "" || url.hash !== "") {
    throw fail("http.host", node, `must be scheme://host[:port] without path (other than http.prefix), query or fragment, got ${JSON.stringify(text)}`);
  }
  return url.origin;
}

function readHeaders(node: Raw | undefined): Record<string, string[]> {
  const headers: Record<string, string[]> = {};
  for (const [name, value] of readSection(node, "http.headers")?.entries ?? []) {
    const key = `http.headers.${name}`;
    if (!HEADER_NAME.test(name)) throw fail(key, value, "not a valid HTTP header name");
    let values: string[];
    if (value.kind === "seq") {
      values = value.items.map((item, i) => readString(item, `${key}[${i}]`) ?? "");
    } else {
      // A single string is unambiguous; distribution wants a list but nothing is gained by refusing.
      const single = readString(value, key);
      values = single === undefined ? [] : [single];
    }
    for (const v of values) {
      if (!HEADER_VALUE.test(v)) throw fail(key, value, `invalid header value ${JSON.stringify(v)}`);
    }
    headers[name] = values;
  }
  return headers;
}
