import type { Readable } from "node:stream";
import type { BlobDescriptor } from "../cache/blob-descriptor-cache.js";
import type { Descriptor } from "../manifest/parse-manifest.js";
import { Digest } from "../reference/digest.js";
import { assertTag } from "../reference/names.js";
import type { StoredManifest } from "../storage/manifest-store.js";
import type { ChunkExpectation, UploadBody, UploadSession } from "../storage/upload-store.js";
import type { RedirectClient } from "../driver/storage-driver.js";

/** A manifest reference from a URL: a tag or a digest. */
export type Reference = { tag: string } | { digest: Digest };

export function parseReference(value: string): Reference {
  if (value.includes(":")) return { digest: Digest.parse(value) };
  assertTag(value);
  return { tag: value };
}

export interface PutManifestResult {
  digest: Digest;
  /** The manifest's media type, from its content or the request's Content-Type. */
  mediaType: string;
  subject?: Descriptor;
}

export interface DeletedManifest {
  /** The tags the delete removed, in the order they were removed. */
  untagged: string[];
}

/**
 * One repository's domain API, what the HTTP handlers call: blobs, uploads, manifests, tags and
 * referrers. Implemented by the repository kept in storage (StorageRepository) and by decorators
 * that wrap one (the pull-through cache's ProxyRepository). Errors are RegistryErrors.
 */
export interface Repository {
  readonly name: string;

  /** BLOB_UNKNOWN unless the blob is in this repository. */
  statBlob(digest: Digest): Promise<BlobDescriptor>;
  /** Bytes [offset, end) of a blob `statBlob` found. */
  openBlob(digest: Digest, offset: number, end: number): Promise<Readable>;
  /** A URL the client may fetch the blob from directly, or undefined. */
  blobRedirectURL(digest: Digest, method: "GET" | "HEAD", client?: RedirectClient): Promise<string | undefined>;
  deleteBlob(digest: Digest): Promise<void>;
  /** Links a blob `source` has into this repository; undefined when the source lacks it. */
  mountBlob(digest: Digest, source: Repository): Promise<BlobDescriptor | undefined>;

  startUpload(): Promise<UploadSession>;
  openUpload(id: string, startedAt?: Date): Promise<UploadSession>;
  uploadSize(session: UploadSession): Promise<number>;
  appendUpload(session: UploadSession, body: UploadBody, expect?: ChunkExpectation): Promise<number>;
  completeUpload(session: UploadSession, digest: Digest, body: UploadBody | undefined, expect?: ChunkExpectation): Promise<BlobDescriptor>;
  cancelUpload(session: UploadSession): Promise<void>;

  /** MANIFEST_UNKNOWN when the tag or digest is not in this repository. */
  getManifest(reference: Reference): Promise<StoredManifest>;
  putManifest(reference: Reference, content: Buffer, contentType: string | undefined, extraTags?: string[]): Promise<PutManifestResult>;
  /** By digest: the manifest and every tag that pointed at it; by tag: the tag only. */
  deleteManifest(reference: Reference): Promise<DeletedManifest>;

  /** Sorted tag names. NAME_UNKNOWN when the repository does not exist. */
  listTags(): Promise<string[]>;
  referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]>;
}
