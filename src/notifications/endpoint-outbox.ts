import type { EventFormat } from "../config/config.js";
import type { AppendLog, StorageDriver } from "../driver/storage-driver.js";
import { publicErrorCode } from "../errcode/public-error-code.js";
import { deleteIfPresent, isPathNotFound, listOrEmpty } from "../driver/storage-driver.js";
import { chunkOfRecords, chunkOfStored, chunkOfWritten, pendingRecord, piece, storedLength, writeStored } from "./event-record.js";
import type { EventRecord, PendingRecord, RecordChunk, RecordRun } from "./event-record.js";
import { CursorWriter } from "./cursor-writer.js";
import { GroupWriteBuffers } from "./group-write-buffers.js";
import { CURSOR_NAME, readRecords, segmentFormat, segmentName, segmentSeq } from "./outbox-files.js";
import type { RegistryEvent } from "./registry-event.js";

/** Segments whose references are held in memory; beyond them a queue is found again by listing. */
const WINDOW_SEGMENTS = 1_000;
/** Events held in memory for delivery; the rest are read back from their segment. */
const WINDOW_EVENTS = 2_000;
/** An append log is sealed, and a new segment started, once it holds this much. */
const SEGMENT_BYTES = 1024 * 1024;
/** A segment that everything was delivered from is sealed (and deleted) from this size on. */
const DRAINED_SEGMENT_BYTES = 64 * 1024;
/** After this long with everything delivered and nothing appended, the open segment is sealed and deleted. */
const IDLE_SEAL_MS = 1_000;

/** What probeWritable writes and removes at once; neither a segment nor the cursor, so readers skip it. */
const WRITE_PROBE_NAME = "write-probe";

/** Readiness is public: the error's code (EACCES, ENOTDIR), not a message with paths in it. */
function describeWriteError(err: unknown): string {
  return publicErrorCode(err) ?? "write failed";
}


/** A stored run of events. */
interface Segment {
  seq: number;
  path: string;
  /** Events stored in it; undefined until it is read (a segment found by listing). */
  count: number | undefined;
  /** Its events' records while held in memory: then exactly `count` of them. */
  chunks: RecordChunk[] | undefined;
  /** Nothing more is appended to it. */
  sealed: boolean;
}

interface PendingAppend {
  records: PendingRecord[];
  durable: boolean;
  /** What every append of the batch waits for: one promise for all (a pull's own was a tenth of its event's cost). */
  stored: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function pendingAppend(): PendingAppend {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const stored = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { records: [], durable: false, stored, resolve, reject };
}

/**
 * One endpoint's queue of events, kept in storage. Writers append (a request waits until its
 * events are stored); one dispatcher reads from the head (`peek`) and takes off what it delivered
 * or dropped (`consume`). Events are kept as the endpoint's records (src/notifications/event-record.ts),
 * written once on append: what is held in memory is the bytes of each write, which a delivery
 * sends as they are (RecordChunk), not objects or strings.
 *
 * The queue is a run of segments, one record per event. Where the driver can append (the
 * filesystem), appends go to one open segment, a single write each, which is sealed at
 * SEGMENT_BYTES (or once delivered) and deleted when everything in it is consumed; an object store
 * gets one sealed segment per append. Appends are group-committed: the events of every request
 * started in one callback (a batch of requests read in one turn of the event loop), and of those
 * that arrive while a write is in progress, share one write (and one fsync).
 *
 * Delivery progress within a segment is saved in a cursor within CURSOR_SAVE_MS (CursorWriter), so
 * after a crash a receiver sees at most the last CURSOR_SAVE_MS of deliveries again (at least once;
 * events keep their ids). Memory stays bounded however long the endpoint is down: at most
 * WINDOW_SEGMENTS references and about WINDOW_EVENTS events (or one segment's); the rest is found
 * again by listing the directory.
 */
export class EndpointOutbox {
  /** Events stored and not yet consumed. */
  pendingEvents = 0;
  /** Stored events that could not be read back (damage), given up on. */
  unreadableEvents = 0;
  /** Stored events another node adopted, believing this process gone (it delivers them). */
  takenEvents = 0;
  /** Events ever appended (an arrival rate is measured from it). */
  appendedEvents = 0;
  /** Why the last append of a change's events failed, until one succeeds (or probeWritable does): readiness reports it. */
  writeError: string | undefined;
  private nextSeq = 0;
  private pending: PendingAppend | undefined;
  private writing: Promise<void> | undefined;
  private readonly window: Segment[] = [];
  /** Where group writes put their bytes. */
  private readonly buffers = new GroupWriteBuffers();
  /** Events of the head segment already consumed. */
  private consumed = 0;
  private heldEvents = 0;
  /** Held events past which only the head keeps its own: WINDOW_EVENTS, none while the endpoint fails (holdOnlyHead). */
  private windowEvents = WINDOW_EVENTS;
  /** The open segment of an append log. */
  private active: { segment: Segment; log: AppendLog } | undefined;
  /** Segments exist in storage beyond the window: the next refill lists them. */
  private overflow = false;
  private refilling = false;
  private highestQueued = -1;
  private wake: (() => void) | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly cursor: CursorWriter;
  private closed = false;

  constructor(
    private readonly driver: StorageDriver,
    readonly dir: string,
    /** The endpoint's format: the records are written in it. */
    readonly format: EventFormat,
  ) {
    // A cursor is only needed while the head segment is partly consumed; otherwise there is none.
    this.cursor = new CursorWriter(driver, `${dir}/${CURSOR_NAME}`, () => {
      const head = this.window[0];
      return head && this.consumed > 0 ? JSON.stringify({ seq: head.seq, consumed: this.consumed }) : "";
    });
  }

  /** Resolves once the events are stored (durably when asked), rejects when storage refused them. */
  append(events: RegistryEvent[], durable: boolean): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error("the notification outbox is closed"));
    const batch = this.batch(durable);
    for (const event of events) batch.records.push(pendingRecord(event, this.format));
    return batch.stored;
  }

  /** append() for records already written in this outbox's format (adopted from another process). */
  appendRecords(records: EventRecord[], durable: boolean): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error("the notification outbox is closed"));
    const batch = this.batch(durable);
    for (const record of records) batch.records.push(record);
    return batch.stored;
  }

  /** The group write appends go into, written once the current callback is done (flushSoon). */
  private batch(durable: boolean): PendingAppend {
    const batch = (this.pending ??= pendingAppend());
    batch.durable ||= durable;
    this.writing ??= this.flushSoon();
    return batch;
  }

  /**
   * Writes once the callback that appended, and every promise it set going, has run: a tick queued
   * now runs only after the microtask queue is empty. The requests of one batch the server starts
   * at the end of the loop's turn (src/server/turn-end.ts) all append within that one callback, so
   * their events share one write (and one fsync), and their answers leave in that same callback.
   * Waiting for the next turn instead (setImmediate) held every pull's answer back a turn of the
   * loop: 4–12% more CPU per cached manifest GET on the 2-core VMs. Appends from separate I/O
   * callbacks write separately, and those that come while a write is in progress (an fsync) all go
   * in the next one.
   */
  private async flushSoon(): Promise<void> {
    await new Promise((resolve) => process.nextTick(resolve));
    await this.flush();
  }

  private async flush(): Promise<void> {
    while (this.pending !== undefined) {
      const batch = this.pending;
      this.pending = undefined;
      let size = 0;
      for (const record of batch.records) size += storedLength(record, this.format);
      // An object store's driver may keep what it is given (the in-memory one does): bytes of its own.
      // While the window is full, nothing of the write is likely to be held.
      const data = !this.driver.appendLog ? Buffer.allocUnsafe(size) : this.windowFull() ? this.buffers.transient(size) : this.buffers.held(size);
      let at = 0;
      for (const record of batch.records) at = writeStored(record, this.format, data, at);
      try {
        const segment = this.driver.appendLog ? await this.appendToLog(data, batch.durable) : await this.writeSegment(data, batch.durable);
        this.stored(segment, data, batch.records);
      } catch (err) {
        this.buffers.drop(data);
        // Only a change's events (durable) fail their request; lost pull events are served and
        // counted, and on a read-only registry's read-only storage they would fail readiness forever.
        if (batch.durable) this.writeError = describeWriteError(err);
        batch.reject(err);
        continue;
      }
      this.writeError = undefined;
      batch.resolve();
    }
    this.writing = undefined;
  }

  /**
   * After a failed append: writes and removes a probe beside the segments, and forgets the failure
   * when that works. A node taken out of service for the failure gets no appends to learn from.
   */
  async probeWritable(): Promise<void> {
    if (this.writeError === undefined) return;
    const probe = `${this.dir}/${WRITE_PROBE_NAME}`;
    try {
      await this.driver.putContent(probe, Buffer.alloc(0));
      await deleteIfPresent(this.driver, probe);
      this.writeError = undefined;
    } catch (err) {
      this.writeError = describeWriteError(err);
    }
  }

  /** An object store: the events become a sealed segment of their own. */
  private async writeSegment(data: Buffer, durable: boolean): Promise<Segment> {
    const seq = this.nextSeq++;
    const segment: Segment = { seq, path: `${this.dir}/${segmentName(seq, this.format)}`, count: 0, chunks: [], sealed: true };
    await this.driver.putContent(segment.path, data, { durable });
    this.track(segment);
    return segment;
  }

  private async appendToLog(data: Buffer, durable: boolean): Promise<Segment> {
    let active = this.active;
    // While the endpoint fails the head stops growing: what comes after it is not kept in memory.
    const headToKeepSmall = active !== undefined && this.windowEvents === 0 && this.window[0] === active.segment && active.log.size > 0;
    if (active && (active.log.size >= SEGMENT_BYTES || headToKeepSmall || (active.log.size >= DRAINED_SEGMENT_BYTES && this.isDrainedHead(active.segment)))) {
      await this.seal();
      active = undefined;
    }
    if (!active) {
      const seq = this.nextSeq++;
      const segment: Segment = { seq, path: `${this.dir}/${segmentName(seq, this.format)}`, count: 0, chunks: [], sealed: false };
      active = this.active = { segment, log: await this.driver.appendLog!(segment.path) };
      this.track(segment);
    }
    const before = active.log.size;
    try {
      await active.log.append(data, durable);
    } catch (err) {
      // Part of the data may be there: cut it off, or at least append nothing more after it.
      await active.log.truncate(before).catch(() => this.seal());
      throw err;
    }
    return active.segment;
  }

  /** A new segment: into the window unless the window is full (then a refill finds it). */
  private track(segment: Segment): void {
    if (this.overflow || this.refilling || this.window.length >= WINDOW_SEGMENTS) {
      this.overflow = true;
      segment.chunks = undefined;
    } else {
      this.window.push(segment);
      this.highestQueued = segment.seq;
    }
  }

  /** `data` (the records, as written) is storage's now, and becomes the records held for delivery. */
  private stored(segment: Segment, data: Buffer, records: PendingRecord[]): void {
    segment.count = (segment.count ?? 0) + records.length;
    this.pendingEvents += records.length;
    this.appendedEvents += records.length;
    // Past the window only the head keeps its events; the others are read back when their turn comes.
    if (segment.chunks && this.pastWindow(segment, records.length)) {
      this.release(segment);
      this.buffers.drop(data);
    } else if (segment.chunks) {
      // A transient buffer, or what an object store's driver may keep, is copied: the copy is turned.
      const held = this.driver.appendLog && !this.buffers.isTransient(data) ? data : Buffer.from(data);
      if (held !== data) this.buffers.drop(data);
      // Every pending record has its time: a text's is given with it, an event written as bytes was made here.
      segment.chunks.push(chunkOfStored(held, records.map((record) => record.time!)));
      this.heldEvents += records.length;
    } else {
      this.buffers.drop(data);
    }
    this.wake?.();
  }

  private release(segment: Segment): void {
    const chunks = segment.chunks;
    if (!chunks) return;
    segment.chunks = undefined;
    this.heldEvents -= chunkedCount(chunks);
    for (const chunk of chunks) this.buffers.drop(chunk.data);
  }

  private isDrainedHead(segment: Segment): boolean {
    return this.window[0] === segment && this.consumed === segment.count;
  }

  /** Ends the open segment: nothing more goes in, and once consumed it is deleted. */
  private async seal(): Promise<void> {
    const active = this.active;
    if (!active) return;
    this.active = undefined;
    active.segment.sealed = true;
    await active.log.close().catch(() => undefined);
    await this.removeConsumedHeads();
  }

  /**
   * Up to `max` events from the head, in order, without taking them off. Empty when nothing waits.
   * Segments not in memory are read back (the head always; the ones after it while the memory
   * budget allows). The run's pieces hold their bytes until given back with `letGo`, once nothing
   * reads them (a delivery's are written to a socket after this returns).
   */
  async peek(max: number): Promise<RecordRun> {
    const run: RecordRun = { count: 0, pieces: [], times: [] };
    if (this.window.length === 0 && this.overflow) await this.refill();
    let skip = this.consumed;
    // A snapshot: sealing may remove a consumed head meanwhile. Each segment holds an event or more.
    for (const segment of this.window.slice(0, max + 1)) {
      if (run.count >= max) break;
      // A failing endpoint's retries send the head's events again, not more read back each time.
      if (!segment.chunks && run.count > 0 && this.windowFull()) break;
      let chunks = segment.chunks;
      if (!chunks) {
        const read = await this.load(segment);
        // Held records let go of while this waited may be written over by now: a read's own are not.
        chunks = segment.chunks ?? (read.some((chunk) => this.buffers.isSlab(chunk.data)) ? undefined : read);
        if (!chunks) break;
      }
      // Whole segments where they fit: a segment consumed whole is deleted and needs no cursor
      // (on an object store, a cursor is a PUT).
      if (run.count > 0 && run.count + chunkedCount(chunks) > max) break;
      for (const chunk of chunks) {
        const inChunk = chunk.ends.length;
        if (skip >= inChunk) {
          skip -= inChunk;
          continue;
        }
        const taken = Math.min(inChunk - skip, max - run.count);
        const bytes = piece(chunk, skip, taken);
        this.buffers.hold(bytes);
        run.pieces.push(bytes);
        for (let j = skip; j < skip + taken; j++) run.times.push(chunk.times[j]!);
        run.count += taken;
        skip = 0;
        if (run.count >= max) break;
      }
      skip = 0;
    }
    // Nothing waits: a count that says otherwise (events given up on while read) is set right.
    if (run.count === 0 && !this.waiting()) this.pendingEvents = 0;
    return run;
  }

  /**
   * While the endpoint fails (`on`), keeps in memory only the head segment's events, which the
   * retries send again, instead of a delivery window of WINDOW_EVENTS: with the endpoint down for
   * hours that window (~1.5 MiB of slabs) did nothing but wait. New events go to a segment of their
   * own, written and not kept; once the endpoint answers, they are read back as their turn comes.
   */
  holdOnlyHead(on: boolean): void {
    const windowEvents = on ? 0 : WINDOW_EVENTS;
    if (this.windowEvents === windowEvents) return;
    this.windowEvents = windowEvents;
    if (!on) return;
    for (const segment of this.window.slice(1)) this.release(segment);
    // Writes go to the scratch buffer from now on: slabs freed by the release would only wait.
    this.buffers.forgetFree();
  }

  /** As many events are held as the window allows: writes are not kept, reads beyond the head not held. */
  private windowFull(): boolean {
    return this.heldEvents >= this.windowEvents;
  }

  /** `segment` is not the head, and its events and `adding` more would take the held ones past the window. */
  private pastWindow(segment: Segment, adding = 0): boolean {
    return segment !== this.window[0] && this.heldEvents + adding > this.windowEvents;
  }

  /** Events whose records are held in memory (what the tests read of the window). */
  get eventsInMemory(): number {
    return this.heldEvents;
  }

  /** Gives back the holds of a run from `peek`: its bytes may be written over from now on. Once per run. */
  letGo(run: RecordRun): void {
    for (const bytes of run.pieces) this.buffers.drop(bytes);
  }

  /** Events are stored that were not consumed yet. */
  private waiting(): boolean {
    const head = this.window[0];
    return this.overflow || this.window.length > 1 || (head !== undefined && (head.count === undefined || head.count > this.consumed));
  }

  /** Takes the first `count` events off the queue (delivered or dropped). */
  async consume(count: number): Promise<void> {
    let left = count;
    while (left > 0) {
      const head = this.window[0];
      if (!head) break;
      if (head.count === undefined) await this.load(head);
      const available = (head.count ?? 0) - this.consumed;
      const taken = Math.min(left, available);
      this.consumed += taken;
      this.pendingEvents -= taken;
      left -= taken;
      if (taken === available && !(await this.removeConsumedHeads())) break;
    }
    this.cursor.schedule();
    if (this.pendingEvents === 0) this.scheduleIdleSeal();
  }

  /** An idle outbox keeps no file of delivered events: its open segment goes once all is delivered. */
  private scheduleIdleSeal(): void {
    if (!this.active || this.idleTimer || this.closed) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      // Sealing takes the writer's turn, so no append is in flight.
      if (this.writing || this.pending || !this.active || !this.isDrainedHead(this.active.segment)) return;
      this.writing = this.seal()
        .catch(() => undefined)
        .finally(() => {
          this.writing = this.pending ? this.flush() : undefined;
        });
    }, IDLE_SEAL_MS);
    this.idleTimer.unref();
  }

  /** Removes head segments everything was consumed from; false when the head must stay (still open). */
  private async removeConsumedHeads(): Promise<boolean> {
    for (;;) {
      const head = this.window[0];
      if (!head || head.count === undefined || this.consumed < head.count) return true;
      if (!head.sealed) return false;
      // Forgotten before the first await, so that pending never counts its events out twice.
      this.window.shift();
      this.release(head);
      this.consumed = 0;
      this.cursor.schedule();
      await deleteIfPresent(this.driver, head.path);
      if (this.window.length === 0 && this.overflow) await this.refill();
    }
  }

  /** The records of a segment, read back from storage; the head keeps them until it is removed. */
  private async load(segment: Segment): Promise<RecordChunk[]> {
    for (;;) {
      const expected = segment.count;
      let content: Buffer;
      let taken = false;
      try {
        content = await this.driver.getContent(segment.path);
      } catch (err) {
        if (!isPathNotFound(err)) throw err;
        // Taken by another node that believed this process gone: its adoption delivers them.
        taken = true;
        content = Buffer.alloc(0);
      }
      if (segment.chunks) return segment.chunks; // an append filled it meanwhile
      if (expected !== undefined && segment.count !== expected) continue; // appended to while read: again
      const written = expected !== undefined && !taken ? this.loadWritten(segment, content, expected) : undefined;
      if (written !== undefined) return written;
      const { records: events, unreadable } = readRecords(content, segmentFormat(segment.path), this.format);
      // Damaged, or taken by another node: what is not there is given up on.
      const missing = expected === undefined ? unreadable : Math.max(0, expected - events.length);
      if (taken) this.takenEvents += missing;
      else this.unreadableEvents += missing;
      this.pendingEvents -= missing;
      const kept = expected === undefined ? events : events.slice(0, expected);
      segment.count = kept.length;
      if (this.consumed > kept.length && this.window[0] === segment) this.consumed = kept.length;
      const chunks = kept.length > 0 ? [chunkOfRecords(kept)] : [];
      segment.chunks = chunks;
      this.heldEvents += kept.length;
      if (this.pastWindow(segment)) this.release(segment);
      return chunks;
    }
  }

  /**
   * A segment this process wrote (or read and checked before), read back as stored: its records
   * were checked when written, so only their times are read (chunkOfWritten). Undefined when the
   * bytes are not all such records, to be read as any stored segment.
   */
  private loadWritten(segment: Segment, content: Buffer, expected: number): RecordChunk[] | undefined {
    if (segmentFormat(segment.path) !== this.format) return undefined;
    // An object store's driver may answer with what it keeps (the in-memory one does), and the
    // chunk turns RSs into commas: it gets bytes of its own.
    const chunk = expected === 0 ? undefined : chunkOfWritten(this.driver.appendLog ? content : Buffer.from(content), this.format, expected);
    if (chunk === undefined) return undefined;
    const chunks = [chunk];
    segment.chunks = chunks;
    this.heldEvents += expected;
    if (this.pastWindow(segment)) this.release(segment);
    return chunks;
  }

  /** Resolves when an append lands, or when `signal` fires. */
  waitForAppend(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (this.waiting() || signal.aborted) return resolve();
      const done = (): void => {
        this.wake = undefined;
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.wake = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** Saves the cursor now; no more appends are taken. What is left stays for the next process. */
  async close(): Promise<void> {
    this.closed = true;
    this.cursor.stop();
    // An idle seal may hand over to a flush of appends that came meanwhile: wait for all of it.
    while (this.writing) await this.writing;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    await this.seal();
    await this.cursor.save();
  }

  /**
   * Lists the segments this queue wrote but let go of from its window. Node ids are per process, so
   * nothing else writes here (adopted events are appended as new events).
   */
  private async refill(): Promise<void> {
    this.refilling = true;
    this.overflow = false;
    try {
      let paths: string[];
      try {
        paths = await listOrEmpty(this.driver, this.dir);
      } catch (err) {
        this.overflow = true;
        throw err;
      }
      const found = paths
        .map((path) => ({ path, seq: segmentSeq(path) }))
        .filter((s): s is { path: string; seq: number } => s.seq !== undefined && s.seq > this.highestQueued)
        .sort((a, b) => a.seq - b.seq);
      const taken = found.slice(0, WINDOW_SEGMENTS);
      for (const { path, seq } of taken) {
        // The open segment keeps its own record: appends go on counting into it.
        const segment = this.active?.segment.seq === seq ? this.active.segment : { seq, path, count: undefined, chunks: undefined, sealed: true };
        this.window.push(segment);
      }
      if (taken.length > 0) this.highestQueued = taken[taken.length - 1]!.seq;
      // An append that landed while listing set overflow already: the next refill finds it.
      this.overflow ||= found.length > taken.length;
    } finally {
      this.refilling = false;
    }
  }
}

/** The records in `chunks`. */
function chunkedCount(chunks: RecordChunk[]): number {
  let count = 0;
  for (const chunk of chunks) count += chunk.ends.length;
  return count;
}
