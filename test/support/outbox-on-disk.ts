import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { CURSOR_NAME, deliveredInSegment, parseCursor, parseSegment, segmentSeq } from "../../src/notifications/outbox-files.js";
import type { RegistryEvent } from "../../src/notifications/registry-event.js";

/** One endpoint's outbox of one process, as a filesystem-rooted berth left it. */
export interface OutboxOnDisk {
  /** `<node id>/<endpoint key>`. */
  dir: string;
  /** Segment file names, oldest first. */
  segments: string[];
  /** Every event its segments hold, delivered ones included, oldest first. */
  events: RegistryEvent[];
  /** The events its cursor does not mark delivered. */
  undelivered: RegistryEvent[];
  /** Complete lines that are not events (a torn last line is not one: it was never acknowledged). */
  unreadable: number;
}

/**
 * Reads the outboxes under `<root>/berth/notifications` the way an adopting node does
 * (src/notifications/outbox-adoption.ts): segments in order, the cursor's delivered events skipped.
 * A file removed while it is read counts as empty.
 */
export async function readOutboxes(root: string): Promise<OutboxOnDisk[]> {
  const base = join(root, "berth", "notifications");
  const outboxes: OutboxOnDisk[] = [];
  for (const node of await dirs(base)) {
    for (const endpoint of await dirs(join(base, node))) {
      const dir = join(base, node, endpoint);
      const names = (await readdir(dir).catch(() => [] as string[])).sort();
      const cursorContent = await readIfPresent(join(dir, CURSOR_NAME));
      const cursor = cursorContent && parseCursor(cursorContent);
      const outbox: OutboxOnDisk = { dir: `${node}/${endpoint}`, segments: [], events: [], undelivered: [], unreadable: 0 };
      for (const name of names) {
        const seq = segmentSeq(`/${name}`);
        if (seq === undefined) continue;
        const content = await readIfPresent(join(dir, name));
        if (content === undefined) continue;
        const { events, unreadable } = parseSegment(content, name);
        outbox.segments.push(name);
        outbox.events.push(...events);
        outbox.unreadable += unreadable;
        outbox.undelivered.push(...events.slice(deliveredInSegment(cursor, seq, events.length)));
      }
      outboxes.push(outbox);
    }
  }
  return outboxes;
}

async function dirs(path: string): Promise<string[]> {
  try {
    return (await readdir(path, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

async function readIfPresent(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
