import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import type { EventAction } from "../config/config.js";
import { randomUuid } from "./random-uuid.js";

/**
 * One registry event, shaped as distribution's notifications.Event (bridge.go) and kept in the
 * outbox in this form: it is what every endpoint format is written from. Fields distribution
 * leaves out when empty are absent here.
 */
export interface RegistryEvent {
  id: string;
  /** RFC 3339, UTC. */
  timestamp: string;
  action: EventAction;
  target: EventTarget;
  request: RequestRecord;
  actor: { name?: string };
  source: SourceRecord;
  /**
   * `timestamp` in ms since the epoch, kept by events made in this process (not written: the
   * outbox needs it for `maxage`, and parsing it back from the text cost more than the rest of a
   * pull's record).
   */
  time?: number;
}

export interface EventTarget {
  mediaType?: string;
  size?: number;
  digest?: string;
  length?: number;
  repository?: string;
  fromRepository?: string;
  url?: string;
  tag?: string;
  /** Descriptors a manifest refers to, as parsed from it (notifications.events.includereferences). */
  references?: Array<Record<string, unknown>>;
}

export interface RequestRecord {
  id: string;
  addr?: string;
  host?: string;
  method: string;
  useragent: string;
}

export interface SourceRecord {
  /** hostname:port of the node, as distribution reports it. */
  addr?: string;
  /** Random per process. */
  instanceID?: string;
}

/** The request record of an HTTP request: distribution's NewRequestRecord. */
export function requestRecord(req: IncomingMessage, id: string): RequestRecord {
  const record: RequestRecord = { id, method: req.method ?? "GET", useragent: firstValue(req.headers["user-agent"]) ?? "" };
  const addr = remoteAddr(req);
  if (addr) record.addr = addr;
  const host = req.headers.host ?? firstValue(req.headers[":authority"]);
  if (host) record.host = host;
  return record;
}

/**
 * distribution's context.RemoteAddr: the first X-Forwarded-For entry when it is an IP address,
 * else X-Real-Ip when it is one, else the peer as "ip:port".
 */
export function remoteAddr(req: IncomingMessage): string {
  const forwarded = firstValue(req.headers["x-forwarded-for"]);
  if (forwarded) {
    const first = forwarded.split(",")[0]?.trim() ?? "";
    if (isIP(first) !== 0) return first;
  }
  const realIP = firstValue(req.headers["x-real-ip"])?.trim();
  if (realIP && isIP(realIP) !== 0) return realIP;
  const address = req.socket.remoteAddress;
  if (address === undefined) return "";
  return address.includes(":") ? `[${address}]:${req.socket.remotePort ?? 0}` : `${address}:${req.socket.remotePort ?? 0}`;
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** A new event with a fresh id and the current time. */
export function newEvent(action: EventAction, target: EventTarget, request: RequestRecord, actor: string | undefined, source: SourceRecord): RegistryEvent {
  const time = Date.now();
  return {
    id: randomUuid(),
    timestamp: goTimestamp(time),
    action,
    target,
    request,
    actor: actor === undefined || actor === "" ? NO_ACTOR : { name: actor },
    source,
    time,
  };
}

/** The actor of anonymous requests: never changed, so shared. */
const NO_ACTOR: RegistryEvent["actor"] = Object.freeze({});

/**
 * `ms` (now by default) as Go's RFC 3339 with nanoseconds writes it: UTC, trailing zeros of the
 * fraction cut. The wall clock gives milliseconds; the digits below them come from the monotonic
 * clock (read on its own it drifts from the wall clock over weeks), so they are precise in form
 * only.
 */
export function goTimestamp(ms = Date.now()): string {
  const second = Math.floor(ms / 1000);
  // The date and time to the second, formatted once a second: thousands of pulls a second share it.
  if (second !== secondCache.second) secondCache = { second, text: `${new Date(second * 1000).toISOString().slice(0, 19)}.` };
  const sub = performance.now();
  // The fraction's nine digits as three groups of three: milliseconds, then microseconds and
  // nanoseconds of the monotonic clock, trailing zeros cut.
  const milli = ms - second * 1000;
  const nano = Math.floor((sub - Math.floor(sub)) * 1e6);
  const micro = Math.floor(nano / 1000);
  const rest = nano - micro * 1000;
  if (rest !== 0) return `${secondCache.text}${DIGITS[milli]}${DIGITS[micro]}${SIGNIFICANT[rest]}Z`;
  if (micro !== 0) return `${secondCache.text}${DIGITS[milli]}${SIGNIFICANT[micro]}Z`;
  if (milli !== 0) return `${secondCache.text}${SIGNIFICANT[milli]}Z`;
  return `${secondCache.text.slice(0, 19)}Z`;
}

/**
 * 0–999 as three digits, and without their trailing zeros. Strings from a table: String(n) goes
 * through V8's number-to-string cache, which keeps each new string until a full collection, so a
 * string per event outlived the young generation.
 */
const DIGITS = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, "0"));
const SIGNIFICANT = DIGITS.map((digits) => digits.replace(/0+$/, ""));

let secondCache = { second: -1, text: "" };

/**
 * The descriptors a manifest refers to, as distribution's Manifest.References(): an image's config
 * then its layers, an index's manifests. Unparseable content has none (the push already checked it).
 */
export function manifestReferences(content: Buffer): Array<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(content.toString("utf8"));
  } catch {
    return [];
  }
  if (typeof value !== "object" || value === null) return [];
  const manifest = value as Record<string, unknown>;
  const descriptors: unknown[] = [];
  if (Array.isArray(manifest.manifests)) descriptors.push(...manifest.manifests);
  else {
    if (manifest.config !== undefined) descriptors.push(manifest.config);
    if (Array.isArray(manifest.layers)) descriptors.push(...manifest.layers);
  }
  return descriptors.filter((d): d is Record<string, unknown> => typeof d === "object" && d !== null && !Array.isArray(d));
}
