import type { Readable } from "node:stream";
import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import { RegistryError } from "../errcode/registry-error.js";
import { Digest, type DigestAlgorithm } from "../reference/digest.js";
import type { BlobDescriptor, BlobDescriptorCache } from "../cache/blob-descriptor-cache.js";
import { blobDataPath } from "./paths.js";

export const OCTET_STREAM = "application/octet-stream";

/**
 * The global, content-addressed blob store: each digest's bytes once, at blobs/…/data. It is never
 * reachable from the API directly; repositories see blobs through a LinkedBlobStore.
 */
export class BlobStore {
  constructor(
    readonly driver: StorageDriver,
    private readonly cache: BlobDescriptorCache,
  ) {}

  /** BLOB_UNKNOWN when the bytes are not stored. */
  async stat(digest: Digest): Promise<BlobDescriptor> {
    const cached = this.cache.get(digest);
    if (cached) return cached;
    try {
      const info = await this.driver.stat(blobDataPath(digest));
      if (info.isDir) throw new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() });
      const descriptor = { digest, size: info.size, mediaType: OCTET_STREAM };
      this.cache.set(descriptor);
      return descriptor;
    } catch (err) {
      if (isPathNotFound(err)) throw new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() });
      throw err;
    }
  }

  async exists(digest: Digest): Promise<boolean> {
    try {
      await this.stat(digest);
      return true;
    } catch (err) {
      if (err instanceof RegistryError && err.code === "BLOB_UNKNOWN") return false;
      throw err;
    }
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

  /** The whole content of a small blob (a manifest). */
  async get(digest: Digest): Promise<Buffer> {
    try {
      return await this.driver.getContent(blobDataPath(digest));
    } catch (err) {
      if (isPathNotFound(err)) throw new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() });
      throw err;
    }
  }

  /** Stores small content (a manifest) under its digest; a no-op when already stored. */
  async put(content: Uint8Array, algorithm: DigestAlgorithm): Promise<BlobDescriptor> {
    const digest = Digest.of(algorithm, content);
    if (!(await this.exists(digest))) {
      await this.driver.putContent(blobDataPath(digest), content);
    }
    const descriptor = { digest, size: content.length, mediaType: OCTET_STREAM };
    this.cache.set(descriptor);
    return descriptor;
  }

  /**
   * Moves verified upload bytes into place. When the digest is already stored (a concurrent
   * push of the same layer), the stored copy wins: same digest, same bytes.
   */
  async adopt(sourcePath: string, digest: Digest, size: number): Promise<BlobDescriptor> {
    if (await this.exists(digest)) {
      await this.driver.delete(sourcePath).catch(() => undefined);
    } else {
      await this.driver.move(sourcePath, blobDataPath(digest));
    }
    const descriptor = { digest, size, mediaType: OCTET_STREAM };
    this.cache.set(descriptor);
    return descriptor;
  }

  async redirectURL(digest: Digest, method: "GET" | "HEAD"): Promise<string | undefined> {
    return this.driver.redirectURL(blobDataPath(digest), method);
  }

  /** Removes the bytes (garbage collection only: the API deletes links, never global blobs). */
  async delete(digest: Digest): Promise<void> {
    this.cache.clear(digest);
    await this.driver.delete(blobDataPath(digest));
  }
}
