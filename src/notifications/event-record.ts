import type { EventFormat } from "../config/config.js";
import { CONTENT_TYPES, cloudEventJSON, goEscape, goJSON, referenceDescriptor } from "./event-envelope.js";
import type { EnvelopeBody } from "./event-envelope.js";
import type { EventTarget, RegistryEvent } from "./registry-event.js";

/**
 * An event as its endpoint receives it, serialised once: for distribution's formats the event's
 * part of the envelope (`{` … `}` as json.MarshalIndent writes it at an element of `events`), for
 * CloudEvents the whole body. The outbox stores these and a delivery joins them, so an event is
 * never parsed or rendered again on its way (at thousands of pulls a second, rendering each event
 * into objects and then into the envelope cost as much as the pulls' own work).
 *
 * Held as a string: one flat object in the JavaScript heap, where the collector compacts it;
 * thousands of small Buffers held for a while (the outbox's window) cost their own allocations and
 * left the process's memory fragmented (measured: +7 MiB RSS with 100,000 events queued).
 */
export interface EventRecord {
  text: string;
  /** The event's RFC 3339 time, for `maxage`. */
  timestamp: string;
}

const ENVELOPE_HEAD = '{\n   "events": [\n      ';
const ENVELOPE_JOIN = ",\n      ";
const ENVELOPE_TAIL = "\n   ]\n}";

/** Indentation of an event's fields (depth 3 of the envelope) and of its objects' fields (depth 4). */
const EVENT_FIELD = "\n         ";
const NESTED_FIELD = "\n            ";

/** Characters a JSON string must escape, or that Go escapes beyond JSON's rules. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f<>&\u2028\u2029]/;

/** A JSON string as Go writes it. Most of an event's strings (ids, digests, times) need no escape. */
function quote(value: string): string {
  return NEEDS_ESCAPE.test(value) ? goEscape(JSON.stringify(value)) : `"${value}"`;
}

/** An object of already written `"key": value` fields, at depth 3 (`nested` false) or 4. */
function object(fields: string[], nested: boolean): string {
  if (fields.length === 0) return "{}";
  const [open, close] = nested ? [NESTED_FIELD, EVENT_FIELD] : [EVENT_FIELD, "\n      "];
  return `{${open}${fields.join(`,${open}`)}${close}}`;
}

function targetFields(target: EventTarget, format: "v1" | "v2"): string[] {
  const fields: string[] = [];
  if (format === "v1") {
    if (target.mediaType) fields.push(`"mediaType": ${quote(target.mediaType)}`);
    if (target.size) fields.push(`"size": ${target.size}`);
    if (target.digest) fields.push(`"digest": ${quote(target.digest)}`);
  } else {
    fields.push(`"mediaType": ${quote(target.mediaType ?? "")}`, `"digest": ${quote(target.digest ?? "")}`, `"size": ${target.size ?? 0}`);
  }
  if (target.length) fields.push(`"length": ${target.length}`);
  if (target.repository) fields.push(`"repository": ${quote(target.repository)}`);
  if (target.fromRepository) fields.push(`"fromRepository": ${quote(target.fromRepository)}`);
  if (target.url) fields.push(`"url": ${quote(target.url)}`);
  if (target.tag) fields.push(`"tag": ${quote(target.tag)}`);
  if (target.references && target.references.length > 0) {
    // Rare (includereferences) and free-form: rendered as Go would, then indented to its depth.
    const rendered = goJSON(target.references.map((d) => referenceDescriptor(d, format)));
    fields.push(`"references": ${rendered.replaceAll("\n", NESTED_FIELD)}`);
  }
  return fields;
}

/** distribution's Event, written at an element of the envelope's `events` (see EventRecord). */
function distributionRecord(event: RegistryEvent, format: "v1" | "v2"): string {
  const request = [`"id": ${quote(event.request.id)}`];
  if (event.request.addr) request.push(`"addr": ${quote(event.request.addr)}`);
  if (event.request.host) request.push(`"host": ${quote(event.request.host)}`);
  request.push(`"method": ${quote(event.request.method)}`, `"useragent": ${quote(event.request.useragent)}`);
  const source: string[] = [];
  if (event.source.addr) source.push(`"addr": ${quote(event.source.addr)}`);
  if (event.source.instanceID) source.push(`"instanceID": ${quote(event.source.instanceID)}`);
  return object(
    [
      `"id": ${quote(event.id)}`,
      `"timestamp": ${quote(event.timestamp)}`,
      `"action": ${quote(event.action)}`,
      `"target": ${object(targetFields(event.target, format), true)}`,
      `"request": ${object(request, true)}`,
      `"actor": ${event.actor.name ? object([`"name": ${quote(event.actor.name)}`], true) : "{}"}`,
      `"source": ${object(source, true)}`,
    ],
    false,
  );
}

/** The record of `event` for an endpoint of `format`. */
export function encodeRecord(event: RegistryEvent, format: EventFormat): string {
  return format === "cloudevents" ? cloudEventJSON(event) : distributionRecord(event, format);
}

/** What an endpoint receives for some records of its format (CloudEvents: one record). */
export function envelopeOf(records: string[], format: EventFormat): EnvelopeBody {
  const text = format === "cloudevents" ? records[0]! : ENVELOPE_HEAD + records.join(ENVELOPE_JOIN) + ENVELOPE_TAIL;
  return { contentType: CONTENT_TYPES[format], body: Buffer.from(text, "utf8") };
}

/**
 * The event a stored record holds, read back as distribution's Event (the shape of RegistryEvent;
 * a CloudEvent's `data`), or undefined when it is not one (damage). Records of another format than
 * the endpoint's (its configuration changed) are re-encoded from this.
 */
export function decodeRecord(text: string, format: EventFormat): RegistryEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (format === "cloudevents") value = typeof value === "object" && value !== null ? (value as { data?: unknown }).data : undefined;
  const e = value as Partial<RegistryEvent> | null | undefined;
  if (typeof e !== "object" || e === null || typeof e.id !== "string" || typeof e.timestamp !== "string" || typeof e.action !== "string") return undefined;
  if (typeof e.target !== "object" || e.target === null || typeof e.request !== "object" || e.request === null) return undefined;
  return { ...e, actor: e.actor ?? {}, source: e.source ?? {} } as RegistryEvent;
}
