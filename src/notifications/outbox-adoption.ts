import { hostname } from "node:os";
import type { StorageDriver } from "../driver/storage-driver.js";
import { deleteIfPresent, isPathNotFound, listOrEmpty } from "../driver/storage-driver.js";
import { LEASE_FRESH_MS, LEASE_REFRESH_MS, leasePath, readLeases, type LeaseStatus } from "../gc/registry-lease.js";
import type { Logger } from "../log/logger.js";
import type { EndpointOutbox } from "./endpoint-outbox.js";
import { CURSOR_NAME, deliveredInSegment, NOTIFICATIONS_ROOT, parseCursor, readRecords, segmentFormat, segmentSeq, type OutboxCursor } from "./outbox-files.js";

/** A node that adopts an outbox names itself here first; other adopters leave that outbox alone. */
const CLAIM_NAME = "claim.json";
/** How long a claimant waits before reading its claim back: a rival's claim written meanwhile wins. */
const CLAIM_SETTLE_MS = 1_000;

/**
 * Delivers the events of processes that are gone. Each process writes its outbox under its own
 * lease's node id. An outbox is an orphan when its lease is missing (a clean shutdown that could
 * not deliver everything), when it belongs to a process on this machine that no longer exists (a
 * restart after `kill -9`: found at once), or, for a process on another machine, when its lease has
 * not been refreshed for LEASE_FRESH_MS + LEASE_REFRESH_MS by the storage's clock (compared with
 * this process's own lease, so a clock that runs ahead here does not make live nodes look gone).
 *
 * The adopter claims the orphan (`claim.json`, read back after CLAIM_SETTLE_MS so that of two
 * nodes claiming at once one goes ahead), appends its events to its own outboxes with their
 * original ids, and removes exactly the segments it adopted. A process wrongly taken for gone (its
 * machine frozen longer than the lease) keeps its other segments, and one whose segment was taken
 * gives its events up (src/notifications/endpoint-outbox.ts, load): receivers may see an event
 * twice, which at-least-once delivery allows.
 */
export async function adoptOrphanedOutboxes(
  driver: StorageDriver,
  selfNodeId: string,
  outboxes: ReadonlyMap<string, EndpointOutbox>,
  log: Logger,
): Promise<number> {
  const nodes = await listOrEmpty(driver, NOTIFICATIONS_ROOT);
  const others = nodes.filter((path) => basename(path) !== selfNodeId);
  if (others.length === 0) return 0;
  const leases = new Map((await readLeases(driver)).map((lease) => [lease.path, lease]));
  const storageNow = leases.get(leasePath(selfNodeId))?.modTime;
  const gone = (nodeId: string): boolean => isGone(leases.get(leasePath(nodeId)), storageNow);
  let total = 0;
  for (const node of others) {
    const nodeId = basename(node);
    if (!gone(nodeId) || !(await claim(driver, node, selfNodeId, gone))) continue;
    let adopted = 0;
    let complete = true;
    for (const dir of await listOrEmpty(driver, node)) {
      if (basename(dir) === CLAIM_NAME) continue;
      const outbox = outboxes.get(basename(dir));
      if (outbox === undefined) {
        // An endpoint this process does not have: left for a node configured with it.
        complete = false;
        continue;
      }
      adopted += await adoptQueue(driver, dir, outbox, log);
    }
    if (complete && (await holdsNoSegment(driver, node))) await deleteIfPresent(driver, node);
    if (adopted > 0) log.info({ node: nodeId, events: adopted }, "adopted the undelivered notification events of a registry process that is gone");
    total += adopted;
  }
  return total;
}

function isGone(lease: LeaseStatus | undefined, storageNow: Date | undefined): boolean {
  if (lease === undefined) return true;
  const record = lease.record;
  if (record !== undefined && record.host === hostname()) {
    // Same pid, other node id: an earlier run of this process (a container's pid 1, restarted).
    return record.pid === process.pid || !processExists(record.pid);
  }
  if (storageNow !== undefined) return storageNow.getTime() - lease.modTime.getTime() > LEASE_FRESH_MS + LEASE_REFRESH_MS;
  return !lease.fresh;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** True when this node may adopt the orphan: no live rival holds a claim on it, and its own claim stood. */
async function claim(driver: StorageDriver, node: string, selfNodeId: string, gone: (nodeId: string) => boolean): Promise<boolean> {
  const path = `${node}/${CLAIM_NAME}`;
  const holder = await readClaim(driver, path);
  if (holder !== undefined && holder !== selfNodeId && !gone(holder)) return false;
  await driver.putContent(path, Buffer.from(JSON.stringify({ nodeId: selfNodeId })), { durable: false });
  await new Promise((resolve) => setTimeout(resolve, CLAIM_SETTLE_MS));
  return (await readClaim(driver, path)) === selfNodeId;
}

async function readClaim(driver: StorageDriver, path: string): Promise<string | undefined> {
  try {
    const value: unknown = JSON.parse((await driver.getContent(path)).toString("utf8"));
    const nodeId = typeof value === "object" && value !== null ? (value as { nodeId?: unknown }).nodeId : undefined;
    return typeof nodeId === "string" ? nodeId : undefined;
  } catch (err) {
    if (isPathNotFound(err) || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/**
 * Appends an orphan's undelivered events to this process's outbox, oldest segment first, skipping
 * what its cursor says was delivered, and removes each segment once its events are stored here.
 */
async function adoptQueue(driver: StorageDriver, dir: string, outbox: EndpointOutbox, log: Logger): Promise<number> {
  const paths = await listOrEmpty(driver, dir);
  const segments = paths
    .map((path) => ({ path, seq: segmentSeq(path) }))
    .filter((s): s is { path: string; seq: number } => s.seq !== undefined)
    .sort((a, b) => a.seq - b.seq);
  let cursor: OutboxCursor | undefined;
  try {
    cursor = parseCursor(await driver.getContent(`${dir}/${CURSOR_NAME}`));
  } catch (err) {
    if (!isPathNotFound(err)) throw err;
  }
  let adopted = 0;
  for (const segment of segments) {
    let content: Buffer;
    try {
      content = await driver.getContent(segment.path);
    } catch (err) {
      if (isPathNotFound(err)) continue; // adopted by another node meanwhile
      throw err;
    }
    const { records, unreadable } = readRecords(content, segmentFormat(segment.path), outbox.format);
    if (unreadable > 0) log.error({ segment: segment.path, events: unreadable }, "unreadable notification events of a gone process dropped");
    const undelivered = records.slice(deliveredInSegment(cursor, segment.seq, records.length));
    if (undelivered.length > 0) await outbox.appendRecords(undelivered, true);
    adopted += undelivered.length;
    await deleteIfPresent(driver, segment.path);
  }
  await deleteIfPresent(driver, `${dir}/${CURSOR_NAME}`);
  return adopted;
}

/** Checked again after adopting: a segment that appeared meanwhile keeps the directory. */
async function holdsNoSegment(driver: StorageDriver, node: string): Promise<boolean> {
  for (const child of await listOrEmpty(driver, node)) {
    if (basename(child) === CLAIM_NAME) continue;
    if ((await listOrEmpty(driver, child)).length > 0) return false;
  }
  return true;
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
