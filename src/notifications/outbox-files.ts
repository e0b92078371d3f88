/**
 * What an outbox directory holds in storage, and how it is read back: the directory's place
 * (NOTIFICATIONS_ROOT, endpointKey), the segments (their names, and the records in them, in this
 * version's format or an older berth's) and the delivery cursor. The queue that writes them is
 * EndpointOutbox (src/notifications/endpoint-outbox.ts); adoption (outbox-adoption.ts) and the tests'
 * audits read them too.
 */
import type { EventFormat } from "../config/config.js";
import { currentRecord, decodeRecord, encodeRecord, RECORD_END, type EventRecord } from "./event-record.js";
import type { RegistryEvent } from "./registry-event.js";

/**
 * Outboxes live beside distribution's tree, like the leases (src/gc/registry-lease.ts):
 * `/berth/notifications/<node id>/<endpoint key>/`. Each process writes under its own node id (its
 * lease's), so nodes sharing an object store never write the same object.
 */
export const NOTIFICATIONS_ROOT = "/berth/notifications";

/** The cursor's name in an outbox directory: how far delivery got in its oldest segment. */
export const CURSOR_NAME = "cursor";

/** An endpoint name as one path component: [A-Za-z0-9-] kept, everything else `_xx` (UTF-8 hex). */
export function endpointKey(name: string): string {
  return [...Buffer.from(name, "utf8")]
    .map((byte) => {
      const c = String.fromCharCode(byte);
      return /[A-Za-z0-9-]/.test(c) ? c : `_${byte.toString(16).padStart(2, "0")}`;
    })
    .join("");
}

/**
 * How a segment holds its events: records of an endpoint format (src/notifications/event-record.ts),
 * each followed by RECORD_END, or, in segments of berth before records (`legacy`), one
 * RegistryEvent as compact JSON per line.
 */
export type SegmentFormat = EventFormat | "legacy";

const RS = 0x1e;
const LF = 0x0a;

/** A segment's name: `<seq, 12 digits>.<format>.events`, so a listing tells the order. */
export function segmentName(seq: number, format: EventFormat): string {
  return `${String(seq).padStart(12, "0")}.${format}.events`;
}

const SEGMENT_PATH = /(?:^|\/)(\d{12})(?:\.(v1|v2|cloudevents))?\.events$/;

/** The sequence number of a segment path; undefined for anything else (the cursor). */
export function segmentSeq(path: string): number | undefined {
  const match = SEGMENT_PATH.exec(path);
  return match ? Number(match[1]) : undefined;
}

/** How the segment at `path` holds its events (a name without a format is an older berth's). */
export function segmentFormat(path: string): SegmentFormat {
  return (SEGMENT_PATH.exec(path)?.[2] as EventFormat | undefined) ?? "legacy";
}

/**
 * The records of a segment, as an endpoint of `format` delivers them. A last record without its
 * end is an append a crash cut short (never acknowledged) and is left out; a complete one that is
 * not an event (damage) is counted in `unreadable`. Every record is checked to be a whole event,
 * so that damage is never delivered (a receiver refusing it would hold the queue up); records of
 * another format (the endpoint's configuration changed) are written anew in this one.
 */
export function readRecords(content: Buffer, stored: SegmentFormat, format: EventFormat): { records: EventRecord[]; unreadable: number } {
  const records: EventRecord[] = [];
  const unreadable = decodeSegment(content, stored, (text, event) => {
    records.push({ text: stored === format ? currentRecord(text, format) : encodeRecord(event, format), time: Date.parse(event.timestamp) });
  });
  return { records, unreadable };
}

/** The events of the segment at `path`, read back (test support, audits). */
export function parseSegment(content: Buffer, path: string): { events: RegistryEvent[]; unreadable: number } {
  const events: RegistryEvent[] = [];
  const unreadable = decodeSegment(content, segmentFormat(path), (_, event) => events.push(event));
  return { events, unreadable };
}

/** Visits each whole record of a segment with the event it holds; returns how many are not events. */
function decodeSegment(content: Buffer, stored: SegmentFormat, visit: (text: string, event: RegistryEvent) => void): number {
  // A legacy line is a RegistryEvent, which reads as a v1 record does.
  const [end, endLength, decodeAs] = stored === "legacy" ? [LF, 1, "v1" as const] : [RS, RECORD_END.length, stored];
  let unreadable = 0;
  let start = 0;
  for (let stop = content.indexOf(end, start); stop !== -1; start = stop + endLength, stop = content.indexOf(end, start)) {
    if (stop === start) continue;
    const text = content.toString("utf8", start, stop);
    const event = decodeRecord(text, decodeAs);
    if (event === undefined) unreadable++;
    else visit(text, event);
  }
  return unreadable;
}

/** How far delivery got: segments before `seq` are done, and the first `consumed` events of `seq`. */
export interface OutboxCursor {
  seq: number;
  consumed: number;
}

/** How many of the `count` events of segment `seq` the cursor marks delivered (none without a cursor). */
export function deliveredInSegment(cursor: OutboxCursor | undefined, seq: number, count: number): number {
  if (cursor === undefined || seq > cursor.seq) return 0;
  return seq < cursor.seq ? count : Math.min(cursor.consumed, count);
}

export function parseCursor(content: Buffer): OutboxCursor | undefined {
  try {
    const value = JSON.parse(content.toString("utf8")) as Partial<OutboxCursor> | null;
    if (value && Number.isSafeInteger(value.seq) && Number.isSafeInteger(value.consumed)) return { seq: value.seq!, consumed: value.consumed! };
  } catch {
    // a damaged cursor: delivery starts from the oldest segment (at least once)
  }
  return undefined;
}
