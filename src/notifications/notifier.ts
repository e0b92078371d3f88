import { randomUUID } from "node:crypto";
import type { EndpointConfig, EventAction, NotificationsConfig } from "../config/config.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import type { Logger } from "../log/logger.js";
import { EndpointDispatcher, type EndpointStatus } from "./endpoint-dispatcher.js";
import { EndpointOutbox } from "./endpoint-outbox.js";
import { NOTIFICATIONS_ROOT, endpointKey } from "./outbox-files.js";
import { EventFilter } from "./event-filter.js";
import { EventTargets } from "./event-targets.js";
import { adoptOrphanedOutboxes } from "./outbox-adoption.js";
import type { RegistryEvent, SourceRecord } from "./registry-event.js";
import { WebhookSender } from "./webhook-sender.js";

/** How often a node looks for outboxes of processes that are gone (a listing each time). */
const ADOPTION_INTERVAL_MS = 30_000;
const LOST_LOG_INTERVAL_MS = 10_000;

export interface NotifierOptions {
  config: NotificationsConfig;
  driver: StorageDriver;
  /** This process's lease id: its outboxes live under it. */
  nodeId: string;
  /** hostname:port, distribution's source.addr. */
  sourceAddr: string;
  log: Logger;
  /** How long close() keeps delivering (http.draintimeout). */
  drainMs: number;
}

interface Endpoint {
  config: EndpointConfig;
  filter: EventFilter;
  outbox: EndpointOutbox;
  dispatcher: EndpointDispatcher;
}

/** The events `endpoint` accepts. Most requests have one event: no array is made for it. */
function wantedBy(endpoint: Endpoint, events: RegistryEvent[]): RegistryEvent[] {
  if (events.length === 1) return endpoint.filter.accepts(events[0]!) ? events : [];
  return events.filter((event) => endpoint.filter.accepts(event));
}

/**
 * The notifications of one process: every endpoint's filter, outbox and dispatcher, and the search
 * for outboxes that processes which are gone left behind.
 */
export class Notifier {
  readonly source: SourceRecord;
  readonly includeReferences: boolean;
  /** The targets of this process's pull events, shared by the pulls of the same manifest or blob. */
  readonly targets = new EventTargets();
  private readonly endpoints: Endpoint[];
  private adoptionTimer: NodeJS.Timeout | undefined;
  private adopting: Promise<void> | undefined;
  private closed = false;
  private lostLoggedAt = 0;
  private lostSinceLog = 0;

  constructor(private readonly options: NotifierOptions) {
    this.source = { addr: options.sourceAddr, instanceID: randomUUID() };
    this.includeReferences = options.config.includeReferences;
    this.endpoints = options.config.endpoints.map((config) => {
      const outbox = new EndpointOutbox(options.driver, `${NOTIFICATIONS_ROOT}/${options.nodeId}/${endpointKey(config.name)}`, config.format);
      return {
        config,
        filter: new EventFilter(config),
        outbox,
        dispatcher: new EndpointDispatcher(config, outbox, new WebhookSender(config), options.log),
      };
    });
  }

  /** Whether some endpoint may want an event of `action` for a request with `method`: if not, none need be built. */
  wants(action: EventAction, method: string | undefined): boolean {
    for (const endpoint of this.endpoints) if (endpoint.filter.mayAccept(action, method)) return true;
    return false;
  }

  /**
   * Stores events in the outbox of every endpoint that wants them; resolves once they are stored.
   * `durable` waits for the disk (a change's events); pulls are written but not synced, which
   * survives a crash of the process, not of the machine.
   */
  record(events: RegistryEvent[], durable: boolean): Promise<unknown> {
    // One endpoint is the usual case: its append's promise is the answer, with no array made.
    if (this.endpoints.length === 1) return this.endpoints[0]!.outbox.append(wantedBy(this.endpoints[0]!, events), durable);
    const writes: Array<Promise<void>> = [];
    for (const endpoint of this.endpoints) {
      const wanted = wantedBy(endpoint, events);
      if (wanted.length > 0) writes.push(endpoint.outbox.append(wanted, durable));
    }
    return writes.length === 1 ? writes[0]! : Promise.all(writes);
  }

  /**
   * Events that could not be stored: counted as dropped where wanted, and logged at most once per
   * LOST_LOG_INTERVAL_MS with how many were lost since (storage that refuses writes, such as a
   * read-only registry's, would otherwise log once per pull).
   */
  lost(events: RegistryEvent[], err: unknown, served: boolean): void {
    for (const endpoint of this.endpoints) {
      endpoint.dispatcher.status.dropped += events.filter((event) => endpoint.filter.accepts(event)).length;
    }
    this.lostSinceLog += events.length;
    const now = Date.now();
    if (now - this.lostLoggedAt < LOST_LOG_INTERVAL_MS) return;
    this.options.log.error(
      { err, events: this.lostSinceLog, action: events[0]?.action, repository: events[0]?.target.repository },
      served ? "notification events could not be stored and are lost; the pull was served" : "notification events could not be stored; the request fails",
    );
    this.lostLoggedAt = now;
    this.lostSinceLog = 0;
  }

  /**
   * Endpoints whose outbox cannot be written (the last append failed, and a probe write still
   * does): changes are refused with 503 meanwhile, so readiness reports them.
   */
  async health(): Promise<Record<string, string>> {
    const problems: Record<string, string> = {};
    await Promise.all(
      this.endpoints.map(async ({ config, outbox }) => {
        if (outbox.writeError === undefined) return;
        await outbox.probeWritable();
        if (outbox.writeError !== undefined) problems[`notifications_${config.name}`] = `outbox cannot be written: ${outbox.writeError}`;
      }),
    );
    return problems;
  }

  status(): EndpointStatus[] {
    return this.endpoints.map((endpoint) => endpoint.dispatcher.snapshot());
  }

  start(): void {
    for (const endpoint of this.endpoints) endpoint.dispatcher.start();
    const adopt = (): void => {
      if (this.closed || this.adopting) return;
      const outboxes = new Map(this.endpoints.map((endpoint) => [endpointKey(endpoint.config.name), endpoint.outbox]));
      this.adopting = adoptOrphanedOutboxes(this.options.driver, this.options.nodeId, outboxes, this.options.log)
        .then(() => undefined)
        .catch((err: unknown) => this.options.log.error({ err }, "could not adopt the notification outboxes of gone processes; retrying later"))
        .finally(() => {
          this.adopting = undefined;
        });
    };
    adopt();
    this.adoptionTimer = setInterval(adopt, ADOPTION_INTERVAL_MS);
    this.adoptionTimer.unref();
  }

  /**
   * Delivers what it can within the drain time, then stops: what is left stays in the outbox for
   * the next process (this node's after a restart, or another node once this one's lease is gone).
   * An endpoint that is failing is not waited for.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.adoptionTimer) clearInterval(this.adoptionTimer);
    await this.adopting;
    const deadline = Date.now() + this.options.drainMs;
    while (Date.now() < deadline && this.endpoints.some((e) => e.dispatcher.pending > 0 && !e.dispatcher.failing)) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await Promise.all(this.endpoints.map((endpoint) => endpoint.dispatcher.close()));
    await Promise.all(this.endpoints.map((endpoint) => endpoint.outbox.close().catch((err: unknown) => this.options.log.warn({ err }, "notification outbox cursor not saved; some events may be delivered again"))));
    const left = this.endpoints.reduce((sum, endpoint) => sum + endpoint.dispatcher.pending, 0);
    if (left > 0) this.options.log.warn({ events: left }, "notification events left undelivered in the outbox at shutdown; they are delivered after a restart or by another node");
  }
}
