import type { EndpointConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import type { EndpointOutbox } from "./endpoint-outbox.js";
import { envelopeOf, type RecordRun } from "./event-record.js";
import type { WebhookSender } from "./webhook-sender.js";

/** Events waiting before several go in one request. */
const BATCH_BACKLOG = 10;
/** Events a second (over the last second or more) from which several go in one request. */
const BATCH_RATE = 100;
/** While batching, the least time between two requests: events gather meanwhile. */
const BATCH_LINGER_MS = 10;
/**
 * While batching, the most time between two requests: how much later than alone an event may be
 * delivered so that a request carries a full batch. Each request costs the registry ~0.7 ms of
 * CPU whatever it carries, so at thousands of pulls a second requests of 10 events cost a third
 * of the pulls' own CPU, and requests of `maxbatch` a twentieth of it.
 */
const BATCH_LINGER_MAX_MS = 100;
/** How often limits are enforced while backing off from a failing endpoint. */
const LIMIT_CHECK_MS = 100;

/** What an operator sees of one endpoint (GET /debug/status). Never a header or a key. */
export interface EndpointStatus {
  name: string;
  /** Events stored and not yet delivered or dropped. */
  pending: number;
  /** Events queued for this endpoint by this process since it started. */
  events: number;
  delivered: number;
  /** Delivery attempts that failed (each retry counts). */
  failures: number;
  /** Of those, attempts that got no HTTP response at all (connection refused, timeout). */
  errors: number;
  /** Events given up on: past maxevents or maxage, or unreadable in storage. */
  dropped: number;
  /** Deliveries by response status ("200", "500"), as distribution's endpoint metrics count them. */
  statuses: Record<string, number>;
  lastError?: string;
  lastErrorAt?: string;
  lastDeliveredAt?: string;
}

/**
 * Delivers one endpoint's outbox in order, one event per request as distribution does (several
 * when they come fast or pile up, see batchSize). Retries as distribution's retrying sink: at once
 * while fewer than `threshold` attempts in a row failed, then once every `backoff`, without end;
 * unlike distribution, `maxevents` and `maxage` bound what waits.
 * Each endpoint has its own dispatcher, so a dead endpoint delays no other.
 */
export class EndpointDispatcher {
  readonly status: EndpointStatus;
  private readonly stop = new AbortController();
  private running: Promise<void> | undefined;
  private recentFailures = 0;
  /** The outbox's counts of unreadable and taken events when last looked at. */
  private unreadableSeen = 0;
  private takenSeen = 0;
  /** Arrival rate: the outbox's append count at the start of the current measurement. */
  private rateSince = { at: 0, appended: 0 };
  /** Events a second over the last complete measurement (a second or more). */
  private arrivalRate = 0;
  private lastSendAt = 0;

  constructor(
    private readonly config: EndpointConfig,
    private readonly outbox: EndpointOutbox,
    private readonly sender: WebhookSender,
    private readonly log: Logger,
  ) {
    this.status = { name: config.name, pending: 0, events: 0, delivered: 0, failures: 0, errors: 0, dropped: 0, statuses: {} };
  }

  start(): void {
    this.running ??= this.run().catch((err: unknown) => {
      this.log.error({ err, endpoint: this.config.name }, "notification delivery stopped");
    });
  }

  /** Events waiting for this endpoint. */
  get pending(): number {
    return Math.max(0, this.outbox.pendingEvents);
  }

  /** The last attempt failed: shutdown does not wait for this endpoint. */
  get failing(): boolean {
    return this.recentFailures > 0;
  }

  snapshot(): EndpointStatus {
    return { ...this.status, pending: this.pending, events: this.outbox.appendedEvents, statuses: { ...this.status.statuses } };
  }

  /** Stops delivering: an attempt in progress is cut, what is not delivered stays in the outbox. */
  async close(): Promise<void> {
    this.stop.abort();
    await this.running;
    this.sender.close();
  }

  private async run(): Promise<void> {
    const signal = this.stop.signal;
    while (!signal.aborted) {
      try {
        await this.dropBeyondLimits();
        const batch = this.batchSize();
        if (batch > 1) {
          // Many events a second: gather them for a moment rather than post each alone.
          const wait = this.lastSendAt + this.lingerMs(batch) - performance.now();
          if (wait > 0) await sleep(wait, signal);
        }
        const events = await this.outbox.peek(batch);
        this.noteUnreadable();
        if (events.count === 0) {
          await this.outbox.waitForAppend(signal);
          continue;
        }
        await this.deliver(events, signal);
      } catch (err) {
        // Storage trouble (listing, reading or deleting a segment): try again shortly.
        this.log.error({ err, endpoint: this.config.name }, "notification outbox could not be read; retrying");
        await sleep(this.config.backoffMs, signal);
      }
    }
  }

  /** One attempt to deliver the head events; on success they leave the outbox. */
  private async deliver(events: RecordRun, signal: AbortSignal): Promise<void> {
    this.lastSendAt = performance.now();
    // The body is written from the outbox's own memory: it is given back once all of it is written.
    const result = await this.sender.send(envelopeOf(events, this.config.format), signal, () => this.outbox.letGo(events));
    if (signal.aborted) return;
    if (result.status !== undefined) this.status.statuses[String(result.status)] = (this.status.statuses[String(result.status)] ?? 0) + 1;
    if (result.delivered) {
      this.status.delivered += events.count;
      this.status.lastDeliveredAt = new Date().toISOString();
      if (this.recentFailures >= this.config.threshold) this.log.info({ endpoint: this.config.name }, "notification endpoint accepts events again");
      this.recentFailures = 0;
      this.outbox.holdOnlyHead(false);
      // Takes them out of `pending` before its first await, in the same step as `delivered` counts them.
      await this.outbox.consume(events.count);
      return;
    }
    this.status.failures++;
    if (result.status === undefined) this.status.errors++;
    this.status.lastError = result.error;
    this.status.lastErrorAt = new Date().toISOString();
    this.recentFailures++;
    if (this.recentFailures === this.config.threshold) {
      this.log.warn({ endpoint: this.config.name, error: result.error, pending: this.pending }, `notification endpoint failed ${this.config.threshold} times in a row; retrying every ${this.config.backoffMs} ms`);
    }
    if (this.recentFailures >= this.config.threshold) {
      this.outbox.holdOnlyHead(true);
      await this.backOff(signal);
    }
  }

  /** Waits `backoff`, keeping the queue within its limits meanwhile (events keep arriving). */
  private async backOff(signal: AbortSignal): Promise<void> {
    const until = performance.now() + this.config.backoffMs;
    for (let left = this.config.backoffMs; left > 0 && !signal.aborted; left = until - performance.now()) {
      await sleep(Math.min(left, LIMIT_CHECK_MS), signal);
      await this.dropBeyondLimits();
    }
  }

  /**
   * Events for the next request. One, as distribution sends them, while events are few; once
   * BATCH_BACKLOG wait, or they arrive at BATCH_RATE a second or more, up to `maxbatch` from the
   * head go together, one request every BATCH_LINGER_MS or more (distribution's envelope holds "one
   * or more events"): at thousands of pulls a second a request per event would cost the registry
   * more CPU than the pulls that caused them.
   */
  private batchSize(): number {
    if (this.config.format === "cloudevents" || this.config.maxBatch === 1) return 1;
    const now = performance.now();
    if (now - this.rateSince.at >= 1_000) {
      const appended = this.outbox.appendedEvents;
      this.arrivalRate = ((appended - this.rateSince.appended) * 1_000) / (now - this.rateSince.at);
      this.rateSince = { at: now, appended };
    }
    return this.pending >= BATCH_BACKLOG || (this.arrivalRate >= BATCH_RATE && this.pending > 1) ? this.config.maxBatch : 1;
  }

  /**
   * Time between two batched requests: as long as `batch` events take to arrive at the measured
   * rate, within BATCH_LINGER_MS..BATCH_LINGER_MAX_MS. A backlog already holds a batch: no wait
   * (with one, a request every BATCH_LINGER_MS capped delivery at `maxbatch` per BATCH_LINGER_MS,
   * below what a busy registry records, and a backlog past the events held in memory is read back
   * from storage).
   */
  private lingerMs(batch: number): number {
    if (this.pending >= batch) return 0;
    if (this.arrivalRate <= 0) return BATCH_LINGER_MS;
    return Math.min(BATCH_LINGER_MAX_MS, Math.max(BATCH_LINGER_MS, (batch * 1_000) / this.arrivalRate));
  }

  /** Drops the oldest events while more than `maxevents` wait, then those past `maxage`. */
  private async dropBeyondLimits(): Promise<void> {
    const excess = this.pending - this.config.maxEvents;
    if (excess > 0) {
      this.status.dropped += excess;
      await this.outbox.consume(excess);
      this.logDropped(excess, "maxevents");
    }
    let expired = 0;
    try {
      for (;;) {
        const oldest = Date.now() - this.config.maxAgeMs;
        const first = await this.outbox.peek(1);
        this.outbox.letGo(first);
        if (first.count === 0 || first.times[0]! >= oldest) return;
        const head = await this.outbox.peek(this.config.maxBatch);
        this.outbox.letGo(head);
        let old = 0;
        while (old < head.count && head.times[old]! < oldest) old++;
        if (old === 0) return;
        this.status.dropped += old;
        expired += old;
        await this.outbox.consume(old);
        if (old < head.count) return;
      }
    } finally {
      if (expired > 0) this.logDropped(expired, "maxage");
    }
  }

  /** Events the outbox could not read back count as dropped; those another node took are its to deliver. */
  private noteUnreadable(): void {
    const taken = this.outbox.takenEvents - this.takenSeen;
    if (taken > 0) {
      this.takenSeen = this.outbox.takenEvents;
      this.log.warn({ endpoint: this.config.name, events: taken }, "notification events were taken by another node that believed this process gone; it delivers them");
    }
    const lost = this.outbox.unreadableEvents - this.unreadableSeen;
    if (lost <= 0) return;
    this.unreadableSeen = this.outbox.unreadableEvents;
    this.status.dropped += lost;
    this.logDropped(lost, "unreadable in storage");
  }

  private logDropped(dropped: number, reason: string): void {
    this.log.warn({ endpoint: this.config.name, dropped, reason, droppedTotal: this.status.dropped }, "notification events dropped undelivered");
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
