import type { BlobDescriptorCache } from "../../cache/blob-descriptor-cache.js";
import { Digest } from "../../reference/digest.js";
import { ForwardingRegistry } from "../../registry/forwarding-registry.js";
import type { Registry, RequestOrigin } from "../../registry/registry.js";
import type { RegistryStats } from "../../registry/registry-stats.js";
import type { Repository } from "../../registry/repository.js";
import { GcAwareRepository, type GcGuard } from "./gc-aware-repository.js";

/**
 * The registry with online collection's request side: each repository is a GcAwareRepository.
 * When a run dooms content, the node forgets it from the blob descriptor cache before it acks, so
 * no cached descriptor outlives the bytes. Everything else is the wrapped registry's.
 */
export class GcAwareRegistry extends ForwardingRegistry {
  constructor(
    inner: Registry,
    private readonly guard: GcGuard,
    cache?: BlobDescriptorCache,
  ) {
    super(inner);
    if (cache !== undefined) {
      guard.participant.onDoomed(async (view) => {
        for (const blob of view.doomedBlobs) await cache.clear(Digest.parse(blob));
        for (const item of view.doomedItems) {
          const at = item.lastIndexOf("@");
          await cache.clear(Digest.parse(item.slice(at + 1)), item.slice(0, at));
        }
      });
    }
  }

  override repository(name: string): Repository {
    return new GcAwareRepository(this.inner.repository(name), this.guard);
  }

  forRequest(origin: RequestOrigin): Registry {
    const inner = this.inner.forRequest(origin);
    return inner === this.inner ? this : new GcAwareRegistry(inner, this.guard);
  }

  override diagnostics(): Record<string, unknown> {
    return { ...this.inner.diagnostics(), gc: { view: this.guard.participant.current().kind } };
  }

  override stats(): RegistryStats {
    return { ...this.inner.stats(), gc: this.guard.stats };
  }

  override open(): void {
    this.inner.open();
  }

  override async close(): Promise<void> {
    await this.guard.participant.close();
    await this.inner.close();
  }
}
