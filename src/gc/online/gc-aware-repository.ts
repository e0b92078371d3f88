import { performance } from "node:perf_hooks";
import type { BlobDescriptor } from "../../cache/blob-descriptor-cache.js";
import { RegistryError } from "../../errcode/registry-error.js";
import { parseManifest } from "../../manifest/parse-manifest.js";
import { Digest } from "../../reference/digest.js";
import { ForwardingRepository } from "../../registry/forwarding-registry.js";
import type { PutManifestResult, Reference, Repository } from "../../registry/repository.js";
import type { StoredManifest } from "../../storage/manifest-store.js";
import type { ChunkExpectation, UploadBody, UploadSession } from "../../storage/upload-store.js";
import type { GcHooks } from "./gc-hooks.js";
import type { OnlineGcStats } from "./gc-stats.js";
import type { GcParticipant, Ticket } from "./participant.js";
import type { GcTiming } from "./timing.js";

/** What a GcAwareRepository needs from the node: the participant, its timing, counters, test hooks. */
export interface GcGuard {
  participant: GcParticipant;
  timing: GcTiming;
  stats: OnlineGcStats;
  hooks?: GcHooks;
}

/**
 * A repository that takes part in online collection (docs/garbage-collection.md). Every operation
 * that *vouches* for a digest (tells a client it exists, or makes something stored refer to it)
 * enters the participant's current generation, answers as if a doomed digest were already gone,
 * and rescues candidate digests before it acts:
 *
 * | operation | vouches for | a doomed digest |
 * | --- | --- | --- |
 * | blob HEAD/GET (`statBlob`) | the blob | BLOB_UNKNOWN |
 * | cross-repository mount | the blob | no mount (the client uploads) |
 * | upload completion | the blob | waits for the run to end, then stores it anew |
 * | manifest PUT (and tag PUT) | its blobs, children and itself | MANIFEST_BLOB_UNKNOWN; itself: waits |
 *
 * With no run active this costs a counter increment and a clock read per vouching request.
 */
export class GcAwareRepository extends ForwardingRepository {
  constructor(
    inner: Repository,
    private readonly guard: GcGuard,
  ) {
    super(inner);
  }

  override async statBlob(digest: Digest): Promise<BlobDescriptor> {
    return this.vouch("blob-stat", [digest.toString()], false, (ticket) => {
      if (this.doomed(ticket, digest.toString())) throw this.gone(new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() }));
      return this.inner.statBlob(digest);
    });
  }

  override async mountBlob(digest: Digest, source: Repository): Promise<BlobDescriptor | undefined> {
    const key = digest.toString();
    return this.vouch("mount", [key], true, (ticket) => {
      if (this.doomed(ticket, key) || this.guard.participant.isDoomed(ticket.view, source.name, key)) {
        this.guard.stats.doomedAnswers++;
        return Promise.resolve(undefined);
      }
      return this.inner.mountBlob(digest, source);
    });
  }

  override async completeUpload(session: UploadSession, digest: Digest, body: UploadBody | undefined, expect?: ChunkExpectation): Promise<BlobDescriptor> {
    const key = digest.toString();
    return this.vouchOnceNotDoomed("upload", [key], [key], () => this.inner.completeUpload(session, digest, body, expect));
  }

  override async getManifest(reference: Reference): Promise<StoredManifest> {
    // Not vouching (a pull names nothing new), but a doomed manifest is already gone.
    if ("digest" in reference && this.doomed({ generation: -1, view: this.guard.participant.current() }, reference.digest.toString())) {
      throw this.gone(new RegistryError("MANIFEST_UNKNOWN", undefined, { digest: reference.digest.toString() }));
    }
    return this.inner.getManifest(reference);
  }

  override async putManifest(reference: Reference, content: Buffer, contentType: string | undefined, extraTags: string[] = []): Promise<PutManifestResult> {
    if (this.guard.participant.current().kind === "idle" && !this.guard.participant.fenced()) {
      // The common case, decided without parsing; `vouch` re-checks in the generation it enters.
      return this.vouch("manifest", [], true, (ticket) =>
        ticket.view.kind === "idle" ? this.inner.putManifest(reference, content, contentType, extraTags) : this.putManifestDuringRun(reference, content, contentType, extraTags),
      );
    }
    return this.putManifestDuringRun(reference, content, contentType, extraTags);
  }

  private putManifestDuringRun(reference: Reference, content: Buffer, contentType: string | undefined, extraTags: string[]): Promise<PutManifestResult> {
    let references: string[];
    let own: string;
    try {
      const manifest = parseManifest(content, contentType);
      own = Digest.of("digest" in reference ? reference.digest.algorithm : "sha256", content).toString();
      references = [...manifest.blobs, ...manifest.manifests].map((d) => d.toString());
    } catch {
      // Invalid: the repository refuses it with the right error, and it vouches for nothing.
      return this.inner.putManifest(reference, content, contentType, extraTags);
    }
    return this.vouchOnceNotDoomed("manifest", [own, ...references], [own], (ticket) => {
      const missing = [...new Set(references)].filter((digest) => this.doomed(ticket, digest));
      if (missing.length > 0) throw this.gone(new RegistryError("MANIFEST_BLOB_UNKNOWN", undefined, { digests: missing }));
      return this.inner.putManifest(reference, content, contentType, extraTags);
    });
  }

  /**
   * Runs `act` inside the current generation: refused when the node is fenced (writes), with each
   * candidate among `digests` rescued first.
   */
  private async vouch<T>(operation: string, digests: string[], write: boolean, act: (ticket: Ticket) => Promise<T>): Promise<T> {
    const { participant, stats, hooks } = this.guard;
    const ticket = participant.enter();
    try {
      if (write && participant.fenced()) {
        stats.refusals++;
        throw new RegistryError("UNAVAILABLE", "the registry cannot read its storage's garbage collection state; retry");
      }
      if (ticket.view.kind === "candidates") {
        try {
          stats.rescues += await participant.rescue(ticket, digests);
        } catch {
          // Unrecorded, the request must not go on: the collector might delete what it vouches for.
          throw new RegistryError("UNAVAILABLE", "the registry could not record this request with the garbage collector; retry");
        }
      }
      if (hooks?.request) await hooks.request("vouched", operation, this.name, digests);
      return await act(ticket);
    } finally {
      participant.leave(ticket);
    }
  }

  /**
   * `vouch`, but while any of `waitFor` is doomed the request leaves its generation (so the acks
   * it would hold up are written) and waits for the run to move on, up to doomedWaitMs; then 503.
   */
  private async vouchOnceNotDoomed<T>(operation: string, digests: string[], waitFor: string[], act: (ticket: Ticket) => Promise<T>): Promise<T> {
    const { participant, timing, stats } = this.guard;
    const deadline = performance.now() + timing.doomedWaitMs;
    for (;;) {
      const view = participant.current();
      const blocked = waitFor.some((digest) => participant.isDoomed(view, this.name, digest));
      if (!blocked) {
        let raced = false;
        const result = await this.vouch(operation, digests, true, async (ticket) => {
          // The view may have changed between the check above and entering: check again inside.
          if (waitFor.some((digest) => participant.isDoomed(ticket.view, this.name, digest))) {
            raced = true;
            return undefined;
          }
          return { value: await act(ticket) };
        });
        if (!raced && result !== undefined) return result.value;
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        stats.refusals++;
        throw new RegistryError("UNAVAILABLE", "garbage collection is deleting this content right now; retry in a moment");
      }
      await participant.waitForChange(left);
    }
  }

  private doomed(ticket: Ticket, digest: string): boolean {
    return this.guard.participant.isDoomed(ticket.view, this.name, digest);
  }

  private gone(err: RegistryError): RegistryError {
    this.guard.stats.doomedAnswers++;
    return err;
  }
}
