// health: distribution's periodic checks (storagedriver, file, http, tcp). Host names are resolved
// when the server starts (src/health/resolve-check-hosts.ts), not here: loading stays offline.
import { checkKeys, type Spec } from "./config-schema.js";
import type { FileCheckConfig, HealthConfig, HttpCheckConfig, TcpCheckConfig } from "./config.js";
import { maskURLPassword } from "./build-notifications.js";
import { parseListenAddress } from "./listen-address.js";
import { absolutePath, child, fail, readBool, readDuration, readHeaderMap, readOptionalString, readSection } from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

/** distribution's defaultCheckInterval. */
export const DEFAULT_CHECK_INTERVAL_MS = 10_000;

const VALUE: Spec = { kind: "value" };
const FILE_SPEC: Spec = { kind: "section", keys: { file: VALUE, interval: VALUE, threshold: VALUE } };
const HTTP_SPEC: Spec = { kind: "section", keys: { uri: VALUE, headers: VALUE, statuscode: VALUE, timeout: VALUE, interval: VALUE, threshold: VALUE } };
const TCP_SPEC: Spec = { kind: "section", keys: { addr: VALUE, timeout: VALUE, interval: VALUE, threshold: VALUE } };

/** The health section; undefined when it configures no check (then nothing polls and nothing drains). */
export function buildHealth(root: RawMap, warnings: string[]): HealthConfig | undefined {
  const health = readSection(child(root, "health"), "health");
  if (health === undefined) return undefined;
  const storage = readSection(child(health, "storagedriver"), "health.storagedriver");
  const storageEnabled = readBool(child(storage, "enabled"), "health.storagedriver.enabled") ?? false;
  // Checked even when disabled, so enabling it later cannot fail start-up for an old reason.
  const storageInterval = readInterval(child(storage, "interval"), "health.storagedriver.interval");
  const storageThreshold = readThreshold(child(storage, "threshold"), "health.storagedriver.threshold");
  const config: HealthConfig = {
    storageDriver: storageEnabled ? { intervalMs: storageInterval, threshold: storageThreshold } : undefined,
    files: readList(health, "file", FILE_SPEC, warnings, buildFileCheck),
    http: readList(health, "http", HTTP_SPEC, warnings, buildHttpCheck),
    tcp: readList(health, "tcp", TCP_SPEC, warnings, buildTcpCheck),
  };
  // distribution panics on two checks of one name; the results are kept by name here too.
  const names = new Map<string, string>();
  const named = [
    ...config.files.map((c, i) => [c.file, `health.file[${i}].file`] as const),
    ...config.http.map((c, i) => [c.uri, `health.http[${i}].uri`] as const),
    ...config.tcp.map((c, i) => [c.addr, `health.tcp[${i}].addr`] as const),
  ];
  for (const [name, key] of named) {
    const other = names.get(name);
    if (other !== undefined) throw fail(key, health, `${JSON.stringify(maskURLPassword(name))} is already checked by ${other}; each check needs its own file, URI or address`);
    names.set(name, key);
  }
  const some = config.storageDriver !== undefined || config.files.length + config.http.length + config.tcp.length > 0;
  return some ? config : undefined;
}

function readList<T>(health: RawMap, key: string, spec: Spec, warnings: string[], build: (entry: RawMap, at: string, node: Raw) => T): T[] {
  const node = child(health, key);
  if (node === undefined || node.kind === "null") return [];
  if (node.kind !== "seq") throw fail(`health.${key}`, node, `expected a list of checks, got ${node.kind === "map" ? "a mapping" : JSON.stringify(node.kind === "scalar" ? node.text : "")}`);
  return node.items.map((item, i) => {
    const at = `health.${key}[${i}]`;
    const entry = readSection(item, at);
    if (entry === undefined) throw fail(at, item, "expected a mapping");
    checkKeys(entry, spec, at, warnings);
    return build(entry, at, item);
  });
}

function buildFileCheck(entry: RawMap, at: string, node: Raw): FileCheckConfig {
  const fileNode = child(entry, "file");
  const file = readOptionalString(fileNode, `${at}.file`);
  if (file === undefined) throw fail(`${at}.file`, fileNode ?? node, "required: the path whose existence takes this registry out of service");
  return {
    file,
    path: absolutePath(file),
    intervalMs: readInterval(child(entry, "interval"), `${at}.interval`),
    threshold: readThreshold(child(entry, "threshold"), `${at}.threshold`),
  };
}

function buildHttpCheck(entry: RawMap, at: string, node: Raw): HttpCheckConfig {
  const uriNode = child(entry, "uri");
  const uri = readOptionalString(uriNode, `${at}.uri`);
  if (uri === undefined) throw fail(`${at}.uri`, uriNode ?? node, "required: the http or https URL to send HEAD requests to");
  const shown = JSON.stringify(maskURLPassword(uri));
  let url: URL | undefined;
  try {
    url = new URL(uri);
  } catch {
    url = undefined;
  }
  if (url === undefined || !/^https?:\/\/[^/?#]/i.test(uri) || url.hostname === "") {
    throw fail(`${at}.uri`, uriNode, `must be an http or https URL with a host, got ${shown}`);
  }
  const statusNode = child(entry, "statuscode");
  const statusText = readOptionalString(statusNode, `${at}.statuscode`);
  let statusCode = 200;
  if (statusText !== undefined) {
    // 0 means the default, as in distribution.
    if (!/^\d{1,3}$/.test(statusText) || (Number(statusText) !== 0 && (Number(statusText) < 100 || Number(statusText) > 599))) {
      throw fail(`${at}.statuscode`, statusNode, `expected an HTTP status code (100-599), got ${JSON.stringify(statusText)}`);
    }
    statusCode = Number(statusText) || 200;
  }
  const intervalMs = readInterval(child(entry, "interval"), `${at}.interval`);
  return {
    uri,
    hostname: url.hostname.replace(/^\[|\]$/g, ""),
    headers: readHeaderMap(child(entry, "headers"), `${at}.headers`),
    statusCode,
    timeoutMs: readTimeout(child(entry, "timeout"), `${at}.timeout`, intervalMs),
    intervalMs,
    threshold: readThreshold(child(entry, "threshold"), `${at}.threshold`),
  };
}

function buildTcpCheck(entry: RawMap, at: string, node: Raw): TcpCheckConfig {
  const addrNode = child(entry, "addr");
  const addr = readOptionalString(addrNode, `${at}.addr`);
  if (addr === undefined) throw fail(`${at}.addr`, addrNode ?? node, "required: the host:port to connect to");
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseListenAddress(addr));
  } catch (err) {
    throw fail(`${at}.addr`, addrNode, `expected host:port, got ${JSON.stringify(addr)}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (host === "" || port === 0) throw fail(`${at}.addr`, addrNode, `expected host:port with a host and a port other than 0, got ${JSON.stringify(addr)}`);
  const intervalMs = readInterval(child(entry, "interval"), `${at}.interval`);
  return {
    addr,
    host,
    port,
    timeoutMs: readTimeout(child(entry, "timeout"), `${at}.timeout`, intervalMs),
    intervalMs,
    threshold: readThreshold(child(entry, "threshold"), `${at}.threshold`),
  };
}

/** Absent means distribution's 10 s; a zero or negative interval would poll without pause. */
function readInterval(node: Raw | undefined, key: string): number {
  const text = readOptionalString(node, key);
  if (text !== undefined && /^\s*-/.test(text)) throw fail(key, node, `must be a positive duration such as "10s", got ${JSON.stringify(text)}`);
  const ms = readDuration(node, key);
  if (ms === undefined) return DEFAULT_CHECK_INTERVAL_MS;
  if (ms <= 0) throw fail(key, node, `must be a positive duration such as "10s", got ${JSON.stringify(text)}`);
  return ms;
}

/**
 * distribution waits without limit when no timeout is set; berth bounds a check by its interval
 * then, so a hanging peer never holds more than one check open.
 */
function readTimeout(node: Raw | undefined, key: string, intervalMs: number): number {
  const ms = readDuration(node, key);
  return ms === undefined || ms === 0 ? intervalMs : ms;
}

/** Consecutive failures that take a check down; absent or 0 means the first failure does, as in distribution. */
function readThreshold(node: Raw | undefined, key: string): number {
  const text = readOptionalString(node, key);
  if (text === undefined) return 1;
  if (!/^\+?\d{1,9}$/.test(text)) throw fail(key, node, `expected a non-negative integer, got ${JSON.stringify(text)}`);
  return Math.max(1, Number(text));
}
