/**
 * Crash campaign for pushes: berth promises that a push it acknowledged survives a `kill -9` at
 * any moment, that nothing is ever served under a digest its bytes do not have, that no partial
 * file is taken for a blob, manifest, tag or link, and that an upload in progress either resumes
 * or answers a clear error.
 *
 *   npm run crash:push -- [--rounds N] [--driver filesystem|s3] [--workers N] [--clients N] [--ops N]
 *                         [--seed S] [--quick] [--power-loss]
 *
 * One storage for the whole run (a filesystem root, a prefix of a bucket on Ceph, or with
 * --power-loss an ext4 image on a loop device), so that state accumulates over the rounds. Each round:
 *   1. a few clients, each with two repositories of its own for the whole run, run a bounded random
 *      workload: monolithic (POST + PUT ?digest), chunked (PATCH with Content-Range, the last piece
 *      sometimes in the PUT) and single-shot (POST ?digest=) blob pushes, cross-repository mounts,
 *      images with a manifest put by tag or by digest, tag moves, tag deletes, manifest deletes,
 *      blob deletes, and uploads left half-way. The ledger (push-crash/ledger.ts) writes down each
 *      operation when it is sent (a candidate) and what it answered (acknowledged when 2xx);
 *   2. berth gets SIGKILL (with --workers, every worker and the primary) once a random number of
 *      requests have been sent, after a further random 0–30 ms; a kill drawn past the end of the
 *      workload lands while berth is idle. With --power-loss the disk then loses what was not
 *      synced (test/support/power-cut.ts), and the round checks the cut really dropped something;
 *   3. berth starts again on the same storage, and the audit runs (push-crash/audit.ts,
 *      push-crash/storage-audit.ts): interrupted and half-way uploads are resumed; every key of
 *      every round so far is served as the ledger says (or as one of its in-flight candidates
 *      would have left it), correctly, HEAD agreeing with GET; every blob data file in storage
 *      hashes to its path and every link names stored data.
 *   The restarted berth serves the next round.
 *
 * Exits 1 on any violation (and on a power cut that did not prove itself), 2 when the harness fails.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startBerth, testConfig, type BerthProcess } from "../test/support/berth-process.js";
import { s3DriverConfig, startCephS3, type CephS3 } from "../test/support/ceph-s3.js";
import { killBerth } from "../test/support/kill-berth.js";
import { createPowerCutDisk, type CutReport } from "../test/support/power-cut.js";
import { seededRandom } from "../test/support/seeded-random.js";
import { auditRegistry, type AuditCounts } from "./push-crash/audit.js";
import { Ledger } from "./push-crash/ledger.js";
import { auditStorage, filesystemTree, newStorageAuditMemory, s3Tree, type StorageAuditMemory, type StorageCounts, type StorageTree } from "./push-crash/storage-audit.js";
import { Client, type WorkloadRound } from "./push-crash/workload.js";
import { positiveInt, runIfMain } from "./campaign-cli.js";

export type DriverName = "filesystem" | "s3";

export interface CampaignOptions {
  rounds: number;
  driver: DriverName;
  /** `berth serve --workers N`; 1 runs a single process. */
  workers: number;
  /** Concurrent clients per round. */
  clients: number;
  /** Operations per client per round, at most. */
  opsPerClient: number;
  seed: number;
  /** Filesystem only: each kill is also a power cut that drops unsynced writes. */
  powerLoss: boolean;
  /** A Ceph server to use (S3); the campaign starts its own when none is given. */
  s3?: CephS3;
  /** Progress lines. */
  log: (line: string) => void;
}

export const DEFAULT_OPTIONS: CampaignOptions = {
  rounds: 200,
  driver: "filesystem",
  workers: 1,
  clients: 3,
  opsPerClient: 15,
  seed: 0,
  powerLoss: false,
  log: (line) => process.stderr.write(`${line}\n`),
};

/** What a round counts, and the campaign adds up over its rounds. */
const COUNTS = [
  /** Operations sent (a chunked push is one operation: the PUT that completes it). */
  "sent",
  "acknowledged",
  /** Answered 4xx: nothing happened (a mount whose source was deleted meanwhile, …). */
  "refused",
  /** No answer: in flight at the kill. */
  "unanswered",
  /** Answered 5xx during the workload. */
  "serverErrors",
  /** 5xx, or a refusal of a request the ledger says was valid: violations. */
  "unexpectedAnswers",
  /** Uploads handed to the audit (left half-way, or cut by the kill). */
  "openUploads",
  "uploadsResumed",
  "uploadsUnknown",
  "blobsServed",
  "blobsHeadOnly",
  "manifestsServed",
  "tagsResolved",
  "absent",
  "settled",
  "revertedDeletes",
  "dataHashed",
  "auditViolations",
  "storageViolations",
  /** Power cuts whose canaries did not show unsynced writes dropped and synced ones kept. */
  "cutsUnproven",
  /** Kills that landed after the workload had finished. */
  "idleKills",
] as const;

type Counts = Record<(typeof COUNTS)[number], number>;

export interface CampaignSummary extends Counts {
  rounds: number;
  kills: number;
  /** The storage at the end: files the last audit saw. */
  dataFiles: number;
  links: number;
  tempFiles: number;
  uploadFiles: number;
  /** Acknowledged operations by what they were. */
  acknowledgedByKind: Record<string, number>;
  durationMs: number;
  /** Restart times (SIGKILL to listening again), median and maximum. */
  restartMedianMs: number;
  restartMaxMs: number;
  /** What went wrong, one line each (the first 50). */
  problems: string[];
  /** Where the storage was kept for a look, when something was wrong (filesystem). */
  keptStorage?: string;
}

// --- the storage of a run

interface CampaignStorage {
  /** The driver's lines under `storage:` (testConfig). */
  driverConfig: string;
  /** The filesystem root, when there is one. */
  root: string | undefined;
  tree: StorageTree;
  /** What the machine's death does to storage besides the kill: a power cut, or nothing. */
  afterKill(): Promise<CutReport | undefined>;
  /** Removes the storage, or keeps it and says where. */
  close(keep: boolean): Promise<string | undefined>;
}

async function filesystemStorage(): Promise<CampaignStorage> {
  const work = await mkdtemp(join(tmpdir(), "berth-push-crash-"));
  const root = join(work, "data");
  return {
    driverConfig: `  filesystem:\n    rootdirectory: ${root}`,
    root,
    tree: filesystemTree(root),
    afterKill: async () => undefined,
    async close(keep) {
      if (keep) return root;
      await rm(work, { recursive: true, force: true });
      return undefined;
    },
  };
}

async function powerLossStorage(): Promise<CampaignStorage> {
  const disk = await createPowerCutDisk();
  const root = join(disk.mountpoint, "registry");
  return {
    driverConfig: `  filesystem:\n    rootdirectory: ${root}`,
    root,
    tree: filesystemTree(root),
    afterKill: () => disk.cut(),
    async close() {
      // The image lives on a loop device the campaign must not leave attached.
      await disk.close();
      return undefined;
    },
  };
}

async function s3Storage(given: CephS3 | undefined): Promise<CampaignStorage> {
  const s3 = given ?? (await startCephS3());
  const rootdirectory = `/push-crash-${randomBytes(4).toString("hex")}`;
  const client = s3.client();
  return {
    driverConfig: s3DriverConfig(s3, rootdirectory),
    root: undefined,
    tree: s3Tree(client, s3.bucket, rootdirectory),
    afterKill: async () => undefined,
    async close(keep) {
      client.destroy();
      // A cluster the campaign started goes with it (its watchdog would stop it at exit anyway);
      // a given one keeps the prefix.
      if (given === undefined) await s3.stop();
      return keep && given !== undefined ? `bucket ${s3.bucket}, prefix ${rootdirectory}` : undefined;
    },
  };
}

// --- the berth process

/**
 * The upload purging age, which is also the age past which the maintenance pass removes hidden
 * temporary entries. Short enough that entries from earlier rounds pass it during a run, long
 * enough that no upload the audit resumes (in the round that left it) is purged or its token
 * refused on the way.
 */
const MAINTENANCE_AGE_S = 120;
/** The maintenance pass runs this often, and first within this long of a start. */
const MAINTENANCE_INTERVAL = "1s";
/** What berth logs at the end of each maintenance pass on the filesystem (src/cli/serve.ts). */
const MAINTENANCE_DONE = /removed stale temporary files/;

async function startNode(storage: CampaignStorage, workers: number): Promise<BerthProcess> {
  // Redirects off: every byte the audit checks comes through berth.
  const configYaml = testConfig({
    driver: storage.driverConfig,
    storage:
      "  redirect:\n    disable: true\n  maintenance:\n    uploadpurging:\n" +
      `      enabled: true\n      age: ${MAINTENANCE_AGE_S}s\n      interval: ${MAINTENANCE_INTERVAL}\n      dryrun: false`,
  });
  return startBerth({ configYaml, args: workers > 1 ? ["--workers", String(workers)] : [], cleanup: true });
}

/** Resolves once the restarted berth has finished a maintenance pass; false after `timeoutMs`. */
async function maintenancePassDone(berth: BerthProcess, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    if (MAINTENANCE_DONE.test(berth.log())) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return MAINTENANCE_DONE.test(berth.log());
}

function alive(berth: BerthProcess): boolean {
  return berth.child.exitCode === null && berth.child.signalCode === null;
}

// --- one round

interface RoundResult extends Counts {
  acknowledgedByKind: Record<string, number>;
  storage: StorageCounts;
  restartMs: number;
  /** From the first request to the kill. */
  workloadMs: number;
  /** Both audits, uploads resumed included. */
  auditMs: number;
  cut: CutReport | undefined;
  problems: string[];
  berth: BerthProcess;
}

/** Requests an operation sends on average (a chunked image push sends many, a delete one). */
const REQUESTS_PER_OPERATION = 2;

async function runRound(index: number, berth: BerthProcess, ledger: Ledger, storage: CampaignStorage, memory: StorageAuditMemory, options: CampaignOptions, random: () => number): Promise<RoundResult> {
  const label = index + 1;
  const problems: string[] = [];
  const expectedRequests = options.clients * options.opsPerClient * REQUESTS_PER_OPERATION;
  // Up to a tenth past the end of the workload: killed while idle.
  const killAt = 1 + Math.floor(random() * Math.ceil(expectedRequests * 1.1));
  const killDelay = Math.floor(random() * 31);
  let sent = 0;
  let killing: Promise<void> | undefined;
  const round: WorkloadRound = {
    index: label,
    url: berth.url,
    random,
    ledger,
    killed: false,
    onRequest: () => {
      if (++sent === killAt) setTimeout(() => void kill(), killDelay);
    },
    problems,
    unexpectedAnswers: 0,
  };
  const kill = (): Promise<void> =>
    (killing ??= (async () => {
      round.killed = true;
      if (!alive(berth)) problems.push(`round ${label}: berth exited by itself before the kill:\n${berth.log().slice(-2000)}`);
      await killBerth(berth, options.workers);
    })());
  const repos = Array.from({ length: options.clients }, (_, id) => [`crash/c${id}/a`, `crash/c${id}/b`]).flat();
  const clients = Array.from({ length: options.clients }, (_, id) => new Client(round, id, repos));
  const workloadStarted = Date.now();
  await Promise.all(clients.map((client) => client.run(options.opsPerClient)));
  const idle = killing === undefined;
  if (idle) await new Promise((resolve) => setTimeout(resolve, killDelay + Math.floor(random() * 50)));
  const killedAt = Date.now();
  const workloadMs = killedAt - workloadStarted;
  await kill();
  const openUploads = ledger.openUploads.length;
  const cut = await storage.afterKill();
  if (cut && !cut.proven) problems.push(`round ${label}: the power cut did not prove itself: ${cut.detail}`);

  const restartedAt = Date.now();
  const restarted = await startNode(storage, options.workers);
  const restartMs = Date.now() - killedAt - (cut?.durationMs ?? 0);
  const { counts: ops, acknowledgedByKind } = ledger.takeRoundCounts();
  const auditStarted = Date.now();
  const audit: AuditCounts = await auditRegistry(restarted.url, ledger, { problems, round: label, full: label % 10 === 0 });
  // On the filesystem, temporary entries older than the maintenance age must be gone once a pass
  // has run since the restart (its cutoff is at least the restart's).
  let removedBefore: number | undefined;
  if (storage.root !== undefined) {
    if (await maintenancePassDone(restarted, 15_000)) removedBefore = restartedAt - MAINTENANCE_AGE_S * 1000;
    else problems.push(`round ${label}: no maintenance pass within 15 s of the restart`);
  }
  const stored = await auditStorage(storage.tree, memory, problems, label, removedBefore);
  const auditMs = Date.now() - auditStarted;
  if (round.unexpectedAnswers + audit.violations + stored.violations > 0) problems.push(`round ${label}: berth log before the kill (tail):\n${berth.log().slice(-3000)}`);
  return {
    sent: ops.sent,
    acknowledged: ops.acknowledged,
    refused: ops.refused,
    unanswered: ops.unanswered,
    serverErrors: ops["server-error"],
    unexpectedAnswers: round.unexpectedAnswers,
    openUploads,
    uploadsResumed: audit.uploadsResumed,
    uploadsUnknown: audit.uploadsUnknown,
    blobsServed: audit.blobsServed,
    blobsHeadOnly: audit.blobsHeadOnly,
    manifestsServed: audit.manifestsServed,
    tagsResolved: audit.tagsResolved,
    absent: audit.absent,
    settled: audit.settled,
    revertedDeletes: audit.revertedDeletes,
    dataHashed: stored.dataHashed,
    auditViolations: audit.violations,
    storageViolations: stored.violations + (storage.root !== undefined && removedBefore === undefined ? 1 : 0),
    cutsUnproven: cut && !cut.proven ? 1 : 0,
    idleKills: idle ? 1 : 0,
    acknowledgedByKind,
    storage: stored,
    restartMs,
    workloadMs,
    auditMs,
    cut,
    problems,
    berth: restarted,
  };
}

// --- the campaign

export async function runCampaign(partial: Partial<CampaignOptions> = {}): Promise<CampaignSummary> {
  const options: CampaignOptions = { ...DEFAULT_OPTIONS, ...partial };
  if (options.powerLoss && options.driver !== "filesystem") throw new Error("--power-loss needs the filesystem driver");
  const started = Date.now();
  const summary: CampaignSummary = {
    ...(Object.fromEntries(COUNTS.map((key) => [key, 0])) as Counts),
    rounds: 0,
    kills: 0,
    dataFiles: 0,
    links: 0,
    tempFiles: 0,
    uploadFiles: 0,
    acknowledgedByKind: {},
    durationMs: 0,
    restartMedianMs: 0,
    restartMaxMs: 0,
    problems: [],
  };
  const random = seededRandom(options.seed);
  const storage = options.powerLoss ? await powerLossStorage() : options.driver === "s3" ? await s3Storage(options.s3) : await filesystemStorage();
  const ledger = new Ledger();
  const memory = newStorageAuditMemory();
  const restarts: number[] = [];
  let berth: BerthProcess | undefined;
  // Should the campaign itself be stopped (Ctrl-C), the berth of the round goes with it.
  const stopBerth = (): void => void (berth && alive(berth) && berth.child.kill("SIGKILL"));
  process.once("exit", stopBerth);
  try {
    berth = await startNode(storage, options.workers);
    for (let index = 0; index < options.rounds; index++) {
      const result = await runRound(index, berth, ledger, storage, memory, options, random);
      berth = result.berth;
      summary.rounds++;
      summary.kills++;
      for (const key of COUNTS) summary[key] += result[key];
      for (const [kind, count] of Object.entries(result.acknowledgedByKind)) summary.acknowledgedByKind[kind] = (summary.acknowledgedByKind[kind] ?? 0) + count;
      summary.dataFiles = result.storage.dataFiles;
      summary.links = result.storage.links;
      summary.tempFiles = result.storage.tempFiles;
      summary.uploadFiles = result.storage.uploadFiles;
      restarts.push(result.restartMs);
      for (const problem of result.problems) if (summary.problems.length < 50) summary.problems.push(problem);
      const violations = result.unexpectedAnswers + result.auditViolations + result.storageViolations + result.cutsUnproven;
      options.log(
        `round ${index + 1}/${options.rounds}: ${result.sent} sent, ${result.acknowledged} acknowledged, ${result.unanswered} cut by the kill${result.idleKills ? " (killed idle)" : ""}; ` +
          `audit: ${result.blobsServed} blobs (${result.blobsHeadOnly} more by HEAD), ${result.manifestsServed} manifests, ${result.tagsResolved} tags served, ${result.absent} absent, ` +
          `${result.uploadsResumed}/${result.openUploads} uploads resumed (${result.uploadsUnknown} unknown); ` +
          `storage: ${result.storage.dataFiles} data files (${result.dataHashed} hashed), ${result.storage.links} links, ${result.storage.tempFiles} temporary (${result.storage.staleTempFiles} stale)` +
          `${result.cut ? `; power cut: ${result.cut.detail}` : ""}${result.revertedDeletes ? `; ${result.revertedDeletes} deletes reverted` : ""}; ` +
          `violations ${violations} — workload ${result.workloadMs} ms, restart ${result.restartMs} ms, audit ${result.auditMs} ms, ${((Date.now() - started) / 1000).toFixed(1)} s so far`,
      );
    }
  } finally {
    process.removeListener("exit", stopBerth);
    if (berth && alive(berth)) await berth.stop();
    summary.durationMs = Date.now() - started;
    summary.keptStorage = await storage.close(failed(summary));
  }
  restarts.sort((a, b) => a - b);
  summary.restartMedianMs = restarts[Math.floor(restarts.length / 2)] ?? 0;
  summary.restartMaxMs = restarts.at(-1) ?? 0;
  return summary;
}

export function violations(summary: Counts): number {
  return summary.unexpectedAnswers + summary.auditViolations + summary.storageViolations + summary.cutsUnproven;
}

export function failed(summary: CampaignSummary): boolean {
  return violations(summary) > 0;
}

export function formatSummary(summary: CampaignSummary, options: Pick<CampaignOptions, "driver" | "workers" | "clients" | "opsPerClient" | "seed" | "powerLoss">): string {
  const n = (value: number): string => value.toLocaleString("en-US").padStart(9);
  const byKind = Object.entries(summary.acknowledgedByKind)
    .sort()
    .map(([kind, count]) => `${kind} ${count}`)
    .join(", ");
  const mode = `${options.driver}${options.powerLoss ? " with power cuts" : ""}, ${options.workers === 1 ? "one process" : `${options.workers} workers`}`;
  return [
    `push crash campaign: ${summary.rounds} rounds, ${summary.kills} kills (${summary.idleKills} while idle), ${mode}, ` +
      `${options.clients} clients × ${options.opsPerClient} operations, seed ${options.seed}`,
    `  operations sent            ${n(summary.sent)}`,
    `  acknowledged               ${n(summary.acknowledged)}   (${byKind || "none"})`,
    `  refused (4xx)              ${n(summary.refused)}   (allowed ones: a mount whose source was deleted meanwhile)`,
    `  cut by the kill            ${n(summary.unanswered)}`,
    `  uploads to resume          ${n(summary.openUploads)}   resumed and completed ${summary.uploadsResumed}, answered 404 BLOB_UPLOAD_UNKNOWN ${summary.uploadsUnknown}`,
    `  audited and served right   ${n(summary.blobsServed)} blobs downloaded and ${summary.blobsHeadOnly} by HEAD, ${summary.manifestsServed} manifests, ${summary.tagsResolved} tags (sums over audits); ${summary.absent} answered 404 as allowed, ${summary.settled} in-flight outcomes settled`,
    `  storage at the end         ${n(summary.dataFiles)} data files, ${summary.links} links, ${summary.uploadFiles} upload files, ${summary.tempFiles} temporary files; ${summary.dataHashed} data files hashed in all`,
    `  deletes reverted           ${n(summary.revertedDeletes)}   (an acknowledged delete served again; violations, counted in the audit's)`,
    `  unexpected answers         ${n(summary.unexpectedAnswers)}   (must be 0; ${summary.serverErrors} of them 5xx)`,
    `  audit violations           ${n(summary.auditViolations)}   (must be 0)`,
    `  storage violations         ${n(summary.storageViolations)}   (must be 0)`,
    ...(options.powerLoss ? [`  power cuts not proven      ${n(summary.cutsUnproven)}   (must be 0)`] : []),
    `  restart                    ${n(summary.restartMedianMs)} ms median, ${summary.restartMaxMs} ms at most`,
    `  time                       ${(summary.durationMs / 1000).toFixed(1).padStart(9)} s`,
    `push crash summary: rounds=${summary.rounds} kills=${summary.kills} acknowledged=${summary.acknowledged} violations=${violations(summary)} driver=${options.driver}${options.powerLoss ? "+power-loss" : ""} workers=${options.workers} seed=${options.seed}`,
    ...(summary.keptStorage ? [`storage kept for a look: ${summary.keptStorage}`] : []),
    ...(summary.problems.length > 0 ? ["problems:", ...summary.problems.map((p) => `  ${p}`)] : []),
  ].join("\n");
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string" },
      quick: { type: "boolean" },
      driver: { type: "string" },
      workers: { type: "string" },
      clients: { type: "string" },
      ops: { type: "string" },
      seed: { type: "string" },
      "power-loss": { type: "boolean" },
    },
  });
  const driver = values.driver ?? "filesystem";
  if (driver !== "filesystem" && driver !== "s3") throw new Error(`--driver takes filesystem or s3, got ${JSON.stringify(driver)}`);
  const options: CampaignOptions = {
    ...DEFAULT_OPTIONS,
    rounds: positiveInt(values.rounds, "rounds", values.quick ? 5 : DEFAULT_OPTIONS.rounds),
    driver,
    workers: positiveInt(values.workers, "workers", 1),
    clients: positiveInt(values.clients, "clients", DEFAULT_OPTIONS.clients),
    opsPerClient: positiveInt(values.ops, "ops", DEFAULT_OPTIONS.opsPerClient),
    seed: values.seed === undefined ? randomBytes(4).readUInt32BE() : values.seed === "0" ? 0 : positiveInt(values.seed, "seed", 0),
    powerLoss: values["power-loss"] === true,
  };
  // Interrupted, the process still runs its exit handlers: a power-loss disk restores the
  // machine's writeback settings there.
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));
  options.log(`push crash campaign: ${options.rounds} rounds on ${options.driver}${options.powerLoss ? " with power cuts" : ""}, seed ${options.seed}`);
  const summary = await runCampaign(options);
  process.stdout.write(`${formatSummary(summary, options)}\n`);
  return failed(summary) ? 1 : 0;
}

runIfMain(import.meta.url, main);
