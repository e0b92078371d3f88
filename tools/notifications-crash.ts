/**
 * Crash campaign for notifications: berth promises that after a `kill -9` at any moment and a
 * restart, every event of every request it acknowledged is delivered (at least once, with its
 * original id), and nothing else is.
 *
 *   npm run crash:notifications -- [--rounds N] [--quick] [--workers N] [--clients N] [--ops N] [--seed S]
 *                                   [--drain-timeout SECONDS]
 *
 * Each round, on a fresh filesystem root:
 *   1. a receiver (test/support/event-receiver.ts) and `berth serve` (test/support/berth-process.ts)
 *      with one endpoint pointing at it; in every other round the receiver goes down (answers 500
 *      or resets the connection) at a random moment before the kill and comes back after the restart;
 *   2. a few clients, each in its own repositories, run a bounded random workload: monolithic and
 *      chunked blob pushes, image pushes with a manifest put by tag, cross-repository mounts,
 *      manifest and blob GETs and HEADs, tag deletes, manifest deletes by digest, blob deletes;
 *      every request that should send an event is written in a ledger when it is sent (a candidate)
 *      and again when it was answered 2xx (acknowledged);
 *   3. berth gets SIGKILL (with --workers, every worker and the primary) once a random number of
 *      operations have started, after a further random 0–30 ms; a kill drawn past the end of the
 *      workload lands while berth is idle or still delivering;
 *   4. the events in the outboxes at that moment are read (`<root>/berth/notifications/…`), berth
 *      is started again on the same root, and the round waits until no outbox holds an undelivered event;
 *   5. the audit, by event key (action, repository, digest, tag, and the method for pulls, the
 *      source repository for mounts), counting distinct event ids:
 *      - missing:  acknowledged operations without a delivered event (must be 0);
 *      - invented: delivered events beyond the operations attempted with that key (must be 0);
 *      - lost from the outbox: an event id that was in an outbox at the kill and never arrived (must be 0);
 *      - duplicates: deliveries of an id already delivered (allowed: at least once).
 *   Events of requests in flight at the kill may or may not arrive: they are candidates only.
 *
 * Exits 1 when anything is missing, invented, lost, unreadable, or an outbox never drained.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startBerth, testConfig, type BerthProcess } from "../test/support/berth-process.js";
import { startEventReceiver, type ResponseMode } from "../test/support/event-receiver.js";
import { killBerth } from "../test/support/kill-berth.js";
import { readOutboxes } from "../test/support/outbox-on-disk.js";
import { seededRandom } from "../test/support/seeded-random.js";
import { OCI_MANIFEST, digestOf, randomImage, withQuery, type RequestOptions } from "../test/support/registry-client.js";
import { positiveInt, runIfMain } from "./campaign-cli.js";

export interface CampaignOptions {
  rounds: number;
  /** `berth serve --workers N`; 1 runs a single process. */
  workers: number;
  /** Concurrent clients per round. */
  clients: number;
  /** Event-producing requests per client per round, at most. */
  opsPerClient: number;
  seed: number;
  /** How long a round waits for the outboxes to drain before it is reported stuck. */
  drainTimeoutMs: number;
  /** Progress lines. */
  log: (line: string) => void;
}

export const DEFAULT_OPTIONS: CampaignOptions = {
  rounds: 200,
  workers: 1,
  clients: 3,
  opsPerClient: 25,
  seed: 0,
  drainTimeoutMs: 120_000,
  log: (line) => process.stderr.write(`${line}\n`),
};

/** What a round counts, and the campaign adds up over its rounds. */
const COUNTS = [
  "attempted",
  "acknowledged",
  /** Distinct event ids delivered. */
  "delivered",
  /** Accepted deliveries, duplicates included. */
  "deliveries",
  /** Events of operations not acknowledged (in flight at the kill) that were delivered anyway. */
  "deliveredUnacknowledged",
  /** Events found in the outboxes right after the kill. */
  "outboxAtKill",
  /** Complete outbox lines found right after the kill that are not events (must be 0: only a torn last line, never acknowledged, may be cut). */
  "unreadableAtKill",
  "missing",
  "invented",
  "lostFromOutbox",
  "duplicates",
] as const;

type Counts = Record<(typeof COUNTS)[number], number>;

interface Tallies {
  acknowledgedByAction: Record<string, number>;
  /** Operations not acknowledged, by why: "no answer (the kill)", or "<operation> answered <status>". */
  unacknowledged: Record<string, number>;
}

export interface CampaignSummary extends Counts, Tallies {
  rounds: number;
  /** Rounds whose receiver was down at the kill. */
  roundsReceiverDown: number;
  /** Rounds whose outboxes still held undelivered events after drainTimeoutMs. */
  stuckRounds: number;
  durationMs: number;
  /** What went wrong, one line each (the first 50). */
  problems: string[];
}

const MANIFEST_ACCEPT = [
  OCI_MANIFEST,
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

// --- event keys

/** What identifies an event of an operation: action, repository, digest, tag, and method (pulls) or source (mounts). */
function eventKey(action: string, repository: string, digest = "", tag = "", extra = ""): string {
  return `${action} ${repository} ${digest} ${tag} ${extra}`;
}

function keyOfDelivered(event: Record<string, unknown>): string {
  const target = (event.target ?? {}) as Record<string, unknown>;
  const request = (event.request ?? {}) as Record<string, unknown>;
  const str = (value: unknown): string => (typeof value === "string" ? value : "");
  const action = str(event.action);
  const extra = action === "pull" ? str(request.method) : action === "mount" ? str(target.fromRepository) : "";
  return eventKey(action, str(target.repository), str(target.digest), str(target.tag), extra);
}

/** Counts per event key: every operation sent (candidates) and every one answered 2xx. */
class Ledger {
  readonly attempted = new Map<string, number>();
  readonly acknowledged = new Map<string, number>();
  attempts = 0;
  acks = 0;
  readonly acksByAction: Record<string, number> = {};
  /** Operations not acknowledged, by why: no answer, or the status they got instead. */
  readonly unacknowledged: Record<string, number> = {};

  otherwise(why: string): void {
    this.unacknowledged[why] = (this.unacknowledged[why] ?? 0) + 1;
  }

  attempt(keys: string[]): void {
    this.attempts++;
    for (const key of keys) this.attempted.set(key, (this.attempted.get(key) ?? 0) + 1);
  }

  acknowledge(keys: string[]): void {
    this.acks++;
    for (const key of keys) {
      this.acknowledged.set(key, (this.acknowledged.get(key) ?? 0) + 1);
      const action = key.slice(0, key.indexOf(" "));
      this.acksByAction[action] = (this.acksByAction[action] ?? 0) + 1;
    }
  }
}

// --- one round

interface RepoState {
  name: string;
  blobs: string[];
  /** manifest digest → the tags put on it (acknowledged, not deleted) */
  manifests: Map<string, Set<string>>;
  /** tag → manifest digest */
  tags: Map<string, string>;
}

interface Round {
  /** From 1, as the progress lines and problems name it. */
  index: number;
  url: string;
  random: () => number;
  ledger: Ledger;
  /** Blobs acknowledged in some repository (and not deleted by its client): mount sources. */
  shared: Array<{ repository: string; digest: string }>;
  killed: boolean;
  started: number;
  killAt: number;
  downAt: number;
  onKillPoint: () => void;
}

/** A request whose status counts once it arrives; a body cut by the kill does not undo it. */
async function request(url: string, init: RequestOptions): Promise<{ status: number; headers: Headers }> {
  const response = await fetch(url, { redirect: "manual", ...(init as RequestInit) });
  try {
    await response.arrayBuffer();
  } catch {
    // the connection died mid-body: the status was seen all the same
  }
  return { status: response.status, headers: response.headers };
}

function pick<T>(random: () => number, items: readonly T[]): T | undefined {
  return items.length === 0 ? undefined : items[Math.floor(random() * items.length)];
}

class Client {
  private readonly repos: RepoState[];
  private tagCounter = 0;
  /** Event-producing requests sent so far. */
  private performed = 0;

  constructor(
    private readonly round: Round,
    id: number,
  ) {
    this.repos = ["a", "b"].map((suffix) => ({ name: `crash/r${round.index}/c${id}/${suffix}`, blobs: [], manifests: new Map(), tags: new Map() }));
  }

  async run(ops: number): Promise<void> {
    const round = this.round;
    while (!round.killed && this.performed < ops) {
      const repo = pick(round.random, this.repos)!;
      const choice = round.random();
      try {
        if (choice < 0.14) await this.pushBlob(repo, false);
        else if (choice < 0.24) await this.pushBlob(repo, true);
        else if (choice < 0.4) await this.pushImage(repo);
        else if (choice < 0.5) await this.mount(repo);
        else if (choice < 0.64) await this.getBlob(repo);
        else if (choice < 0.8) await this.getManifest(repo);
        else if (choice < 0.88) await this.deleteTag(repo);
        else if (choice < 0.95) await this.deleteManifest(repo);
        else await this.deleteBlob(repo);
      } catch {
        // a request that failed without an answer (the kill): its candidates are written already
      }
    }
  }

  /**
   * Runs one event-producing request: its events are candidates once it is sent, owed once it is
   * answered `expected`. `send` resolves to the status, or rejects when no answer came (the kill).
   */
  private async attempt(what: string, keys: string[], expected: number, send: () => Promise<number>): Promise<boolean> {
    const round = this.round;
    if (round.killed) return false;
    this.performed++;
    round.started++;
    round.onKillPoint();
    round.ledger.attempt(keys);
    let status: number | undefined;
    try {
      status = await send();
    } catch {
      status = undefined;
    }
    if (status === expected) round.ledger.acknowledge(keys);
    else round.ledger.otherwise(status === undefined ? "no answer (the kill)" : `${what} answered ${status}`);
    return status === expected;
  }

  private url(path: string): string {
    return this.round.url + path;
  }

  private async pushBlob(repo: RepoState, chunked: boolean, bytes: Buffer = randomBytes(1 + Math.floor(this.round.random() * 4096))): Promise<string | undefined> {
    const digest = digestOf(bytes);
    const keys = [eventKey("push", repo.name, digest)];
    let ok: boolean;
    if (!chunked) {
      ok = await this.attempt("monolithic blob push", keys, 201, async () => {
        const res = await request(this.url(`/v2/${repo.name}/blobs/uploads/?digest=${digest}`), {
          method: "POST",
          headers: { "Content-Type": "application/octet-stream" },
          body: bytes,
        });
        return res.status;
      });
    } else {
      // POST and PATCH send no event; only the PUT that completes the upload does.
      if (this.round.killed) return undefined;
      const started = await request(this.url(`/v2/${repo.name}/blobs/uploads/`), { method: "POST" });
      let location = started.headers.get("location");
      if (started.status !== 202 || !location) return undefined;
      const half = Math.ceil(bytes.length / 2);
      for (const [offset, chunk] of [[0, bytes.subarray(0, half)], [half, bytes.subarray(half)]] as const) {
        if (chunk.length === 0) continue;
        if (this.round.killed) return undefined;
        const patched = await request(new URL(location, this.round.url).toString(), {
          method: "PATCH",
          headers: { "Content-Type": "application/octet-stream", "Content-Range": `${offset}-${offset + chunk.length - 1}`, "Content-Length": String(chunk.length) },
          body: chunk,
        });
        location = patched.headers.get("location");
        if (patched.status !== 202 || !location) return undefined;
      }
      const finalURL = withQuery(new URL(location, this.round.url).toString(), { digest });
      ok = await this.attempt("chunked blob push", keys, 201, async () => (await request(finalURL, { method: "PUT" })).status);
    }
    if (!ok) return undefined;
    repo.blobs.push(digest);
    this.round.shared.push({ repository: repo.name, digest });
    return digest;
  }

  private async pushImage(repo: RepoState): Promise<void> {
    const image = randomImage({ layers: 1, layerSize: 1 + Math.floor(this.round.random() * 2048) });
    if ((await this.pushBlob(repo, this.round.random() < 0.5, image.config)) === undefined) return;
    if ((await this.pushBlob(repo, this.round.random() < 0.5, image.layers[0]!)) === undefined) return;
    const tag = `t${++this.tagCounter}`;
    const ok = await this.attempt("manifest put by tag", [eventKey("push", repo.name, image.digest, tag)], 201, async () => {
      const res = await request(this.url(`/v2/${repo.name}/manifests/${tag}`), {
        method: "PUT",
        headers: { "Content-Type": image.mediaType },
        body: image.bytes,
      });
      return res.status;
    });
    if (!ok) return;
    repo.manifests.set(image.digest, new Set([tag]));
    repo.tags.set(tag, image.digest);
  }

  private async mount(repo: RepoState): Promise<void> {
    const source = pick(this.round.random, this.round.shared.filter((blob) => blob.repository !== repo.name));
    if (source === undefined) return this.pushBlob(repo, false).then(() => undefined);
    const keys = [eventKey("mount", repo.name, source.digest, "", source.repository)];
    // 202: the source no longer has it (deleted meanwhile), an upload was started instead: no event.
    const ok = await this.attempt("mount", keys, 201, async () => {
      return (await request(this.url(`/v2/${repo.name}/blobs/uploads/?mount=${source.digest}&from=${source.repository}`), { method: "POST" })).status;
    });
    if (ok) repo.blobs.push(source.digest);
  }

  private async getBlob(repo: RepoState): Promise<void> {
    const digest = pick(this.round.random, repo.blobs);
    if (digest === undefined) return;
    const method = this.round.random() < 0.7 ? "GET" : "HEAD";
    await this.attempt(`blob ${method}`, [eventKey("pull", repo.name, digest, "", method)], 200, async () => {
      return (await request(this.url(`/v2/${repo.name}/blobs/${digest}`), { method })).status;
    });
  }

  private async getManifest(repo: RepoState): Promise<void> {
    const byTag = this.round.random() < 0.5 && repo.tags.size > 0;
    const tag = byTag ? pick(this.round.random, [...repo.tags.keys()]) : undefined;
    const digest = tag !== undefined ? repo.tags.get(tag) : pick(this.round.random, [...repo.manifests.keys()]);
    if (digest === undefined) return;
    const method = this.round.random() < 0.7 ? "GET" : "HEAD";
    await this.attempt(`manifest ${method}`, [eventKey("pull", repo.name, digest, tag ?? "", method)], 200, async () => {
      return (await request(this.url(`/v2/${repo.name}/manifests/${tag ?? digest}`), { method, headers: { Accept: MANIFEST_ACCEPT } })).status;
    });
  }

  private async deleteTag(repo: RepoState): Promise<void> {
    const tag = pick(this.round.random, [...repo.tags.keys()]);
    if (tag === undefined) return;
    // Forgotten before it is sent: whatever the answer, nothing here relies on the tag again.
    repo.manifests.get(repo.tags.get(tag)!)?.delete(tag);
    repo.tags.delete(tag);
    await this.attempt("tag delete", [eventKey("delete", repo.name, "", tag)], 202, async () => {
      return (await request(this.url(`/v2/${repo.name}/manifests/${tag}`), { method: "DELETE" })).status;
    });
  }

  private async deleteManifest(repo: RepoState): Promise<void> {
    const digest = pick(this.round.random, [...repo.manifests.keys()]);
    if (digest === undefined) return;
    const tags = [...repo.manifests.get(digest)!];
    repo.manifests.delete(digest);
    for (const tag of tags) repo.tags.delete(tag);
    // The manifest's delete, then one per tag that pointed at it: only this client writes here.
    const keys = [eventKey("delete", repo.name, digest), ...tags.map((tag) => eventKey("delete", repo.name, "", tag))];
    await this.attempt("manifest delete", keys, 202, async () => {
      return (await request(this.url(`/v2/${repo.name}/manifests/${digest}`), { method: "DELETE" })).status;
    });
  }

  private async deleteBlob(repo: RepoState): Promise<void> {
    const digest = pick(this.round.random, repo.blobs);
    if (digest === undefined) return;
    repo.blobs = repo.blobs.filter((d) => d !== digest);
    this.round.shared = this.round.shared.filter((blob) => !(blob.repository === repo.name && blob.digest === digest));
    await this.attempt("blob delete", [eventKey("delete", repo.name, digest)], 202, async () => {
      return (await request(this.url(`/v2/${repo.name}/blobs/${digest}`), { method: "DELETE" })).status;
    });
  }
}

// --- the berth process

function berthConfig(receiverURL: string): string {
  return testConfig({
    sections: [
      "notifications:",
      "  endpoints:",
      "    - name: crash",
      `      url: ${receiverURL}`,
      "      timeout: 1s",
      "      threshold: 3",
      "      backoff: 50ms",
    ].join("\n"),
  });
}

async function startNode(root: string, receiverURL: string, workers: number): Promise<BerthProcess> {
  return startBerth({ configYaml: berthConfig(receiverURL), root, args: workers > 1 ? ["--workers", String(workers)] : [] });
}

// --- the outboxes in storage

/**
 * Event ids stored in the outboxes (delivered ones included), how many of them are not yet marked
 * delivered, and complete lines that are not events (must be 0: a kill can only cut the last line,
 * which was never acknowledged and is not counted).
 */
async function outboxEventIds(root: string, problems: string[]): Promise<{ ids: string[]; undelivered: number; unreadable: number }> {
  const ids: string[] = [];
  let undelivered = 0;
  let unreadable = 0;
  for (const outbox of await readOutboxes(root)) {
    ids.push(...outbox.events.map((event) => event.id));
    undelivered += outbox.undelivered.length;
    unreadable += outbox.unreadable;
    if (outbox.unreadable > 0) problems.push(`outbox ${outbox.dir}: ${outbox.unreadable} unreadable events`);
  }
  return { ids, undelivered, unreadable };
}

// --- the campaign

interface RoundResult extends Counts, Tallies {
  receiverDown: boolean;
  stuck: boolean;
  problems: string[];
}

async function runRound(index: number, options: CampaignOptions, random: () => number): Promise<RoundResult> {
  /** As the progress lines count rounds: from 1. */
  const label = index + 1;
  const receiverDown = index % 2 === 1;
  const root = await mkdtemp(join(tmpdir(), "berth-crash-"));
  const receiver = await startEventReceiver();
  const problems: string[] = [];
  let berth: BerthProcess | undefined;
  let restarted: BerthProcess | undefined;
  try {
    berth = await startNode(root, receiver.url, options.workers);
    const total = options.clients * options.opsPerClient;
    // Up to a tenth past the end of the workload: killed while idle, or delivering a backlog.
    const killAt = 1 + Math.floor(random() * Math.ceil(total * 1.1));
    const downMode: ResponseMode = random() < 0.5 ? { status: 500 } : "reset";
    const round: Round = {
      index: label,
      url: berth.url,
      random,
      ledger: new Ledger(),
      shared: [],
      killed: false,
      started: 0,
      killAt,
      downAt: receiverDown ? Math.floor(random() * killAt) : Number.POSITIVE_INFINITY,
      onKillPoint: () => undefined,
    };
    if (receiverDown && round.downAt === 0) receiver.respondWith(downMode);
    let killing: Promise<void> | undefined;
    const kill = (): Promise<void> =>
      (killing ??= (async () => {
        round.killed = true;
        await killBerth(berth!, options.workers);
      })());
    const killDelay = Math.floor(random() * 31);
    round.onKillPoint = () => {
      if (round.started === round.downAt) receiver.respondWith(downMode);
      if (round.started === round.killAt) setTimeout(() => void kill(), killDelay);
    };
    const clients = Array.from({ length: options.clients }, (_, id) => new Client(round, id));
    await Promise.all(clients.map((client) => client.run(options.opsPerClient)));
    if (!round.killed && killing === undefined) {
      if (receiverDown && round.started < round.downAt) receiver.respondWith(downMode);
      await new Promise((resolve) => setTimeout(resolve, killDelay + Math.floor(random() * 100)));
    }
    await kill();

    const { ids: atKill, unreadable } = await outboxEventIds(root, problems);
    restarted = await startNode(root, receiver.url, options.workers);
    if (receiverDown) {
      await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 300)));
      receiver.respondWith("ok");
    }
    // An event leaves an outbox (its segment deleted, or the cursor past it) only after it was
    // accepted or adopted into another outbox: none left means everything stored was delivered.
    const deadline = Date.now() + options.drainTimeoutMs;
    let left = (await outboxEventIds(root, [])).undelivered;
    while (left > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      left = (await outboxEventIds(root, [])).undelivered;
    }
    const stuck = left > 0;
    if (stuck) problems.push(`round ${label}: ${left} outbox events undelivered after ${options.drainTimeoutMs} ms`);
    await restarted.stop();
    restarted = undefined;

    // The audit.
    const events = receiver.events();
    const byId = new Map<string, Record<string, unknown>>();
    let duplicates = 0;
    for (const event of events) {
      const id = String(event.id);
      if (byId.has(id)) duplicates++;
      else byId.set(id, event);
    }
    const deliveredByKey = new Map<string, number>();
    for (const event of byId.values()) {
      const key = keyOfDelivered(event);
      deliveredByKey.set(key, (deliveredByKey.get(key) ?? 0) + 1);
    }
    const { ledger } = round;
    let missing = 0;
    for (const [key, count] of ledger.acknowledged) {
      const got = deliveredByKey.get(key) ?? 0;
      if (got < count) {
        missing += count - got;
        problems.push(`round ${label}: missing ${count - got} × ${key} (acknowledged ${count}, delivered ${got})`);
      }
    }
    let invented = 0;
    let deliveredUnacknowledged = 0;
    for (const [key, count] of deliveredByKey) {
      const allowed = ledger.attempted.get(key) ?? 0;
      if (count > allowed) {
        invented += count - allowed;
        problems.push(`round ${label}: invented ${count - allowed} × ${key} (attempted ${allowed}, delivered ${count})`);
      }
      deliveredUnacknowledged += Math.max(0, Math.min(count, allowed) - (ledger.acknowledged.get(key) ?? 0));
    }
    let lostFromOutbox = 0;
    for (const id of new Set(atKill)) {
      if (!byId.has(id)) {
        lostFromOutbox++;
        if (lostFromOutbox <= 3) problems.push(`round ${label}: event ${id} was in an outbox at the kill and was never delivered`);
      }
    }
    if (problems.length > 0) problems.push(`round ${label}: berth log (tail):\n${berth.log().slice(-2000)}`);
    return {
      receiverDown,
      attempted: ledger.attempts,
      acknowledged: ledger.acks,
      acknowledgedByAction: ledger.acksByAction,
      unacknowledged: ledger.unacknowledged,
      delivered: byId.size,
      deliveries: events.length,
      deliveredUnacknowledged,
      outboxAtKill: atKill.length,
      unreadableAtKill: unreadable,
      missing,
      invented,
      lostFromOutbox,
      duplicates,
      stuck,
      problems,
    };
  } finally {
    await restarted?.stop("SIGKILL");
    if (berth && berth.child.exitCode === null && berth.child.signalCode === null) await killBerth(berth, options.workers);
    await receiver.close();
    await rm(root, { recursive: true, force: true });
  }
}

export async function runCampaign(partial: Partial<CampaignOptions> = {}): Promise<CampaignSummary> {
  const options: CampaignOptions = { ...DEFAULT_OPTIONS, ...partial };
  const started = Date.now();
  const summary: CampaignSummary = {
    ...(Object.fromEntries(COUNTS.map((key) => [key, 0])) as Counts),
    rounds: 0,
    roundsReceiverDown: 0,
    acknowledgedByAction: {},
    unacknowledged: {},
    stuckRounds: 0,
    durationMs: 0,
    problems: [],
  };
  const random = seededRandom(options.seed);
  for (let index = 0; index < options.rounds; index++) {
    const result = await runRound(index, options, random);
    summary.rounds++;
    if (result.receiverDown) summary.roundsReceiverDown++;
    for (const key of COUNTS) summary[key] += result[key];
    for (const tally of ["acknowledgedByAction", "unacknowledged"] as const) {
      for (const [what, count] of Object.entries(result[tally])) summary[tally][what] = (summary[tally][what] ?? 0) + count;
    }
    if (result.stuck) summary.stuckRounds++;
    for (const problem of result.problems) if (summary.problems.length < 50) summary.problems.push(problem);
    const bad = result.missing + result.invented + result.lostFromOutbox + result.unreadableAtKill > 0 || result.stuck;
    if (bad || (index + 1) % 10 === 0 || index + 1 === options.rounds) {
      options.log(
        `round ${index + 1}/${options.rounds}${result.receiverDown ? " (receiver down at the kill)" : ""}: ` +
          `${result.acknowledged} acknowledged, ${result.delivered} delivered, ${result.outboxAtKill} in the outbox at the kill, ` +
          `missing ${result.missing}, invented ${result.invented}, lost ${result.lostFromOutbox}, duplicates ${result.duplicates}` +
          `${result.stuck ? ", STUCK" : ""} — ${((Date.now() - started) / 1000).toFixed(1)} s so far`,
      );
    }
  }
  summary.durationMs = Date.now() - started;
  return summary;
}

export function failed(summary: CampaignSummary): boolean {
  return summary.missing > 0 || summary.invented > 0 || summary.lostFromOutbox > 0 || summary.unreadableAtKill > 0 || summary.stuckRounds > 0;
}

export function formatSummary(summary: CampaignSummary, options: Pick<CampaignOptions, "workers" | "clients" | "opsPerClient" | "seed">): string {
  const n = (value: number): string => value.toLocaleString("en-US").padStart(9);
  const byAction = Object.entries(summary.acknowledgedByAction)
    .sort()
    .map(([action, count]) => `${action} ${count}`)
    .join(", ");
  const unacknowledged = Object.entries(summary.unacknowledged)
    .sort((a, b) => b[1] - a[1])
    .map(([why, count]) => `${why}: ${count}`)
    .join(", ");
  return [
    `notifications crash campaign: ${summary.rounds} rounds (${summary.roundsReceiverDown} with the receiver down at the kill), ` +
      `${options.clients} clients × ${options.opsPerClient} operations, ${options.workers === 1 ? "one process" : `${options.workers} workers`}, seed ${options.seed}`,
    `  operations attempted       ${n(summary.attempted)}`,
    `  operations acknowledged    ${n(summary.acknowledged)}   (events they owe: ${byAction})`,
    `  not acknowledged           ${n(summary.attempted - summary.acknowledged)}   (${unacknowledged || "none"})`,
    `  events delivered           ${n(summary.delivered)}   distinct ids, ${summary.deliveries} accepted deliveries; ${summary.deliveredUnacknowledged} of requests in flight at the kill`,
    `  in an outbox at the kill   ${n(summary.outboxAtKill)}   events; ${summary.unreadableAtKill} unreadable (must be 0)`,
    `  missing                    ${n(summary.missing)}   (must be 0)`,
    `  invented                   ${n(summary.invented)}   (must be 0)`,
    `  lost from the outbox       ${n(summary.lostFromOutbox)}   (must be 0)`,
    `  rounds never drained       ${n(summary.stuckRounds)}   (must be 0)`,
    `  duplicates                 ${n(summary.duplicates)}   (an id delivered again; allowed)`,
    `  time                       ${(summary.durationMs / 1000).toFixed(1).padStart(9)} s`,
    ...(summary.problems.length > 0 ? ["problems:", ...summary.problems.map((p) => `  ${p}`)] : []),
  ].join("\n");
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string" },
      quick: { type: "boolean" },
      workers: { type: "string" },
      clients: { type: "string" },
      ops: { type: "string" },
      seed: { type: "string" },
      "drain-timeout": { type: "string" },
    },
  });
  const options: CampaignOptions = {
    ...DEFAULT_OPTIONS,
    rounds: positiveInt(values.rounds, "rounds", values.quick ? 5 : DEFAULT_OPTIONS.rounds),
    workers: positiveInt(values.workers, "workers", 1),
    clients: positiveInt(values.clients, "clients", DEFAULT_OPTIONS.clients),
    opsPerClient: positiveInt(values.ops, "ops", DEFAULT_OPTIONS.opsPerClient),
    seed: values.seed === undefined ? randomBytes(4).readUInt32BE() : positiveInt(values.seed, "seed", 0),
    drainTimeoutMs: positiveInt(values["drain-timeout"], "drain-timeout", DEFAULT_OPTIONS.drainTimeoutMs / 1000) * 1000,
  };
  options.log(`notifications crash campaign: ${options.rounds} rounds, seed ${options.seed}`);
  const summary = await runCampaign(options);
  process.stdout.write(`${formatSummary(summary, options)}\n`);
  return failed(summary) ? 1 : 0;
}

runIfMain(import.meta.url, main);
