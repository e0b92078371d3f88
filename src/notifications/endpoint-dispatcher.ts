import type { EndpointConfig } from "../config/config.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import type { Logger } from "../log/logger.js";
import { envelopeFor } from "./event-envelope.js";
import { UnreadableBatchError, type BatchRef, type EndpointOutbox } from "./endpoint-outbox.js";
import type { WebhookSender } from "./webhook-sender.js";

/** Events waiting before several go in one request. */
const BATCH_BACKLOG = 10;

/** What an operator sees of one endpoint (GET /debug/status). Never a header or a key. */
export interface EndpointStatus {
  name: string;
  /** Events stored and not yet delivered or dropped. */
  pending: number;
  delivered: number;
  /** Delivery attempts that failed (each retry counts). */
  failures: number;
  /** Events given up on: past maxevents or maxage, or unreadable in storage. */
  dropped: number;
  /** Deliveries by response status ("200", "500"), as distribution's endpoint metrics count them. */
  statuses: Record<string, number>;
  lastError?: string;
  lastErrorAt?: string;
  lastDeliveredAt?: string;
}

/**
 * Delivers one endpoint's outbox in order, one event per request as distribution does. Retries as
 * distribution's retrying sink: at once while fewer than `threshold` attempts in a row failed, then
 * once every `backoff`, without end; unlike distribution, `maxevents` and `maxage` bound what waits.
 * Each endpoint has its own dispatcher, so a dead endpoint delays no other.
 */
export class EndpointDispatcher {
  readonly status: EndpointStatus;
  private readonly stop = new AbortController();
  private running: Promise<void> | undefined;
  private recentFailures = 0;
  /** Events of the head batch already delivered. */
  private headDelivered = 0;

  constructor(
    private readonly config: EndpointConfig,
    private readonly outbox: EndpointOutbox,
    private readonly sender: WebhookSender,
    private readonly log: Logger,
  ) {
    this.status = { name: config.name, pending: 0, delivered: 0, failures: 0, dropped: 0, statuses: {} };
  }

  start(): void {
    this.running ??= this.run().catch((err: unknown) => {
      this.log.error({ err, endpoint: this.config.name }, "notification delivery stopped");
    });
  }

  /** Events waiting for this endpoint. */
  get pending(): number {
    return Math.max(0, this.outbox.pendingEvents - this.headDelivered);
  }

  /** The last attempt failed: shutdown does not wait for this endpoint. */
  get failing(): boolean {
    return this.recentFailures > 0;
  }

  snapshot(): EndpointStatus {
    return { ...this.status, pending: this.pending, statuses: { ...this.status.statuses } };
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
      let ref: BatchRef | undefined;
      try {
        await this.dropBeyondLimits();
        ref = await this.outbox.head();
        if (ref === undefined) {
          await this.outbox.waitForAppend(signal);
          continue;
        }
        await this.deliverBatch(ref, signal);
      } catch (err) {
        // Storage trouble (listing, reading or deleting a batch): try again shortly.
        this.log.error({ err, endpoint: this.config.name }, "notification outbox could not be read; retrying");
        await sleep(this.config.backoffMs, signal);
      }
    }
  }

  private async deliverBatch(ref: BatchRef, signal: AbortSignal): Promise<void> {
    let events;
    try {
      events = await this.outbox.load(ref);
    } catch (err) {
      if (err instanceof UnreadableBatchError) {
        this.logDropped(await this.drop(ref), `unreadable batch ${ref.path}`);
        return;
      }
      if (isPathNotFound(err)) {
        // Another node took it, believing this process gone (its adoption delivers the events).
        this.log.warn({ endpoint: this.config.name, batch: ref.path }, "a notification batch was taken by another node; it delivers those events");
        await this.removeHead(ref);
        return;
      }
      throw err;
    }
    while (this.headDelivered < events.length) {
      if (signal.aborted) return;
      const sending = events.slice(this.headDelivered, this.headDelivered + this.batchSize(events.length - this.headDelivered));
      const result = await this.sender.send(envelopeFor(sending, this.config.format), signal);
      if (signal.aborted) return;
      if (result.status !== undefined) this.status.statuses[String(result.status)] = (this.status.statuses[String(result.status)] ?? 0) + 1;
      if (result.delivered) {
        this.headDelivered += sending.length;
        this.status.delivered += sending.length;
        this.status.lastDeliveredAt = new Date().toISOString();
        if (this.recentFailures >= this.config.threshold) this.log.info({ endpoint: this.config.name }, "notification endpoint accepts events again");
        this.recentFailures = 0;
        continue;
      }
      this.status.failures++;
      this.status.lastError = result.error;
      this.status.lastErrorAt = new Date().toISOString();
      this.recentFailures++;
      if (this.recentFailures === this.config.threshold) {
        this.log.warn({ endpoint: this.config.name, error: result.error, pending: this.pending }, `notification endpoint failed ${this.config.threshold} times in a row; retrying every ${this.config.backoffMs} ms`);
      }
      if (this.recentFailures >= this.config.threshold) await sleep(this.config.backoffMs, signal);
      // The limits may have passed while this endpoint failed: the head batch may be the one to go.
      if (this.overLimits(ref)) return;
    }
    await this.removeHead(ref);
  }

  /**
   * Removes the head batch. The outbox forgets its events before its first await, and the count of
   * its delivered events goes with them in the same synchronous step, so `pending` never counts
   * them out twice.
   */
  private async removeHead(ref: BatchRef): Promise<void> {
    this.headDelivered = 0;
    await this.outbox.remove(ref);
  }

  /**
   * Events for the next request. One, as distribution sends them, while the queue keeps up; once
   * BATCH_BACKLOG events wait, up to `maxbatch` of the head batch go together (distribution's
   * envelope holds "one or more events"): at thousands of events a second a request per event
   * would cost the registry more CPU than the requests that caused them.
   */
  private batchSize(available: number): number {
    if (this.config.format === "cloudevents" || this.pending < BATCH_BACKLOG) return 1;
    return Math.min(available, this.config.maxBatch);
  }

  private overLimits(head: BatchRef): boolean {
    return this.pending > this.config.maxEvents || Date.now() - head.at > this.config.maxAgeMs;
  }

  /**
   * Drops the oldest events while more than `maxevents` wait (only as many as needed: the head
   * batch may lose part of its events) and whole batches whose events are past `maxage`.
   */
  private async dropBeyondLimits(): Promise<void> {
    let dropped = 0;
    let reason = "";
    try {
      for (;;) {
        const head = await this.outbox.head();
        if (head === undefined || !this.overLimits(head)) return;
        const excess = this.pending - this.config.maxEvents;
        const left = head.count - this.headDelivered;
        if (excess > 0 && excess < left && Date.now() - head.at <= this.config.maxAgeMs) {
          // Skipped like delivered ones: the rest of the batch is still sent.
          this.headDelivered += excess;
          this.status.dropped += excess;
          dropped += excess;
          reason = "maxevents";
          return;
        }
        reason = excess > 0 ? "maxevents" : "maxage";
        dropped += await this.drop(head);
      }
    } finally {
      if (dropped > 0) this.logDropped(dropped, reason);
    }
  }

  /** Removes a batch undelivered; resolves to the events it dropped. */
  private async drop(ref: BatchRef): Promise<number> {
    const dropped = ref.count - this.headDelivered;
    this.status.dropped += dropped;
    await this.removeHead(ref);
    return dropped;
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
