import { Digest } from "../reference/digest.js";

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
 *
 * Scoping follows distribution (registry/storage/cache): setting a repository-scoped entry also
 * sets the global one (the bytes exist), and a repository-scoped `get` answers only from the
 * repository's own entry, never from the global one: the blob may not be linked in that repository.
 * A repository's entry counts only while the global entry exists, so clearing the global entry
 * (the bytes are going) forgets the blob everywhere. The global entry keeps the media type it was
 * first set with; a repository's entry may have its own.
 *
 * Every method is asynchronous (a cache may live in another process, such as Redis). A cache whose
 * backend is unreachable misses on `get`, drops `set`, and still honours `clear` (see the Redis
 * cache); `get`, `set` and `clear` reject only for invalid arguments (a programming error).
 */
export interface BlobDescriptorCache {
  get(digest: Digest, repository?: string): Promise<BlobDescriptor | undefined>;
  set(descriptor: BlobDescriptor, repository?: string): Promise<void>;
  clear(digest: Digest, repository?: string): Promise<void>;
  /** Problems by component, for GET /debug/health (`{redis: "unreachable: …"}`); empty when healthy. */
  health(): Promise<Record<string, string>>;
  /** What `get` found, for metrics; absent for a cache that is not one (NoBlobDescriptorCache). */
  stats?(): CacheStats;
  /** Starts background work (connecting to a server); until then such a cache only misses. */
  open?(): void;
  /** Stops background work and closes connections; afterwards the cache only misses. */
  close?(): Promise<void>;
}

/**
 * Counts of `get` calls, as distribution's cached blob statter counts them: every request is a hit
 * or a miss; an error (the cache's server failing) is also a miss.
 */
export interface CacheStats {
  requests: number;
  hits: number;
  misses: number;
  errors: number;
}

/** Throws a TypeError for a descriptor no cache may store (as distribution's cache.ValidateDescriptor). */
export function validateDescriptor(descriptor: BlobDescriptor): void {
  if (typeof descriptor !== "object" || descriptor === null) throw new TypeError("blob descriptor cache: not a descriptor");
  validateDigest(descriptor.digest);
  if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0) {
    throw new TypeError(`blob descriptor cache: invalid size ${String(descriptor.size)} in descriptor of ${descriptor.digest.toString()}`);
  }
  if (typeof descriptor.mediaType !== "string" || descriptor.mediaType === "") {
    throw new TypeError(`blob descriptor cache: empty media type in descriptor of ${descriptor.digest.toString()}`);
  }
}

/** Throws a TypeError unless `digest` is a parsed Digest and `repository` (when given) a non-empty name. */
export function validateKey(digest: Digest, repository: string | undefined): void {
  validateDigest(digest);
  if (repository !== undefined && (typeof repository !== "string" || repository === "")) {
    throw new TypeError("blob descriptor cache: invalid repository name");
  }
}

function validateDigest(digest: Digest): void {
  if (!(digest instanceof Digest)) throw new TypeError("blob descriptor cache: invalid digest");
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
  private readonly counts: CacheStats = { requests: 0, hits: 0, misses: 0, errors: 0 };

  constructor(
    private readonly maxEntries: number,
    private readonly repositoryScoped = true,
  ) {}

  async get(digest: Digest, repository?: string): Promise<BlobDescriptor | undefined> {
    validateKey(digest, repository);
    const found = this.lookup(digest, repository);
    this.counts.requests++;
    if (found === undefined) this.counts.misses++;
    else this.counts.hits++;
    return found;
  }

  stats(): CacheStats {
    return { ...this.counts };
  }

  private lookup(digest: Digest, repository: string | undefined): BlobDescriptor | undefined {
    if (repository !== undefined && !this.repositoryScoped) return undefined;
    const globalKey = cacheKey(digest, undefined);
    const global = this.entries.get(globalKey);
    // A repository's entry counts only while the global one does (as in Redis): clearing the
    // global entry, when the bytes go, forgets the blob in every repository at once.
    if (global === undefined) return undefined;
    this.touch(globalKey, global);
    if (repository === undefined) return global;
    const key = cacheKey(digest, repository);
    const found = this.entries.get(key);
    if (found) this.touch(key, found);
    return found;
  }

  async set(descriptor: BlobDescriptor, repository?: string): Promise<void> {
    validateDescriptor(descriptor);
    validateKey(descriptor.digest, repository);
    // The global entry: the bytes exist. Its media type is the first one set (Redis: HSETNX).
    const globalKey = cacheKey(descriptor.digest, undefined);
    const existing = this.entries.get(globalKey);
    this.touch(globalKey, existing === undefined ? { ...descriptor } : { ...descriptor, mediaType: existing.mediaType });
    if (repository !== undefined && this.repositoryScoped) this.touch(cacheKey(descriptor.digest, repository), { ...descriptor });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  async clear(digest: Digest, repository?: string): Promise<void> {
    validateKey(digest, repository);
    this.entries.delete(cacheKey(digest, repository));
  }

  async health(): Promise<Record<string, string>> {
    return {};
  }

  /** Re-inserting moves the key to the end of the Map's order: the most recently used. */
  private touch(key: string, descriptor: BlobDescriptor): void {
    this.entries.delete(key);
    this.entries.set(key, descriptor);
  }
}

/** Used when the cache is not configured. */
export class NoBlobDescriptorCache implements BlobDescriptorCache {
  async get(): Promise<undefined> {
    return undefined;
  }
  async set(): Promise<void> {}
  async clear(): Promise<void> {}
  async health(): Promise<Record<string, string>> {
    return {};
  }
}

function cacheKey(digest: Digest, repository: string | undefined): string {
  return repository === undefined ? digest.toString() : `${repository}@${digest.toString()}`;
}
