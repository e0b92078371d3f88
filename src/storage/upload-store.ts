import { createHash, randomUUID } from "node:crypto";
import type { FileWriter, StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound, requireFile } from "../driver/storage-driver.js";
import { RegistryError } from "../errcode/registry-error.js";
import { Digest, type DigestAlgorithm } from "../reference/digest.js";
import type { BlobDescriptor } from "../cache/blob-descriptor-cache.js";
import type { BlobStore } from "./blob-store.js";
import { releaseChunk } from "../native/release-buffer.js";
import { newUploadHash, resumeUploadHash, type UploadHash } from "../hash/upload-hash.js";
import { uploadDataPath, uploadHashStatePath, uploadHashStatesPath, uploadPath, uploadStartedAtPath } from "./paths.js";

/** An upload in progress, identified by repository and id; its bytes live in storage. */
export interface UploadSession {
  repository: string;
  id: string;
  startedAt: Date;
  /**
   * Opened on the word of a verified upload state token: whether the upload still exists (was not
   * finished or cancelled) is checked by the operation itself, with the writer's own state.
   */
  unconfirmed?: boolean;
}

/**
 * An upload's bytes as they arrive. `chunksReleasable`: each chunk is memory of its own that
 * nothing else reads once it is yielded (Node's HTTP/1 parser copies every body chunk into a fresh
 * buffer), so the upload may free it as soon as the writer has it.
 */
export type UploadBody = AsyncIterable<Uint8Array> & { readonly chunksReleasable?: boolean };

/** What a chunk promises about itself: `start` from Content-Range, `length` from Content-Length. */
export interface ChunkExpectation {
  start?: number;
  length?: number;
}

const UPLOAD_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const RESUMABLE_ALGORITHM: DigestAlgorithm = "sha256";
/** Hashers kept for uploads in flight; an evicted one costs reading its saved state back. */
const MAX_LIVE_HASHERS = 4096;

/**
 * Blob uploads, written through the storage driver under `_uploads/<id>/` so that any process
 * sharing the storage can continue them. Completion verifies the digest and moves the bytes into
 * the global store; a blob is never visible under a digest its bytes do not have.
 *
 * The SHA-256 of each upload is computed while its bytes stream in, and its state is saved after
 * every chunk as `hashstates/sha256/<offset>` (distribution's file and format). Whichever process
 * receives the next chunk or the final PUT resumes from the live hasher in memory or, failing
 * that, from the saved state plus whatever bytes arrived after it; only when neither exists (the
 * native hasher is not built, or distribution wrote no state) are the bytes read again.
 *
 * Chunks of one upload are serialised within the process; the driver writer is the single
 * authority on the current offset.
 */
export class UploadStore {
  private readonly hashers = new Map<string, UploadHash>();
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
  ) {}

  async start(repository: string): Promise<UploadSession> {
    const session = { repository, id: randomUUID(), startedAt: new Date() };
    // Not durable: an upload start lost in a crash is one the client simply starts again.
    await this.driver.putContent(uploadStartedAtPath(repository, session.id), Buffer.from(session.startedAt.toISOString()), { durable: false });
    return session;
  }

  /**
   * The upload `id`; BLOB_UPLOAD_UNKNOWN for an id that is malformed, finished, cancelled or never
   * existed. `startedAt` is the start time a verified
   * upload state token already vouches for: the upload's file is then checked for by the operation
   * that follows (on S3, in the same listing that finds the writer's state), not read.
   */
  async open(repository: string, id: string, startedAt?: Date): Promise<UploadSession> {
    if (!UPLOAD_ID.test(id)) throw new RegistryError("BLOB_UPLOAD_UNKNOWN", undefined, { id: id.slice(0, 200) });
    if (startedAt) return { repository, id, startedAt, unconfirmed: true };
    try {
      const raw = await this.driver.getContent(uploadStartedAtPath(repository, id));
      const stored = new Date(raw.toString("utf8").trim());
      return { repository, id, startedAt: Number.isNaN(stored.getTime()) ? new Date(0) : stored };
    } catch (err) {
      if (isPathNotFound(err)) throw new RegistryError("BLOB_UPLOAD_UNKNOWN", undefined, { id });
      throw err;
    }
  }

  /**
   * Bytes received so far. Asked of a writer, not `stat`: an object store shows uploaded parts
   * only once the upload is committed.
   */
  async size(session: UploadSession): Promise<number> {
    return this.locked(session, async () => {
      const writer = await this.openWriter(session);
      await writer.close();
      return writer.size;
    });
  }

  /**
   * Appends a chunk and returns the new size. RANGE_INVALID (with the current range) when the chunk
   * does not start where the upload ends. If the body fails midway (client gone) what arrived is
   * kept and the upload stays resumable from its new size.
   */
  async append(session: UploadSession, body: UploadBody, expect: ChunkExpectation = {}): Promise<number> {
    return this.locked(session, async () => {
      const writer = await this.openWriter(session);
      try {
        await this.ingest(session, writer, body, expect);
      } finally {
        await writer.close();
        // Only once the bytes are in storage may a state claim them.
        await this.saveHashState(session, writer.size);
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
    body: UploadBody | undefined,
    expect: ChunkExpectation = {},
  ): Promise<BlobDescriptor> {
    return this.locked(session, async () => {
      const dataPath = uploadDataPath(session.repository, session.id);
      const writer = await this.openWriter(session);
      let hashedByWriter = false;
      try {
        if (body) hashedByWriter = await this.ingest(session, writer, body, expect);
      } catch (err) {
        await writer.close();
        throw err;
      }
      const size = writer.size;
      // adopt() moves the bytes next, and the move makes the blob's name durable; remove() then
      // takes the upload's directory, with whatever the driver kept beside the bytes.
      const commit = { durableName: false, directoryRemovedNext: true };
      // The writer hashes its last bytes as it writes them: the digest is known once it commits.
      // Bytes that then fail the digest were synced for nothing, and are removed with the upload.
      // (A digest of another algorithm goes the other way, which closes the writer first.)
      if (hashedByWriter && digest.algorithm === RESUMABLE_ALGORITHM) await writer.commit(commit);
      const live = this.hashers.get(hasherKey(session));
      // The common cases: this process hashed every byte as it arrived, or the process that took the
      // last chunk (another node) saved the hash state at the end. Nothing is read back either way,
      // and this writer stays open for the commit.
      const known =
        digest.algorithm !== RESUMABLE_ALGORITHM ? undefined : live?.length === size ? live : await this.savedHashAt(session, size);
      if (known) {
        const computed = Digest.parse(`${digest.algorithm}:${known.hexDigest()}`);
        if (!computed.equals(digest)) await writer.close();
        await this.verify(session, digest, computed);
        // Verified before anything was committed: the writer may put the bytes at the blob's path itself.
        const placed = hashedByWriter ? undefined : await this.blobs.place(writer, digest, size);
        if (placed) {
          await this.remove(session, true);
          return placed;
        }
        await writer.commit(commit);
      } else {
        await writer.close();
        const resumed = digest.algorithm === RESUMABLE_ALGORITHM ? await this.hasherAt(session, size) : undefined;
        if (resumed) await this.verify(session, digest, Digest.parse(`${digest.algorithm}:${resumed.hexDigest()}`));
        // A fresh writer continues the closed one; its commit is what makes the bytes durable.
        await (await this.openWriter(session)).commit({ durableName: false, directoryRemovedNext: true });
        // No hash state covers the bytes: read them back, now that the commit made them readable.
        if (!resumed) await this.verify(session, digest, await this.rehash(dataPath, size, digest.algorithm));
      }
      const descriptor = await this.blobs.adopt(dataPath, digest, size, { sourceRemovedByCaller: true });
      // The writers are settled: this one committed; one a kill cut short is the purge's.
      await this.remove(session, true);
      return descriptor;
    });
  }

  async cancel(session: UploadSession): Promise<void> {
    await this.locked(session, async () => {
      if (session.unconfirmed) await this.whileUploadExists(session, () => requireFile(this.driver, uploadStartedAtPath(session.repository, session.id)));
      await this.remove(session);
    });
  }

  /**
   * The writer of the upload's bytes, continuing what earlier chunks left, while the upload exists
   * (its `startedat` goes with it), so an unconfirmed session needs no check of its own, and bytes of a
   * finished or cancelled upload are never written again.
   */
  private openWriter(session: UploadSession): Promise<FileWriter> {
    return this.whileUploadExists(session, () =>
      this.driver.writer(uploadDataPath(session.repository, session.id), true, { whileExists: uploadStartedAtPath(session.repository, session.id) }),
    );
  }

  /** BLOB_UPLOAD_UNKNOWN when `work` finds the upload's `startedat` gone. */
  private async whileUploadExists<T>(session: UploadSession, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (isPathNotFound(err)) throw new RegistryError("BLOB_UPLOAD_UNKNOWN", undefined, { id: session.id });
      throw err;
    }
  }

  /**
   * Writes the body through `writer`, hashing it. true when the writer hashes it in its own jobs
   * (hashWhileWriting): the hasher is then remembered at once, and its length is only right once
   * the writer is closed or committed (the callers check it after that).
   */
  private async ingest(session: UploadSession, writer: FileWriter, body: UploadBody, expect: ChunkExpectation): Promise<boolean> {
    const start = writer.size;
    if (expect.start !== undefined && expect.start !== start) {
      throw new RegistryError("RANGE_INVALID", "chunk does not start at the end of the upload", { offset: start }, rangeHeader(start));
    }
    const key = hasherKey(session);
    const hasher = await this.hasherAt(session, start);
    // SHA-256 is a tenth of the event loop's time under concurrent pushes; the writer's jobs take it.
    const state = hasher?.nativeState;
    const hashedByWriter = state !== undefined && writer.hashWhileWriting?.(state) === true;
    const releasable = body.chunksReleasable === true && writer.copiesChunks === true;
    let received = 0;
    try {
      for await (const chunk of body) {
        received += chunk.length;
        if (expect.length !== undefined && received > expect.length) {
          throw new RegistryError("SIZE_INVALID", "chunk is longer than its declared length");
        }
        if (!hashedByWriter) hasher?.update(chunk as Buffer);
        const written = writer.write(chunk);
        // Nothing reads the chunk after this: free it now rather than at a later collection.
        if (releasable) releaseChunk(chunk);
        await written;
      }
      if (expect.length !== undefined && received !== expect.length) {
        throw new RegistryError("SIZE_INVALID", "chunk is shorter than its declared length");
      }
    } finally {
      // Keep the hasher only if it has seen exactly the bytes the writer holds; one the writer
      // feeds cannot be read yet, and every reader compares the lengths once the writer settled.
      if (hasher && (hashedByWriter || writer.size === hasher.length)) this.rememberHasher(key, hasher);
    }
    return hashedByWriter;
  }

  /**
   * A hasher that has seen exactly the first `offset` bytes: the live one, or one resumed from the
   * newest saved state at or below `offset` and caught up by reading the bytes after it.
   * undefined when no state exists (the digest is then computed by re-reading at completion).
   */
  private async hasherAt(session: UploadSession, offset: number): Promise<UploadHash | undefined> {
    const key = hasherKey(session);
    const live = this.hashers.get(key);
    this.hashers.delete(key);
    if (live && live.length === offset) return live;
    if (offset === 0) return newUploadHash();
    const saved = await this.loadHashState(session, offset);
    if (!saved) return undefined;
    if (saved.length < offset) {
      try {
        const rest = await this.driver.reader(uploadDataPath(session.repository, session.id), saved.length, offset);
        for await (const chunk of rest) saved.update(chunk as Buffer);
      } catch (err) {
        // An object store cannot read an upload before it is committed; completion re-reads it then.
        if (isPathNotFound(err)) return undefined;
        throw err;
      }
    }
    return saved.length === offset ? saved : undefined;
  }

  /** The saved hash state at exactly `offset`, read by its name (no listing), if there is one. */
  private async savedHashAt(session: UploadSession, offset: number): Promise<UploadHash | undefined> {
    if (offset === 0) return newUploadHash();
    try {
      const resumed = resumeUploadHash(await this.driver.getContent(uploadHashStatePath(session.repository, session.id, RESUMABLE_ALGORITHM, offset)));
      return resumed?.length === offset ? resumed : undefined;
    } catch (err) {
      if (isPathNotFound(err)) return undefined;
      throw err;
    }
  }

  private async loadHashState(session: UploadSession, atMost: number): Promise<UploadHash | undefined> {
    let offsets: number[];
    try {
      const dir = uploadHashStatesPath(session.repository, session.id, RESUMABLE_ALGORITHM);
      offsets = (await this.driver.list(dir)).map((p) => Number(p.slice(p.lastIndexOf("/") + 1)));
    } catch (err) {
      if (isPathNotFound(err)) return undefined;
      throw err;
    }
    // A state past the end describes bytes that are not there (lost in a crash): it could later
    // vouch for different bytes at the same offsets, so it goes.
    for (const stale of offsets.filter((o) => !Number.isSafeInteger(o) || o > atMost)) {
      await this.driver.delete(uploadHashStatePath(session.repository, session.id, RESUMABLE_ALGORITHM, stale), { durable: false }).catch(() => undefined);
    }
    const best = offsets.filter((o) => Number.isSafeInteger(o) && o <= atMost).sort((a, b) => b - a)[0];
    return best === undefined ? undefined : this.savedHashAt(session, best);
  }

  /** Saves the live hasher's state, when it is at `size`, where every process can resume it. */
  private async saveHashState(session: UploadSession, size: number): Promise<void> {
    const hasher = this.hashers.get(hasherKey(session));
    const state = hasher?.length === size ? hasher.marshal() : undefined;
    if (!state) return;
    // Not durable: a state lost in a crash means an older one, or a re-read, at completion.
    await this.driver.putContent(uploadHashStatePath(session.repository, session.id, RESUMABLE_ALGORITHM, size), state, { durable: false });
  }

  /** DIGEST_INVALID, after removing the upload, unless the bytes' digest is the one claimed. */
  private async verify(session: UploadSession, claimed: Digest, computed: Digest): Promise<void> {
    if (computed.equals(claimed)) return;
    await this.remove(session);
    throw new RegistryError("DIGEST_INVALID", undefined, { expected: claimed.toString(), computed: computed.toString() });
  }

  private async rehash(path: string, size: number, algorithm: DigestAlgorithm): Promise<Digest> {
    const hash = createHash(algorithm);
    if (size > 0) {
      const stream = await this.driver.reader(path, 0, size);
      for await (const chunk of stream) hash.update(chunk as Buffer);
    }
    return Digest.fromHash(algorithm, hash);
  }

  /** `writersSettled`: see DeleteOptions (after a commit; a cancel leaves the last writer's upload open). */
  private async remove(session: UploadSession, writersSettled = false): Promise<void> {
    this.hashers.delete(hasherKey(session));
    try {
      // Not synced: an upload that comes back after a power cut holds nothing the registry serves,
      // and is purged with the others; a sync here would cost every push of a blob a flush.
      await this.driver.delete(uploadPath(session.repository, session.id), { directory: true, durable: false, writersSettled });
    } catch (err) {
      if (!isPathNotFound(err)) throw err;
    }
  }

  private rememberHasher(key: string, hasher: UploadHash): void {
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
