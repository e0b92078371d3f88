import { PassThrough, Readable, pipeline } from "node:stream";
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
import { isValidSegment } from "../s3/bucket.js";
import { Walker, type Visit } from "../s3/s3-walk.js";
import { asPathNotFound, azureErrorCode, isInvalidBlobType, isInvalidRange, unlessBlobNotFound } from "./azure-errors.js";
import { createContainerClient, resolveOptions, type AzureDriverOptions, type AzureDriverTuning, type AzureResolvedOptions } from "./azure-options.js";
import { BlobContainer } from "./blob-container.js";
import { readUrlSigner } from "./read-url-signer.js";
import { freshState, resumeState } from "./block-session.js";
import { BlockWriter } from "./block-writer.js";
import { settleCopy, type CopyRetry } from "./copy-settle.js";

export type { AzureDriverOptions, AzureDriverTuning, AzureResolvedOptions } from "./azure-options.js";

/** How long a redirect URL stays valid (distribution: 20 minutes). */
const REDIRECT_EXPIRY_SECONDS = 20 * 60;

/**
 * Stores objects as block blobs in an Azure Blob Storage container, with the name layout of
 * distribution's azure driver: the name of a path is `rootdirectory` + path without its leading
 * slash, so a container written by distribution is served as it is. Directories are name prefixes.
 */
export class AzureDriver implements StorageDriver {
  readonly name = "azure";
  readonly remote = true;
  readonly #c: BlobContainer;
  readonly #copyRetry: CopyRetry;

  constructor(options: AzureDriverOptions, tuning: AzureDriverTuning = {}) {
    const resolved = resolveOptions(options, tuning);
    const client = createContainerClient(options, resolved);
    const token = options.credentials.type === "token" ? options.credentials.credential : undefined;
    this.#c = new BlobContainer(client, resolved, readUrlSigner(client, resolved.serviceUrl, token));
    this.#copyRetry = options.copyRetry ?? { maxRetries: 5, retryDelayMs: 100 };
  }

  /** The configuration in effect, with defaults applied. */
  get options(): Readonly<AzureResolvedOptions> {
    return this.#c.o;
  }

  async getContent(path: string): Promise<Buffer> {
    assertValidPath(path);
    if (path === "/") throw new PathNotFoundError(path, this.name);
    try {
      return await this.#c.blob(this.#c.name(path)).downloadToBuffer();
    } catch (err) {
      throw asPathNotFound(err, path, this.name);
    }
  }

  /**
   * One Put Blob: the service replaces the content whole. A blob of another type at the name (an
   * append blob of distribution's older writer) cannot be replaced so and is deleted first.
   */
  async putContent(path: string, content: Uint8Array): Promise<void> {
    assertValidPath(path);
    const blob = this.#c.blob(this.#c.name(path));
    try {
      await blob.upload(content, content.byteLength);
    } catch (err) {
      if (!isInvalidBlobType(err)) throw err;
      await unlessBlobNotFound(blob.delete());
      await blob.upload(content, content.byteLength);
    }
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    assertValidPath(path);
    assertOffset(offset, end);
    if (path === "/") throw new PathNotFoundError(path, this.name);
    const name = this.#c.name(path);
    if (end === undefined || end > offset) {
      try {
        const response = await this.#c.blob(name).download(offset, end === undefined ? undefined : end - offset);
        const body = response.readableStreamBody;
        if (body === undefined) throw new Error(`azure: ${name}: download without a body`);
        // A pass-through, as in the S3 driver: a consumer that stops early destroys it at once, and
        // the pipeline then destroys the response and its socket.
        const stream = new PassThrough({ highWaterMark: 256 * 1024 });
        pipeline(body as Readable, stream, () => undefined);
        return stream;
      } catch (err) {
        // 416: the offset is at or past the end (or the blob is empty); an absent blob answers 404.
        if (!isInvalidRange(err)) throw asPathNotFound(err, path, this.name);
      }
    }
    if ((await this.#c.head(name)) === undefined) throw new PathNotFoundError(path, this.name);
    return Readable.from([], { objectMode: false });
  }

  /**
   * Without `append`, a new session: nothing is asked of the service until the first block.
   * With it, one Get Block List finds the newest session's staged blocks or the committed blob.
   */
  async writer(path: string, append: boolean, options?: WriterOptions): Promise<FileWriter> {
    assertValidPath(path);
    const marker = options?.whileExists;
    if (marker !== undefined) assertValidPath(marker);
    const name = this.#c.name(path);
    const [state] = await Promise.all([append ? resumeState(this.#c.blob(name)) : freshState(), marker === undefined ? undefined : requireFile(this, marker)]);
    const writer = new BlockWriter(this.#c, name, state);
    await writer.restage(async () => (await this.#c.blob(name).download(0)).readableStreamBody as Readable);
    return writer;
  }

  /**
   * Get Blob Properties for a file; for a directory, a listing of one name under `<name>/` (not
   * when only a file matters). The root is always a directory, but is asked of the service (Get
   * Container Properties): the health check stats it to learn whether the service, the key and the
   * container answer.
   */
  async stat(path: string, options?: StatOptions): Promise<FileInfo> {
    assertValidPath(path);
    if (path === "/") {
      const container = await this.#c.client.getProperties();
      return { path, size: 0, modTime: container.lastModified ?? new Date(0), isDir: true };
    }
    const name = this.#c.name(path);
    const head = await this.#c.head(name);
    if (head !== undefined) return { path, size: head.size, modTime: head.modTime, isDir: false };
    if (options?.fileOnly) throw new PathNotFoundError(path, this.name);
    const first = (await this.#c.flatPage(`${name}/`, undefined, 1)).items[0];
    if (first === undefined) throw new PathNotFoundError(path, this.name);
    return { path, size: 0, modTime: first.LastModified, isDir: true };
  }

  /** The blobs and prefixes of a delimited listing, page by page. */
  async list(path: string): Promise<string[]> {
    assertValidPath(path);
    const prefix = this.#c.dirPrefix(path);
    const children: string[] = [];
    let seen = 0;
    for await (const page of this.#c.hierarchyPages(prefix)) {
      for (const blob of page.blobs) {
        seen++;
        if (isValidSegment(blob.Key.slice(prefix.length))) children.push(this.#c.pathOf(blob.Key));
      }
      for (const common of page.prefixes) {
        seen++;
        const dir = common.slice(0, -1);
        if (isValidSegment(dir.slice(prefix.length))) children.push(this.#c.pathOf(dir));
      }
    }
    if (seen === 0) throw new PathNotFoundError(path, this.name);
    return children;
  }

  /**
   * Copy Blob within the account (the service copies server-side; the bytes never pass through
   * this process), waited for while pending as max_retries and retry_delay say (copy-settle.ts),
   * then Delete Blob of the source. A source the caller removes next (with its directory) is left
   * to that removal. The copy is authorised by the account key, as the source is in the same
   * account.
   */
  async move(sourcePath: string, destPath: string, options?: MoveOptions): Promise<void> {
    assertValidPath(sourcePath);
    assertValidPath(destPath);
    if (sourcePath === "/") throw new PathNotFoundError(sourcePath, this.name);
    const source = this.#c.blob(this.#c.name(sourcePath));
    const dest = this.#c.blob(this.#c.name(destPath));
    try {
      // The SDK's poller only to start the copy: waiting for it is distribution's (settleCopy).
      const poller = await dest.beginCopyFromURL(source.url);
      if (!poller.isDone()) {
        await settleCopy(
          {
            status: async () => {
              const props = await dest.getProperties();
              return { status: props.copyStatus, description: props.copyStatusDescription };
            },
            abort: () => poller.cancelOperation(),
          },
          this.#copyRetry,
          `of ${sourcePath} to ${destPath}`,
        );
      } else {
        const status = poller.getResult()?.copyStatus;
        if (status !== undefined && status !== "success") throw new Error(`azure: copy of ${sourcePath} to ${destPath} ended ${status}`);
      }
    } catch (err) {
      throw asPathNotFound(err, sourcePath, this.name);
    }
    if (!options?.sourceRemovedByCaller) await unlessBlobNotFound(source.delete());
  }

  /**
   * Deletes the blob at the path and everything under it, including names that hold only staged
   * blocks (an upload's data never committed), so that abandoned uploads do not keep their blocks
   * for the service's week. PathNotFoundError when none of these exist. A path the caller knows to
   * be a directory skips the request for a blob of its name.
   */
  async delete(path: string, options?: DeleteOptions): Promise<void> {
    assertValidPath(path);
    const isRoot = path === "/";
    let found = false;
    if (!isRoot && !options?.directory) found = await this.#c.removeBlob(this.#c.name(path));
    const prefix = this.#c.dirPrefix(path);
    // Page by page, listing again from the start: what was deleted is no longer listed.
    for (;;) {
      const page = await this.#c.flatPage(prefix, undefined, this.#c.o.listPageSize, true);
      if (page.items.length === 0) break;
      const removed = await this.#c.removeBlobs(page.items.map((item) => item.Key));
      if (removed > 0) found = true;
      // A page of which nothing could be removed (gone meanwhile) would come back the same.
      if (removed === 0 || page.token === undefined) break;
    }
    if (!found) throw new PathNotFoundError(path, this.name);
  }

  /** A read-only SAS URL of the blob (GET and HEAD alike), valid for 20 minutes; none when the credentials cannot sign one. */
  async redirectURL(path: string, _method: "GET" | "HEAD"): Promise<string | undefined> {
    assertValidPath(path);
    return this.#c.readOnlyUrl(this.#c.name(path), REDIRECT_EXPIRY_SECONDS);
  }

  /**
   * Depth-first, children in lexical order, from flat listings (one request per page of names,
   * not one per directory), by the S3 driver's walker: Azure lists names in the same order as S3.
   */
  async walk(path: string, visit: Visit, options?: WalkOptions): Promise<void> {
    assertValidPath(path);
    const walker = new Walker(this.#c.flatListing(), visit);
    const prefix = this.#c.dirPrefix(path);
    if (options?.startAfter === undefined) {
      if (!(await walker.walkDir(prefix))) throw new PathNotFoundError(path, this.name);
      return;
    }
    if (!(await walker.walkAfter(prefix, segmentsBelow(path, options.startAfter))) && !(await walker.dirExists(prefix))) {
      throw new PathNotFoundError(path, this.name);
    }
  }

  /**
   * Asks the service for the container's properties: "container-not-found" and
   * "authentication-failed" are answers about the configuration (a wrong container name, account
   * or key), undefined means the container is there and the key works. Anything else (the service
   * unreachable, or slower than `signal` allows) rejects: it says nothing about the configuration.
   */
  async containerProblem(signal?: AbortSignal): Promise<"container-not-found" | "authentication-failed" | undefined> {
    try {
      await this.#c.client.getProperties({ abortSignal: signal });
      return undefined;
    } catch (err) {
      const code = azureErrorCode(err);
      if (code === "ContainerNotFound") return "container-not-found";
      if (code === "AuthenticationFailed" || code === "AuthorizationFailure" || code === "InvalidAuthenticationInfo") return "authentication-failed";
      throw err;
    }
  }
}
