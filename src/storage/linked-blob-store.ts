import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import { RegistryError } from "../errcode/registry-error.js";
import { Digest } from "../reference/digest.js";
import type { BlobDescriptor, BlobDescriptorCache } from "../cache/blob-descriptor-cache.js";
import type { Logger } from "../log/logger.js";
import { answersKnown, type BlobStore } from "./blob-store.js";

/**
 * A repository's view of the global blob store: a blob is visible in the repository only when its
 * link file exists and names it. The same code serves layer links (`_layers`) and manifest
 * revision links (`_manifests/revisions`); `linkPath` says which.
 *
 * A link whose content is not the digest its path names (a corrupt or hand-edited tree) is treated
 * as absent and logged: berth never serves a blob under a digest its link does not vouch for.
 */
export class LinkedBlobStore {
  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
    private readonly repository: string,
    private readonly linkPath: (digest: Digest) => string,
    private readonly cache: BlobDescriptorCache,
    private readonly log: Logger,
  ) {}

  /** BLOB_UNKNOWN unless linked here and stored globally. */
  async stat(digest: Digest): Promise<BlobDescriptor> {
    const cached = await this.cache.get(digest, this.repository);
    if (cached) return cached;
    const linked = await this.readLink(digest);
    if (!linked) throw new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() });
    const descriptor = await this.blobs.stat(digest);
    await this.cache.set(descriptor, this.repository);
    return descriptor;
  }

  exists(digest: Digest): Promise<boolean> {
    return answersKnown(() => this.stat(digest));
  }

  async link(descriptor: BlobDescriptor): Promise<void> {
    await this.driver.putContent(this.linkPath(descriptor.digest), Buffer.from(descriptor.digest.toString()));
    await this.cache.set(descriptor, this.repository);
  }

  /** BLOB_UNKNOWN when not linked. */
  async unlink(digest: Digest): Promise<void> {
    await this.cache.clear(digest, this.repository);
    const path = this.linkPath(digest);
    try {
      await this.driver.delete(path.slice(0, -"/link".length));
    } catch (err) {
      if (isPathNotFound(err)) throw new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() });
      throw err;
    }
  }

  private async readLink(digest: Digest): Promise<boolean> {
    const path = this.linkPath(digest);
    let content: Buffer;
    try {
      content = await this.driver.getContent(path);
    } catch (err) {
      if (isPathNotFound(err)) return false;
      throw err;
    }
    const target = Digest.tryParse(content.toString("utf8").trim());
    if (!target || !target.equals(digest)) {
      this.log.warn({ repository: this.repository, digest: digest.toString() }, "ignoring corrupt link file");
      return false;
    }
    return true;
  }
}
