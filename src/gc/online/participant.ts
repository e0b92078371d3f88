import { performance } from "node:perf_hooks";
import type { StorageDriver } from "../../driver/storage-driver.js";
import type { Logger } from "../../log/logger.js";
import { Digest } from "../../reference/digest.js";
import { readLease } from "./collector-lease.js";
import { COLLECTOR_LEASE_PATH, ackPath, rescuePath } from "./gc-paths.js";
import { ObjectWatch } from "./object-watch.js";
import { digestOfItem, readRunList, readRunState, type RunState } from "./run-state.js";
import type { GcTiming } from "./timing.js";

/** What a participant enforces, as of its last read of the run state. */
export type ParticipantView =
  | { kind: "idle" }
  | { kind: "candidates"; runId: string; candidates: ReadonlySet<string> }
  | {
      kind: "doomed";
      runId: string;
      /** Blob digests whose data goes. */
      doomedBlobs: ReadonlySet<string>;
      /** "<repository>@<digest>" revision and layer links that go. */
      doomedItems: ReadonlySet<string>;
    };

/** A request's claim on the generation it started in (see `enter`). */
export interface Ticket {
  readonly generation: number;
  readonly view: ParticipantView;
}

const IDLE: ParticipantView = { kind: "idle" };

/**
 * A serving node's side of the protocol (docs/garbage-collection.md). It polls `/berth/gc/run`
 * (every idlePollMs, every activePollMs while a run is active), and for each new (run, phase):
 *
 * 1. switches the view requests see, starting a new generation;
 * 2. waits until every vouching request that entered an older generation has left;
 * 3. (phase doomed) lets listeners forget what is about to go (the blob descriptor cache);
 * 4. writes its ack, `/berth/gc/runs/<runId>/acks/<phase>/<nodeId>`.
 *
 * Requests `enter` (a counter increment: the whole cost when no run is active) and `leave`; while
 * the view is `candidates`, they `rescue` each candidate digest they vouch for before acting on it.
 * A run whose collector lease stays unchanged for T_expire on this node's clock is no longer
 * enforced (its collector has fenced itself). A node that has not read the run state for F_self is
 * `fenced()`: it refuses vouching writes, since a run may have started that it has not seen.
 */
export class GcParticipant {
  private view: ParticipantView = IDLE;
  private generation = 0;
  private currentTicket: Ticket = { generation: 0, view: IDLE };
  /** Requests in the current generation; older generations' counts are in olderInFlight. */
  private currentInFlight = 0;
  private readonly olderInFlight = new Map<number, number>();
  private drainWaiters: { below: number; resolve: () => void }[] = [];
  private changeWaiters: (() => void)[] = [];
  private lastReadStart = -Infinity;
  /** "<runId>/<phase>" of the view in force, and whether its ack is written. */
  private viewKey = "";
  private acked = true;
  private readonly abandoned = new Set<string>();
  private readonly collectorWatch: ObjectWatch;
  private readonly rescues = new Map<string, Promise<void>>();
  private readonly rescued = new Set<string>();
  private readonly doomedListeners: ((view: ParticipantView & { kind: "doomed" }) => Promise<void>)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private polling: Promise<void> | undefined;
  private acking: Promise<void> | undefined;

  constructor(
    private readonly driver: StorageDriver,
    readonly nodeId: string,
    private readonly timing: GcTiming,
    private readonly log: Pick<Logger, "info" | "warn" | "error">,
  ) {
    this.collectorWatch = new ObjectWatch(timing.leaseExpireMs);
  }

  /**
   * Reads the run state once, then keeps polling. Called after the serve lease is written and
   * before the server listens: a run that started before the lease appeared is seen before any
   * request is served (the collector waits for the acks of leases it sees; this covers the rest).
   */
  async start(): Promise<void> {
    await this.pollOnce().catch((err: unknown) => this.log.error({ err }, "online gc: cannot read the run state; vouching writes are refused until it can"));
    this.schedule();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.polling;
    for (const waiter of this.drainWaiters) waiter.resolve();
    await this.acking;
  }

  /**
   * The view a request starts in, counted until `leave`. Synchronous: the view and generation
   * agree. The hot path: one increment, no allocation (the ticket is shared by its generation).
   */
  enter(): Ticket {
    this.currentInFlight++;
    return this.currentTicket;
  }

  leave(ticket: Ticket): void {
    if (ticket === this.currentTicket) {
      this.currentInFlight--;
      return;
    }
    const left = (this.olderInFlight.get(ticket.generation) ?? 1) - 1;
    if (left > 0) {
      this.olderInFlight.set(ticket.generation, left);
      return;
    }
    this.olderInFlight.delete(ticket.generation);
    if (this.drainWaiters.length === 0) return;
    this.drainWaiters = this.drainWaiters.filter((waiter) => {
      if (this.oldestInFlight() < waiter.below) return true;
      waiter.resolve();
      return false;
    });
  }

  /** True when the run state has not been read for F_self: a run may be active that this node does not know. */
  fenced(): boolean {
    return performance.now() - this.lastReadStart > this.timing.participantFenceMs;
  }

  /** Whether `digest` (a blob, or `repository`'s link or revision of it) is about to be deleted in `view`. */
  isDoomed(view: ParticipantView, repository: string, digest: string): boolean {
    if (view.kind !== "doomed") return false;
    if (this.rescued.has(`${view.runId}/${digest}`)) return false;
    return view.doomedBlobs.has(digest) || view.doomedItems.has(`${repository}@${digest}`);
  }

  /**
   * Writes a rescue marker for each digest the ticket's view lists as a candidate, and resolves
   * once all are stored (each at most once per run and node). Nothing to do outside `candidates`.
   */
  async rescue(ticket: Ticket, digests: Iterable<string>): Promise<number> {
    const view = ticket.view;
    if (view.kind !== "candidates") return 0;
    const writes: Promise<void>[] = [];
    for (const digest of digests) {
      if (!view.candidates.has(digest)) continue;
      const key = `${view.runId}/${digest}`;
      let write = this.rescues.get(key);
      if (write === undefined) {
        const path = rescuePath(view.runId, Digest.parse(digest));
        write = this.driver.putContent(path, Buffer.from(`${this.nodeId}\n`)).then(
          () => void this.rescued.add(key),
          (err: unknown) => {
            this.rescues.delete(key);
            throw err;
          },
        );
        this.rescues.set(key, write);
      }
      writes.push(write);
    }
    await Promise.all(writes);
    return writes.length;
  }

  /** Resolves at the next change of view, or after `ms`. */
  waitForChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.changeWaiters.push(done);
    });
  }

  current(): ParticipantView {
    return this.view;
  }

  /** Called (and awaited) after older requests drained, before this node acks a doomed phase. */
  onDoomed(listener: (view: ParticipantView & { kind: "doomed" }) => Promise<void>): void {
    this.doomedListeners.push(listener);
  }

  private schedule(): void {
    if (this.closed) return;
    const delay = this.view.kind === "idle" ? this.timing.idlePollMs : this.timing.activePollMs;
    this.timer = setTimeout(() => {
      this.polling = this.pollOnce()
        .catch((err: unknown) => this.log.warn({ err }, "online gc: cannot read the run state"))
        .finally(() => {
          this.polling = undefined;
          this.schedule();
        });
    }, delay);
    this.timer.unref();
  }

  private async pollOnce(): Promise<void> {
    const started = performance.now();
    const state = await readRunState(this.driver);
    await this.follow(state);
    this.lastReadStart = started;
    // In the background: a long request of an older generation must not stop this node's polling.
    if (!this.acked && this.acking === undefined) {
      this.acking = this.ack()
        .catch((err: unknown) => this.log.warn({ err }, "online gc: cannot write the ack; retrying at the next poll"))
        .finally(() => (this.acking = undefined));
    }
  }

  private async follow(state: RunState | undefined): Promise<void> {
    if (state === undefined || state.phase === "done" || this.abandoned.has(state.runId)) {
      this.switchTo(IDLE, "");
      return;
    }
    const lease = await readLease(this.driver);
    this.collectorWatch.observe(`${COLLECTOR_LEASE_PATH}#${state.runId}`, lease === undefined ? undefined : JSON.stringify(lease));
    if (lease === undefined || this.collectorWatch.expired(`${COLLECTOR_LEASE_PATH}#${state.runId}`)) {
      this.abandoned.add(state.runId);
      this.log.warn({ runId: state.runId, phase: state.phase }, "online gc: the run's collector stopped renewing its lease; no longer enforcing the run");
      this.switchTo(IDLE, "");
      return;
    }
    const key = `${state.runId}/${state.phase}`;
    if (key === this.viewKey) return;
    if (state.phase === "candidates") {
      const list = await readRunList(this.driver, state.runId, "candidates");
      const candidates = new Set([...list.blobs, ...list.revisions.map(digestOfItem), ...list.layerLinks.map(digestOfItem)]);
      this.switchTo({ kind: "candidates", runId: state.runId, candidates }, key);
    } else {
      const list = await readRunList(this.driver, state.runId, "doomed");
      this.switchTo({ kind: "doomed", runId: state.runId, doomedBlobs: new Set(list.blobs), doomedItems: new Set([...list.revisions, ...list.layerLinks]) }, key);
    }
    this.log.info({ runId: state.runId, phase: state.phase, generation: this.generation }, `online gc: run ${state.runId} is in phase ${state.phase}`);
  }

  private switchTo(view: ParticipantView, key: string): void {
    if (key === this.viewKey && view.kind === this.view.kind) return;
    const runChanged = this.view.kind === "idle" || view.kind === "idle" || this.view.runId !== view.runId;
    if (runChanged) {
      this.rescues.clear();
      this.rescued.clear();
    }
    if (this.currentInFlight > 0) this.olderInFlight.set(this.generation, this.currentInFlight);
    this.currentInFlight = 0;
    this.view = view;
    this.viewKey = key;
    this.generation++;
    this.currentTicket = { generation: this.generation, view };
    this.acked = view.kind === "idle";
    const waiters = this.changeWaiters;
    this.changeWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Waits for the older generations to drain, runs the doomed listeners, writes the ack. */
  private async ack(): Promise<void> {
    const view = this.view;
    const generation = this.generation;
    if (view.kind === "idle") return;
    await this.drained(generation);
    if (view.kind === "doomed") for (const listener of this.doomedListeners) await listener(view);
    await this.driver.putContent(ackPath(view.runId, view.kind, this.nodeId), Buffer.from(`${generation}\n`), { durable: false });
    if (this.view === view) this.acked = true;
  }

  private oldestInFlight(): number {
    let oldest = this.currentInFlight > 0 ? this.generation : Infinity;
    for (const generation of this.olderInFlight.keys()) oldest = Math.min(oldest, generation);
    return oldest;
  }

  /** Resolves once no request that entered a generation below `generation` is still running. */
  private drained(generation: number): Promise<void> {
    if (this.oldestInFlight() >= generation) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push({ below: generation, resolve }));
  }
}
