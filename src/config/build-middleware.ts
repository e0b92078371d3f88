// middleware: distribution's storage middleware (redirect, cloudfront); registry and repository
// middleware have no built-in implementation in distribution worth reproducing, so any named one
// is refused rather than silently skipped.
import type { CloudFrontMiddlewareConfig, Config, StorageMiddlewareConfig } from "./config.js";
import { absolutePath, child, fail, readBool, readDuration, readOptionalString, readSection, readString } from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

const REDIRECT_OPTIONS = new Set(["baseurl"]);
const CLOUDFRONT_OPTIONS = new Set(["baseurl", "privatekey", "keypairid", "duration", "ipfilteredby", "awsregion", "updatefrequency", "updatefrenquency", "iprangesurl"]);
const DEFAULT_CLOUDFRONT_DURATION_MS = 20 * 60_000;
const DEFAULT_UPDATE_FREQUENCY_MS = 12 * 3_600_000;
const DEFAULT_IP_RANGES_URL = "https://ip-ranges.amazonaws.com/ip-ranges.json";
/** What berth offers where distribution has registry and repository middleware hooks. */
const NO_CODE_MIDDLEWARE =
  "distribution loads registry and repository middleware from code compiled into it, and ships none; berth has no such plug-in point. Its equivalents are configuration: proxy (pull-through cache), notifications, storage.maintenance.readonly, auth";

export function buildMiddleware(root: RawMap, warnings: string[]): Config["middleware"] {
  const middleware = readSection(child(root, "middleware"), "middleware");
  for (const kind of ["registry", "repository"]) {
    const list = child(middleware, kind);
    const entries = readList(list, `middleware.${kind}`);
    entries.forEach((entry, i) => {
      const name = readString(child(entry, "name"), `middleware.${kind}[${i}].name`);
      throw fail(`middleware.${kind}[${i}]`, list, `no ${kind} middleware ${JSON.stringify(name ?? "")}: ${NO_CODE_MIDDLEWARE}`);
    });
  }
  const storageNode = child(middleware, "storage");
  const storage: StorageMiddlewareConfig[] = [];
  readList(storageNode, "middleware.storage").forEach((entry, i) => {
    const at = `middleware.storage[${i}]`;
    for (const key of entry.entries.keys()) {
      if (key !== "name" && key !== "options" && key !== "disabled") warnings.push(`unknown key ${at}.${key}`);
    }
    // distribution's Middleware struct has `disabled`, though it applies every entry; berth honours it.
    if (readBool(child(entry, "disabled"), `${at}.disabled`) === true) return;
    const nameNode = child(entry, "name");
    const name = readString(nameNode, `${at}.name`);
    const options = readSection(child(entry, "options"), `${at}.options`);
    const optionKeys = [...(options?.entries.keys() ?? [])];
    if (name === "redirect") {
      for (const key of optionKeys) if (!REDIRECT_OPTIONS.has(key)) warnings.push(`unknown key ${at}.options.${key}`);
      storage.push({ name: "redirect", baseURL: readRedirectBaseURL(options, `${at}.options.baseurl`, entry) });
    } else if (name === "cloudfront") {
      for (const key of optionKeys) if (!CLOUDFRONT_OPTIONS.has(key)) warnings.push(`unknown key ${at}.options.${key}`);
      storage.push(buildCloudFront(options, `${at}.options`, entry, warnings));
    } else {
      throw fail(`${at}.name`, nameNode ?? entry, `no storage middleware ${JSON.stringify(name ?? "")}; berth has redirect and cloudfront (distribution's rewrite is not supported)`);
    }
  });
  return { storage };
}

/** A list of mappings (each a middleware entry); absent or null is empty. */
function readList(node: Raw | undefined, key: string): RawMap[] {
  if (node === undefined || node.kind === "null") return [];
  if (node.kind !== "seq") throw fail(key, node, "expected a list of entries, each with name and options");
  return node.items.map((item, i) => {
    const entry = readSection(item, `${key}[${i}]`);
    if (entry === undefined) throw fail(`${key}[${i}]`, item, "expected a mapping with name and options");
    return entry;
  });
}

/** redirect's baseurl, as distribution checks it: parses, with a scheme and a host. */
function readRedirectBaseURL(options: RawMap | undefined, key: string, entry: Raw): string {
  const node = child(options, "baseurl");
  const text = readOptionalString(node, key);
  if (text === undefined) throw fail(key, node ?? entry, "required: the URL blob downloads are redirected to, followed by the storage path");
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw fail(key, node, `expected an absolute URL with a scheme and a host, got ${JSON.stringify(text)}`);
  }
  if (url.host === "") throw fail(key, node, `no host in ${JSON.stringify(text)}`);
  if (url.search !== "" || url.hash !== "") throw fail(key, node, `a query or fragment would end up before the storage path: ${JSON.stringify(text)}`);
  return url.href;
}

function buildCloudFront(options: RawMap | undefined, at: string, entry: Raw, warnings: string[]): CloudFrontMiddlewareConfig {
  const required = (key: string, what: string): string => {
    const node = child(options, key);
    const value = readOptionalString(node, `${at}.${key}`);
    if (value === undefined) throw fail(`${at}.${key}`, node ?? entry, `required: ${what}`);
    return value;
  };
  let baseURL = required("baseurl", "the CloudFront distribution's URL (https://d111111abcdef8.cloudfront.net)");
  // distribution's defaults: https when no scheme, and a trailing slash before the bucket key.
  if (!baseURL.includes("://")) baseURL = `https://${baseURL}`;
  if (!baseURL.endsWith("/")) baseURL += "/";
  try {
    const url = new URL(baseURL);
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("not http(s)");
  } catch {
    throw fail(`${at}.baseurl`, child(options, "baseurl"), `expected an http or https URL, got ${JSON.stringify(baseURL)}`);
  }
  const privateKey = absolutePath(required("privatekey", "the PEM file of the CloudFront key pair's RSA private key"));
  const keyPairId = required("keypairid", "the CloudFront key pair (or public key) ID");
  const durationMs = readDuration(child(options, "duration"), `${at}.duration`) ?? DEFAULT_CLOUDFRONT_DURATION_MS;
  if (durationMs <= 0) throw fail(`${at}.duration`, child(options, "duration"), "must be greater than zero: a URL that expired when signed serves nothing");

  let frequencyKey = "updatefrequency";
  if (child(options, "updatefrequency") === undefined && child(options, "updatefrenquency") !== undefined) {
    frequencyKey = "updatefrenquency";
    warnings.push(`${at}.updatefrenquency is deprecated (a typo distribution kept); use updatefrequency`);
  }
  const updateFrequencyMs = readDuration(child(options, frequencyKey), `${at}.${frequencyKey}`) ?? DEFAULT_UPDATE_FREQUENCY_MS;
  if (updateFrequencyMs <= 0) throw fail(`${at}.${frequencyKey}`, child(options, frequencyKey), "must be greater than zero");

  const rangesNode = child(options, "iprangesurl");
  const ipRangesURL = readOptionalString(rangesNode, `${at}.iprangesurl`) ?? DEFAULT_IP_RANGES_URL;
  try {
    const url = new URL(ipRangesURL);
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("not http(s)");
  } catch {
    throw fail(`${at}.iprangesurl`, rangesNode, `expected an http or https URL, got ${JSON.stringify(ipRangesURL)}`);
  }

  const filterNode = child(options, "ipfilteredby");
  const filter = (readString(filterNode, `${at}.ipfilteredby`) ?? "").trim().toLowerCase();
  let ipFilteredBy: CloudFrontMiddlewareConfig["ipFilteredBy"];
  let awsRegions: string[] = [];
  if (filter === "" || filter === "none") ipFilteredBy = "none";
  else if (filter === "aws") ipFilteredBy = "aws";
  else if (filter === "awsregion") {
    ipFilteredBy = "awsregion";
    const regionNode = child(options, "awsregion");
    const regions = readOptionalString(regionNode, `${at}.awsregion`);
    if (regions === undefined) throw fail(`${at}.awsregion`, regionNode ?? entry, "required with ipfilteredby: awsregion: a comma-separated list of AWS regions");
    awsRegions = regions.split(",").map((region) => region.trim().toLowerCase()).filter((region) => region !== "");
  } else {
    throw fail(`${at}.ipfilteredby`, filterNode, `expected none, aws or awsregion, got ${JSON.stringify(filter)}`);
  }
  return { name: "cloudfront", baseURL, privateKey, keyPairId, durationMs, ipFilteredBy, awsRegions, updateFrequencyMs, ipRangesURL };
}
