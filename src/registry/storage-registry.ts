import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import type { BlobDescriptorCache } from "../cache/blob-descriptor-cache.js";
import type { Logger } from "../log/logger.js";
import type { Digest } from "../reference/digest.js";
import { assertRepositoryName } from "../reference/names.js";
import { BlobStore } from "../storage/blob-store.js";
import { LinkedBlobStore } from "../storage/linked-blob-store.js";
import { ManifestContentCache } from "../storage/manifest-content-cache.js";
import { ManifestStore } from "../storage/manifest-store.js";
import { layerLinkPath, manifestRevisionLinkPath, repositoryPath } from "../storage/paths.js";
import { ReferrerStore, WrittenMarkers } from "../storage/referrer-store.js";
import { TagStore } from "../storage/tag-store.js";
import { UploadStore } from "../storage/upload-store.js";
import { catalogPage, type CatalogPage } from "../storage/repository-catalog.js";
import type { Registry, RequestOrigin, ResolvedName } from "./registry.js";
import type { RegistryStats } from "./registry-stats.js";
import { StorageRepository, type RepositoryPolicy } from "./storage-repository.js";

export interface RegistryOptions extends RepositoryPolicy {
  driver: StorageDriver;
  cache: BlobDescriptorCache;
  log: Logger;
  /** Bytes of manifest content kept in memory, shared by all repositories. */
  manifestCacheBytes?: number;
  /** Tag links read at once when a manifest deleted by digest takes its tags with it (storage.tag.concurrencylimit). */
  tagLookupConcurrency?: number;
}

/** The registry kept in storage: repositories by name, and the catalog of names. */
export class StorageRegistry implements Registry {
  readonly driver: StorageDriver;
  private readonly blobs: BlobStore;
  private readonly uploads: UploadStore;
  private readonly manifestContents: ManifestContentCache;
  private readonly writtenMarkers = new WrittenMarkers();

  constructor(private readonly options: RegistryOptions) {
    this.driver = options.driver;
    this.blobs = new BlobStore(options.driver, options.cache, options.log);
    this.uploads = new UploadStore(options.driver, this.blobs);
    this.manifestContents = new ManifestContentCache(options.manifestCacheBytes ?? 32 * 1024 * 1024);
  }

  /** Problems by component, for GET /debug/health; empty when all is well. */
  health(): Promise<Record<string, string>> {
    return this.options.cache.health();
  }

  /** Starts background work (the cache's connection), once the server listens. */
  open(): void {
    this.options.cache.open?.();
  }

  /** Stops background work and closes connections (the cache's), at shutdown. */
  async close(): Promise<void> {
    await this.options.cache.close?.();
  }

  /** NAME_INVALID for a name outside the spec's grammar. The repository need not exist yet. */
  repository(name: string): StorageRepository {
    assertRepositoryName(name);
    const { driver, cache, log } = this.options;
    const layers = new LinkedBlobStore(driver, this.blobs, name, (d) => layerLinkPath(name, d), cache, log);
    const revisions = new LinkedBlobStore(driver, this.blobs, name, (d) => manifestRevisionLinkPath(name, d), cache, log);
    return new StorageRepository(
      {
        name,
        globalBlobs: this.blobs,
        layers,
        manifests: new ManifestStore(this.blobs, revisions, this.manifestContents, log, name),
        tags: new TagStore(driver, name, log, this.options.tagLookupConcurrency),
        referrers: new ReferrerStore(driver, name, this.writtenMarkers),
        uploads: this.uploads,
        exists: () => this.repositoryExists(name),
      },
      this.options,
    );
  }

  /** Every request addresses the repository it names: nothing is mirrored here. */
  resolveName(name: string): ResolvedName {
    return { name };
  }

  diagnostics(): Record<string, unknown> {
    return {};
  }

  stats(): RegistryStats {
    const cache = this.options.cache.stats?.();
    return cache === undefined ? {} : { cache };
  }

  /** Records nothing per request. */
  forRequest(_origin: RequestOrigin): Registry {
    return this;
  }

  /**
   * Deletes a blob's bytes and forgets its descriptor: housekeeping (a mirror's cache expiry) that
   * has made sure no repository links the blob any more. The API only ever removes links.
   */
  deleteBlobData(digest: Digest): Promise<void> {
    return this.blobs.delete(digest);
  }

  catalog(after: string | undefined, limit: number): Promise<CatalogPage> {
    return catalogPage(this.driver, after, limit);
  }

  private async repositoryExists(name: string): Promise<boolean> {
    try {
      return (await this.driver.stat(repositoryPath(name))).isDir;
    } catch (err) {
      if (isPathNotFound(err)) return false;
      throw err;
    }
  }
}
