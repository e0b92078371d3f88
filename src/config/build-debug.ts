// http.debug: the debug listener's address and the Prometheus page served on it.
import type { Config, DebugConfig } from "./config.js";
import { parseListenAddress } from "./listen-address.js";
import { child, fail, readBool, readNonNegativeInt, readSection, readString } from "./raw-values.js";
import type { RawMap } from "./raw-yaml.js";

/** Paths the debug listener serves whatever is configured (src/health/debug-routes.ts); the Prometheus page may not take them. */
export const RESERVED_DEBUG_PATHS = ["/debug/health", "/debug/health/live", "/debug/health/ready", "/debug/config"] as const;

const DEFAULT_PROMETHEUS_PATH = "/metrics";
const MAX_LABELLED_REPOSITORIES = 10_000;

/**
 * http.debug.addr, http.debug.prometheus.{enabled,path} (distribution's keys) and
 * http.debug.prometheus.repositories (berth's). `http` is the already-built main listener, for the
 * port clash check. http.debug.tls (distribution 3) is left to the schema's warning.
 */
export function buildDebug(root: RawMap, http: Pick<Config["http"], "listenHost" | "listenPort">, warnings: string[]): DebugConfig {
  const debug = readSection(child(readSection(child(root, "http"), "http"), "debug"), "http.debug");

  const addrNode = child(debug, "addr");
  const addr = readString(addrNode, "http.debug.addr");
  let listen: { host: string; port: number } | undefined;
  if (addr !== undefined && addr !== "") {
    try {
      listen = parseListenAddress(addr);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw fail("http.debug.addr", addrNode, `invalid listen address ${JSON.stringify(addr)}: ${reason}`);
    }
    if (listen.port !== 0 && listen.port === http.listenPort && hostsOverlap(listen.host, http.listenHost)) {
      throw fail("http.debug.addr", addrNode, `${JSON.stringify(addr)} is the port http.addr listens on; the debug listener needs a port of its own`);
    }
  }

  const prometheus = readSection(child(debug, "prometheus"), "http.debug.prometheus");
  const enabled = readBool(child(prometheus, "enabled"), "http.debug.prometheus.enabled") ?? false;
  const pathNode = child(prometheus, "path");
  const pathText = readString(pathNode, "http.debug.prometheus.path");
  const path = pathText === undefined || pathText === "" ? DEFAULT_PROMETHEUS_PATH : pathText;
  if (!path.startsWith("/")) throw fail("http.debug.prometheus.path", pathNode, `must start with "/", got ${JSON.stringify(path)}`);
  if (path.includes("?") || path.includes("#")) throw fail("http.debug.prometheus.path", pathNode, `must be a path without query or fragment, got ${JSON.stringify(path)}`);
  if (path === "/v2" || path.startsWith("/v2/")) {
    throw fail("http.debug.prometheus.path", pathNode, `${JSON.stringify(path)} is under /v2, the registry API's path`);
  }
  if ((RESERVED_DEBUG_PATHS as readonly string[]).includes(path)) {
    throw fail("http.debug.prometheus.path", pathNode, `${JSON.stringify(path)} is already served on the debug listener`);
  }
  const repositoriesNode = child(prometheus, "repositories");
  const repositories = readNonNegativeInt(repositoriesNode, "http.debug.prometheus.repositories") ?? 0;
  // Each one is a label value in every scrape: past a few thousand Prometheus suffers.
  if (repositories > MAX_LABELLED_REPOSITORIES) {
    throw fail("http.debug.prometheus.repositories", repositoriesNode, `at most ${MAX_LABELLED_REPOSITORIES}, got ${repositories}`);
  }

  const gcDurations = readBool(child(prometheus, "gcdurations"), "http.debug.prometheus.gcdurations") ?? false;

  // distribution instruments its handlers when prometheus is enabled but, without debug.addr,
  // serves the numbers nowhere. berth says so and collects nothing.
  if (enabled && listen === undefined) warnings.push("http.debug.prometheus.enabled without http.debug.addr: no listener serves the metrics, so none are collected");

  return {
    addr: listen === undefined ? undefined : addr,
    listenHost: listen?.host ?? "",
    listenPort: listen?.port ?? 0,
    prometheus: { enabled: enabled && listen !== undefined, path, repositories, gcDurations },
  };
}

/** Two listen hosts that could be the same socket: equal, or either one all interfaces. */
function hostsOverlap(a: string, b: string): boolean {
  const any = (host: string): boolean => host === "" || host === "0.0.0.0" || host === "::";
  return any(a) || any(b) || a.toLowerCase() === b.toLowerCase();
}
