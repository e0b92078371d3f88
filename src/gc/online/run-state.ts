import type { StorageDriver } from "../../driver/storage-driver.js";
import { getContentIfPresent } from "../../driver/storage-driver.js";
import { RUN_STATE_PATH, assertRunId, runListPath } from "./gc-paths.js";

export type RunPhase = "candidates" | "doomed" | "done";

/** `/berth/gc/run`: the one object every participant polls. */
export interface RunState {
  runId: string;
  phase: RunPhase;
  /** The collector's lease holder id, for messages. */
  collector: string;
  /** Set when a later collector found the run unfinished and ended it without deleting. */
  abandoned?: boolean;
}

/**
 * What a run may delete (`candidates.json`) or will delete unless rescued (`doomed.json`). Blobs are
 * global digests; revisions and layer links are "<repository>@<digest>". A participant rescues by
 * digest alone: a rescued digest keeps its blob, its revision links and its layer links everywhere.
 */
export interface RunList {
  blobs: string[];
  revisions: string[];
  layerLinks: string[];
}

/** A repository-scoped item's key in a RunList. */
export function repositoryItemKey(repository: string, digest: string): string {
  return `${repository}@${digest}`;
}

/** The digest of a RunList item (a blob digest, or the part after the last "@"). */
export function digestOfItem(item: string): string {
  return item.slice(item.lastIndexOf("@") + 1);
}

/** undefined when no run was ever started on this storage. Throws on anything unreadable. */
export async function readRunState(driver: StorageDriver): Promise<RunState | undefined> {
  const content = await getContentIfPresent(driver, RUN_STATE_PATH);
  if (content === undefined) return undefined;
  const value = JSON.parse(content.toString("utf8")) as Partial<RunState>;
  if (typeof value.runId !== "string" || !["candidates", "doomed", "done"].includes(value.phase ?? "") || typeof value.collector !== "string") {
    throw new Error(`${RUN_STATE_PATH} is not a run state`);
  }
  assertRunId(value.runId);
  return value as RunState;
}

export async function writeRunState(driver: StorageDriver, state: RunState): Promise<void> {
  await driver.putContent(RUN_STATE_PATH, Buffer.from(`${JSON.stringify(state)}\n`));
}

export async function writeRunList(driver: StorageDriver, runId: string, which: "candidates" | "doomed", list: RunList): Promise<void> {
  await driver.putContent(runListPath(runId, which), Buffer.from(JSON.stringify(list)));
}

export async function readRunList(driver: StorageDriver, runId: string, which: "candidates" | "doomed"): Promise<RunList> {
  const value = JSON.parse((await driver.getContent(runListPath(runId, which))).toString("utf8")) as Partial<RunList>;
  const strings = (list: unknown): string[] => (Array.isArray(list) && list.every((x) => typeof x === "string") ? list : badList());
  const badList = (): never => {
    throw new Error(`${runListPath(runId, which)} is not a run list`);
  };
  return { blobs: strings(value.blobs), revisions: strings(value.revisions), layerLinks: strings(value.layerLinks) };
}
