import type { EventFormat } from "../config/config.js";
import type { EventTarget, RegistryEvent } from "./registry-event.js";

/** What one delivery sends: the body, in parts written one after the other, and its Content-Type. */
export interface EnvelopeBody {
  contentType: string;
  parts: Buffer[];
  /** The parts' bytes in all. */
  length: number;
}

export const CONTENT_TYPES: Record<EventFormat, string> = {
  v1: "application/vnd.docker.distribution.events.v1+json",
  v2: "application/vnd.docker.distribution.events.v2+json",
  cloudevents: "application/cloudevents+json",
};

/**
 * The body an endpoint receives for some events, byte for byte as distribution writes it: Go's
 * json.MarshalIndent(envelope, "", "   "), which orders fields as its structs declare them and
 * escapes <, >, & and the two Unicode line separators. CloudEvents take one event per body.
 *
 * This renders objects: the reference for what Go writes, and the CloudEvents body. Deliveries of
 * distribution's formats join records written once (src/notifications/event-record.ts), whose
 * test holds them to this byte for byte.
 */
export function envelopeFor(events: RegistryEvent[], format: EventFormat): EnvelopeBody {
  const text = format === "cloudevents" ? cloudEventJSON(events[0]!) : goJSON({ events: events.map((event) => distributionEvent(event, format)) });
  const body = Buffer.from(text, "utf8");
  return { contentType: CONTENT_TYPES[format], parts: [body], length: body.length };
}

/** The CloudEvents body of one event (CloudEvents take one event per body). */
export function cloudEventJSON(event: RegistryEvent): string {
  return goJSON(cloudEvent(event));
}

export function goJSON(value: unknown): string {
  return goEscape(JSON.stringify(value, null, 3));
}

const GO_EXTRA = /[<>&\u2028\u2029]/;
const GO_EXTRA_ALL = /[<>&\u2028\u2029]/g;

/** JSON text with the characters Go escapes beyond JSON's rules (<, >, &, U+2028, U+2029) escaped. */
export function goEscape(json: string): string {
  return GO_EXTRA.test(json) ? json.replace(GO_EXTRA_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`) : json;
}

/**
 * distribution's Event. Its target embeds a descriptor: 2.x's own (mediaType, size, digest, all
 * omitted when empty), 3.x's OCI one (mediaType, digest, size, always written).
 */
function distributionEvent(event: RegistryEvent, format: "v1" | "v2"): Record<string, unknown> {
  // Fields assigned one by one in Go's order (object spreads cost more, at an event per pull).
  const request: Record<string, unknown> = { id: event.request.id };
  if (event.request.addr) request.addr = event.request.addr;
  if (event.request.host) request.host = event.request.host;
  request.method = event.request.method;
  request.useragent = event.request.useragent;
  const source: Record<string, unknown> = {};
  if (event.source.addr) source.addr = event.source.addr;
  if (event.source.instanceID) source.instanceID = event.source.instanceID;
  return {
    id: event.id,
    timestamp: event.timestamp,
    action: event.action,
    target: format === "v1" ? v1Target(event.target) : v2Target(event.target),
    request,
    actor: event.actor.name ? { name: event.actor.name } : {},
    source,
  };
}

function v1Target(target: EventTarget): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (target.mediaType) out.mediaType = target.mediaType;
  if (target.size) out.size = target.size;
  if (target.digest) out.digest = target.digest;
  return withTargetTail(out, target, (d) => descriptorV1(d));
}

function v2Target(target: EventTarget): Record<string, unknown> {
  const out: Record<string, unknown> = { mediaType: target.mediaType ?? "", digest: target.digest ?? "", size: target.size ?? 0 };
  return withTargetTail(out, target, (d) => descriptorV2(d));
}

function withTargetTail(
  out: Record<string, unknown>,
  target: EventTarget,
  descriptor: (d: Record<string, unknown>) => Record<string, unknown>,
): Record<string, unknown> {
  if (target.length) out.length = target.length;
  if (target.repository) out.repository = target.repository;
  if (target.fromRepository) out.fromRepository = target.fromRepository;
  if (target.url) out.url = target.url;
  if (target.tag) out.tag = target.tag;
  if (target.references && target.references.length > 0) out.references = target.references.map(descriptor);
  return out;
}

/** A referenced descriptor as distribution of `format`'s version writes it. */
export function referenceDescriptor(d: Record<string, unknown>, format: "v1" | "v2"): Record<string, unknown> {
  return format === "v1" ? descriptorV1(d) : descriptorV2(d);
}

/**
 * distribution 2.x's Descriptor: mediaType, size, digest, urls, annotations. Its Platform field is
 * never filled in a reference (2.8 drops an index entry's platform), so it is not written.
 */
function descriptorV1(d: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (isNonEmptyString(d.mediaType)) out.mediaType = d.mediaType;
  if (typeof d.size === "number" && d.size !== 0) out.size = d.size;
  if (isNonEmptyString(d.digest)) out.digest = d.digest;
  addCommon(out, d, false);
  return out;
}

/** The OCI image-spec Descriptor of distribution 3.x: mediaType, digest, size, then the optional rest. */
function descriptorV2(d: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {
    mediaType: typeof d.mediaType === "string" ? d.mediaType : "",
    digest: typeof d.digest === "string" ? d.digest : "",
    size: typeof d.size === "number" ? d.size : 0,
  };
  addCommon(out, d, true);
  return out;
}

function addCommon(out: Record<string, unknown>, d: Record<string, unknown>, oci: boolean): void {
  if (Array.isArray(d.urls) && d.urls.length > 0) out.urls = d.urls.filter((u) => typeof u === "string");
  if (isObject(d.annotations) && Object.keys(d.annotations).length > 0) out.annotations = sortedStrings(d.annotations);
  if (oci && isNonEmptyString(d.data)) out.data = d.data;
  if (oci && isObject(d.platform)) out.platform = platform(d.platform);
  if (oci && isNonEmptyString(d.artifactType)) out.artifactType = d.artifactType;
}

/** image-spec's Platform: Go writes a map's keys sorted, a struct's in declaration order. */
function platform(p: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {
    architecture: typeof p.architecture === "string" ? p.architecture : "",
    os: typeof p.os === "string" ? p.os : "",
  };
  if (isNonEmptyString(p["os.version"])) out["os.version"] = p["os.version"];
  if (Array.isArray(p["os.features"]) && p["os.features"].length > 0) out["os.features"] = p["os.features"];
  if (isNonEmptyString(p.variant)) out.variant = p.variant;
  return out;
}

function sortedStrings(map: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(map).sort()) {
    const value = map[key];
    if (typeof value === "string") out[key] = value;
  }
  return out;
}

/**
 * CloudEvents 1.0, structured content mode: the distribution event is the data, so a receiver
 * that knows distribution's events reads the same fields.
 */
function cloudEvent(event: RegistryEvent): Record<string, unknown> {
  const subject = event.target.tag ?? event.target.digest;
  return {
    specversion: "1.0",
    id: event.id,
    source: `/${event.target.repository ?? ""}`,
    type: `io.berth.registry.${event.action}`,
    time: event.timestamp,
    ...(subject ? { subject } : {}),
    datacontenttype: "application/json",
    data: distributionEvent(event, "v1"),
  };
}

function isNonEmptyString(value: unknown): value is string {
  return typeof value === "string" && value !== "";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
