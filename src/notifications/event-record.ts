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
const QUOTE = 0x22;

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

/**
 * The first `count` records of `data`, records of `format` that this process wrote (or read and
 * checked before), each followed by RECORD_END, as a chunk: each record's time is read from its
 * `timestamp` field and nothing else of it is parsed (a backlog past the records held in memory
 * reads a segment back, and parsing each of its records cost ten times what writing it did).
 * Undefined for CloudEvents, when fewer than `count` records end in `data`, or when one has no
 * timestamp where this version writes it: such bytes are read as any stored segment is. Turns the
 * RSs into commas in place (as chunkOfStored) only when it answers a chunk.
 */
export function chunkOfWritten(data: Buffer, format: EventFormat, count: number): RecordChunk | undefined {
  if (format === "cloudevents") return undefined;
  const times: number[] = [];
  let start = 0;
  while (times.length < count) {
    const end = data.indexOf(RS, start);
    if (end === -1) return undefined;
    const field = data.indexOf(TIMESTAMP_FIELD, start);
    if (field === -1 || field > end) return undefined;
    const from = field + TIMESTAMP_FIELD.length;
    const to = data.indexOf(QUOTE, from);
    const time = to === -1 || to > end ? NaN : Date.parse(data.toString("latin1", from, to));
    if (Number.isNaN(time)) return undefined;
    times.push(time);
    start = end + RECORD_END.length;
  }
  return chunkOfStored(data.subarray(0, start), times);
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

/**
 * A field of an object at depth 4 (target, request, actor, source), appended to the fields
 * written so far: strings are added to, not arrays joined (records are written once per event, at
 * thousands a second).
 */
function nestedField(fields: string, name: string, value: string): string {
  return `${fields}${fields === "" ? "" : ","}${NESTED_FIELD}"${name}": ${value}`;
}

/** An object at depth 3 from its nestedField()s. */
function nestedObject(fields: string): string {
  return fields === "" ? "{}" : `{${fields}${EVENT_FIELD}}`;
}

function targetObject(target: EventTarget, format: "v1" | "v2"): string {
  let fields = "";
  if (format === "v1") {
    if (target.mediaType) fields = nestedField(fields, "mediaType", quote(target.mediaType));
    if (target.size) fields = nestedField(fields, "size", String(target.size));
    if (target.digest) fields = nestedField(fields, "digest", quote(target.digest));
  } else {
    fields = nestedField(fields, "mediaType", quote(target.mediaType ?? ""));
    fields = nestedField(fields, "digest", quote(target.digest ?? ""));
    fields = nestedField(fields, "size", String(target.size ?? 0));
  }
  if (target.length) fields = nestedField(fields, "length", String(target.length));
  if (target.repository) fields = nestedField(fields, "repository", quote(target.repository));
  if (target.fromRepository) fields = nestedField(fields, "fromRepository", quote(target.fromRepository));
  if (target.url) fields = nestedField(fields, "url", quote(target.url));
  if (target.tag) fields = nestedField(fields, "tag", quote(target.tag));
  if (target.references && target.references.length > 0) {
    // Rare (includereferences) and free-form: rendered as Go would, then indented to its depth.
    const rendered = goJSON(target.references.map((d) => referenceDescriptor(d, format)));
    fields = nestedField(fields, "references", rendered.replaceAll("\n", NESTED_FIELD));
  }
  return nestedObject(fields);
}

/**
 * A target's text per format, written once and flattened: a target is not changed once an event
 * has it, and pulls of a cached manifest share theirs (src/notifications/event-targets.ts). Writing
 * it for every pull made most of the garbage an event left (4 of 11 KB).
 */
const targetTexts = new WeakMap<EventTarget, { v1?: KeptText; v2?: KeptText }>();

/** A text written once and kept, with its UTF-8 bytes (what a record written as bytes copies). */
interface KeptText {
  text: string;
  bytes: Buffer;
}

function keptText(text: string): KeptText {
  const bytes = Buffer.from(text, "utf8");
  // The text as one piece: one added from many would be walked again at each record that holds it.
  return { text: bytes.toString("utf8"), bytes };
}

function targetText(target: EventTarget, format: "v1" | "v2"): KeptText {
  let texts = targetTexts.get(target);
  if (texts === undefined) targetTexts.set(target, (texts = {}));
  return (texts[format] ??= keptText(targetObject(target, format)));
}

/**
 * What follows the request's id in a record: the rest of the request, the actor and the source.
 * They are the same for every request on one connection, so the last text written for a client
 * address is kept and used again while the rest matches.
 */
interface RecordTail {
  host: string | undefined;
  method: string;
  useragent: string;
  actor: string | undefined;
  source: RegistryEvent["source"];
  kept: KeptText;
}

/** Client addresses whose tail is kept (about 400 bytes each); beyond it the map starts again (connections come and go). */
const TAILS_MAX = 1024;
const recordTails = new Map<string, RecordTail>();

function recordTail(event: RegistryEvent): KeptText {
  const { request, actor, source } = event;
  const addr = request.addr ?? "";
  const kept = recordTails.get(addr);
  if (kept !== undefined && kept.host === request.host && kept.method === request.method && kept.useragent === request.useragent && kept.actor === actor.name && kept.source === source) {
    return kept.kept;
  }
  let fields = "";
  if (request.addr) fields = nestedField(fields, "addr", quote(request.addr));
  if (request.host) fields = nestedField(fields, "host", quote(request.host));
  fields = nestedField(fields, "method", quote(request.method));
  fields = nestedField(fields, "useragent", quote(request.useragent));
  const actorText = actor.name ? nestedObject(nestedField("", "name", quote(actor.name))) : "{}";
  // The fields follow the id: each one after a comma.
  const tail = keptText(`,${fields}${EVENT_FIELD}},${EVENT_FIELD}"actor": ${actorText},${EVENT_FIELD}"source": ${sourceObject(source)}\n${ELEMENT_INDENT}}`);
  if (recordTails.size >= TAILS_MAX) recordTails.clear();
  recordTails.set(addr, { host: request.host, method: request.method, useragent: request.useragent, actor: actor.name, source, kept: tail });
  return tail;
}

/** A process's events share one source: written once. */
const sourceObjects = new WeakMap<RegistryEvent["source"], string>();

function sourceObject(source: RegistryEvent["source"]): string {
  let text = sourceObjects.get(source);
  if (text === undefined) {
    let fields = "";
    if (source.addr) fields = nestedField(fields, "addr", quote(source.addr));
    if (source.instanceID) fields = nestedField(fields, "instanceID", quote(source.instanceID));
    text = nestedObject(fields);
    sourceObjects.set(source, text);
  }
  return text;
}

const RECORD_ID = `${ELEMENT_INDENT}{${EVENT_FIELD}"id": `;
const RECORD_TIMESTAMP = `,${EVENT_FIELD}"timestamp": `;
/** Where chunkOfWritten finds a record's time: what precedes the timestamp's text. */
const TIMESTAMP_FIELD = Buffer.from(`${RECORD_TIMESTAMP}"`, "latin1");
const RECORD_ACTION = `,${EVENT_FIELD}"action": `;
const RECORD_TARGET = `,${EVENT_FIELD}"target": `;
const RECORD_REQUEST_ID = `,${EVENT_FIELD}"request": {${NESTED_FIELD}"id": `;

/**
 * distribution's Event, written at an element of the envelope's `events` (see EventRecord): the
 * event's own id, time and request id around texts kept for its target and its request's tail.
 * An event made in this process is written the same way straight as bytes (writeStored); this is
 * for events read back in another format, and the reference the bytes are tested against.
 */
function distributionRecord(event: RegistryEvent, format: "v1" | "v2"): string {
  return (
    RECORD_ID +
    quote(event.id) +
    RECORD_TIMESTAMP +
    quote(event.timestamp) +
    RECORD_ACTION +
    quote(event.action) +
    RECORD_TARGET +
    targetText(event.target, format).text +
    RECORD_REQUEST_ID +
    quote(event.request.id) +
    recordTail(event).text
  );
}

/** The record of `event` for an endpoint of `format`. */
export function encodeRecord(event: RegistryEvent, format: EventFormat): string {
  return format === "cloudevents" ? cloudEventJSON(event) : distributionRecord(event, format);
}

/**
 * A record on its way to storage: its text (adopted, read back in another format, or CloudEvents),
 * or an event made in this process, whose record is written straight into the bytes of the write
 * (writesAsBytes).
 */
export type PendingRecord = EventRecord | RegistryEvent;

/**
 * Whether the record of `event` is written as bytes rather than made a string first: an event made
 * in this process (it has `time`), in one of distribution's formats. Its ids, time and action were
 * written here and need no escaping. As strings, a pull's record was added from eleven strings and
 * then flattened into a copy to be encoded: the largest part of the garbage its event left.
 */
export function writesAsBytes(event: RegistryEvent, format: EventFormat): boolean {
  return event.time !== undefined && format !== "cloudevents";
}

/** The pending record of `event` for an endpoint of `format`. */
export function pendingRecord(event: RegistryEvent, format: EventFormat): PendingRecord {
  return writesAsBytes(event, format) ? event : { text: encodeRecord(event, format), time: event.time ?? Date.parse(event.timestamp) };
}

function isEventRecord(record: PendingRecord): record is EventRecord {
  return typeof (record as Partial<EventRecord>).text === "string";
}

const ID_BYTES = Buffer.from(`${RECORD_ID}"`, "latin1");
const TIMESTAMP_BYTES = Buffer.from(`"${RECORD_TIMESTAMP}"`, "latin1");
const ACTION_BYTES = Buffer.from(`"${RECORD_ACTION}"`, "latin1");
const TARGET_BYTES = Buffer.from(`"${RECORD_TARGET}`, "latin1");
const REQUEST_ID_BYTES = Buffer.from(`${RECORD_REQUEST_ID}"`, "latin1");
const FIXED_BYTES = ID_BYTES.length + TIMESTAMP_BYTES.length + ACTION_BYTES.length + TARGET_BYTES.length + REQUEST_ID_BYTES.length + 1 + RECORD_END.length;

/** The bytes `record` takes in storage, RECORD_END included. */
export function storedLength(record: PendingRecord, format: EventFormat): number {
  if (isEventRecord(record)) return Buffer.byteLength(record.text, "utf8") + RECORD_END.length;
  const event = record;
  const distribution = format as "v1" | "v2";
  return FIXED_BYTES + event.id.length + event.timestamp.length + event.action.length + targetText(event.target, distribution).bytes.length + event.request.id.length + recordTail(event).bytes.length;
}

/** Writes `record` and RECORD_END (storedLength bytes) into `into` from `at`; answers where it ends. */
export function writeStored(record: PendingRecord, format: EventFormat, into: Buffer, at: number): number {
  if (isEventRecord(record)) {
    at += into.write(record.text, at, "utf8");
    return writeAscii(into, at, RECORD_END);
  }
  const event = record;
  const distribution = format as "v1" | "v2";
  into.set(ID_BYTES, at);
  at = writeAscii(into, at + ID_BYTES.length, event.id);
  into.set(TIMESTAMP_BYTES, at);
  at = writeAscii(into, at + TIMESTAMP_BYTES.length, event.timestamp);
  into.set(ACTION_BYTES, at);
  at = writeAscii(into, at + ACTION_BYTES.length, event.action);
  into.set(TARGET_BYTES, at);
  at += TARGET_BYTES.length;
  const target = targetText(event.target, distribution).bytes;
  into.set(target, at);
  at += target.length;
  into.set(REQUEST_ID_BYTES, at);
  at = writeAscii(into, at + REQUEST_ID_BYTES.length, event.request.id);
  into[at++] = QUOTE;
  const tail = recordTail(event).bytes;
  into.set(tail, at);
  return writeAscii(into, at + tail.length, RECORD_END);
}

/** `text`, which is ASCII, into `into` from `at`; answers where it ends. A loop costs less than a call into Node for strings this short. */
function writeAscii(into: Buffer, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) into[at++] = text.charCodeAt(i);
  return at;
}

/** What an endpoint receives for a run of records of its format (CloudEvents: one record). */
export function envelopeOf(run: RecordRun, format: EventFormat): EnvelopeBody {
  if (format === "cloudevents") {
    if (run.count !== 1) throw new Error(`a CloudEvents request carries one event, not ${run.count}`);
    return { contentType: CONTENT_TYPES[format], parts: [run.pieces[0]!], length: run.pieces[0]!.length };
  }
  // The pieces as they are, not joined: a joined body was a buffer outside the heap per delivery.
  const parts: Buffer[] = [ENVELOPE_HEAD];
  let length = ENVELOPE_HEAD.length + ENVELOPE_TAIL.length - ENVELOPE_JOIN.length;
  for (const piece of run.pieces) {
    parts.push(piece, ENVELOPE_JOIN);
    length += piece.length + ENVELOPE_JOIN.length;
  }
  parts[parts.length - 1] = ENVELOPE_TAIL;
  return { contentType: CONTENT_TYPES[format], parts, length };
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
  const event = { ...e, actor: e.actor ?? {}, source: e.source ?? {} } as RegistryEvent;
  // `time` marks an event made in this process (writesAsBytes): never one read back.
  delete event.time;
  return event;
}
