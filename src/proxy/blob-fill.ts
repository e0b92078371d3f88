import { createHash } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import { open, unlink, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { Digest } from "../reference/digest.js";
import { RegistryError } from "../errcode/registry-error.js";
import type { UploadBody } from "../storage/upload-store.js";
import { UpstreamError } from "./upstream-error.js";

/** The upstream's answer to a blob GET, accepted (200) by the caller. */
export interface FillSource {
  /** From Content-Length; undefined when the upstream did not say. */
  size: number | undefined;
  body: AsyncIterable<Buffer> & { destroy(error?: Error): void };
}

/** Writes the blob into storage from `body`, verifying it against its digest on the way. */
export type FillStore = (body: UploadBody, size: number | undefined) => Promise<void>;

const READ_CHUNK = 256 * 1024;

/**
 * One upstream download of a blob, shared by every client that asks for it while it runs.
 *
 * The bytes are written as they arrive to a spool file on local disk and, in the same pass, into
 * storage through an ordinary upload, which verifies the digest and makes the blob durable. Each
 * client reads the spool at its own pace (FillReader), so a slow client never slows the others or
 * the fill, a fast one streams as the bytes arrive, and a client that disconnects only closes its
 * reader: the fill goes on for the others and for the cache. Memory stays at a few chunks.
 *
 * The last byte of the blob is held back from every reader until the whole body has been hashed
 * and matches the digest: on a mismatch readers fail instead, so no client ever receives the
 * complete body of bytes that are not the blob it asked for.
 */
export class BlobFill {
  size: number | undefined;
  written = 0;
  verified = false;
  error: Error | undefined;
  /** Resolves once the upstream answered and the spool exists; rejects when either failed. */
  readonly ready: Promise<void>;
  /** Resolves when the blob is in storage; rejects when the fill failed. */
  readonly done: Promise<void>;
  private spool: FileHandle | undefined;
  private references = 1;
  private wake: () => void = () => undefined;
  private progress: Promise<void>;

  constructor(
    readonly digest: Digest,
    /** The upstream's URL, for errors. */
    private readonly upstream: string,
    private readonly spoolPath: string,
    fetch: () => Promise<FillSource>,
    store: FillStore,
  ) {
    this.progress = this.nextProgress();
    let markReady: () => void = () => undefined;
    let failReady: (err: unknown) => void = () => undefined;
    this.ready = new Promise<void>((resolve, reject) => ((markReady = resolve), (failReady = reject)));
    this.done = this.run(fetch, store, markReady).then(
      () => undefined,
      (err: unknown) => {
        this.error = err instanceof Error ? err : new Error(String(err));
        failReady(this.error);
        this.notify();
        throw this.error;
      },
    );
    // Nobody may be waiting on either when the fill fails after every client left.
    this.ready.catch(() => undefined);
    this.done.catch(() => undefined);
  }

  /** Bytes [offset, end) as they arrive; end undefined means to the end of the blob. */
  reader(offset: number, end: number | undefined): Readable {
    this.references++;
    return new FillReader(this, offset, end);
  }

  /** Resolves at the next write, the verification or the failure. */
  nextChange(): Promise<void> {
    return this.progress;
  }

  /** Reads spooled bytes at `position`; only ever asked for bytes already written. */
  async readAt(buffer: Buffer, position: number): Promise<number> {
    if (!this.spool) throw new Error("blob fill spool is not open");
    const { bytesRead } = await this.spool.read(buffer, 0, buffer.length, position);
    return bytesRead;
  }

  release(): void {
    if (--this.references === 0) void this.closeSpool();
  }

  private async run(fetch: () => Promise<FillSource>, store: FillStore, markReady: () => void): Promise<void> {
    const source = await fetch();
    this.size = source.size;
    try {
      this.spool = await open(this.spoolPath, "w+");
    } catch (err) {
      source.body.destroy();
      throw err;
    }
    markReady();
    try {
      await store(this.tee(source), source.size);
    } catch (err) {
      source.body.destroy();
      if (err instanceof RegistryError && (err.code === "DIGEST_INVALID" || err.code === "SIZE_INVALID")) {
        throw new UpstreamError("invalid", this.upstream, `it sent bytes that do not match ${this.digest.toString()}; nothing was stored`);
      }
      throw err;
    } finally {
      // The fill's own reference: readers still streaming keep the spool open.
      this.release();
    }
  }

  /**
   * The upstream body, each chunk spooled for the readers before storage takes it. The fill hashes
   * the bytes too, so readers get the last byte as soon as the body is verified, without waiting
   * for storage to make the blob durable (storage verifies again on its own).
   */
  private async *tee(source: FillSource): AsyncGenerator<Buffer> {
    const hash = createHash(this.digest.algorithm);
    for await (const chunk of source.body) {
      hash.update(chunk);
      if (this.size !== undefined && this.written + chunk.length > this.size) {
        throw new UpstreamError("invalid", this.upstream, `it sent more bytes than the ${this.size} it announced`);
      }
      let offset = 0;
      while (offset < chunk.length) {
        const { bytesWritten } = await this.spool!.write(chunk, offset, chunk.length - offset, this.written + offset);
        offset += bytesWritten;
      }
      this.written += chunk.length;
      this.notify();
      yield chunk;
    }
    if (this.size !== undefined && this.written !== this.size) {
      throw new UpstreamError("unreachable", this.upstream, `the blob ended after ${this.written} of ${this.size} bytes`);
    }
    if (hash.digest("hex") !== this.digest.hex) {
      throw new UpstreamError("invalid", this.upstream, `it sent bytes that do not match ${this.digest.toString()}; nothing was stored`);
    }
    this.size = this.written;
    this.verified = true;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.progress = this.nextProgress();
    wake();
  }

  private nextProgress(): Promise<void> {
    return new Promise<void>((resolve) => (this.wake = resolve));
  }

  private async closeSpool(): Promise<void> {
    const spool = this.spool;
    this.spool = undefined;
    await spool?.close().catch(() => undefined);
    await unlink(this.spoolPath).catch(() => undefined);
  }
}

/** A client's view of a fill: bytes [offset, end) as they become readable. */
class FillReader extends Readable {
  private position: number;
  private released = false;

  constructor(
    private readonly fill: BlobFill,
    offset: number,
    private readonly end: number | undefined,
  ) {
    super({ highWaterMark: READ_CHUNK });
    this.position = offset;
  }

  override _read(): void {
    this.pump().catch((err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))));
  }

  private async pump(): Promise<void> {
    for (;;) {
      const fill = this.fill;
      if (fill.error) throw fill.error;
      const end = this.end ?? (fill.verified ? fill.written : Number.POSITIVE_INFINITY);
      if (this.position >= end) {
        this.push(null);
        return;
      }
      // Everything written is readable except the blob's last byte, which waits for verification.
      const readable = Math.min(end, fill.verified ? fill.written : fill.written - 1);
      if (this.position < readable) {
        const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, readable - this.position));
        const read = await fill.readAt(buffer, this.position);
        if (read === 0) throw new Error("blob fill spool ended early");
        this.position += read;
        this.push(read === buffer.length ? buffer : buffer.subarray(0, read));
        return;
      }
      await fill.nextChange();
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.released) {
      this.released = true;
      this.fill.release();
    }
    callback(err);
  }
}

/**
 * The fills in progress in this process, one per repository and digest, and the directory their
 * spool files live in (removed at close).
 */
export class BlobFills {
  private readonly fills = new Map<string, BlobFill>();
  private readonly directory = join(tmpdir(), `berth-proxy-${process.pid}`);
  private sequence = 0;
  private created = false;

  /** The fill of `digest` for `repository` in progress, or a new one started with `fetch`. */
  fill(repository: string, digest: Digest, upstream: string, fetch: () => Promise<FillSource>, store: FillStore): BlobFill {
    const key = `${repository}@${digest.toString()}`;
    const running = this.fills.get(key);
    if (running && !running.error) return running;
    if (!this.created) {
      mkdirSync(this.directory, { recursive: true, mode: 0o700 });
      this.created = true;
    }
    const fill = new BlobFill(digest, upstream, join(this.directory, `${digest.hex.slice(0, 16)}-${++this.sequence}`), fetch, store);
    this.fills.set(key, fill);
    const forget = (): void => {
      if (this.fills.get(key) === fill) this.fills.delete(key);
    };
    fill.done.then(forget, forget);
    return fill;
  }

  /** The fill in progress, if any (a HEAD during a fill answers from it). */
  running(repository: string, digest: Digest): BlobFill | undefined {
    const fill = this.fills.get(`${repository}@${digest.toString()}`);
    return fill && !fill.error ? fill : undefined;
  }

  close(): void {
    if (this.created) rmSync(this.directory, { recursive: true, force: true });
  }
}
