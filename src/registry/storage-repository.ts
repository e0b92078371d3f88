import type { Readable } from "node:stream";
import { RegistryError } from "../errcode/registry-error.js";
import { STORAGE_CONCURRENCY, mapConcurrent } from "../storage/map-concurrent.js";
import { Digest } from "../reference/digest.js";
import { assertTag } from "../reference/names.js";
import type { BlobDescriptor } from "../cache/blob-descriptor-cache.js";
import { parseManifest, type Descriptor } from "../manifest/parse-manifest.js";
import type { BlobStore } from "../storage/blob-store.js";
import type { LinkedBlobStore } from "../storage/linked-blob-store.js";
import { CorruptManifestError, type ManifestStore, type StoredManifest } from "../storage/manifest-store.js";
import type { TagStore } from "../storage/tag-store.js";
import type { ReferrerStore } from "../storage/referrer-store.js";
import type { ChunkExpectation, UploadBody, UploadSession, UploadStore } from "../storage/upload-store.js";
import type { DeletedManifest, PutManifestResult, Reference, Repository } from "./repository.js";
import type { RedirectClient } from "../driver/storage-driver.js";
import type { ManifestCheck } from "./manifest-check.js";
import type { IndexChildPolicy } from "../validation/index-child-policy.js";

export interface RepositoryPolicy {
  deleteEnabled: boolean;
  readOnly: boolean;
  /** Rules every pushed manifest must pass (validation.manifests.urls). */
  manifestChecks?: readonly ManifestCheck[];
  /** Which children of a pushed index must be here (validation.manifests.indexes); all of them without it. */
  indexChildren?: IndexChildPolicy;
}

export interface RepositoryParts {
  name: string;
  globalBlobs: BlobStore;
  layers: LinkedBlobStore;
  manifests: ManifestStore;
  tags: TagStore;
  referrers: ReferrerStore;
  uploads: UploadStore;
  exists: () => Promise<boolean>;
}

/** Unindexed revisions read at once when the referrers index catches up with the tree. */
const INDEXING_BATCH = 16;

/**
 * A repository kept in storage: blobs, uploads, manifests, tags and referrers. It enforces the
 * registry's rules (references must exist, deletes only when enabled, nothing written when
 * read-only) and knows nothing of HTTP.
 */
export class StorageRepository implements Repository {
  readonly name: string;

  constructor(
    private readonly parts: RepositoryParts,
    private readonly policy: RepositoryPolicy,
  ) {
    this.name = parts.name;
  }

  /** storage.maintenance.readonly: nothing is written, by clients or by the registry itself. */
  get readOnly(): boolean {
    return this.policy.readOnly;
  }

  // --- blobs

  /** BLOB_UNKNOWN unless the blob is linked in this repository. */
  statBlob(digest: Digest): Promise<BlobDescriptor> {
    return this.parts.layers.stat(digest);
  }

  /** Bytes [offset, end); a whole blob is checked against its digest while it streams (once per process). */
  async openBlob(digest: Digest, offset: number, end: number): Promise<Readable> {
    return this.parts.globalBlobs.openChecked(digest, offset, end);
  }

  blobRedirectURL(digest: Digest, method: "GET" | "HEAD", client?: RedirectClient): Promise<string | undefined> {
    return this.parts.globalBlobs.redirectURL(digest, method, client);
  }

  /** Unlinks the blob from this repository; the bytes stay until garbage collection. */
  async deleteBlob(digest: Digest): Promise<void> {
    this.assertDeletable();
    await this.unlinkBlob(digest);
  }

  /**
   * Unlinks a blob whatever the delete policy: the registry's own housekeeping (a mirror's cache
   * expiry), never a client's request. BLOB_UNKNOWN when not linked.
   */
  unlinkBlob(digest: Digest): Promise<void> {
    return this.parts.layers.unlink(digest);
  }

  /**
   * Links a blob that `source` has into this repository. undefined when the source does not have
   * it (the caller then starts an ordinary upload, as the spec says).
   */
  async mountBlob(digest: Digest, source: Repository): Promise<BlobDescriptor | undefined> {
    this.assertWritable();
    let descriptor: BlobDescriptor;
    try {
      descriptor = await source.statBlob(digest);
    } catch (err) {
      if (err instanceof RegistryError && err.code === "BLOB_UNKNOWN") return undefined;
      throw err;
    }
    // A mirrored source may describe a blob it has not fetched yet: link only bytes that exist.
    if (!(await this.parts.globalBlobs.exists(digest))) return undefined;
    await this.parts.layers.link(descriptor);
    return descriptor;
  }

  /**
   * Links a blob the global store already holds (a mirror found the upstream has it in this
   * repository). BLOB_UNKNOWN when the bytes are not stored. Internal: never reachable from the API
   * without such a check, since links are the registry's access control.
   */
  async linkStoredBlob(digest: Digest): Promise<BlobDescriptor> {
    this.assertWritable();
    const descriptor = await this.parts.globalBlobs.stat(digest);
    await this.parts.layers.link(descriptor);
    return descriptor;
  }

  // --- uploads

  startUpload(): Promise<UploadSession> {
    this.assertWritable();
    return this.parts.uploads.start(this.name);
  }

  /** `startedAt`: from a verified upload state token, which spares reading the upload's start time. */
  openUpload(id: string, startedAt?: Date): Promise<UploadSession> {
    return this.parts.uploads.open(this.name, id, startedAt);
  }

  uploadSize(session: UploadSession): Promise<number> {
    return this.parts.uploads.size(session);
  }

  appendUpload(session: UploadSession, body: UploadBody, expect?: ChunkExpectation): Promise<number> {
    this.assertWritable();
    return this.parts.uploads.append(session, body, expect);
  }

  /** Verifies and stores the blob, then links it here. */
  async completeUpload(
    session: UploadSession,
    digest: Digest,
    body: UploadBody | undefined,
    expect?: ChunkExpectation,
  ): Promise<BlobDescriptor> {
    this.assertWritable();
    const descriptor = await this.parts.uploads.complete(session, digest, body, expect);
    await this.parts.layers.link(descriptor);
    return descriptor;
  }

  cancelUpload(session: UploadSession): Promise<void> {
    this.assertWritable();
    return this.parts.uploads.cancel(session);
  }

  // --- manifests

  /** MANIFEST_UNKNOWN when the tag or digest is not in this repository. */
  async getManifest(reference: Reference): Promise<StoredManifest> {
    const digest = "tag" in reference ? await this.parts.tags.resolve(reference.tag) : reference.digest;
    return this.parts.manifests.get(digest);
  }

  /**
   * Validates and stores a manifest exactly as pushed, then points `tags` at it. Every blob and
   * child manifest it names must already be in this repository (MANIFEST_BLOB_UNKNOWN), and a
   * digest reference must be the digest of the bytes (DIGEST_INVALID). Nothing is written unless
   * every check passes.
   */
  async putManifest(
    reference: Reference,
    content: Buffer,
    contentType: string | undefined,
    extraTags: string[] = [],
  ): Promise<PutManifestResult> {
    this.assertWritable();
    const manifest = parseManifest(content, contentType);
    for (const rule of this.policy.manifestChecks ?? []) rule.check(manifest);
    const algorithm = "digest" in reference ? reference.digest.algorithm : "sha256";
    const computed = Digest.of(algorithm, content);
    if ("digest" in reference && !computed.equals(reference.digest)) {
      throw new RegistryError("DIGEST_INVALID", "manifest digest does not match its content", {
        expected: reference.digest.toString(),
        computed: computed.toString(),
      });
    }
    const tags = "tag" in reference ? [reference.tag, ...extraTags] : extraTags;
    for (const tag of tags) assertTag(tag);
    // Put again (a re-tag): its references were verified when it was linked, and its link and bytes
    // are there; on an object store that spares a request per reference and two for the manifest.
    let digest = computed;
    if (!(await this.parts.manifests.exists(computed))) {
      await this.assertReferencesExist(manifest.blobs, this.policy.indexChildren?.required(manifest) ?? manifest.manifests);
      digest = await this.parts.manifests.put(content, manifest.mediaType, algorithm);
    }
    if (manifest.subject) await this.parts.referrers.add(manifest.subject.digest, digest);
    // The marker follows the referrer link (see ReferrerStore).
    await this.parts.referrers.markIndexed(digest);
    for (const tag of new Set(tags)) await this.parts.tags.tag(tag, digest);
    return { digest, mediaType: manifest.mediaType, subject: manifest.subject };
  }

  /**
   * Stores a manifest fetched from elsewhere (a mirror's upstream), already verified against its
   * digest by the caller, and points `tags` at it. Unlike `putManifest` its references are not
   * required: a mirror fetches blobs when they are first pulled.
   */
  async storeManifest(content: Buffer, mediaType: string, digest: Digest, tags: string[]): Promise<void> {
    this.assertWritable();
    const manifest = parseManifest(content, mediaType);
    const stored = await this.parts.manifests.put(content, manifest.mediaType, digest.algorithm);
    if (!stored.equals(digest)) throw new RegistryError("DIGEST_INVALID", "manifest digest does not match its content");
    if (manifest.subject) await this.parts.referrers.add(manifest.subject.digest, digest);
    await this.parts.referrers.markIndexed(digest);
    for (const tag of tags) await this.parts.tags.tag(tag, digest);
  }

  /** The digest a tag points to here; MANIFEST_UNKNOWN when it points nowhere. */
  resolveTag(tag: string): Promise<Digest> {
    return this.parts.tags.resolve(tag);
  }

  /** By tag: removes the tag only. By digest: removes the manifest and every tag pointing to it. */
  async deleteManifest(reference: Reference): Promise<DeletedManifest> {
    this.assertDeletable();
    if ("tag" in reference) {
      await this.parts.tags.untag(reference.tag);
      return { untagged: [reference.tag] };
    }
    return { untagged: await this.removeManifest(reference.digest) };
  }

  /**
   * Removes a manifest and every tag pointing to it, whatever the delete policy: `deleteManifest`
   * by digest, and the registry's own housekeeping (a mirror's cache expiry). MANIFEST_UNKNOWN when
   * the repository does not have it.
   */
  async removeManifest(digest: Digest): Promise<string[]> {
    const subject = await this.storedSubject(digest);
    // Marker first: an interrupted delete leaves an unmarked revision (re-indexed), never a
    // marked one whose referrer link is gone.
    await this.parts.referrers.unmark(digest);
    const tags = await this.parts.tags.tagsOf(digest);
    for (const tag of tags) await this.parts.tags.untag(tag);
    await this.parts.manifests.delete(digest);
    if (subject) await this.parts.referrers.remove(subject, digest);
    return tags;
  }

  /**
   * The subject a stored manifest names. MANIFEST_UNKNOWN when the repository does not have it;
   * undefined when it has none, or its stored bytes are damaged or not a manifest berth parses
   * (such a manifest can still be deleted; a referrer entry it may have left is ignored on read).
   */
  private async storedSubject(digest: Digest): Promise<Digest | undefined> {
    let stored: StoredManifest;
    try {
      stored = await this.parts.manifests.get(digest);
    } catch (err) {
      if (err instanceof RegistryError && err.code === "UNKNOWN") return undefined;
      throw err;
    }
    try {
      return parseManifest(stored.content, undefined).subject?.digest;
    } catch (err) {
      if (err instanceof RegistryError) return undefined;
      throw err;
    }
  }

  // --- tags and referrers

  /** Sorted tag names. NAME_UNKNOWN when the repository does not exist. */
  async listTags(): Promise<string[]> {
    const tags = await this.parts.tags.all();
    if (tags.length === 0 && !(await this.parts.exists())) {
      throw new RegistryError("NAME_UNKNOWN", undefined, { name: this.name });
    }
    return tags;
  }

  /**
   * Descriptors of the manifests in this repository whose subject is `subject`, optionally only
   * those of one artifact type. Sorted by digest so pages and repeated calls agree.
   */
  async referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    const candidates = new Map<string, Digest>();
    for (const candidate of await this.parts.referrers.candidates(subject)) candidates.set(candidate.toString(), candidate);
    // Revisions stored by distribution (or left unindexed by a crash) are indexed first.
    const unindexed = await this.parts.referrers.unindexed();
    for (let i = 0; i < unindexed.length; i += INDEXING_BATCH) {
      const batch = unindexed.slice(i, i + INDEXING_BATCH);
      const subjects = await Promise.all(batch.map((revision) => this.indexReferrer(revision)));
      batch.forEach((revision, j) => {
        if (subjects[j]?.equals(subject)) candidates.set(revision.toString(), revision);
      });
    }
    const found: Descriptor[] = [];
    for (const candidate of candidates.values()) {
      let stored: StoredManifest;
      try {
        stored = await this.parts.manifests.get(candidate);
      } catch (err) {
        // Gone (distribution deleted it) or damaged (logged by the store): not a referrer to serve.
        if (err instanceof RegistryError && (err.code === "MANIFEST_UNKNOWN" || err.code === "UNKNOWN")) continue;
        throw err;
      }
      let manifest: ReturnType<typeof parseManifest>;
      try {
        manifest = parseManifest(stored.content, undefined);
      } catch (err) {
        if (err instanceof RegistryError) continue;
        throw err;
      }
      if (!manifest.subject?.digest.equals(subject)) continue;
      if (artifactType !== undefined && manifest.artifactType !== artifactType) continue;
      found.push({
        mediaType: manifest.mediaType,
        digest: candidate,
        size: stored.content.length,
        artifactType: manifest.artifactType,
        annotations: manifest.annotations,
      });
    }
    return found.sort((a, b) => (a.digest.toString() < b.digest.toString() ? -1 : 1));
  }

  /**
   * Adds a revision the referrers index does not cover yet: reads it once, writes its referrer
   * link (when it has a subject) and then its marker. Returns its subject. A revision that cannot
   * be read now (gone, or damaged bytes) stays unmarked and is tried again on a later request; one
   * whose bytes are sound but not a manifest berth parses is marked (a digest's bytes never
   * change). In read-only mode nothing is written: the answer is computed all the same.
   */
  private async indexReferrer(revision: Digest): Promise<Digest | undefined> {
    let subject: Digest | undefined;
    try {
      subject = parseManifest((await this.parts.manifests.get(revision)).content, undefined).subject?.digest;
    } catch (err) {
      // Sound bytes that are not a manifest (or not one berth parses) never change: indexed, no subject.
      const permanent =
        (err instanceof CorruptManifestError && err.reason === "not-a-manifest") ||
        (err instanceof RegistryError && err.code === "MANIFEST_INVALID");
      if (!permanent) {
        // Gone, or damaged bytes that may yet be repaired: left unmarked, tried again next time.
        if (err instanceof RegistryError && (err.code === "MANIFEST_UNKNOWN" || err.code === "UNKNOWN")) return undefined;
        throw err;
      }
    }
    if (!this.policy.readOnly) {
      if (subject) await this.parts.referrers.add(subject, revision);
      await this.parts.referrers.markIndexed(revision);
    }
    return subject;
  }

  /**
   * MANIFEST_BLOB_UNKNOWN naming every reference this repository lacks. Each distinct digest is
   * checked once, a few at a time: a manifest may name one layer thousands of times, and checking
   * all at once would exhaust file descriptors for every other request.
   */
  private async assertReferencesExist(blobs: Digest[], manifests: Digest[]): Promise<void> {
    const checks = [
      ...distinct(blobs).map((digest) => () => this.parts.layers.exists(digest).then((found) => (found ? undefined : digest))),
      ...distinct(manifests).map((digest) => () => this.parts.manifests.exists(digest).then((found) => (found ? undefined : digest))),
    ];
    const results = await mapConcurrent(checks, STORAGE_CONCURRENCY, (check) => check());
    const missing = results.filter((d): d is Digest => d !== undefined);
    if (missing.length > 0) {
      throw new RegistryError("MANIFEST_BLOB_UNKNOWN", undefined, { digests: missing.map((d) => d.toString()) });
    }
  }

  private assertWritable(): void {
    if (this.policy.readOnly) throw new RegistryError("UNSUPPORTED", "registry is in read-only mode");
  }

  private assertDeletable(): void {
    this.assertWritable();
    if (!this.policy.deleteEnabled) throw new RegistryError("UNSUPPORTED", "deletes are disabled on this registry");
  }
}

function distinct(digests: Digest[]): Digest[] {
  const seen = new Map<string, Digest>();
  for (const digest of digests) seen.set(digest.toString(), digest);
  return [...seen.values()];
}
