import type { Readable } from "node:stream";
import type { BlobDescriptor } from "../cache/blob-descriptor-cache.js";
import { RegistryError } from "../errcode/registry-error.js";
import type { Logger } from "../log/logger.js";
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from "../manifest/media-types.js";
import { MAX_MANIFEST_BYTES, parseManifest, type Descriptor } from "../manifest/parse-manifest.js";
import { Digest } from "../reference/digest.js";
import { isValidTag } from "../reference/names.js";
import type { DeletedManifest, PutManifestResult, Reference, Repository } from "../registry/repository.js";
import type { StorageRepository } from "../registry/storage-repository.js";
import { OCTET_STREAM } from "../storage/blob-store.js";
import { storedMediaType, type StoredManifest } from "../storage/manifest-store.js";
import type { UploadBody, UploadSession } from "../storage/upload-store.js";
import type { BlobFills, FillSource } from "./blob-fill.js";
import type { PullRecords } from "./pull-records.js";
import type { SingleFlight } from "./single-flight.js";
import type { ProxyCounters } from "./proxy-stats.js";
import type { Upstream } from "./upstream.js";
import { readSmallBody } from "./upstream-client.js";
import { UpstreamError } from "./upstream-error.js";
import type { RedirectClient } from "../driver/storage-driver.js";

const MAX_TAG_LIST_BYTES = 4 * 1024 * 1024;
const MAX_TAG_PAGES = 100;
const MANIFEST_ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST].join(", ");

/** Shared by every ProxyRepository of a registry: the work in flight and the bookkeeping. */
export interface ProxyShared {
  fills: BlobFills;
  records: PullRecords;
  /** Manifest fetches and tag revalidations in flight, by repository and reference. */
  manifestFetches: SingleFlight<StoredManifest>;
  /** Verified manifests being written to storage, by `<repository>@<digest>`: served meanwhile. */
  storingManifests: Map<string, StoredManifest>;
  tagChecks: SingleFlight<Digest | undefined>;
  /** What was served from the cache and fetched from upstreams (metrics). */
  stats: ProxyCounters;
  /** A blob was added to the cache of `upstream` (its size limit may need enforcing). */
  grew(upstream: Upstream): void;
  log: Logger;
}

/**
 * A mirrored repository: the local repository in storage in front of its upstream. Reads by digest
 * are served from storage once cached, without asking the upstream; a miss is fetched once,
 * verified against its digest, stored and served as it arrives. Reads by tag revalidate with one
 * upstream HEAD and fetch only a digest not cached yet; when the upstream fails, a cached tag is
 * served within the upstream's maximum staleness. Pushes and deletes are refused (405 UNSUPPORTED),
 * as in distribution. In read-only mode it serves from the upstream what it has not cached, and
 * caches nothing.
 */
export class ProxyRepository implements Repository {
  readonly name: string;
  private readonly remote: string;
  /**
   * Blobs found linked here during this request (a repository object serves one request): a GET
   * asks for a blob's descriptor, its redirect and its bytes, and the link is read once for all.
   */
  private readonly linked = new Map<string, BlobDescriptor>();

  constructor(
    private readonly local: StorageRepository,
    private readonly upstream: Upstream,
    private readonly shared: ProxyShared,
  ) {
    this.name = local.name;
    this.remote = upstream.remoteName(local.name);
  }

  // --- blobs

  async statBlob(digest: Digest): Promise<BlobDescriptor> {
    const cached = await this.localBlob(digest);
    if (cached) return cached;
    const fill = this.shared.fills.running(this.name, digest);
    if (fill?.size !== undefined) return { digest, size: fill.size, mediaType: OCTET_STREAM };
    // A HEAD costs one upstream HEAD, never a download.
    const response = await this.upstream.client.request("HEAD", `/v2/${this.remote}/blobs/${digest.toString()}`, this.remote);
    response.body.resume();
    if (response.status === 404) throw new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() });
    this.expectOk(response.status, "blob");
    // Stored already for another repository: the upstream confirmed this one has it, so link it.
    if (!this.local.readOnly) {
      try {
        return await this.local.linkStoredBlob(digest);
      } catch (err) {
        if (!(err instanceof RegistryError && err.code === "BLOB_UNKNOWN")) throw err;
      }
    }
    const size = Number(response.headers["content-length"]);
    if (!Number.isSafeInteger(size) || size < 0) throw new UpstreamError("invalid", this.upstream.url, "it did not give the blob's size");
    return { digest, size, mediaType: OCTET_STREAM };
  }

  async openBlob(digest: Digest, offset: number, end: number): Promise<Readable> {
    const stats = this.shared.stats.blob;
    stats.requests++;
    stats.pushedBytes += end - offset;
    if (await this.localBlob(digest)) {
      stats.hits++;
      this.shared.records.touch(this.name, "blobs", digest);
      return this.local.openBlob(digest, offset, end);
    }
    // The pull happened now; the fill may land after later pulls have landed theirs.
    const pulledAt = Date.now();
    const fill = this.shared.fills.fill(
      this.name,
      digest,
      this.upstream.url,
      () => this.fetchBlob(digest),
      (body, size) => this.storeBlob(digest, body, size, pulledAt),
    );
    await fill.ready;
    if (fill.size !== undefined && end > fill.size) {
      throw new UpstreamError("invalid", this.upstream.url, `it sends ${fill.size} bytes for ${digest.toString()} after announcing more`);
    }
    return fill.reader(offset, end);
  }

  async blobRedirectURL(digest: Digest, method: "GET" | "HEAD", client?: RedirectClient): Promise<string | undefined> {
    // Only bytes in storage can be fetched from it directly.
    if (!(await this.localBlob(digest))) return undefined;
    const url = await this.local.blobRedirectURL(digest, method, client);
    // A GET answered with a redirect is a pull like any other.
    if (url !== undefined && method === "GET") this.shared.records.touch(this.name, "blobs", digest);
    return url;
  }

  deleteBlob(): Promise<void> {
    return this.refuse();
  }

  mountBlob(): Promise<BlobDescriptor | undefined> {
    return this.refuse();
  }

  // --- uploads: a mirror is read-only

  startUpload(): Promise<UploadSession> {
    return this.refuse();
  }

  openUpload(): Promise<UploadSession> {
    return this.refuse();
  }

  uploadSize(): Promise<number> {
    return this.refuse();
  }

  appendUpload(): Promise<number> {
    return this.refuse();
  }

  completeUpload(): Promise<BlobDescriptor> {
    return this.refuse();
  }

  cancelUpload(): Promise<void> {
    return this.refuse();
  }

  // --- manifests

  async getManifest(reference: Reference): Promise<StoredManifest> {
    const manifest = await this.resolveManifest(reference);
    const stats = this.shared.stats.manifest;
    stats.requests++;
    stats.pushedBytes += manifest.content.length;
    return manifest;
  }

  /** The manifest from the cache, or fetched (counted as a miss in fetchManifest). */
  private async resolveManifest(reference: Reference): Promise<StoredManifest> {
    if ("digest" in reference) {
      const cached = this.storingManifest(reference.digest) ?? (await this.localManifest(reference.digest));
      if (cached) {
        this.shared.stats.manifest.hits++;
        return cached;
      }
      return this.fetchManifest(reference.digest.toString(), reference.digest, undefined);
    }
    const tag = reference.tag;
    let digest: Digest | undefined;
    try {
      digest = await this.shared.tagChecks.run(`${this.name}:${tag}`, () => this.headTag(tag));
    } catch (err) {
      if (err instanceof UpstreamError) return this.serveStale(tag, err);
      throw err;
    }
    if (digest === undefined) {
      // The upstream answered the HEAD without a digest: the GET by tag tells it.
      return this.fetchManifest(tag, undefined, tag);
    }
    const storing = this.storingManifest(digest);
    if (storing) {
      this.shared.stats.manifest.hits++;
      return storing;
    }
    const cached = await this.localManifest(digest);
    if (!cached) return this.fetchManifest(digest.toString(), digest, tag);
    this.shared.stats.manifest.hits++;
    if (!this.local.readOnly && !(await this.localTagIs(tag, digest))) await this.local.storeManifest(cached.content, cached.mediaType, digest, [tag]);
    return cached;
  }

  putManifest(): Promise<PutManifestResult> {
    return this.refuse();
  }

  deleteManifest(): Promise<DeletedManifest> {
    return this.refuse();
  }

  // --- tags and referrers

  /** The upstream's tags merged with those cached here; the cached ones alone when it fails. */
  async listTags(): Promise<string[]> {
    let remote: string[] | undefined;
    let failure: UpstreamError | undefined;
    try {
      remote = await this.remoteTags();
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      failure = err;
    }
    let cached: string[] = [];
    try {
      cached = await this.local.listTags();
    } catch (err) {
      if (!(err instanceof RegistryError && err.code === "NAME_UNKNOWN")) throw err;
    }
    if (remote === undefined && cached.length === 0) throw failure ?? new RegistryError("NAME_UNKNOWN", undefined, { name: this.name });
    if (failure) {
      this.shared.log.warn({ repository: this.name, upstream: this.upstream.url, reason: failure.message }, "upstream failed: listing the cached tags only");
    }
    return [...new Set([...(remote ?? []), ...cached])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** The upstream's referrers merged with any cached here; the cached ones alone when it fails. */
  async referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    const found = new Map<string, Descriptor>();
    for (const descriptor of await this.local.referrers(subject, artifactType)) found.set(descriptor.digest.toString(), descriptor);
    try {
      for (const descriptor of await this.remoteReferrers(subject, artifactType)) found.set(descriptor.digest.toString(), descriptor);
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      this.shared.log.warn({ repository: this.name, upstream: this.upstream.url, reason: err.message }, "upstream failed: listing the cached referrers only");
    }
    return [...found.values()].sort((a, b) => (a.digest.toString() < b.digest.toString() ? -1 : 1));
  }

  // --- the upstream side

  /** The digest the upstream's tag points to now; undefined when its HEAD does not say. */
  private async headTag(tag: string): Promise<Digest | undefined> {
    const response = await this.upstream.client.request("HEAD", `/v2/${this.remote}/manifests/${tag}`, this.remote, { Accept: MANIFEST_ACCEPT });
    response.body.resume();
    if (response.status === 404) throw new RegistryError("MANIFEST_UNKNOWN", undefined, { tag });
    this.expectOk(response.status, "manifest");
    this.upstream.markValidated(this.name, tag);
    const header = response.headers["docker-content-digest"];
    return typeof header === "string" ? Digest.tryParse(header.trim()) : undefined;
  }

  /**
   * Fetches a manifest by digest (or, when the upstream gave no digest, by tag), verifies its
   * bytes, stores them and points `tag` at them. One fetch per manifest at a time.
   */
  private fetchManifest(reference: string, digest: Digest | undefined, tag: string | undefined): Promise<StoredManifest> {
    return this.shared.manifestFetches.run(`${this.name}@${reference}:${tag ?? ""}`, async () => {
      const response = await this.upstream.client.request("GET", `/v2/${this.remote}/manifests/${reference}`, this.remote, { Accept: MANIFEST_ACCEPT });
      if (response.status === 404) {
        response.body.resume();
        throw new RegistryError("MANIFEST_UNKNOWN", undefined, digest ? { digest: reference } : { tag: reference });
      }
      if (response.status !== 200) response.body.resume();
      this.expectOk(response.status, "manifest");
      const content = await readSmallBody(response.body, MAX_MANIFEST_BYTES, this.upstream.url, "manifest");
      this.shared.stats.manifest.misses++;
      this.shared.stats.manifest.pulledBytes += content.length;
      const header = response.headers["docker-content-digest"];
      const claimed = digest ?? (typeof header === "string" ? Digest.tryParse(header.trim()) : undefined) ?? Digest.of("sha256", content);
      const computed = Digest.of(claimed.algorithm, content);
      if (!computed.equals(claimed)) {
        this.shared.log.error({ repository: this.name, upstream: this.upstream.url, claimed: claimed.toString(), computed: computed.toString() }, "upstream manifest does not match its digest: not stored");
        throw new UpstreamError("invalid", this.upstream.url, `it sent a manifest whose bytes do not match ${claimed.toString()}; nothing was stored`);
      }
      // Served with the media type storage would give it back with, and parsed before anything
      // is stored or served: schema 1 and what is not a manifest are refused here.
      const mediaType = storedMediaType(content) ?? contentType(response.headers["content-type"]) ?? OCI_MANIFEST;
      parseManifest(content, mediaType);
      const manifest = { digest: claimed, mediaType, content };
      this.store(manifest, tag);
      return manifest;
    });
  }

  /**
   * Writes a verified manifest (and its tag) to storage while the client already has it: the
   * client does not wait for the writes, and requests for it meanwhile are answered from memory.
   */
  private store(manifest: StoredManifest, tag: string | undefined): void {
    // A read-only mirror (storage.maintenance.readonly, say while garbage is collected) still
    // serves what it fetches; it only stops caching.
    if (this.local.readOnly) return;
    const key = `${this.name}@${manifest.digest.toString()}`;
    this.shared.storingManifests.set(key, manifest);
    this.local
      .storeManifest(manifest.content, manifest.mediaType, manifest.digest, tag === undefined ? [] : [tag])
      .then(() => this.shared.records.touch(this.name, "manifests", manifest.digest))
      .catch((err: unknown) => this.shared.log.error({ err, repository: this.name, digest: manifest.digest.toString() }, "could not cache a manifest from the upstream"))
      .finally(() => this.shared.storingManifests.delete(key));
  }

  private storingManifest(digest: Digest): StoredManifest | undefined {
    return this.shared.storingManifests.get(`${this.name}@${digest.toString()}`);
  }

  private async fetchBlob(digest: Digest): Promise<FillSource> {
    const response = await this.upstream.client.request("GET", `/v2/${this.remote}/blobs/${digest.toString()}`, this.remote);
    if (response.status === 404) {
      response.body.resume();
      throw new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() });
    }
    if (response.status !== 200) response.body.resume();
    this.expectOk(response.status, "blob");
    const length = Number(response.headers["content-length"]);
    this.shared.stats.blob.misses++;
    if (Number.isSafeInteger(length) && length >= 0) this.shared.stats.blob.pulledBytes += length;
    return { size: Number.isSafeInteger(length) && length >= 0 ? length : undefined, body: response.body };
  }

  /** Writes a fill into storage as an ordinary upload: verified against the digest, durable, linked. */
  private async storeBlob(digest: Digest, body: UploadBody, size: number | undefined, pulledAt: number): Promise<void> {
    if (this.local.readOnly) {
      // Nothing is cached; the download (which verifies the digest) still needs its bytes taken.
      for await (const chunk of body) void chunk;
      return;
    }
    const session = await this.local.startUpload();
    try {
      await this.local.completeUpload(session, digest, body, { length: size });
    } catch (err) {
      await this.local.cancelUpload(session).catch(() => undefined);
      // The fill finds a mismatch as the body ends; storage would find it on completion.
      if ((err instanceof UpstreamError && err.failure === "invalid") || (err instanceof RegistryError && err.code === "DIGEST_INVALID")) {
        this.shared.log.error({ repository: this.name, upstream: this.upstream.url, digest: digest.toString() }, "upstream blob does not match its digest: not stored");
      }
      throw err;
    }
    this.shared.records.touch(this.name, "blobs", digest, pulledAt);
    this.shared.grew(this.upstream);
  }

  private async remoteTags(): Promise<string[] | undefined> {
    const tags: string[] = [];
    let path: string | undefined = `/v2/${this.remote}/tags/list?n=1000`;
    for (let page = 0; path !== undefined && page < MAX_TAG_PAGES; page++) {
      const response = await this.upstream.client.request("GET", path, this.remote);
      if (response.status === 404) {
        response.body.resume();
        return page === 0 ? undefined : tags;
      }
      if (response.status !== 200) response.body.resume();
      this.expectOk(response.status, "tag list");
      const body = parseJSON(await readSmallBody(response.body, MAX_TAG_LIST_BYTES, this.upstream.url, "tag list"), this.upstream.url, "tag list");
      const list = (body as { tags?: unknown }).tags;
      if (Array.isArray(list)) for (const tag of list) if (typeof tag === "string" && isValidTag(tag)) tags.push(tag);
      const link = response.headers.link;
      path = nextPage(Array.isArray(link) ? link.join(", ") : link, this.remote, new URL(this.upstream.url).pathname);
    }
    return tags;
  }

  private async remoteReferrers(subject: Digest, artifactType: string | undefined): Promise<Descriptor[]> {
    const query = artifactType === undefined ? "" : `?artifactType=${encodeURIComponent(artifactType)}`;
    const response = await this.upstream.client.request("GET", `/v2/${this.remote}/referrers/${subject.toString()}${query}`, this.remote, { Accept: OCI_INDEX });
    if (response.status !== 200) {
      // An upstream without the referrers API (404, 400): nothing to add.
      response.body.resume();
      return [];
    }
    const index = parseJSON(await readSmallBody(response.body, MAX_MANIFEST_BYTES, this.upstream.url, "referrers index"), this.upstream.url, "referrers index");
    const manifests = (index as { manifests?: unknown }).manifests;
    if (!Array.isArray(manifests)) return [];
    const descriptors: Descriptor[] = [];
    for (const entry of manifests) {
      const descriptor = referrerDescriptor(entry);
      if (descriptor && (artifactType === undefined || descriptor.artifactType === artifactType)) descriptors.push(descriptor);
    }
    return descriptors;
  }

  // --- the local side

  private async localBlob(digest: Digest): Promise<BlobDescriptor | undefined> {
    const known = this.linked.get(digest.toString());
    if (known) return known;
    try {
      const descriptor = await this.local.statBlob(digest);
      this.linked.set(digest.toString(), descriptor);
      return descriptor;
    } catch (err) {
      if (err instanceof RegistryError && err.code === "BLOB_UNKNOWN") return undefined;
      throw err;
    }
  }

  private async localManifest(digest: Digest): Promise<StoredManifest | undefined> {
    try {
      const manifest = await this.local.getManifest({ digest });
      this.shared.records.touch(this.name, "manifests", digest);
      return manifest;
    } catch (err) {
      if (err instanceof RegistryError && err.code === "MANIFEST_UNKNOWN") return undefined;
      throw err;
    }
  }

  private async localTagIs(tag: string, digest: Digest): Promise<boolean> {
    try {
      return (await this.local.resolveTag(tag)).equals(digest);
    } catch (err) {
      if (err instanceof RegistryError && err.code === "MANIFEST_UNKNOWN") return false;
      throw err;
    }
  }

  /**
   * The cached tag, when the upstream failed and it was confirmed recently enough (maxstaleness);
   * the upstream's failure otherwise.
   */
  private async serveStale(tag: string, failure: UpstreamError): Promise<StoredManifest> {
    let digest: Digest;
    try {
      digest = await this.local.resolveTag(tag);
    } catch {
      throw failure;
    }
    const maxStaleness = this.upstream.config.maxStalenessMs;
    const confirmed = this.upstream.lastValidated(this.name, tag) ?? (await this.shared.records.pulledAt(this.name, "manifests", digest));
    const staleFor = confirmed === undefined ? undefined : Date.now() - confirmed;
    if (maxStaleness !== undefined && (staleFor === undefined || staleFor > maxStaleness)) throw failure;
    const manifest = await this.localManifest(digest);
    if (!manifest) throw failure;
    this.shared.log.warn(
      { repository: this.name, tag, digest: digest.toString(), upstream: this.upstream.url, reason: failure.message, staleForMs: staleFor },
      "upstream failed: serving the cached tag",
    );
    return manifest;
  }

  /** 200 goes on; 401/403 after authenticating is a refusal; anything else is not a registry answer. */
  private expectOk(status: number, what: string): void {
    if (status === 200) return;
    if (status === 401 || status === 403) throw new UpstreamError("denied", this.upstream.url, `it denied access to ${this.remote} (${status})`);
    throw new UpstreamError("invalid", this.upstream.url, `it answered ${status} for a ${what} of ${this.remote}`);
  }

  private refuse(): Promise<never> {
    return Promise.reject(
      new RegistryError("UNSUPPORTED", `${this.name} is a mirror of ${this.upstream.url}: pushes and deletes are not supported`),
    );
  }
}

/** The media type of a Content-Type header, parameters dropped. */
function contentType(header: string | undefined): string | undefined {
  const type = header?.split(";")[0]?.trim();
  return type && /^[A-Za-z0-9][\w.+-]*\/[\w.+-]+$/.test(type) ? type : undefined;
}

function parseJSON(bytes: Buffer, upstream: string, what: string): object {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new UpstreamError("invalid", upstream, `its ${what} is not JSON`);
  }
  if (typeof value !== "object" || value === null) throw new UpstreamError("invalid", upstream, `its ${what} is not a JSON object`);
  return value;
}

/**
 * The next page of a tag list from a Link header, only when it stays on the same repository.
 * An upstream served under a path prefix (remoteurl "https://host/registry", distribution's or
 * berth's http.prefix) names its pages under that prefix; the path returned is the API path the
 * upstream client puts after remoteurl.
 */
function nextPage(link: string | undefined, remote: string, upstreamPath: string): string | undefined {
  const target = link === undefined ? undefined : /<([^>]+)>\s*;\s*rel="?next"?/.exec(link)?.[1];
  if (target === undefined) return undefined;
  const url = new URL(target, "http://upstream.invalid");
  const apiPath = `/v2/${remote}/tags/list`;
  return url.pathname === upstreamPath.replace(/\/+$/, "") + apiPath ? apiPath + url.search : undefined;
}

function referrerDescriptor(entry: unknown): Descriptor | undefined {
  if (typeof entry !== "object" || entry === null) return undefined;
  const fields = entry as Record<string, unknown>;
  const digest = typeof fields.digest === "string" ? Digest.tryParse(fields.digest) : undefined;
  if (!digest || typeof fields.mediaType !== "string" || typeof fields.size !== "number" || !Number.isSafeInteger(fields.size)) return undefined;
  const annotations =
    typeof fields.annotations === "object" && fields.annotations !== null && Object.values(fields.annotations).every((v) => typeof v === "string")
      ? (fields.annotations as Record<string, string>)
      : undefined;
  return {
    mediaType: fields.mediaType,
    digest,
    size: fields.size,
    artifactType: typeof fields.artifactType === "string" ? fields.artifactType : undefined,
    annotations,
  };
}
