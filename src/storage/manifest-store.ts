import { RegistryError } from "../errcode/registry-error.js";
import { Digest, type DigestAlgorithm } from "../reference/digest.js";
import type { Logger } from "../log/logger.js";
import { DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, OCI_INDEX, OCI_MANIFEST } from "../manifest/media-types.js";
import type { BlobStore } from "./blob-store.js";
import type { LinkedBlobStore } from "./linked-blob-store.js";
import type { ManifestContentCache } from "./manifest-content-cache.js";

/** A manifest as stored: its exact bytes, its digest, and the media type they declare. */
export interface StoredManifest {
  digest: Digest;
  mediaType: string;
  content: Buffer;
}

/** The message of the error a stored manifest that cannot be served answers with (500 UNKNOWN). */
export const CORRUPT_MANIFEST_MESSAGE = "the stored manifest is corrupt; the registry log has the details";

/**
 * A stored manifest that cannot be served: `500 UNKNOWN` to the client (CORRUPT_MANIFEST_MESSAGE,
 * no detail). `reason` is for callers: bytes that do not match the digest may yet be repaired;
 * sound bytes that are not a manifest never change.
 */
export class CorruptManifestError extends RegistryError {
  constructor(readonly reason: "digest-mismatch" | "not-a-manifest") {
    super("UNKNOWN", CORRUPT_MANIFEST_MESSAGE);
    this.name = "CorruptManifestError";
  }
}

/**
 * A repository's manifest revisions: the bytes live in the global blob store, the repository sees
 * them through `_manifests/revisions` links. Content for a digest never changes, so it is cached
 * by digest; whether the repository has it is always checked through its link.
 *
 * Bytes read from storage are checked once, before they are cached: they must hash to their digest
 * and be a JSON manifest whose media type can be told. Anything else is a damaged tree, not a
 * missing manifest: it is logged and answered `500 UNKNOWN` (CORRUPT_MANIFEST_MESSAGE), never
 * served, and nothing is deleted. Manifests berth would refuse on push but a distribution tree can
 * hold (Docker schema 1) are served as stored.
 */
export class ManifestStore {
  constructor(
    private readonly blobs: BlobStore,
    private readonly revisions: LinkedBlobStore,
    private readonly contents: ManifestContentCache,
    private readonly log?: Logger,
    private readonly repository?: string,
  ) {}

  /** MANIFEST_UNKNOWN unless the repository has the revision; UNKNOWN when its stored bytes are damaged. */
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
    const computed = Digest.of(digest.algorithm, content);
    if (!computed.equals(digest)) {
      this.log?.error(
        { repository: this.repository, digest: digest.toString(), computed: computed.toString(), size: content.length },
        "stored manifest does not match its digest: not serving it (the blob's data file is damaged)",
      );
      throw new CorruptManifestError("digest-mismatch");
    }
    const mediaType = storedMediaType(content);
    if (mediaType === undefined) {
      this.log?.error(
        { repository: this.repository, digest: digest.toString(), size: content.length },
        "stored manifest is not a JSON manifest: not serving it",
      );
      throw new CorruptManifestError("not-a-manifest");
    }
    const manifest = { digest, mediaType, content };
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

/** type/subtype, as a Content-Type header can carry it. */
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/**
 * The media type of stored manifest bytes, as distribution serves them: the declared `mediaType`,
 * else what the shape says (schema 1, OCI index, OCI manifest). undefined when the bytes are not a
 * JSON object or say nothing of their kind. Deliberately lenient: validation happened on push,
 * and a tree may hold manifests from clients and registry versions berth would refuse today.
 */
export function storedMediaType(content: Buffer): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(content.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const fields = value as Record<string, unknown>;
  if (typeof fields.mediaType === "string") return MEDIA_TYPE.test(fields.mediaType) ? fields.mediaType : undefined;
  if (fields.schemaVersion === 1) return Array.isArray(fields.signatures) ? DOCKER_SCHEMA1_SIGNED : DOCKER_SCHEMA1;
  if (Array.isArray(fields.manifests)) return OCI_INDEX;
  if (typeof fields.config === "object" && fields.config !== null) return OCI_MANIFEST;
  return undefined;
}
