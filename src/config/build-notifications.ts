// notifications: webhook endpoints for registry events. distribution's keys (events.includereferences;
// per endpoint name, disabled, url, headers, timeout, threshold, backoff, ignoredmediatypes,
// ignore.mediatypes, ignore.actions) plus berth's (repositories, ignore.headpulls, format,
// signingkey, maxevents, maxage, maxbatch).
import { checkKeys, ENDPOINT_SPEC } from "./config-schema.js";
import type { EndpointConfig, EventAction, EventFormat, NotificationsConfig } from "./config.js";
import {
  child,
  fail,
  readBool,
  readDuration,
  readEnum,
  readHeaderMap,
  readOptionalString,
  readPositiveInt,
  readSection,
  readStringList,
} from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

const DEFAULT_TIMEOUT_MS = 1_000;
const DEFAULT_THRESHOLD = 10;
const DEFAULT_BACKOFF_MS = 1_000;
const DEFAULT_MAX_EVENTS = 100_000;
const DEFAULT_MAX_BATCH = 100;
const DEFAULT_MAX_AGE_MS = 168 * 3_600_000;
const ACTIONS: readonly EventAction[] = ["push", "pull", "mount", "delete"];
const FORMATS: readonly EventFormat[] = ["v1", "v2", "cloudevents"];
/** One component of a repository glob: name characters and `*`; `**` only as a whole component. */
const GLOB_COMPONENT = /^(\*\*|(?:[a-z0-9._-]|\*(?!\*))+)$/;

/**
 * The notifications section; undefined when it is absent, empty, or has no enabled endpoint.
 * Disabled endpoints are checked like the others (so enabling one later cannot fail start-up for
 * a reason that was there all along) but left out, and do not count for duplicate names.
 */
export function buildNotifications(root: RawMap, warnings: string[]): NotificationsConfig | undefined {
  const notifications = readSection(child(root, "notifications"), "notifications");
  if (notifications === undefined) return undefined;
  const events = readSection(child(notifications, "events"), "notifications.events");
  const includeReferences = readBool(child(events, "includereferences"), "notifications.events.includereferences") ?? false;

  const endpoints: EndpointConfig[] = [];
  const listNode = child(notifications, "endpoints");
  if (listNode !== undefined && listNode.kind !== "null") {
    if (listNode.kind !== "seq") throw fail("notifications.endpoints", listNode, "expected a list of endpoints, each with name and url");
    const indexOfName = new Map<string, number>();
    listNode.items.forEach((item, i) => {
      const at = `notifications.endpoints[${i}]`;
      const entry = readSection(item, at);
      if (entry === undefined) throw fail(at, item, "expected a mapping with name and url");
      checkKeys(entry, ENDPOINT_SPEC, at, warnings);
      const disabled = readBool(child(entry, "disabled"), `${at}.disabled`) ?? false;
      const endpoint = buildEndpoint(entry, at, item);
      if (disabled) return;
      const other = indexOfName.get(endpoint.name);
      if (other !== undefined) {
        throw fail(`${at}.name`, child(entry, "name"), `${JSON.stringify(endpoint.name)} is already the name of notifications.endpoints[${other}]; endpoint names must be unique`);
      }
      indexOfName.set(endpoint.name, i);
      endpoints.push(endpoint);
    });
  }
  if (endpoints.length === 0) return undefined;
  return { endpoints, includeReferences };
}

function buildEndpoint(entry: RawMap, at: string, node: Raw): EndpointConfig {
  const nameNode = child(entry, "name");
  const name = readOptionalString(nameNode, `${at}.name`);
  if (name === undefined) throw fail(`${at}.name`, nameNode ?? node, "required: a name for the endpoint, unique among the endpoints");
  const urlNode = child(entry, "url");
  const url = readEndpointURL(urlNode, `${at}.url`, node);

  const ignore = readSection(child(entry, "ignore"), `${at}.ignore`);
  const mediaTypes = [
    ...readStringList(child(entry, "ignoredmediatypes"), `${at}.ignoredmediatypes`),
    ...readStringList(child(ignore, "mediatypes"), `${at}.ignore.mediatypes`),
  ];
  // 0 (or absent) means the default, as distribution treats a timeout, threshold or backoff <= 0.
  const duration = (key: string, fallback: number): number => readDuration(child(entry, key), `${at}.${key}`) || fallback;
  const maxAgeNode = child(entry, "maxage");
  const maxAgeMs = readDuration(maxAgeNode, `${at}.maxage`) ?? DEFAULT_MAX_AGE_MS;
  if (maxAgeMs === 0) throw fail(`${at}.maxage`, maxAgeNode, "must be greater than zero");

  return {
    name,
    url,
    headers: readHeaderMap(child(entry, "headers"), `${at}.headers`),
    timeoutMs: duration("timeout", DEFAULT_TIMEOUT_MS),
    threshold: readThreshold(child(entry, "threshold"), `${at}.threshold`),
    backoffMs: duration("backoff", DEFAULT_BACKOFF_MS),
    ignoredMediaTypes: [...new Set(mediaTypes)],
    ignoredActions: readActions(child(ignore, "actions"), `${at}.ignore.actions`),
    repositories: readRepositoryGlobs(child(entry, "repositories"), `${at}.repositories`),
    ignoreHeadPulls: readBool(child(ignore, "headpulls"), `${at}.ignore.headpulls`) ?? false,
    format: readEnum(child(entry, "format"), `${at}.format`, FORMATS) ?? "v1",
    signingKey: readOptionalString(child(entry, "signingkey"), `${at}.signingkey`),
    maxEvents: readPositiveInt(child(entry, "maxevents"), `${at}.maxevents`) ?? DEFAULT_MAX_EVENTS,
    maxBatch: readPositiveInt(child(entry, "maxbatch"), `${at}.maxbatch`) ?? DEFAULT_MAX_BATCH,
    maxAgeMs,
  };
}

/** The URL as written, once it is known to be http(s) with a host. Credentials in it are allowed (Basic auth). */
function readEndpointURL(node: Raw | undefined, key: string, parent: Raw): string {
  const text = readOptionalString(node, key);
  if (text === undefined) throw fail(key, node ?? parent, "required: the http or https URL events are posted to, such as https://hooks.example.com/registry");
  const shown = JSON.stringify(maskURLPassword(text));
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(text)?.[1]?.toLowerCase();
  if (scheme !== "http" && scheme !== "https") throw fail(key, node, `must be an http or https URL, got ${shown}`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw fail(key, node, `must be an http or https URL, got ${shown}, which is not a valid URL`);
  }
  // WHATWG URLs read "http:host" and "http:///host" as having a host; Go's net/url does not.
  if (!/^https?:\/\/[^/?#]/i.test(text) || url.hostname === "") throw fail(key, node, `the URL has no host: ${shown}`);
  return text;
}

/** The URL with the password of its userinfo (if any) replaced by `***`; everything else as written. */
export function maskURLPassword(text: string): string {
  return text.replace(/^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#:]*:)[^/?#]*@/, "$1***@");
}

/** A positive integer; 0 means the default, as in distribution. */
function readThreshold(node: Raw | undefined, key: string): number {
  const text = readOptionalString(node, key);
  if (text === undefined) return DEFAULT_THRESHOLD;
  if (!/^\+?\d{1,9}$/.test(text)) throw fail(key, node, `expected a positive integer, got ${JSON.stringify(text)}`);
  return Number(text) || DEFAULT_THRESHOLD;
}

function readActions(node: Raw | undefined, key: string): EventAction[] {
  const actions = new Set<EventAction>();
  for (const text of readStringList(node, key)) {
    const action = ACTIONS.find((a) => a === text.toLowerCase());
    if (action === undefined) throw fail(key, node, `unknown action ${JSON.stringify(text)}; expected push, pull, mount or delete`);
    actions.add(action);
  }
  return [...actions];
}

function readRepositoryGlobs(node: Raw | undefined, key: string): string[] {
  const globs = readStringList(node, key);
  for (const glob of globs) {
    if (!glob.split("/").every((component) => GLOB_COMPONENT.test(component))) {
      throw fail(
        key,
        node,
        `${JSON.stringify(glob)} is not a repository pattern: lower-case repository name components separated by "/", with "*" matching within a component and "**" (a whole component) across components`,
      );
    }
  }
  return [...new Set(globs)];
}
