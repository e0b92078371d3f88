import type { EventFormat } from "../config/config.js";
import { CONTENT_TYPES, cloudEventJSON, goEscape, goJSON, referenceDescriptor } from "./event-envelope.js";
import type { EnvelopeBody } from "./event-envelope.js";
import type { EventTarget, RegistryEvent } from "./registry-event.js";

/**
 * An event as its endpoint receives it, serialised once: for distribution's formats the event's
 * element of the envelope's `events` (`      {` … `}`, indented as json.MarshalIndent writes it
 * there), for CloudEvents the whole body. The outbox stores these and a delivery sends the stored
 * bytes, so an event is never parsed or rendered again on its way (at thousands of pulls a second,
 * rendering each event into objects and then into the envelope cost as much as the pulls' own work).
 */
export interface EventRecord {
  text: string;
  /** The event's time in ms since the epoch, for `maxage`. */
  time: number;
}

/**
 * Stored records as a delivery sends them: `data` holds them back to back, each followed by `,\n`
 * (storage's record end, RS LF, with the RS turned into the envelope's comma once written). Held
 * off the JavaScript heap: records kept as strings until delivered outlived the young generation,
 * and copying them into the old one, then marking them there, cost more than writing them.
 */
export interface RecordChunk {
  readonly data: Buffer;
  /** Where each record ends in `data`, after its `,\n`. */
  readonly ends: number[];
  /** Each record's time, ms since the epoch. */
  readonly times: number[];
}

/** Whole records from the head of a queue: `pieces` are runs of them, each without its last `,\n`. */
export interface RecordRun {
  count: number;
  pieces: Buffer[];
  times: number[];
}

/** What follows each record in storage: RS LF (JSON never holds a raw 0x1e, so a record needs no escaping). */
export const RECORD_END = "\x1e\n";
const RS = 0x1e;
const COMMA = 0x2c;

/**
 * The chunk of `data`, records each followed by RECORD_END as they were just written, for delivery.
 * Turns the RSs into commas in place: only once storage has the bytes.
 */
export function chunkOfStored(data: Buffer, times: number[]): RecordChunk {
  const ends: number[] = [];
  for (let at = data.indexOf(RS); at !== -1; at = data.indexOf(RS, at + 2)) {
    data[at] = COMMA;
    ends.push(at + 2);
  }
  return { data, ends, times };
}

/** The chunk of records read back from storage (or adopted). */
export function chunkOfRecords(records: EventRecord[]): RecordChunk {
  let text = "";
  for (const record of records) text += record.text + RECORD_END;
  return chunkOfStored(Buffer.from(text, "utf8"), records.map((record) => record.time));
}

/** `count` records of `chunk` from its record `first` on, as one piece. */
export function piece(chunk: RecordChunk, first: number, count: number): Buffer {
  return chunk.data.subarray(first === 0 ? 0 : chunk.ends[first - 1]!, chunk.ends[first + count - 1]! - 2);
}

const ENVELOPE_HEAD = Buffer.from('{\n   "events": [\n');
const ENVELOPE_JOIN = Buffer.from(",\n");
const ENVELOPE_TAIL = Buffer.from("\n   ]\n}");
/** An event's element in the envelope starts at depth 2 of json.MarshalIndent's three spaces. */
const ELEMENT_INDENT = "      ";

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
  const [open, close] = nested ? [NESTED_FIELD, EVENT_FIELD] : [EVENT_FIELD, `\n${ELEMENT_INDENT}`];
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
  return ELEMENT_INDENT + object(
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

/** What an endpoint receives for a run of records of its format (CloudEvents: one record). */
export function envelopeOf(run: RecordRun, format: EventFormat): EnvelopeBody {
  if (format === "cloudevents") {
    if (run.count !== 1) throw new Error(`a CloudEvents request carries one event, not ${run.count}`);
    return { contentType: CONTENT_TYPES[format], body: run.pieces[0]! };
  }
  const parts: Buffer[] = [ENVELOPE_HEAD];
  for (const piece of run.pieces) parts.push(piece, ENVELOPE_JOIN);
  parts[parts.length - 1] = ENVELOPE_TAIL;
  return { contentType: CONTENT_TYPES[format], body: Buffer.concat(parts) };
}

/** A record as this version writes it: one an older berth stored without its indentation gets it. */
export function currentRecord(text: string, format: EventFormat): string {
  return format === "cloudevents" || text.startsWith(ELEMENT_INDENT) ? text : ELEMENT_INDENT + text;
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
