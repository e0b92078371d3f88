import { hostname } from "node:os";
import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import { leasePath, readLeases, type LeaseStatus } from "../gc/registry-lease.js";
import type { Logger } from "../log/logger.js";
import { NOTIFICATIONS_ROOT, parseBatch, parseBatchName, type EndpointOutbox } from "./endpoint-outbox.js";

/**
 * Delivers the events of processes that are gone. Each process writes its outbox under its own
 * lease's node id; an outbox whose lease is missing (a clean shutdown that could not deliver
 * everything), stale (the process stopped refreshing it: killed, crashed, or its machine is gone),
 * or held by a process on this machine that no longer exists (a restart after `kill -9`, found at
 * once rather than after the lease goes stale) is an orphan. Its events are appended to this
 * process's outboxes with their original ids, then its batches are removed.
 *
 * Two nodes adopting the same orphan at once both deliver it: receivers see the same event id
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
  let adopted = 0;
  for (const node of others) {
    const nodeId = basename(node);
    if (!isOrphan(leases.get(leasePath(nodeId)))) continue;
    let complete = true;
    for (const dir of await listOrEmpty(driver, node)) {
      const outbox = outboxes.get(basename(dir));
      if (outbox === undefined) {
        // An endpoint this process does not have: left for a node configured with it.
        complete = false;
        continue;
      }
      adopted += await adoptQueue(driver, dir, outbox, log);
    }
    if (complete) await deleteIgnoringMissing(driver, node);
    if (adopted > 0) log.info({ node: nodeId, events: adopted }, "adopted the undelivered notification events of a registry process that is gone");
  }
  return adopted;
}

function isOrphan(lease: LeaseStatus | undefined): boolean {
  if (lease === undefined || !lease.fresh) return true;
  const record = lease.record;
  return record !== undefined && record.host === hostname() && record.pid !== process.pid && !processExists(record.pid);
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

async function adoptQueue(driver: StorageDriver, dir: string, outbox: EndpointOutbox, log: Logger): Promise<number> {
  const batches = (await listOrEmpty(driver, dir))
    .map(parseBatchName)
    .filter((ref) => ref !== undefined)
    .sort((a, b) => a.seq - b.seq);
  let adopted = 0;
  for (const batch of batches) {
    let content: Buffer;
    try {
      content = await driver.getContent(batch.path);
    } catch (err) {
      if (isPathNotFound(err)) continue; // adopted by another node meanwhile
      throw err;
    }
    try {
      const events = parseBatch(content);
      await outbox.append(events, true);
      adopted += events.length;
    } catch (err) {
      if (!(err instanceof SyntaxError) && !(err instanceof Error && err.message === "not an event batch")) throw err;
      log.error({ batch: batch.path }, "unreadable notification batch of a gone process dropped");
    }
    await deleteIgnoringMissing(driver, batch.path);
  }
  return adopted;
}

async function listOrEmpty(driver: StorageDriver, path: string): Promise<string[]> {
  try {
    return await driver.list(path);
  } catch (err) {
    if (isPathNotFound(err)) return [];
    throw err;
  }
}

async function deleteIgnoringMissing(driver: StorageDriver, path: string): Promise<void> {
  try {
    await driver.delete(path);
  } catch (err) {
    if (!isPathNotFound(err)) throw err;
  }
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
