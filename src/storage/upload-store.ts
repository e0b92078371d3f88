import { createHash, randomUUID, type Hash } from "node:crypto";
import type { FileWriter, StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import { RegistryError } from "../errcode/registry-error.js";
import { Digest, type DigestAlgorithm } from "../reference/digest.js";
import type { BlobDescriptor } from "../cache/blob-descriptor-cache.js";
import type { BlobStore } from "./blob-store.js";
import { uploadDataPath, uploadPath, uploadStartedAtPath } from "./paths.js";

/** An upload in progress, identified by repository and id; its bytes live in storage. */
export interface UploadSession {
  repository: string;
  id: string;
  startedAt: Date;
}

/** What a chunk promises about itself: `start` from Content-Range, `length` from Content-Length. */
export interface ChunkExpectation {
  start?: number;
  length?: number;
}

const UPLOAD_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const RESUMABLE_ALGORITHM: DigestAlgorithm = "sha256";
/** Hashers kept for uploads in flight; an evicted one only costs a re-read at completion. */
const MAX_LIVE_HASHERS = 4096;

/**
 * Blob uploads, written through the storage driver under `_uploads/<id>/` so that any process
 * sharing the storage can continue them. Completion verifies the digest and moves the bytes into
 * the global store; a blob is never visible under a digest its bytes do not have.
 *
 * The SHA-256 state of each upload is kept in this process while the upload is in flight, so
 * completing an upload streamed through this process costs no re-read. When the state is not
 * here (another process received the chunks, or this one restarted) completion re-reads the bytes.
 *
 * Chunks of one upload are serialised within the process; the driver writer is the single
 * authority on the current offset.
 */
export class UploadStore {
  private readonly hashers = new Map<string, { hash: Hash; offset: number }>();
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
  ) {}

  async start(repository: string): Promise<UploadSession> {
    const session = { repository, id: randomUUID(), startedAt: new Date() };
    await this.driver.putContent(uploadStartedAtPath(repository, session.id), Buffer.from(session.startedAt.toISOString()));
    return session;
  }

  /** BLOB_UPLOAD_UNKNOWN for an id that is malformed, finished, cancelled or never existed. */
  async open(repository: string, id: string): Promise<UploadSession> {
    if (!UPLOAD_ID.test(id)) throw new RegistryError("BLOB_UPLOAD_UNKNOWN", undefined, { id: id.slice(0, 200) });
    try {
      const raw = await this.driver.getContent(uploadStartedAtPath(repository, id));
      const startedAt = new Date(raw.toString("utf8").trim());
      return { repository, id, startedAt: Number.isNaN(startedAt.getTime()) ? new Date(0) : startedAt };
    } catch (err) {
      if (isPathNotFound(err)) throw new RegistryError("BLOB_UPLOAD_UNKNOWN", undefined, { id });
      throw err;
    }
  }

  /** Bytes received so far. */
  async size(session: UploadSession): Promise<number> {
    try {
      return (await this.driver.stat(uploadDataPath(session.repository, session.id))).size;
    } catch (err) {
      if (isPathNotFound(err)) return 0;
      throw err;
    }
  }

  /**
   * Appends a chunk and returns the new size. RANGE_INVALID (with the current range) when the chunk
   * does not start where the upload ends. If the body fails midway (client gone) what arrived is
   * kept and the upload stays resumable from its new size.
   */
  async append(session: UploadSession, body: AsyncIterable<Uint8Array>, expect: ChunkExpectation = {}): Promise<number> {
    return this.locked(session, async () => {
      const writer = await this.driver.writer(uploadDataPath(session.repository, session.id), true);
      try {
        await this.ingest(session, writer, body, expect);
      } finally {
        await writer.close();
      }
      return writer.size;
    });
  }

  /**
   * Appends an optional last chunk, verifies the digest, and moves the bytes into the global store.
   * DIGEST_INVALID when the bytes do not match: the upload is then cancelled, since no later chunk
   * can fix bytes already received.
   */
  async complete(
    session: UploadSession,
    digest: Digest,
    body: AsyncIterable<Uint8Array> | undefined,
    expect: ChunkExpectation = {},
  ): Promise<BlobDescriptor> {
    return this.locked(session, async () => {
      const dataPath = uploadDataPath(session.repository, session.id);
      const writer = await this.driver.writer(dataPath, true);
      try {
        if (body) await this.ingest(session, writer, body, expect);
      } catch (err) {
        await writer.close();
        throw err;
      }
      await writer.close();
      const size = writer.size;
      const computed = await this.digestOf(session, size, digest.algorithm);
      if (!computed.equals(digest)) {
        await this.remove(session);
        throw new RegistryError("DIGEST_INVALID", undefined, { expected: digest.toString(), computed: computed.toString() });
      }
      // A fresh writer continues the closed one; its commit is what makes the bytes durable.
      await (await this.driver.writer(dataPath, true)).commit();
      const descriptor = await this.blobs.adopt(dataPath, digest, size);
      await this.remove(session);
      return descriptor;
    });
  }

  async cancel(session: UploadSession): Promise<void> {
    await this.locked(session, () => this.remove(session));
  }

  private async ingest(session: UploadSession, writer: FileWriter, body: AsyncIterable<Uint8Array>, expect: ChunkExpectation): Promise<void> {
    const start = writer.size;
    if (expect.start !== undefined && expect.start !== start) {
      throw new RegistryError("RANGE_INVALID", "chunk does not start at the end of the upload", { offset: start }, rangeHeader(start));
    }
    const key = hasherKey(session);
    let hasher = this.hashers.get(key);
    this.hashers.delete(key);
    if (!hasher || hasher.offset !== start) hasher = start === 0 ? { hash: createHash(RESUMABLE_ALGORITHM), offset: 0 } : undefined;
    let received = 0;
    try {
      for await (const chunk of body) {
        received += chunk.length;
        if (expect.length !== undefined && received > expect.length) {
          throw new RegistryError("SIZE_INVALID", "chunk is longer than its declared length");
        }
        hasher?.hash.update(chunk);
        await writer.write(chunk);
      }
      if (expect.length !== undefined && received !== expect.length) {
        throw new RegistryError("SIZE_INVALID", "chunk is shorter than its declared length");
      }
    } finally {
      // Keep the hasher only if it has seen exactly the bytes the writer holds.
      if (hasher && writer.size === start + received) {
        hasher.offset = writer.size;
        this.rememberHasher(key, hasher);
      }
    }
  }

  /** The digest of the upload's bytes: from the live hasher when there is one, else re-read. */
  private async digestOf(session: UploadSession, size: number, algorithm: DigestAlgorithm): Promise<Digest> {
    const key = hasherKey(session);
    const live = this.hashers.get(key);
    this.hashers.delete(key);
    if (live && live.offset === size && algorithm === RESUMABLE_ALGORITHM) {
      return Digest.fromHash(algorithm, live.hash);
    }
    if (size === 0) return Digest.of(algorithm, new Uint8Array(0));
    const hash = createHash(algorithm);
    const stream = await this.driver.reader(uploadDataPath(session.repository, session.id), 0);
    for await (const chunk of stream) hash.update(chunk as Buffer);
    return Digest.fromHash(algorithm, hash);
  }

  private async remove(session: UploadSession): Promise<void> {
    this.hashers.delete(hasherKey(session));
    try {
      await this.driver.delete(uploadPath(session.repository, session.id));
    } catch (err) {
      if (!isPathNotFound(err)) throw err;
    }
  }

  private rememberHasher(key: string, hasher: { hash: Hash; offset: number }): void {
    this.hashers.set(key, hasher);
    if (this.hashers.size > MAX_LIVE_HASHERS) {
      const oldest = this.hashers.keys().next().value;
      if (oldest !== undefined) this.hashers.delete(oldest);
    }
  }

  private async locked<T>(session: UploadSession, work: () => Promise<T>): Promise<T> {
    const key = hasherKey(session);
    const previous = this.locks.get(key) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(work);
    const settled = run.catch(() => undefined);
    this.locks.set(key, settled);
    try {
      return await run;
    } finally {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    }
  }
}

/** The Range header value the spec wants for an upload of `size` bytes ("0-(size-1)"). */
export function rangeHeader(size: number): Record<string, string> {
  return { Range: `0-${Math.max(size - 1, 0)}` };
}

function hasherKey(session: UploadSession): string {
  return `${session.repository}/${session.id}`;
}
