import type { BlobDescriptor } from "../cache/blob-descriptor-cache.js";
import type { EventAction } from "../config/config.js";
import { RegistryError } from "../errcode/registry-error.js";
import type { Digest } from "../reference/digest.js";
import { ForwardingRepository } from "../registry/forwarding-registry.js";
import type { RequestOrigin } from "../registry/registry.js";
import type { DeletedManifest, PutManifestResult, Reference, Repository } from "../registry/repository.js";
import type { StoredManifest } from "../storage/manifest-store.js";
import type { ChunkExpectation, UploadBody, UploadSession } from "../storage/upload-store.js";
import type { Notifier } from "./notifier.js";
import { randomUuid } from "./random-uuid.js";
import { manifestReferences, newEvent, requestRecord, type EventTarget, type RegistryEvent, type RequestRecord } from "./registry-event.js";

/** What a request's repositories share: the notifier and who asked. */
export class RequestEvents {
  private record: RequestRecord | undefined;

  constructor(
    readonly notifier: Notifier,
    readonly origin: RequestOrigin,
  ) {}

  /** Pulls are most of the traffic: where every endpoint ignores them, none is built. */
  wants(action: EventAction): boolean {
    return this.notifier.wants(action, this.origin.req.method);
  }

  event(action: EventAction, target: EventTarget): RegistryEvent {
    this.record ??= requestRecord(this.origin.req, randomUuid());
    return newEvent(action, target, this.record, this.origin.user, this.notifier.source);
  }

  /**
   * Stores the events before the request is answered. A change whose events cannot be stored
   * answers 503, so the client does not take it for recorded (a retried push records them again;
   * a retried delete finds nothing left to delete, and its events are lost, logged); a pull still
   * serves, with the loss logged and counted.
   */
  async emit(events: RegistryEvent[], isPull: boolean): Promise<void> {
    try {
      await this.notifier.record(events, !isPull);
    } catch (err) {
      this.notifier.lost(events, err, isPull);
      if (!isPull) throw new RegistryError("UNAVAILABLE", "the registry could not record the notification events of this change; retry");
    }
  }
}

/**
 * A repository that records an event after each operation distribution's listener reports
 * (notifications/listener.go): blob pulls, pushes, mounts and deletes; manifest pulls, pushes and
 * deletes, and tag deletes.
 */
export class NotifyingRepository extends ForwardingRepository {
  constructor(
    inner: Repository,
    private readonly events: RequestEvents,
  ) {
    super(inner);
  }

  override async statBlob(digest: Digest): Promise<BlobDescriptor> {
    const descriptor = await this.inner.statBlob(digest);
    // The blob GET/HEAD handler is the only caller: a stat is a pull, as distribution's ServeBlob.
    if (this.events.wants("pull")) await this.events.emit([this.events.event("pull", this.pulledBlobTarget(descriptor))], true);
    return descriptor;
  }

  override async deleteBlob(digest: Digest): Promise<void> {
    await this.inner.deleteBlob(digest);
    await this.events.emit([this.events.event("delete", { digest: digest.toString(), repository: this.name })], false);
  }

  override async mountBlob(digest: Digest, source: Repository): Promise<BlobDescriptor | undefined> {
    // The source is read, not pulled: it records nothing.
    const from = source instanceof NotifyingRepository ? source.inner : source;
    const descriptor = await this.inner.mountBlob(digest, from);
    if (descriptor) {
      await this.events.emit([this.events.event("mount", { ...this.blobTarget(descriptor), fromRepository: from.name })], false);
    }
    return descriptor;
  }

  override async completeUpload(session: UploadSession, digest: Digest, body: UploadBody | undefined, expect?: ChunkExpectation): Promise<BlobDescriptor> {
    const descriptor = await this.inner.completeUpload(session, digest, body, expect);
    await this.events.emit([this.events.event("push", this.blobTarget(descriptor))], false);
    return descriptor;
  }

  override async getManifest(reference: Reference): Promise<StoredManifest> {
    const manifest = await this.inner.getManifest(reference);
    if (!this.events.wants("pull")) return manifest;
    await this.events.emit([this.events.event("pull", this.pulledManifestTarget(manifest, "tag" in reference ? reference.tag : undefined))], true);
    return manifest;
  }

  override async putManifest(reference: Reference, content: Buffer, contentType: string | undefined, extraTags: string[] = []): Promise<PutManifestResult> {
    const result = await this.inner.putManifest(reference, content, contentType, extraTags);
    const tags = [...new Set("tag" in reference ? [reference.tag, ...extraTags] : extraTags)];
    // One push per tag the put applied (distribution knows only the one in the path), or one untagged.
    const events = (tags.length > 0 ? tags : [undefined]).map((tag) => this.events.event("push", this.manifestTarget(result.digest, result.mediaType, content, tag)));
    await this.events.emit(events, false);
    return result;
  }

  override async deleteManifest(reference: Reference): Promise<DeletedManifest> {
    const deleted = await this.inner.deleteManifest(reference);
    // As distribution's handler: the manifest first, then each tag that pointed at it.
    const events = "digest" in reference ? [this.events.event("delete", { digest: reference.digest.toString(), repository: this.name })] : [];
    for (const tag of deleted.untagged) events.push(this.events.event("delete", { repository: this.name, tag }));
    await this.events.emit(events, false);
    return deleted;
  }

  /** A pull's: shared by the pulls of the same (cached) descriptor as the same repository and URL (see EventTargets). */
  private pulledBlobTarget(descriptor: BlobDescriptor): EventTarget {
    const url = this.blobURL(descriptor);
    const targets = this.events.notifier.targets;
    return targets.find(descriptor, this.name, undefined, url, descriptor.mediaType) ?? targets.keep(descriptor, this.blobTarget(descriptor, url));
  }

  private blobTarget(descriptor: BlobDescriptor, url = this.blobURL(descriptor)): EventTarget {
    return { mediaType: descriptor.mediaType, size: descriptor.size, digest: descriptor.digest.toString(), length: descriptor.size, repository: this.name, url };
  }

  private blobURL(descriptor: BlobDescriptor): string {
    return this.events.origin.urlFor(`/v2/${this.name}/blobs/${descriptor.digest.toString()}`);
  }

  /** A pull's: shared by the pulls of the same (cached) manifest as the same repository, tag and URL (see EventTargets). */
  private pulledManifestTarget(manifest: StoredManifest, tag: string | undefined): EventTarget {
    const url = this.manifestURL(manifest.digest);
    const targets = this.events.notifier.targets;
    const found = targets.find(manifest.content, this.name, tag, url, manifest.mediaType);
    return found ?? targets.keep(manifest.content, this.manifestTarget(manifest.digest, manifest.mediaType, manifest.content, tag, url));
  }

  private manifestTarget(digest: Digest, mediaType: string, content: Buffer, tag: string | undefined, url = this.manifestURL(digest)): EventTarget {
    const target: EventTarget = { mediaType, size: content.length, digest: digest.toString(), length: content.length, repository: this.name, url };
    if (tag !== undefined) target.tag = tag;
    if (this.events.notifier.includeReferences) target.references = manifestReferences(content);
    return target;
  }

  private manifestURL(digest: Digest): string {
    return this.events.origin.urlFor(`/v2/${this.name}/manifests/${digest.toString()}`);
  }
}
