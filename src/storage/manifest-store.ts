import { RegistryError } from "../errcode/registry-error.js";
import type { Digest, DigestAlgorithm } from "../reference/digest.js";
import { parseManifest } from "../manifest/parse-manifest.js";
import type { BlobStore } from "./blob-store.js";
import type { LinkedBlobStore } from "./linked-blob-store.js";
import type { ManifestContentCache } from "./manifest-content-cache.js";

/** A manifest as stored: its exact bytes, its digest, and the media type they declare. */
export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  content: Buffer;
}

/**
 * A repository's manifest revisions: the bytes live in the global blob store, the repository sees
 * them through `_manifests/revisions` links. Content for a digest never changes, so it is cached
 * by digest; whether the repository has it is always checked through its link.
 */
export class ManifestStore {
  constructor(
    private readonly blobs: BlobStore,
    private readonly revisions: LinkedBlobStore,
    private readonly contents: ManifestContentCache,
  ) {}

  /** MANIFEST_UNKNOWN unless the repository has the revision. */
  async get(digest: Digest): Promise<StoredManifest> {
    if (!(await this.revisions.exists(digest))) throw new RegistryError("MANIFEST_UNKNOWN", undefined, { digest: digest.toString() });
    const cached = this.contents.get(digest);
    if (cached) return cached;
    let content: Buffer;
    try {
      content = await this.blobs.get(digest);
    } catch (err) {
      if (err instanceof RegistryError && err.code === "BLOB_UNKNOWN") {
        throw new RegistryError("MANIFEST_UNKNOWN", undefined, { digest: digest.toString() });
      }
      throw err;
    }
    const manifest = { digest, mediaType: parseManifest(content, undefined).mediaType, content };
    this.contents.set(manifest);
    return manifest;
  }

  async exists(digest: Digest): Promise<boolean> {
    return this.revisions.exists(digest);
  }

  /** Stores the bytes and links the revision; returns the digest computed with `algorithm`. */
  async put(content: Buffer, mediaType: string, algorithm: DigestAlgorithm): Promise<Digest> {
    const descriptor = await this.blobs.put(content, algorithm);
    await this.revisions.link(descriptor);
    this.contents.set({ digest: descriptor.digest, mediaType, content });
    return descriptor.digest;
  }

  /** MANIFEST_UNKNOWN when the repository does not have it. The bytes stay for the collector. */
  async delete(digest: Digest): Promise<void> {
    try {
      await this.revisions.unlink(digest);
    } catch (err) {
      if (err instanceof RegistryError && err.code === "BLOB_UNKNOWN") {
        throw new RegistryError("MANIFEST_UNKNOWN", undefined, { digest: digest.toString() });
      }
      throw err;
    }
  }
}
