import type { Readable } from "node:stream";
import type { BlobDescriptor } from "../cache/blob-descriptor-cache.js";
import type { Descriptor } from "../manifest/parse-manifest.js";
import type { Digest } from "../reference/digest.js";
import type { StoredManifest } from "../storage/manifest-store.js";
import type { CatalogPage } from "../storage/repository-catalog.js";
import type { ChunkExpectation, UploadBody, UploadSession } from "../storage/upload-store.js";
import type { Registry, RequestOrigin, ResolvedName } from "./registry.js";
import type { RegistryStats } from "./registry-stats.js";
import type { DeletedManifest, PutManifestResult, Reference, Repository } from "./repository.js";

/**
 * A Registry that passes everything to the one it wraps: a capability that changes one operation
 * extends it and overrides that one. `forRequest` is left to the subclass, because a wrapper that
 * forgot it would silently drop out of every request.
 */
export abstract class ForwardingRegistry implements Registry {
  constructor(protected readonly inner: Registry) {}

  abstract forRequest(origin: RequestOrigin): Registry;

  repository(name: string): Repository {
    return this.inner.repository(name);
  }

  resolveName(name: string, namespace: string | undefined): ResolvedName {
    return this.inner.resolveName(name, namespace);
  }

  catalog(after: string | undefined, limit: number): Promise<CatalogPage> {
    return this.inner.catalog(after, limit);
  }

  diagnostics(): Record<string, unknown> {
    return this.inner.diagnostics();
  }

  stats(): RegistryStats {
    return this.inner.stats();
  }

  health(): Promise<Record<string, string>> {
    return this.inner.health();
  }

  open(): void {
    this.inner.open();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A Repository that passes everything to the one it wraps (see ForwardingRegistry). */
export class ForwardingRepository implements Repository {
  constructor(readonly inner: Repository) {}

  get name(): string {
    return this.inner.name;
  }

  statBlob(digest: Digest): Promise<BlobDescriptor> {
    return this.inner.statBlob(digest);
  }

  openBlob(digest: Digest, offset: number, end: number): Promise<Readable> {
    return this.inner.openBlob(digest, offset, end);
  }

  blobRedirectURL(digest: Digest, method: "GET" | "HEAD"): Promise<string | undefined> {
    return this.inner.blobRedirectURL(digest, method);
  }

  deleteBlob(digest: Digest): Promise<void> {
    return this.inner.deleteBlob(digest);
  }

  mountBlob(digest: Digest, source: Repository): Promise<BlobDescriptor | undefined> {
    return this.inner.mountBlob(digest, source);
  }

  startUpload(): Promise<UploadSession> {
    return this.inner.startUpload();
  }

  openUpload(id: string, startedAt?: Date): Promise<UploadSession> {
    return this.inner.openUpload(id, startedAt);
  }

  uploadSize(session: UploadSession): Promise<number> {
    return this.inner.uploadSize(session);
  }

  appendUpload(session: UploadSession, body: UploadBody, expect?: ChunkExpectation): Promise<number> {
    return this.inner.appendUpload(session, body, expect);
  }

  completeUpload(session: UploadSession, digest: Digest, body: UploadBody | undefined, expect?: ChunkExpectation): Promise<BlobDescriptor> {
    return this.inner.completeUpload(session, digest, body, expect);
  }

  cancelUpload(session: UploadSession): Promise<void> {
    return this.inner.cancelUpload(session);
  }

  getManifest(reference: Reference): Promise<StoredManifest> {
    return this.inner.getManifest(reference);
  }

  putManifest(reference: Reference, content: Buffer, contentType: string | undefined, extraTags?: string[]): Promise<PutManifestResult> {
    return this.inner.putManifest(reference, content, contentType, extraTags);
  }

  deleteManifest(reference: Reference): Promise<DeletedManifest> {
    return this.inner.deleteManifest(reference);
  }

  listTags(): Promise<string[]> {
    return this.inner.listTags();
  }

  referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    return this.inner.referrers(subject, artifactType);
  }
}
