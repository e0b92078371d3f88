/**
 * Naming of the blocks a writer stages, and what a writer with `append` finds to continue.
 *
 * Azure keeps staged (uncommitted) blocks beside a blob's name, invisible to reads and listings,
 * until a Put Block List commits some of them (and drops the rest) or a week passes. Any node can
 * list them (Get Block List) and commit them: that is what makes an upload resumable anywhere, with
 * nothing re-read and nothing visible at the path before the commit.
 *
 * Every block a writer session stages is named `brt<base><session>:<sequence>` (base64, as the
 * service wants), all of one length (the service refuses a blob whose block ids differ in length):
 * - `base` is "c" when the session's blocks follow the blob's committed blocks, "n" when they stand
 *   alone (a writer without `append`, or one that copied a committed blob's bytes into its own blocks);
 * - `session` is the time the session's content started (ms, 13 digits) and 8 random hex digits: a
 *   resumed writer keeps the session of the content it continues, a writer without `append` starts
 *   a new one, and the newest session is the content (older ones are leftovers, dropped at commit);
 * - `sequence` numbers the blocks from 0; a writer stages one block at a time, in order, so the
 *   blocks of a session run 0…n-1 without a gap, and a block past a gap (none should exist) is ignored.
 */
import { randomBytes } from "node:crypto";
import type { BlockBlobClient } from "@azure/storage-blob";
import { isInvalidBlobType, unlessBlobNotFound } from "./azure-errors.js";

const PREFIX = "brt";
const SEQUENCE_DIGITS = 7;
/** brt + base + 13-digit time + 8 hex + ":" + sequence: 32 characters, 44 in base64. */
const ID_PATTERN = /^brt([cn])(\d{13}[0-9a-f]{8}):(\d{7})$/;

export interface Block {
  id: string;
  size: number;
}

export interface Session {
  /** "c": the blocks follow the committed blocks; "n": they are the whole content. */
  base: "c" | "n";
  /** Time and random part: orders sessions, newest last. */
  tag: string;
}

export function newSession(base: "c" | "n"): Session {
  return { base, tag: `${String(Date.now()).padStart(13, "0")}${randomBytes(4).toString("hex")}` };
}

export function blockId(session: Session, sequence: number): string {
  return Buffer.from(`${PREFIX}${session.base}${session.tag}:${String(sequence).padStart(SEQUENCE_DIGITS, "0")}`).toString("base64");
}

/** The length every block id of a writer has (the service wants one length per blob). */
export const BLOCK_ID_LENGTH = blockId({ base: "n", tag: "0".repeat(21) }, 0).length;

function parseBlockId(id: string): { session: Session; sequence: number } | undefined {
  const match = ID_PATTERN.exec(Buffer.from(id, "base64").toString("latin1"));
  if (match === null) return undefined;
  return { session: { base: match[1] as "c" | "n", tag: match[2]! }, sequence: Number(match[3]) };
}

/** What a writer starts from. */
export interface WriterState {
  session: Session;
  /** Committed block ids kept ahead of the session's blocks (base "c"). */
  committed: string[];
  /** Bytes of the committed blocks kept. */
  committedBytes: number;
  /** The session's staged blocks, in order. */
  staged: Block[];
  /** A committed blob without usable blocks, whose bytes the writer must stage again first. */
  restage: number | undefined;
  /** Other sessions' staged blocks, or a committed blob the content no longer includes, may exist. */
  leftovers: boolean;
}

/** A writer without `append`: a new session; what is there is dropped at commit (or at an empty close). */
export function freshState(): WriterState {
  return { session: newSession("n"), committed: [], committedBytes: 0, staged: [], restage: undefined, leftovers: true };
}

/**
 * The state a writer with `append` continues: the newest session's staged blocks (after the
 * committed ones when its base is "c"), or else the committed blob. One Get Block List; one Get
 * Blob Properties more when a committed blob has no blocks of the writer's kind (written by Put
 * Blob, or an append blob of distribution's writer).
 */
export async function resumeState(blob: BlockBlobClient): Promise<WriterState> {
  let list: Awaited<ReturnType<BlockBlobClient["getBlockList"]>> | undefined;
  try {
    list = await unlessBlobNotFound(blob.getBlockList("all"));
  } catch (err) {
    if (!isInvalidBlobType(err)) throw err;
    const props = await blob.getProperties();
    return { ...freshState(), restage: props.contentLength ?? 0 };
  }
  if (list === undefined) return { ...freshState(), leftovers: false };
  const committed: Block[] = (list.committedBlocks ?? []).map((block) => ({ id: block.name, size: block.size }));
  const sessions = new Map<string, { session: Session; blocks: Map<number, Block> }>();
  for (const block of list.uncommittedBlocks ?? []) {
    const parsed = parseBlockId(block.name);
    if (parsed === undefined) continue;
    const key = `${parsed.session.tag}${parsed.session.base}`;
    let entry = sessions.get(key);
    if (entry === undefined) sessions.set(key, (entry = { session: parsed.session, blocks: new Map() }));
    entry.blocks.set(parsed.sequence, { id: block.name, size: block.size });
  }
  const newest = [...sessions.values()].sort((a, b) => (a.session.tag < b.session.tag ? -1 : a.session.tag > b.session.tag ? 1 : 0)).pop();
  const committedBytes = committed.reduce((sum, block) => sum + block.size, 0);
  if (newest !== undefined) {
    const staged: Block[] = [];
    for (let i = 0; newest.blocks.has(i); i++) staged.push(newest.blocks.get(i)!);
    const follows = newest.session.base === "c";
    return {
      session: newest.session,
      committed: follows ? committed.map((block) => block.id) : [],
      committedBytes: follows ? committedBytes : 0,
      staged,
      restage: undefined,
      leftovers: sessions.size > 1 || (!follows && list.blobContentLength !== undefined),
    };
  }
  const size = list.blobContentLength;
  if (size === undefined) return { ...freshState(), leftovers: false };
  if (committed.length > 0 && committedBytes === size && committed.every((block) => block.id.length === BLOCK_ID_LENGTH)) {
    // Blocks of a writer's commit: a new session continues them, naming them in its block list.
    return { session: newSession("c"), committed: committed.map((block) => block.id), committedBytes, staged: [], restage: undefined, leftovers: false };
  }
  return { ...freshState(), restage: size };
}
