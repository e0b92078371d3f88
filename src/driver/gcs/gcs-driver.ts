import { PassThrough, Readable, pipeline } from "node:stream";
import { isValidSegment } from "../s3/bucket.js";
import { Walker, type Visit } from "../s3/s3-walk.js";
import {
  assertOffset,
  assertValidPath,
  PathNotFoundError,
  requireFile,
  segmentsBelow,
  type DeleteOptions,
  type FileInfo,
  type FileWriter,
  type MoveOptions,
  type StatOptions,
  type StorageDriver,
  type WalkOptions,
  type WriterOptions,
} from "../storage-driver.js";
import { GcsBucket, isNotFound, type GcsDriverOptions } from "./gcs-bucket.js";
import { freshState, pendingKey, resumeState, SessionWriter } from "./session-writer.js";

export type { GcsDriverOptions } from "./gcs-bucket.js";
export { PENDING_SUFFIX } from "./session-writer.js";

/** How long a redirect URL stays valid (distribution: 20 minutes). */
const REDIRECT_EXPIRY_SECONDS = 20 * 60;
/** Deletes in flight at once when removing a tree (the JSON API deletes one object per request). */
const DELETE_CONCURRENCY = 16;

/**
 * Stores objects in a Google Cloud Storage bucket with the object names of distribution's gcs
 * driver: `rootdirectory` + path without its leading slash, so a bucket written by distribution is
 * served as it is. Directories are name prefixes.
 */
export class GcsDriver implements StorageDriver {
  readonly name = "gcs";
  readonly remote = true;
  readonly #b: GcsBucket;

  constructor(options: GcsDriverOptions) {
    this.#b = new GcsBucket(options);
  }

  async getContent(path: string): Promise<Buffer> {
    assertValidPath(path);
    const bytes = await this.#b.getBytes(this.#b.key(path));
    if (bytes === undefined) throw new PathNotFoundError(path, this.name);
    return bytes;
  }

  async putContent(path: string, content: Uint8Array): Promise<void> {
    assertValidPath(path);
    await this.#b.putBytes(this.#b.key(path), content);
  }

  /**
   * A ranged read asks for the object's size first: GCS answers a range that starts at the end with
   * 416 and the emulator with the whole object, and neither is an empty stream. A whole read is
   * one request; an absent object is known from its status before the stream is handed out.
   */
  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    assertValidPath(path);
    assertOffset(offset, end);
    const key = this.#b.key(path);
    let stop = end;
    if (offset > 0 || end !== undefined) {
      const head = await this.#b.head(key);
      if (head === undefined) throw new PathNotFoundError(path, this.name);
      stop = Math.min(end ?? head.size, head.size);
      if (offset >= stop) return Readable.from([], { objectMode: false });
    }
    const body = await this.#b.download(key, offset, stop);
    if (body === undefined) throw new PathNotFoundError(path, this.name);
    // As the S3 driver: a consumer that stops early destroys the pass-through at once, and the
    // pipeline then destroys the download, which closes its connection.
    const stream = new PassThrough({ highWaterMark: 256 * 1024 });
    pipeline(body, stream, () => undefined);
    return stream;
  }

  async writer(path: string, append: boolean, options?: WriterOptions): Promise<FileWriter> {
    assertValidPath(path);
    const marker = options?.whileExists;
    if (marker !== undefined) {
      assertValidPath(marker);
      await requireFile(this, marker);
    }
    const key = this.#b.key(path);
    return new SessionWriter(this.#b, key, append ? await resumeState(this.#b, key) : await freshState(this.#b, key));
  }

  async stat(path: string, options?: StatOptions): Promise<FileInfo> {
    assertValidPath(path);
    if (path === "/") return { path, size: 0, modTime: new Date(0), isDir: true };
    const head = await this.#b.head(this.#b.key(path));
    if (head !== undefined) return { path, size: head.size, modTime: head.modTime, isDir: false };
    if (options?.fileOnly) throw new PathNotFoundError(path, this.name);
    const first = (await this.#b.listPage({ Prefix: this.#b.dirPrefix(path), MaxKeys: 1 })).Contents[0];
    if (first === undefined) throw new PathNotFoundError(path, this.name);
    return { path, size: 0, modTime: first.LastModified, isDir: true };
  }

  /** A delimited listing, page by page; side objects are not shown. */
  async list(path: string): Promise<string[]> {
    assertValidPath(path);
    const prefix = this.#b.dirPrefix(path);
    // A Set: the emulator repeats every prefix on each page.
    const children = new Set<string>();
    let seen = 0;
    let token: string | undefined;
    do {
      const page = await this.#b.listPage({ Prefix: prefix, Delimiter: "/", ContinuationToken: token });
      for (const object of page.Contents) {
        seen++;
        if (isValidSegment(object.Key.slice(prefix.length))) children.add(this.#b.pathOf(object.Key));
      }
      for (const common of page.CommonPrefixes) {
        seen++;
        const dir = common.Prefix.slice(0, -1);
        if (isValidSegment(dir.slice(prefix.length))) children.add(this.#b.pathOf(dir));
      }
      token = page.NextContinuationToken;
    } while (token !== undefined);
    if (seen === 0) throw new PathNotFoundError(path, this.name);
    return [...children];
  }

  /**
   * A server-side rewrite to the destination, which GCS creates whole or not at all, then the
   * source's removal (unless the caller removes it with its directory next).
   */
  async move(sourcePath: string, destPath: string, options?: MoveOptions): Promise<void> {
    assertValidPath(sourcePath);
    assertValidPath(destPath);
    const source = this.#b.key(sourcePath);
    try {
      await this.#b.copy(source, this.#b.key(destPath));
    } catch (err) {
      if (isNotFound(err)) throw new PathNotFoundError(sourcePath, this.name);
      throw err;
    }
    if (!options?.sourceRemovedByCaller) await this.#b.deleteKey(source);
  }

  /**
   * The object at the path, its side object and everything under `<path>/`, object by object.
   * Resumable sessions of writers under it are not cancelled: they hold nothing visible and GCS
   * drops them after a week.
   */
  async delete(path: string, options?: DeleteOptions): Promise<void> {
    assertValidPath(path);
    let found = false;
    if (path !== "/" && !options?.directory) {
      const key = this.#b.key(path);
      const [object, pending] = await Promise.all([this.#b.deleteKey(key), this.#b.deleteKey(pendingKey(key))]);
      found = object || pending;
    }
    const prefix = this.#b.dirPrefix(path);
    for (;;) {
      // Listed again from the start each time: what was deleted is no longer listed.
      const page = await this.#b.listPage({ Prefix: prefix });
      if (page.Contents.length === 0) break;
      found = true;
      const keys = page.Contents.map((object) => object.Key);
      for (let i = 0; i < keys.length; i += DELETE_CONCURRENCY) {
        await Promise.all(keys.slice(i, i + DELETE_CONCURRENCY).map((key) => this.#b.deleteKey(key)));
      }
      if (!page.IsTruncated) break;
    }
    if (!found) throw new PathNotFoundError(path, this.name);
  }

  /**
   * A V4 signed GET URL, valid for 20 minutes, when the driver has a service account key to sign
   * with (as distribution). A signature names its method, and GCS's "read" is GET: HEAD gets none.
   */
  async redirectURL(path: string, method: "GET" | "HEAD"): Promise<string | undefined> {
    assertValidPath(path);
    if (!this.#b.canSign || method !== "GET") return undefined;
    return this.#b.signedGetURL(this.#b.key(path), REDIRECT_EXPIRY_SECONDS);
  }

  /**
   * Depth-first, children in lexical order, from flat listings: GCS lists names in byte order like
   * S3, so the S3 driver's Walker (which turns that order into the walk's) serves both.
   */
  async walk(path: string, visit: Visit, options?: WalkOptions): Promise<void> {
    assertValidPath(path);
    const walker = new Walker(this.#b, visit);
    const prefix = this.#b.dirPrefix(path);
    if (options?.startAfter === undefined) {
      if (!(await walker.walkDir(prefix))) throw new PathNotFoundError(path, this.name);
      return;
    }
    if (!(await walker.walkAfter(prefix, segmentsBelow(path, options.startAfter))) && !(await walker.dirExists(prefix))) {
      throw new PathNotFoundError(path, this.name);
    }
  }
}
