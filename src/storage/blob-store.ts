import { createHash, type Hash } from "node:crypto";
import { pipeline, Transform, type Readable, type TransformCallback } from "node:stream";
import type { FileWriter, StorageDriver } from "../driver/storage-driver.js";
import { hasOwnedChunks, isPathNotFound, markOwnedChunks } from "../driver/storage-driver.js";
import { RegistryError } from "../errcode/registry-error.js";
import { Digest, type DigestAlgorithm } from "../reference/digest.js";
import type { BlobDescriptor, BlobDescriptorCache } from "../cache/blob-descriptor-cache.js";
import type { Logger } from "../log/logger.js";
import { blobDataPath } from "./paths.js";
import type { RedirectClient } from "../driver/storage-driver.js";

export const OCTET_STREAM = "application/octet-stream";

/** Digests whose bytes this process has hashed and found sound; bounded, oldest forgotten first. */
const MAX_VERIFIED_DIGESTS = 65_536;

/** A blob whose stored bytes do not hash to its digest: the stream that found it fails with this. */
export class BlobContentMismatchError extends Error {
  constructor(
    readonly digest: string,
    readonly computed: string,
  ) {
    super(`stored blob ${digest} does not match its digest (its bytes hash to ${computed})`);
    this.name = "BlobContentMismatchError";
  }
}

/**
 * The global, content-addressed blob store: each digest's bytes once, at blobs/…/data. It is never
 * reachable from the API directly; repositories see blobs through a LinkedBlobStore.
 */
export class BlobStore {
  private readonly verified = new Set<string>();

  constructor(
    readonly driver: StorageDriver,
    private readonly cache: BlobDescriptorCache,
    private readonly log?: Logger,
  ) {}

  /** BLOB_UNKNOWN when the bytes are not stored. */
  async stat(digest: Digest): Promise<BlobDescriptor> {
    const cached = await this.cache.get(digest);
    if (cached) return cached;
    try {
      // A directory at a blob's data path is no blob: an object store need not look for one.
      const info = await this.driver.stat(blobDataPath(digest), { fileOnly: true });
      if (info.isDir) throw new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() });
      const descriptor = { digest, size: info.size, mediaType: OCTET_STREAM };
      await this.cache.set(descriptor);
      return descriptor;
    } catch (err) {
      if (isPathNotFound(err)) throw new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() });
      throw err;
    }
  }

  exists(digest: Digest): Promise<boolean> {
    return answersKnown(() => this.stat(digest));
  }

  /** A stream of bytes [offset, end). */
  async open(digest: Digest, offset = 0, end?: number): Promise<Readable> {
    try {
      return await this.driver.reader(blobDataPath(digest), offset, end);
    } catch (err) {
      if (isPathNotFound(err)) throw new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() });
      throw err;
    }
  }

  /**
   * Like `open`, for serving. When [offset, end) is the whole blob and this process has not yet
   * verified the digest, the bytes are hashed as they stream and the last chunk is held back
   * until the digest is known: on a mismatch the stream fails instead (and it is logged), so a
   * client never receives the complete body of a damaged blob. Once sound, a digest streams
   * unchecked (content-addressed data is never rewritten), so the cost is at most one hash per
   * blob per process, and none for blobs this process stored (their bytes were hashed on the way
   * in). Ranges that are not the whole blob cannot be checked and are served as stored.
   */
  async openChecked(digest: Digest, offset: number, end: number): Promise<Readable> {
    const key = digest.toString();
    if (offset !== 0 || this.verified.has(key)) return this.open(digest, offset, end);
    const { size } = await this.stat(digest);
    const stream = await this.open(digest, 0, end);
    if (end < size) return stream;
    const verifier = new DigestVerifier(digest, (computed) => {
      if (computed === undefined) {
        this.markVerified(digest);
        return;
      }
      this.log?.error(
        { digest: key, computed, path: blobDataPath(digest) },
        "stored blob does not match its digest: download cut short (the data file is damaged; nothing was deleted)",
      );
    });
    // Errors travel both ways: a failing read fails the verifier, a destroyed verifier stops the read.
    const checked = pipeline(stream, verifier, () => undefined);
    // It passes the same chunks on, hashed and let go of.
    return hasOwnedChunks(stream) ? markOwnedChunks(checked) : checked;
  }

  /** Records that the stored bytes of `digest` are known to match it (hashed here, on write or read). */
  private markVerified(digest: Digest): void {
    this.verified.add(digest.toString());
    if (this.verified.size > MAX_VERIFIED_DIGESTS) this.verified.delete(this.verified.values().next().value!);
  }

  /** The whole content of a small blob (a manifest). */
  async get(digest: Digest): Promise<Buffer> {
    try {
      return await this.driver.getContent(blobDataPath(digest));
    } catch (err) {
      if (isPathNotFound(err)) throw new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() });
      throw err;
    }
  }

  /** Stores small content (a manifest) under its digest; a no-op when already stored (asked as `adopt` asks). */
  async put(content: Uint8Array, algorithm: DigestAlgorithm): Promise<BlobDescriptor> {
    const digest = Digest.of(algorithm, content);
    if (!(await this.stored(digest))) {
      await this.driver.putContent(blobDataPath(digest), content);
      this.markVerified(digest);
    }
    const descriptor = { digest, size: content.length, mediaType: OCTET_STREAM };
    await this.cache.set(descriptor);
    return descriptor;
  }

  /**
   * Moves verified upload bytes into place. When the digest is already stored (a concurrent push of
   * the same layer), the stored copy stays: same digest, same bytes. A remote store is not asked
   * (a request on every push of a new blob; distribution asks), only the cache: otherwise the move
   * replaces such a copy with the same bytes. A caller that removes the source's directory next
   * says so: an object store then makes no request to delete it.
   */
  async adopt(sourcePath: string, digest: Digest, size: number, options: { sourceRemovedByCaller?: boolean } = {}): Promise<BlobDescriptor> {
    const sourceRemovedByCaller = options.sourceRemovedByCaller === true;
    if (await this.stored(digest)) {
      if (!sourceRemovedByCaller) await this.driver.delete(sourcePath).catch(() => undefined);
    } else {
      await this.driver.move(sourcePath, blobDataPath(digest), { size, sourceRemovedByCaller });
      // The caller verified these bytes against the digest as they arrived.
      this.markVerified(digest);
    }
    const descriptor = { digest, size, mediaType: OCTET_STREAM };
    await this.cache.set(descriptor);
    return descriptor;
  }

  /**
   * Verified upload bytes put at the blob's path by their writer itself (FileWriter.commitAt),
   * where it can: no commit at the upload's path, and no move. undefined, with nothing done, where
   * it cannot or the cache knows the digest stored: the caller then commits and adopts.
   */
  async place(writer: FileWriter, digest: Digest, size: number): Promise<BlobDescriptor | undefined> {
    if (writer.commitAt === undefined || (await this.stored(digest))) return undefined;
    if (!(await writer.commitAt(blobDataPath(digest)))) return undefined;
    // The caller verified these bytes against the digest as they arrived.
    this.markVerified(digest);
    const descriptor = { digest, size, mediaType: OCTET_STREAM };
    await this.cache.set(descriptor);
    return descriptor;
  }

  /**
   * Whether the digest is stored, as far as it is worth asking: local storage is asked (a stat);
   * for a remote store only the cache is (see StorageDriver.remote).
   */
  private async stored(digest: Digest): Promise<boolean> {
    return this.driver.remote ? (await this.cache.get(digest)) !== undefined : this.exists(digest);
  }

  async redirectURL(digest: Digest, method: "GET" | "HEAD", client?: RedirectClient): Promise<string | undefined> {
    return this.driver.redirectURL(blobDataPath(digest), method, client);
  }

  /** Removes the bytes (garbage collection only: the API deletes links, never global blobs). */
  async delete(digest: Digest): Promise<void> {
    await this.cache.clear(digest);
    await this.driver.delete(blobDataPath(digest));
  }
}

/**
 * Passes bytes through one chunk behind while hashing them; at the end, releases the last chunk
 * only if the digest matches, else fails with BlobContentMismatchError. `done` hears undefined
 * (sound) or the computed digest (damaged).
 */
class DigestVerifier extends Transform {
  private readonly hash: Hash;
  private held: Buffer | undefined;

  constructor(
    private readonly digest: Digest,
    private readonly done: (computed: string | undefined) => void,
  ) {
    super();
    this.hash = createHash(digest.algorithm);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    const previous = this.held;
    this.held = chunk;
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    const computed = Digest.fromHash(this.digest.algorithm, this.hash);
    if (computed.equals(this.digest)) {
      this.done(undefined);
      callback(null, this.held);
      return;
    }
    this.done(computed.toString());
    callback(new BlobContentMismatchError(this.digest.toString(), computed.toString()));
  }
}

/** True when `stat` finds the blob, false when it answers BLOB_UNKNOWN; other failures propagate. */
export async function answersKnown(stat: () => Promise<unknown>): Promise<boolean> {
  try {
    await stat();
    return true;
  } catch (err) {
    if (err instanceof RegistryError && err.code === "BLOB_UNKNOWN") return false;
    throw err;
  }
}
