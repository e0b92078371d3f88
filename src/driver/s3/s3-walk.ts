/** The S3 driver's walk: a depth-first traversal in lexical order, made from flat (recursive) listings. */
import type { StorageDriver } from "../storage-driver.js";
import { isValidSegment, type ListedObject, type ListPage, type ListParams } from "./bucket.js";

export type Visit = Parameters<StorageDriver["walk"]>[1];

/**
 * What the walker needs of a store: S3's flat listing (ListObjectsV2: prefix, continuation token,
 * start-after, page size) and the mapping of keys to driver paths. The S3 Bucket is one; the azure
 * driver adapts Azure's List Blobs to it.
 */
export interface FlatListing {
  listPage(params: ListParams): Promise<ListPage>;
  pathOf(key: string): string;
}

interface PageCursor {
  contents: ListedObject[];
  index: number;
  truncated: boolean;
}

/**
 * Turns a flat listing (S3 key order) into a depth-first walk with children in lexical order.
 *
 * The two orders differ in one way only: "/" sorts after "-" and "." in keys, so S3 lists "a-b" and
 * "a.txt" before "a/…", while the walk must visit directory "a" (and everything under it) before its
 * siblings "a-b" and "a.txt". So when a name holds "-" or "." at position p, the walker checks
 * whether a directory named by the first p characters exists; if so it walks that directory first
 * and then ignores its keys when the main listing reaches them (skipping past them with StartAfter
 * when they fill whole pages). The page at hand answers both when it holds the directory's keys;
 * otherwise a one-key listing tells whether it exists, and a listing of its own walks it.
 * Directories the visitor skips are passed over the same way.
 */
export class Walker {
  readonly #b: FlatListing;
  readonly #visit: Visit;
  /** Directory prefixes ("…/") whose keys are done with: walked ahead of order, or skipped. */
  readonly #done = new Set<string>();
  /** Names (keys) already looked up as directories that could come ahead of S3's order. */
  readonly #checked = new Set<string>();
  #depth = 0;
  #pruneAt = 256;
  /** The visitor answered "stop": nothing more is visited or listed. */
  #stopped = false;

  constructor(bucket: FlatListing, visit: Visit) {
    this.#b = bucket;
    this.#visit = visit;
  }

  async #call(info: Parameters<Visit>[0]): Promise<"skip" | "stop" | undefined> {
    const decision = await this.#visit(info);
    if (decision === "stop") this.#stopped = true;
    return decision ?? undefined;
  }

  /**
   * Walks everything under `prefix` (which the caller has visited); false when nothing is there.
   * `known` is every key under the prefix when the caller has them at hand, saving the listing.
   */
  async walkDir(prefix: string, known?: ListedObject[], after?: string): Promise<boolean> {
    this.#depth++;
    try {
      return await this.#walkDir(prefix, known, after);
    } finally {
      this.#depth--;
    }
  }

  /**
   * Walks what comes after the path `after` names below `prefix`, leaving out it and what is under
   * it: the rest of each directory on the way, deepest first, each listing starting at the name it
   * resumes after. False when nothing was listed.
   *
   * A listing that starts after name n also returns the keys of the names that n extends with "-"
   * or "." ("a" for "a-b": "a/…" sorts after "a-b" in keys but comes before it in the walk), so those
   * directories, like n's own, are marked as done with before it starts.
   */
  async walkAfter(prefix: string, after: string[]): Promise<boolean> {
    let any = false;
    for (let level = after.length - 1; level >= 0; level--) {
      const dir = prefix + after.slice(0, level).map((name) => `${name}/`).join("");
      const name = after[level]!;
      for (let p = 1; p <= name.length; p++) {
        if (p < name.length && name[p] !== "-" && name[p] !== ".") continue;
        this.#checked.add(dir + name.slice(0, p));
        this.#done.add(`${dir}${name.slice(0, p)}/`);
      }
      if (await this.walkDir(dir, undefined, dir + name)) any = true;
      if (this.#stopped) break;
    }
    return any;
  }

  async #walkDir(prefix: string, known: ListedObject[] | undefined, after: string | undefined): Promise<boolean> {
    const open: string[] = [];
    let any = false;
    let token: string | undefined;
    let startAfter = after;
    for (;;) {
      const page =
        known !== undefined
          ? { Contents: known, IsTruncated: false, NextContinuationToken: undefined }
          : await this.#b.listPage({ Prefix: prefix, ContinuationToken: token, StartAfter: startAfter });
      const cursor: PageCursor = { contents: page.Contents ?? [], index: 0, truncated: page.IsTruncated ?? false };
      if (cursor.contents.length > 0) any = true;
      for (; cursor.index < cursor.contents.length; cursor.index++) {
        const object = cursor.contents[cursor.index]!;
        const key = object.Key!;
        if (this.#depth === 1 && this.#checked.size + this.#done.size > this.#pruneAt) this.#prune(key);
        if (this.#doneDirOf(key) !== undefined) continue;
        const segments = key.slice(prefix.length).split("/");
        if (!segments.every(isValidSegment)) continue;
        await this.#visitKey(prefix, segments, object, open, cursor);
        if (this.#stopped) return true;
      }
      if (!cursor.truncated) break;
      const last = cursor.contents.at(-1)?.Key;
      const doneDir = last === undefined ? undefined : this.#doneDirOf(last);
      if (doneDir !== undefined && `${doneDir}\u007f` > last!) {
        // The page ended inside a directory already walked or skipped: jump past it.
        startAfter = `${doneDir}\u007f`;
        token = undefined;
      } else if (page.NextContinuationToken !== undefined) {
        token = page.NextContinuationToken;
        startAfter = undefined;
      } else {
        startAfter = last;
        token = undefined;
      }
    }
    return any;
  }

  async #visitKey(prefix: string, segments: string[], object: ListedObject, open: string[], cursor: PageCursor): Promise<void> {
    const modTime = object.LastModified ?? new Date(0);
    for (let depth = 0; depth < segments.length; depth++) {
      const name = segments[depth]!;
      const parent = segments.slice(0, depth);
      for (let p = 1; p < name.length; p++) {
        if (name[p] !== "-" && name[p] !== ".") continue;
        const dirKey = prefix + [...parent, name.slice(0, p)].join("/");
        if (this.#checked.has(dirKey)) continue;
        this.#checked.add(dirKey);
        const block = blockInPage(`${dirKey}/`, cursor);
        const exists = block !== undefined ? block.length > 0 : await this.dirExists(`${dirKey}/`);
        if (!exists) continue;
        if (!(await this.#openDirs(prefix, parent, open, modTime))) return;
        const decision = await this.#call({ path: this.#b.pathOf(dirKey), size: 0, modTime, isDir: true });
        if (decision === undefined) await this.walkDir(`${dirKey}/`, block);
        if (this.#stopped) return;
        this.#done.add(`${dirKey}/`);
      }
    }
    if (!(await this.#openDirs(prefix, segments.slice(0, -1), open, modTime))) return;
    await this.#call({ path: this.#b.pathOf(object.Key!), size: object.Size ?? 0, modTime, isDir: false });
  }

  /**
   * Visits the directories of `target` not visited yet (the walk is depth-first, so `open` is the
   * chain of directories being walked). False when the visitor skips one of them or stops.
   */
  async #openDirs(prefix: string, target: string[], open: string[], modTime: Date): Promise<boolean> {
    let common = 0;
    while (common < open.length && common < target.length && open[common] === target[common]) common++;
    open.length = common;
    for (let depth = common; depth < target.length; depth++) {
      open.push(target[depth]!);
      const dirKey = prefix + target.slice(0, depth + 1).join("/");
      const decision = await this.#call({ path: this.#b.pathOf(dirKey), size: 0, modTime, isDir: true });
      if (decision === "stop") return false;
      if (decision === "skip") {
        this.#done.add(`${dirKey}/`);
        return false;
      }
    }
    return true;
  }

  /**
   * Forgets what the outermost listing has passed for good: a name's "-"/"." siblings and its
   * directory all sort before `<name>/\u007f`, so once the listing is beyond that, none comes back.
   * Keeps the walk's memory bounded however many keys it visits.
   */
  #prune(current: string): void {
    for (const name of this.#checked) if (`${name}/\u007f` < current) this.#checked.delete(name);
    for (const dir of this.#done) if (`${dir}\u007f` < current) this.#done.delete(dir);
    this.#pruneAt = Math.max(256, 2 * (this.#checked.size + this.#done.size));
  }

  /** Whether any key lies under the directory prefix ("…/"): a one-key listing. */
  async dirExists(dirPrefix: string): Promise<boolean> {
    const probe = await this.#b.listPage({ Prefix: dirPrefix, MaxKeys: 1 });
    return (probe.Contents ?? []).length > 0;
  }

  #doneDirOf(key: string): string | undefined {
    if (this.#done.size === 0) return undefined;
    for (let slash = key.indexOf("/"); slash !== -1; slash = key.indexOf("/", slash + 1)) {
      const dir = key.slice(0, slash + 1);
      if (this.#done.has(dir)) return dir;
    }
    return undefined;
  }
}

/**
 * The keys under `dirPrefix` that follow the cursor in its page, when the page holds all of them
 * (it reaches past them, or is the last page); undefined when the page ends first.
 */
function blockInPage(dirPrefix: string, cursor: PageCursor): ListedObject[] | undefined {
  const { contents } = cursor;
  let i = cursor.index + 1;
  while (i < contents.length && contents[i]!.Key! < dirPrefix) i++;
  const start = i;
  while (i < contents.length && contents[i]!.Key!.startsWith(dirPrefix)) i++;
  return i < contents.length || !cursor.truncated ? contents.slice(start, i) : undefined;
}
