import type { Digest } from "../reference/digest.js";

/** What the registry knows about a blob without reading it. */
export interface BlobDescriptor {
  digest: Digest;
  size: number;
  mediaType: string;
}

/**
 * Remembers blob descriptors in front of storage `stat` calls. Entries are scoped to a repository
 * (the blob is linked there) or global (the bytes exist). Contract: a cache may forget anything at
 * any time; callers clear an entry before (not after) the storage object goes away, so a reader
 * never learns of a blob from the cache that storage no longer has for longer than one race.
 */
export interface BlobDescriptorCache {
  get(digest: Digest, repository?: string): BlobDescriptor | undefined;
  set(descriptor: BlobDescriptor, repository?: string): void;
  clear(digest: Digest, repository?: string): void;
}

/**
 * A bounded least-recently-used map, the `inmemory` cache (storage.cache.blobdescriptor).
 *
 * With `repositoryScoped` false it keeps only global entries. That is what a process sharing its
 * storage with others (a worker) must do: a link another process deletes cannot be cleared
 * here, whereas a global entry only says the bytes exist, which stays true until garbage
 * collection (which does not run beside a writable registry).
 */
export class InMemoryBlobDescriptorCache implements BlobDescriptorCache {
  private readonly entries = new Map<string, BlobDescriptor>();

  constructor(
    private readonly maxEntries: number,
    private readonly repositoryScoped = true,
  ) {}

  get(digest: Digest, repository?: string): BlobDescriptor | undefined {
    if (repository !== undefined && !this.repositoryScoped) return undefined;
    const key = cacheKey(digest, repository);
    const found = this.entries.get(key);
    if (found) {
      // Re-inserting moves the key to the end of the Map's order: the most recently used.
      this.entries.delete(key);
      this.entries.set(key, found);
    }
    return found;
  }

  set(descriptor: BlobDescriptor, repository?: string): void {
    if (repository !== undefined && !this.repositoryScoped) return;
    const key = cacheKey(descriptor.digest, repository);
    this.entries.delete(key);
    this.entries.set(key, descriptor);
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  clear(digest: Digest, repository?: string): void {
    this.entries.delete(cacheKey(digest, repository));
  }
}

/** Used when the cache is not configured. */
export class NoBlobDescriptorCache implements BlobDescriptorCache {
  get(): undefined {
    return undefined;
  }
  set(): void {}
  clear(): void {}
}

function cacheKey(digest: Digest, repository: string | undefined): string {
  return repository === undefined ? digest.toString() : `${repository}@${digest.toString()}`;
}
