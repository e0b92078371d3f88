import type { StorageDriver } from "../driver/storage-driver.js";
import { deleteIfPresent, listOrEmpty } from "../driver/storage-driver.js";
import type { RegistryEvent } from "./registry-event.js";

/**
 * Outboxes live beside distribution's tree, like the leases (src/gc/registry-lease.ts):
 * `/berth/notifications/<node id>/<endpoint key>/<batch>`. Each process writes under its own node
 * id (its lease's), so nodes sharing an object store never write the same object.
 */
export const NOTIFICATIONS_ROOT = "/berth/notifications";

/** Batches listed into memory at a time; beyond them a queue is read back from storage. */
const WINDOW_BATCHES = 1_000;
/** Events kept in memory for delivery; the rest are read back from their batch. */
const WINDOW_EVENTS = 2_000;

/** A stored batch of events, named `<seq, 12 digits>-<event count>-<time of its first event, ms>`. */
export interface BatchRef {
  seq: number;
  count: number;
  /** Milliseconds since the epoch: when the batch's oldest event happened. */
  at: number;
  path: string;
  /** The events, while they are kept in memory. */
  events?: RegistryEvent[];
}

/** An endpoint name as one path component: [A-Za-z0-9-] kept, everything else `_xx` (UTF-8 hex). */
export function endpointKey(name: string): string {
  return [...Buffer.from(name, "utf8")]
    .map((byte) => {
      const c = String.fromCharCode(byte);
      return /[A-Za-z0-9-]/.test(c) ? c : `_${byte.toString(16).padStart(2, "0")}`;
    })
    .join("");
}

export function parseBatchName(path: string): Omit<BatchRef, "events"> | undefined {
  const match = /\/(\d{12})-(\d+)-(\d+)$/.exec(path);
  if (!match) return undefined;
  return { seq: Number(match[1]), count: Number(match[2]), at: Number(match[3]), path };
}

/** A stored batch whose content is not one (damaged, or not written by berth): it is dropped. */
export class UnreadableBatchError extends Error {
  constructor() {
    super("not an event batch");
    this.name = "UnreadableBatchError";
  }
}

/** The events of a stored batch. UnreadableBatchError on content that is not one. */
export function parseBatch(content: Buffer): RegistryEvent[] {
  let value: unknown;
  try {
    value = JSON.parse(content.toString("utf8"));
  } catch {
    throw new UnreadableBatchError();
  }
  const events = typeof value === "object" && value !== null ? (value as { events?: unknown }).events : undefined;
  if (!Array.isArray(events)) throw new UnreadableBatchError();
  for (const event of events) {
    const e = event as Partial<RegistryEvent> | null;
    if (typeof e !== "object" || e === null || typeof e.id !== "string" || typeof e.action !== "string" || typeof e.target !== "object") {
      throw new UnreadableBatchError();
    }
  }
  return events as RegistryEvent[];
}

interface PendingBatch {
  events: RegistryEvent[];
  durable: boolean;
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
}

/**
 * One endpoint's queue of events, kept in storage. Writers append (a request waits until its
 * events are stored); one dispatcher reads from the head and removes what it delivered or dropped.
 *
 * Appends are group-committed: while one batch is being written, every event that arrives joins the
 * next batch, so concurrent requests share one write (and one fsync) instead of queueing for their
 * own. Memory stays bounded however long the endpoint is down: at most WINDOW_BATCHES references
 * and WINDOW_EVENTS events are held; the rest is found again by listing the directory.
 */
export class EndpointOutbox {
  /** Events stored and not yet removed. */
  pendingEvents = 0;
  private nextSeq = 0;
  private pending: PendingBatch | undefined;
  private writing = false;
  private readonly window: BatchRef[] = [];
  private cachedEvents = 0;
  /** Batches exist in storage beyond the window: the next refill lists them. */
  private overflow = false;
  private refilling = false;
  private highestQueued = -1;
  private wake: (() => void) | undefined;

  constructor(
    private readonly driver: StorageDriver,
    readonly dir: string,
  ) {}

  /** Resolves once the events are stored (durably when asked), rejects when storage refused them. */
  append(events: RegistryEvent[], durable: boolean): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const batch = (this.pending ??= { events: [], durable: false, waiters: [] });
      for (const event of events) batch.events.push(event);
      batch.durable ||= durable;
      batch.waiters.push({ resolve, reject });
      if (!this.writing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.writing = true;
    while (this.pending !== undefined) {
      const batch = this.pending;
      this.pending = undefined;
      const seq = this.nextSeq++;
      const first = Date.parse(batch.events[0]?.timestamp ?? "");
      const at = Number.isFinite(first) ? first : Date.now();
      const ref: BatchRef = { seq, count: batch.events.length, at, path: `${this.dir}/${String(seq).padStart(12, "0")}-${batch.events.length}-${at}` };
      try {
        await this.driver.putContent(ref.path, Buffer.from(JSON.stringify({ events: batch.events })), { durable: batch.durable });
      } catch (err) {
        for (const waiter of batch.waiters) waiter.reject(err);
        continue;
      }
      this.enqueue(ref, batch.events);
      for (const waiter of batch.waiters) waiter.resolve();
    }
    this.writing = false;
  }

  private enqueue(ref: BatchRef, events: RegistryEvent[]): void {
    this.pendingEvents += ref.count;
    if (this.overflow || this.refilling || this.window.length >= WINDOW_BATCHES) {
      this.overflow = true;
    } else {
      if (this.cachedEvents + events.length <= WINDOW_EVENTS) {
        ref.events = events;
        this.cachedEvents += events.length;
      }
      this.window.push(ref);
      this.highestQueued = ref.seq;
    }
    this.wake?.();
  }

  /** The oldest batch not yet removed, or undefined when the queue is empty. */
  async head(): Promise<BatchRef | undefined> {
    if (this.window.length === 0 && this.overflow) await this.refill();
    return this.window[0];
  }

  /** The events of a batch `head` returned. */
  async load(ref: BatchRef): Promise<RegistryEvent[]> {
    return ref.events ?? parseBatch(await this.driver.getContent(ref.path));
  }

  /** Removes the head batch, delivered or dropped. */
  async remove(ref: BatchRef): Promise<void> {
    if (this.window[0] !== ref) throw new Error("only the head batch can be removed");
    this.window.shift();
    if (ref.events) this.cachedEvents -= ref.events.length;
    this.pendingEvents -= ref.count;
    await deleteIfPresent(this.driver, ref.path);
  }

  /** Resolves when an append lands, or when `signal` fires. */
  waitForAppend(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (this.window.length > 0 || this.overflow || signal.aborted) return resolve();
      const done = (): void => {
        this.wake = undefined;
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.wake = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * Lists the batches this queue wrote but let go of from its window. Node ids are per process, so
   * nothing else writes here (adopted events are appended as new batches).
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
      const refs = paths
        .map(parseBatchName)
        .filter((ref): ref is BatchRef => ref !== undefined && ref.seq > this.highestQueued)
        .sort((a, b) => a.seq - b.seq);
      const taken = refs.slice(0, WINDOW_BATCHES);
      this.window.push(...taken);
      if (taken.length > 0) this.highestQueued = taken[taken.length - 1]!.seq;
      // An append that landed while listing set overflow already: the next refill finds it.
      this.overflow ||= refs.length > taken.length;
    } finally {
      this.refilling = false;
    }
  }
}
