import { posix } from "node:path";
import { PassThrough, Readable, pipeline } from "node:stream";
import { assertOffset, assertValidPath, markOwnedChunks, markSocketSource, PathNotFoundError, type DeleteOptions, type FileInfo, type FileWriter, type MoveOptions, type StatOptions, type StorageDriver, type WalkOptions, type WriterOptions, requireFile, segmentsBelow } from "../storage-driver.js";
import { Bucket, isValidSegment } from "./bucket.js";
import { MultipartWriter } from "./multipart-writer.js";
import { ObjectBody } from "./object-body-client.js";
import { asPathNotFound, isInvalidRange } from "./s3-errors.js";
import { KiB, MAX_PART_SIZE } from "./s3-limits.js";
import { createTransport, resolveOptions, type S3DriverOptions, type S3DriverTuning, type S3ResolvedOptions } from "./s3-options.js";
import type { S3Transport } from "./s3-transport.js";
import { Walker, type Visit } from "./s3-walk.js";
import { freshState, isPendingKeyOf, MARKER_MISSING, resumeState, resumeWithMarker } from "./writer-state.js";

export type { S3DriverOptions, S3DriverTuning, S3ResolvedOptions } from "./s3-options.js";
export { PENDING_SUFFIX } from "./writer-state.js";

/** How long a redirect URL stays valid (distribution: 20 minutes). */
const REDIRECT_EXPIRY_SECONDS = 20 * 60;

/**
 * Stores objects in an S3 bucket (AWS, Ceph radosgw, MinIO…), with the key layout of distribution's
 * s3-aws driver: the key of a path is `rootdirectory` + path without its leading slash, so a bucket
 * written by distribution is served as it is. Directories are key prefixes.
 */
export class S3Driver implements StorageDriver {
  readonly name = "s3";
  readonly remote = true;
  /** What sends the S3 requests: observers see each one (tests count them); `destroy()` closes its idle connections. */
  readonly transport: S3Transport;
  readonly #b: Bucket;

  constructor(options: S3DriverOptions, tuning: S3DriverTuning = {}) {
    const resolved = resolveOptions(options, tuning);
    this.transport = createTransport(options, resolved, tuning.requestLog);
    this.#b = new Bucket(this.transport, resolved);
  }

  /** The configuration in effect: bucket, key prefix (`root`), sizes, with defaults applied. */
  get options(): Readonly<S3ResolvedOptions> {
    return this.#b.o;
  }

  async getContent(path: string): Promise<Buffer> {
    assertValidPath(path);
    try {
      return (await this.#b.getObject(this.#b.key(path))).bytes;
    } catch (err) {
      throw asPathNotFound(err, path, this.name);
    }
  }

  async putContent(path: string, content: Uint8Array): Promise<void> {
    assertValidPath(path);
    await this.#b.putObject(this.#b.key(path), content);
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    assertValidPath(path);
    assertOffset(offset, end);
    const key = this.#b.key(path);
    if (end === undefined || end > offset) {
      const range = offset === 0 && end === undefined ? undefined : `bytes=${offset}-${end === undefined ? "" : end - 1}`;
      try {
        const body = await this.#b.getBody(key, range);
        // Read by berth's own client: a stream whose chunks are lent pool buffers, destroyed at once.
        if (body instanceof ObjectBody) return markSocketSource(markOwnedChunks(body), body);
        // Not Node's HTTP response itself: a consumer that stops early (a `for await` left with
        // `break`) gets it aborted through its request, so it is not yet `destroyed` when the
        // consumer looks, as the driver contract wants. The pass-through is destroyed at once, and
        // the pipeline then destroys the response and its socket. It moves references, not bytes.
        const stream = new PassThrough({ highWaterMark: 256 * KiB });
        pipeline(body, stream, () => undefined);
        // Each body chunk is a socket read of its own, passed on by reference.
        return markOwnedChunks(stream);
      } catch (err) {
        // 416: the offset is at or past the end (or the object is empty); an absent object answers 404.
        if (!isInvalidRange(err)) throw asPathNotFound(err, path, this.name);
      }
    }
    if ((await this.#b.head(key)) === undefined) throw new PathNotFoundError(path, this.name);
    return Readable.from([], { objectMode: false });
  }

  /**
   * With `whileExists` in the same directory as an appending writer's path (an upload's
   * `startedat`), one listing checks it and finds the writer's state (resumeWithMarker).
   */
  async writer(path: string, append: boolean, options?: WriterOptions): Promise<FileWriter> {
    assertValidPath(path);
    const key = this.#b.key(path);
    const marker = options?.whileExists;
    if (marker !== undefined) assertValidPath(marker);
    if (!append) {
      if (marker !== undefined) await requireFile(this, marker);
      return new MultipartWriter(this.#b, key, await freshState(this.#b, key));
    }
    if (marker === undefined || posix.dirname(marker) !== posix.dirname(path)) {
      if (marker !== undefined) await requireFile(this, marker);
      return new MultipartWriter(this.#b, key, await resumeState(this.#b, key));
    }
    const state = await resumeWithMarker(this.#b, key, this.#b.key(marker));
    if (state === MARKER_MISSING) throw new PathNotFoundError(marker, this.name);
    return new MultipartWriter(this.#b, key, state);
  }

  /** HeadObject for a file; for a directory, a listing of one key under `<key>/` (not when only a file matters). */
  async stat(path: string, options?: StatOptions): Promise<FileInfo> {
    assertValidPath(path);
    if (path === "/") {
      // The storage health check stats the root (as distribution's does): a listing, so that it
      // reaches S3 and fails when S3 refuses or does not answer. An empty tree is PathNotFound.
      const first = (await this.#b.listPage({ Prefix: this.#b.dirPrefix(path), MaxKeys: 1 })).Contents?.[0];
      if (first === undefined) throw new PathNotFoundError(path, this.name);
      return { path, size: 0, modTime: first.LastModified ?? new Date(0), isDir: true };
    }
    const key = this.#b.key(path);
    const head = await this.#b.head(key);
    if (head !== undefined) return { path, size: head.size, modTime: head.modTime, isDir: false };
    if (options?.fileOnly) throw new PathNotFoundError(path, this.name);
    const first = (await this.#b.listPage({ Prefix: `${key}/`, MaxKeys: 1 })).Contents?.[0];
    if (first === undefined) throw new PathNotFoundError(path, this.name);
    return { path, size: 0, modTime: first.LastModified ?? new Date(0), isDir: true };
  }

  /** Files and common prefixes of a delimited listing, page by page; side objects are not shown. */
  async list(path: string): Promise<string[]> {
    assertValidPath(path);
    const prefix = this.#b.dirPrefix(path);
    const children: string[] = [];
    let seen = 0;
    for await (const page of this.#b.listPages({ Prefix: prefix, Delimiter: "/" })) {
      for (const object of page.Contents ?? []) {
        seen++;
        if (isValidSegment(object.Key!.slice(prefix.length))) children.push(this.#b.pathOf(object.Key!));
      }
      for (const common of page.CommonPrefixes ?? []) {
        seen++;
        const dir = common.Prefix!.slice(0, -1);
        if (isValidSegment(dir.slice(prefix.length))) children.push(this.#b.pathOf(dir));
      }
    }
    if (seen === 0) throw new PathNotFoundError(path, this.name);
    return children;
  }

  /**
   * Server-side copy, then delete of the source: CopyObject up to `multipartcopythresholdsize`,
   * a multipart copy (UploadPartCopy, `multipartcopymaxconcurrency` parts at a time) above it.
   * The bytes never pass through this process. With the size given, the source is not HEADed:
   * a source that is gone fails the copy with NoSuchKey, which is PathNotFoundError as well. A
   * source the caller removes next (with its directory) is left to that removal.
   */
  async move(sourcePath: string, destPath: string, options?: MoveOptions): Promise<void> {
    assertValidPath(sourcePath);
    assertValidPath(destPath);
    const source = this.#b.key(sourcePath);
    const dest = this.#b.key(destPath);
    const size = options?.size ?? (await this.#b.head(source))?.size;
    if (size === undefined) throw new PathNotFoundError(sourcePath, this.name);
    try {
      if (size <= this.#b.o.copyThreshold && size <= MAX_PART_SIZE) {
        await this.#b.copyObject(source, dest);
      } else {
        await this.#b.multipartCopy(source, size, dest);
      }
    } catch (err) {
      throw asPathNotFound(err, sourcePath, this.name);
    }
    if (!options?.sourceRemovedByCaller) await this.#b.deleteKey(source);
  }

  /**
   * Deletes the object at the path, everything under it and the path's side object (DeleteObjects,
   * 1000 keys a request), and aborts the multipart uploads of those keys, so that abandoned uploads
   * do not keep their parts. PathNotFoundError when none of these exist. A path the caller knows
   * to be a directory skips the listing that looks for an object of its name.
   */
  async delete(path: string, options?: DeleteOptions): Promise<void> {
    assertValidPath(path);
    const key = this.#b.key(path);
    const dirPrefix = this.#b.dirPrefix(path);
    const isRoot = path === "/";
    const [uploads, top] = await Promise.all([
      options?.writersSettled && !isRoot ? [] : this.#b.listUploads(isRoot ? dirPrefix : key, (k) => isRoot || k === key || k.startsWith(dirPrefix)),
      isRoot || options?.directory ? { keys: [], hasDir: true } : this.#nameLevel(key),
    ]);
    let found = top.keys.length > 0;
    if (found) await this.#b.deleteKeys(top.keys);
    if (top.hasDir) {
      // Page by page, listing again from the start: what was deleted is no longer listed.
      for (;;) {
        const page = await this.#b.listPage({ Prefix: dirPrefix });
        const keys = (page.Contents ?? []).map((object) => object.Key!);
        if (keys.length === 0) break;
        found = true;
        await this.#b.deleteKeys(keys);
        if (!page.IsTruncated) break;
      }
    }
    await Promise.all(uploads.map((upload) => this.#b.abortUpload(upload.key, upload.uploadId)));
    if (!found && uploads.length === 0) throw new PathNotFoundError(path, this.name);
  }

  /**
   * Aborts the unfinished multipart uploads interrupted operations left: started before
   * `olderThan` (and at least `leftoverUploadMinAgeMs` ago), with no object in their directory
   * but their own key and its side object. Those are a writer killed before it stored its side
   * object, whose directory was then removed without looking for uploads (`writersSettled`), and
   * multipart copies cut short. An upload whose directory holds anything else (an upload's
   * `startedat`) is still resumable, and goes when that directory is removed. S3 keeps the parts of
   * an unfinished upload, and bills them, until it is aborted.
   */
  async removeTemporaries(olderThan: Date): Promise<number> {
    const cutoff = Math.min(olderThan.getTime(), Date.now() - this.#b.o.leftoverUploadMinAgeMs);
    const uploads = await this.#b.listUploads(this.#b.dirPrefix("/"), () => true);
    let aborted = 0;
    for (const upload of uploads) {
      if (upload.initiated >= cutoff) continue;
      const dir = upload.key.slice(0, upload.key.lastIndexOf("/") + 1);
      const page = await this.#b.listPage({ Prefix: dir, Delimiter: "/" });
      const own = (object: { Key?: string }): boolean => object.Key === upload.key || isPendingKeyOf(object.Key ?? "", upload.key);
      if ((page.CommonPrefixes ?? []).length > 0 || !(page.Contents ?? []).every(own)) continue;
      await this.#b.abortUpload(upload.key, upload.uploadId);
      aborted++;
    }
    return aborted;
  }

  /**
   * The object key a path is stored under (distribution's S3BucketKey): the path a CDN whose origin
   * is the bucket serves the object at (src/middleware/cloudfront-driver.ts).
   */
  bucketKey(path: string): string {
    assertValidPath(path);
    return this.#b.key(path);
  }

  /** A presigned GET or HEAD URL, valid for 20 minutes. */
  async redirectURL(path: string, method: "GET" | "HEAD"): Promise<string | undefined> {
    assertValidPath(path);
    return this.#b.presignedURL(this.#b.key(path), method, REDIRECT_EXPIRY_SECONDS);
  }

  /**
   * Depth-first, children in lexical order, from a flat (recursive) listing: one request per
   * thousand keys rather than one per directory. See Walker for how S3's key order (where "a-b" and
   * "a.b" sort before "a/…") is turned into the lexical order of path segments.
   */
  async walk(path: string, visit: Visit, options?: WalkOptions): Promise<void> {
    assertValidPath(path);
    const walker = new Walker(this.#b, visit);
    const prefix = this.#b.dirPrefix(path);
    if (options?.startAfter === undefined) {
      if (!(await walker.walkDir(prefix))) throw new PathNotFoundError(path, this.name);
      return;
    }
    // Nothing after the start says nothing of the directory: one key tells whether it exists.
    if (!(await walker.walkAfter(prefix, segmentsBelow(path, options.startAfter))) && !(await walker.dirExists(prefix))) {
      throw new PathNotFoundError(path, this.name);
    }
  }

  /**
   * One delimited listing of a key's name prefix: the object and its side object, and whether a
   * directory of that name exists (its siblings sharing the prefix, such as "blob2", are ignored).
   */
  async #nameLevel(key: string): Promise<{ keys: string[]; hasDir: boolean }> {
    const keys: string[] = [];
    let hasDir = false;
    for await (const page of this.#b.listPages({ Prefix: key, Delimiter: "/" })) {
      for (const object of page.Contents ?? []) {
        if (object.Key === key || isPendingKeyOf(object.Key ?? "", key)) keys.push(object.Key!);
      }
      if ((page.CommonPrefixes ?? []).some((common) => common.Prefix === `${key}/`)) hasDir = true;
    }
    return { keys, hasDir };
  }
}

