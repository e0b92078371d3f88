// proxy: the pull-through cache. distribution's four keys are the shorthand for one upstream that
// serves every name; berth's proxy.upstreams lists upstreams that each serve a repository prefix.
import { isValidRepositoryName } from "../reference/names.js";
import { checkKeys, UPSTREAM_SPEC } from "./config-schema.js";
import type { ProxyConfig, UpstreamConfig } from "./config.js";
import { child, fail, readBool, readDuration, readOptionalString, readSection, readString, readStringList } from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

const DEFAULT_TTL_MS = 168 * 3_600_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_READ_TIMEOUT_MS = 30_000;
/** The hosts Docker Hub's registry answers on; its official images live under library/. */
const DOCKER_HUB_HOSTS = new Set(["registry-1.docker.io", "index.docker.io", "docker.io", "registry.hub.docker.com"]);
const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

export function buildProxy(root: RawMap, warnings: string[]): ProxyConfig | undefined {
  const node = child(root, "proxy");
  const proxy = readSection(node, "proxy");
  if (proxy === undefined || proxy.entries.size === 0) return undefined;
  const upstreams: UpstreamConfig[] = [];
  const listNode = child(proxy, "upstreams");
  const hasShorthand = [...proxy.entries.keys()].some((key) => key !== "upstreams");
  if (hasShorthand) upstreams.push(buildUpstream(proxy, "proxy", node, ""));
  if (listNode !== undefined && listNode.kind !== "null") {
    if (listNode.kind !== "seq") throw fail("proxy.upstreams", listNode, "expected a list of upstreams");
    listNode.items.forEach((item, i) => {
      const at = `proxy.upstreams[${i}]`;
      const entry = readSection(item, at);
      if (entry === undefined) throw fail(at, item, "expected a mapping with remoteurl and prefix");
      checkKeys(entry, UPSTREAM_SPEC, at, warnings);
      const prefixNode = child(entry, "prefix");
      const prefix = (readString(prefixNode, `${at}.prefix`) ?? "").replace(/^\/+|\/+$/g, "");
      if (prefix === "") throw fail(`${at}.prefix`, prefixNode ?? item, "required: the repository prefix this upstream serves, such as hub");
      if (!isValidRepositoryName(prefix)) throw fail(`${at}.prefix`, prefixNode, `${JSON.stringify(prefix)} is not a repository name prefix`);
      upstreams.push(buildUpstream(entry, at, item, prefix));
    });
  }
  if (upstreams.length === 0) throw fail("proxy", node, "no upstream: set proxy.remoteurl, or list proxy.upstreams");
  checkDistinct(upstreams, node);
  // Longest prefix first: "hub/internal" must win over "hub" for hub/internal/x.
  upstreams.sort((a, b) => b.prefix.length - a.prefix.length);
  return { upstreams };
}

function buildUpstream(map: RawMap, at: string, node: Raw | undefined, prefix: string): UpstreamConfig {
  if (at === "proxy" && child(map, "prefix") !== undefined) {
    throw fail("proxy.prefix", child(map, "prefix"), "proxy.remoteurl serves every name; give a prefix to an entry of proxy.upstreams instead");
  }
  const urlNode = child(map, "remoteurl");
  const remoteURL = parseRemoteURL(readOptionalString(urlNode, `${at}.remoteurl`), `${at}.remoteurl`, urlNode ?? node);
  const host = new URL(remoteURL).hostname.toLowerCase();
  const dockerHub = DOCKER_HUB_HOSTS.has(host);
  const namespacesNode = child(map, "namespaces");
  const namespaces = readStringList(namespacesNode, `${at}.namespaces`).map((n) => n.toLowerCase());
  const username = readOptionalString(child(map, "username"), `${at}.username`);
  const password = readOptionalString(child(map, "password"), `${at}.password`);
  if ((username === undefined) !== (password === undefined)) {
    throw fail(`${at}.${username === undefined ? "username" : "password"}`, node, "username and password go together");
  }
  const positive = (key: string, fallback: number): number => {
    const ms = readDuration(child(map, key), `${at}.${key}`);
    if (ms === 0) throw fail(`${at}.${key}`, child(map, key), "must be greater than zero");
    return ms ?? fallback;
  };
  return {
    prefix,
    remoteURL,
    username,
    password,
    ttlMs: readDuration(child(map, "ttl"), `${at}.ttl`) ?? DEFAULT_TTL_MS,
    namespaces: namespaces.length > 0 ? namespaces : [dockerHub ? "docker.io" : new URL(remoteURL).host.toLowerCase()],
    libraryPrefix: readBool(child(map, "libraryprefix"), `${at}.libraryprefix`) ?? dockerHub,
    maxStalenessMs: readDuration(child(map, "maxstaleness"), `${at}.maxstaleness`),
    maxSizeBytes: readSize(child(map, "maxsize"), `${at}.maxsize`),
    connectTimeoutMs: positive("connecttimeout", DEFAULT_CONNECT_TIMEOUT_MS),
    readTimeoutMs: positive("readtimeout", DEFAULT_READ_TIMEOUT_MS),
  };
}

function parseRemoteURL(text: string | undefined, key: string, node: Raw | undefined): string {
  if (text === undefined) throw fail(key, node, "required: the upstream registry's URL, such as https://registry-1.docker.io");
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw fail(key, node, `${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw fail(key, node, `expected an http or https URL, got ${JSON.stringify(text)}`);
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw fail(key, node, "the URL takes no query, fragment or credentials; credentials go in username and password");
  }
  return url.toString().replace(/\/+$/, "");
}

/** Bytes: an integer, or a number with a unit (500MB, 10GiB). */
function readSize(node: Raw | undefined, key: string): number | undefined {
  const text = readOptionalString(node, key);
  if (text === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = SIZE_UNITS[(match?.[2] ?? "").toLowerCase()];
  const bytes = match && unit !== undefined ? Math.floor(Number(match[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw fail(key, node, `expected a size such as 500MB or 10GiB, got ${JSON.stringify(text)}`);
  return bytes;
}

function checkDistinct(upstreams: UpstreamConfig[], node: Raw | undefined): void {
  const prefixes = new Set<string>();
  const namespaces = new Map<string, string>();
  for (const upstream of upstreams) {
    if (prefixes.has(upstream.prefix)) {
      throw fail("proxy.upstreams", node, upstream.prefix === "" ? "more than one upstream serves every name" : `two upstreams serve the prefix ${upstream.prefix}`);
    }
    prefixes.add(upstream.prefix);
    for (const namespace of upstream.namespaces) {
      const other = namespaces.get(namespace);
      if (other !== undefined) throw fail("proxy.upstreams", node, `two upstreams (${other} and ${upstream.remoteURL}) answer the namespace ${namespace}; set namespaces on one`);
      namespaces.set(namespace, upstream.remoteURL);
    }
  }
}
