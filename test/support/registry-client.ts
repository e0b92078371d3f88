/**
 * A small registry client for the API tests: push and pull helpers over Node's fetch, builders for
 * random blobs and images, digest helpers, the one error assertion (`expectError`), raw requests
 * for paths fetch would normalise, and storage snapshots for "nothing was written" checks.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { lstat, readdir, readlink } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { join } from "node:path";

export type Algorithm = "sha256" | "sha512";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";
export const OCI_EMPTY = "application/vnd.oci.empty.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";
export const DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/** The OCI empty descriptor's content, "{}", and its well-known digest. */
export const EMPTY_JSON = Buffer.from("{}");
export const EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

// --- digests and builders

export function digestOf(bytes: Uint8Array | string, algorithm: Algorithm = "sha256"): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
}

/** A random blob; small by default so the suite stays fast. */
export function randomBlob(size = 64): Buffer {
  return randomBytes(size);
}

/** A syntactically valid digest of content nobody pushed. */
export function unknownDigest(algorithm: Algorithm = "sha256"): string {
  return digestOf(randomBytes(32), algorithm);
}

let nameCounter = 0;
/** A fresh repository name per call, so tests sharing a server never see each other's content. */
export function uniqueName(prefix = "repo"): string {
  nameCounter += 1;
  return `${prefix}/r${process.pid}-${nameCounter}-${randomBytes(3).toString("hex")}`;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export function descriptorOf(mediaType: string, bytes: Uint8Array, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: digestOf(bytes), size: bytes.length, ...extra };
}

export function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

export interface ImageParts {
  config: Buffer;
  layers: Buffer[];
  manifest: Record<string, unknown>;
  bytes: Buffer;
  digest: string;
  mediaType: string;
}

export interface ImageOptions {
  /** OCI image manifest (default) or Docker schema 2. */
  mediaType?: typeof OCI_MANIFEST | typeof DOCKER_MANIFEST;
  layers?: number;
  layerSize?: number;
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
  /** Use the OCI empty config ("{}") instead of a random image config. */
  emptyConfig?: boolean;
  configMediaType?: string;
}

/** A random image: config, layers and the manifest bytes naming them (nothing pushed yet). */
export function randomImage(options: ImageOptions = {}): ImageParts {
  const mediaType = options.mediaType ?? OCI_MANIFEST;
  const docker = mediaType === DOCKER_MANIFEST;
  const config = options.emptyConfig
    ? EMPTY_JSON
    : json({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, author: randomBytes(8).toString("hex") });
  const configMediaType = options.configMediaType ?? (options.emptyConfig ? OCI_EMPTY : docker ? DOCKER_CONFIG : OCI_CONFIG);
  const layers = Array.from({ length: options.layers ?? 1 }, () => randomBlob(options.layerSize ?? 48));
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    ...(options.artifactType !== undefined ? { artifactType: options.artifactType } : {}),
    config: descriptorOf(configMediaType, config),
    layers: layers.map((layer) => descriptorOf(docker ? DOCKER_LAYER : OCI_LAYER, layer)),
    ...(options.subject ? { subject: options.subject } : {}),
    ...(options.annotations ? { annotations: options.annotations } : {}),
  };
  const bytes = json(manifest);
  return { config, layers, manifest, bytes, digest: digestOf(bytes), mediaType };
}

/** An index (OCI) or manifest list (Docker) over the given children. */
export function indexOf(
  children: Descriptor[],
  options: { mediaType?: typeof OCI_INDEX | typeof DOCKER_MANIFEST_LIST; subject?: Descriptor; artifactType?: string; annotations?: Record<string, string> } = {},
): { manifest: Record<string, unknown>; bytes: Buffer; digest: string; mediaType: string } {
  const mediaType = options.mediaType ?? OCI_INDEX;
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    ...(options.artifactType !== undefined ? { artifactType: options.artifactType } : {}),
    manifests: children.map((child) => ({ ...child, platform: { architecture: "amd64", os: "linux" } })),
    ...(options.subject ? { subject: options.subject } : {}),
    ...(options.annotations ? { annotations: options.annotations } : {}),
  };
  const bytes = json(manifest);
  return { manifest, bytes, digest: digestOf(bytes), mediaType };
}

// --- the client

/** RequestInit whose body may be any byte view (Node's fetch sends them all). */
export type RequestOptions = Omit<RequestInit, "body"> & { body?: Uint8Array | string | null };

function toInit(options: RequestOptions): RequestInit {
  return options as RequestInit;
}

export interface Upload {
  response: Response;
  location: string;
  uuid: string;
}

export class RegistryClient {
  /** `headers` go with every request (an Authorization header, for a registry with access control). */
  constructor(
    readonly baseURL: string,
    private readonly headers: Record<string, string> = {},
  ) {}

  /** An absolute URL for a registry path; absolute URLs (Locations) pass through. */
  url(pathOrURL: string): string {
    return /^https?:\/\//.test(pathOrURL) ? pathOrURL : this.baseURL + pathOrURL;
  }

  fetch(pathOrURL: string, init: RequestOptions = {}): Promise<Response> {
    const request = toInit(init);
    if (Object.keys(this.headers).length > 0) {
      const headers = new Headers(request.headers);
      for (const [name, value] of Object.entries(this.headers)) if (!headers.has(name)) headers.set(name, value);
      request.headers = headers;
    }
    return fetch(this.url(pathOrURL), { redirect: "manual", ...request });
  }

  /**
   * A request whose response body is read at once (so the connection is free again) and kept:
   * the returned Response can still be read, by `expectError` for instance.
   */
  async send(pathOrURL: string, init: RequestOptions = {}): Promise<Response> {
    const response = await this.fetch(pathOrURL, init);
    const body = Buffer.from(await response.arrayBuffer());
    const nullBody = [101, 204, 205, 304].includes(response.status);
    return new Response(nullBody ? null : body, { status: response.status, statusText: response.statusText, headers: response.headers });
  }

  async startUpload(name: string): Promise<Upload> {
    const response = await this.send(`/v2/${name}/blobs/uploads/`, { method: "POST" });
    assert.equal(response.status, 202, `POST upload for ${name}`);
    const location = response.headers.get("location");
    const uuid = response.headers.get("docker-upload-uuid");
    assert.ok(location, "upload Location");
    assert.ok(uuid, "Docker-Upload-UUID");
    return { response, location: this.url(location), uuid };
  }

  /** PATCH one chunk; with `start` it carries a Content-Range, without it is streamed. */
  async patchChunk(location: string, chunk: Uint8Array, start?: number): Promise<Response> {
    const headers: Record<string, string> = { "Content-Type": "application/octet-stream" };
    if (start !== undefined) {
      headers["Content-Range"] = `${start}-${start + chunk.length - 1}`;
      headers["Content-Length"] = String(chunk.length);
    }
    return this.send(location, { method: "PATCH", headers, body: chunk });
  }

  /** Pushes a blob and returns its digest: one POST ?digest= (default), or POST + PATCH chunks + PUT. */
  async pushBlob(name: string, bytes: Uint8Array, options: { algorithm?: Algorithm; chunkSize?: number } = {}): Promise<string> {
    const digest = digestOf(bytes, options.algorithm);
    if (options.chunkSize === undefined) {
      const response = await this.send(`/v2/${name}/blobs/uploads/?digest=${digest}`, {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream" },
        body: bytes,
      });
      assert.equal(response.status, 201, `monolithic push of ${digest} to ${name}`);
      return digest;
    }
    let { location } = await this.startUpload(name);
    for (let offset = 0; offset < bytes.length; offset += options.chunkSize) {
      const chunk = bytes.subarray(offset, offset + options.chunkSize);
      const response = await this.patchChunk(location, chunk, offset);
      assert.equal(response.status, 202, `chunk at ${offset} of ${digest}`);
      location = this.url(response.headers.get("location")!);
    }
    const response = await this.send(withQuery(location, { digest }), { method: "PUT" });
    assert.equal(response.status, 201, `completing chunked push of ${digest}`);
    return digest;
  }

  /** PUT a manifest; returns the response without judging it. */
  putManifest(name: string, reference: string, bytes: Uint8Array, contentType: string | undefined, query = ""): Promise<Response> {
    const headers: Record<string, string> = {};
    if (contentType !== undefined) headers["Content-Type"] = contentType;
    return this.send(`/v2/${name}/manifests/${reference}${query}`, { method: "PUT", headers, body: bytes });
  }

  /** PUT a manifest, expecting 201; returns the Docker-Content-Digest. */
  async pushManifest(name: string, reference: string, bytes: Uint8Array, contentType: string, query = ""): Promise<string> {
    const response = await this.putManifest(name, reference, bytes, contentType, query);
    assert.equal(response.status, 201, `PUT manifest ${name}:${reference}`);
    return response.headers.get("docker-content-digest")!;
  }

  /** Pushes an image's blobs, then its manifest under `reference` (tag or digest). */
  async pushImage(name: string, reference: string | undefined, image: ImageParts = randomImage()): Promise<ImageParts> {
    await this.pushBlob(name, image.config);
    for (const layer of image.layers) await this.pushBlob(name, layer);
    await this.pushManifest(name, reference ?? image.digest, image.bytes, image.mediaType);
    return image;
  }

  async getJSON<T = unknown>(pathOrURL: string): Promise<{ response: Response; body: T }> {
    const response = await this.fetch(pathOrURL);
    const body = (await response.json()) as T;
    return { response, body };
  }

  async tags(name: string, query = ""): Promise<string[]> {
    const { response, body } = await this.getJSON<{ tags: string[] }>(`/v2/${name}/tags/list${query}`);
    assert.equal(response.status, 200);
    return body.tags;
  }

  /** GET a path and return its status and bytes. */
  async get(pathOrURL: string, headers: Record<string, string> = {}): Promise<{ response: Response; bytes: Buffer }> {
    const response = await this.fetch(pathOrURL, { headers });
    return { response, bytes: Buffer.from(await response.arrayBuffer()) };
  }
}

/** Adds query parameters to a URL that may already have some (an upload Location's `_state`). */
export function withQuery(url: string, params: Record<string, string>): string {
  const parsed = new URL(url);
  for (const [key, value] of Object.entries(params)) parsed.searchParams.append(key, value);
  return parsed.toString();
}

/** The path and query of a Location, as the conformance suite uses it. */
export function relative(location: string): string {
  const parsed = new URL(location, "http://placeholder");
  return parsed.pathname + parsed.search;
}

// --- error assertions

export interface ErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

/**
 * Asserts a spec error response: the status, a JSON Content-Type, and a body
 * `{"errors":[{code, message, ...}]}` whose first code is `code`. Returns that entry.
 */
export async function expectError(response: Response, status: number, code: string): Promise<ErrorEntry> {
  const text = await response.text();
  assert.equal(response.status, status, `expected ${status} ${code}, got ${response.status}: ${text}`);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json\b/, "error Content-Type");
  let body: { errors?: ErrorEntry[] };
  try {
    body = JSON.parse(text) as { errors?: ErrorEntry[] };
  } catch {
    assert.fail(`error body is not JSON: ${text}`);
  }
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `error body has errors: ${text}`);
  const first = body.errors[0]!;
  assert.equal(first.code, code, `error code in ${text}`);
  assert.equal(typeof first.message, "string", "error message");
  return first;
}

/** A HEAD answer carries no body: only the status (and that it is not a success) can be checked. */
export async function expectHeadError(response: Response, status: number): Promise<void> {
  const text = await response.text();
  assert.equal(response.status, status);
  assert.equal(text, "", "HEAD answers without a body");
}

// --- raw requests

/**
 * Sends exactly `path` (fetch's URL parser would resolve "..", "%2e%2e" and friends before they
 * reached the server) and returns a fetch Response, so `expectError` works on it.
 */
export function rawRequest(
  baseURL: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: Uint8Array } = {},
): Promise<Response> {
  const base = new URL(baseURL);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: base.hostname, port: base.port, method, path, headers: { ...options.headers, Connection: "close" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => {
          const headers = new Headers();
          for (const [key, value] of Object.entries(res.headers)) {
            for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value]) headers.append(key, item);
          }
          const status = res.statusCode ?? 0;
          const nullBody = status === 204 || status === 304 || method === "HEAD";
          resolve(new Response(nullBody ? null : Buffer.concat(chunks), { status, headers }));
        });
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

// --- storage snapshots

/**
 * Every entry under `dir`: relative path → "dir", "symlink:<target>", or a file's size,
 * modification time and inode (a rewrite, in place or by rename, changes at least one of them).
 */
export type TreeSnapshot = Map<string, string>;

/**
 * A serving process's lease (`<root>/berth/leases/<id>`, and the temporary file of its atomic
 * rewrite) changes on a timer, not because of requests: snapshots leave those files out.
 */
const LEASE_FILE = /(^|\/)berth\/leases\/[^/]+$/;

export async function snapshotTree(dir: string): Promise<TreeSnapshot> {
  const snapshot: TreeSnapshot = new Map();
  async function visit(path: string, relativePath: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    for (const name of names.sort()) {
      const full = join(path, name);
      const rel = relativePath === "" ? name : `${relativePath}/${name}`;
      if (LEASE_FILE.test(rel)) continue;
      const info = await lstat(full);
      if (info.isSymbolicLink()) snapshot.set(rel, `symlink:${await readlink(full)}`);
      else if (info.isDirectory()) {
        snapshot.set(rel, "dir");
        await visit(full, rel);
      } else snapshot.set(rel, `file:${info.size}:${info.mtimeMs}:${info.ino}`);
    }
  }
  await visit(dir, "");
  return snapshot;
}

/** Fails with the added, removed and changed entries when `dir` differs from `before`. */
export async function assertTreeUnchanged(before: TreeSnapshot, dir: string): Promise<void> {
  const after = await snapshotTree(dir);
  const added = [...after.keys()].filter((key) => !before.has(key));
  const removed = [...before.keys()].filter((key) => !after.has(key));
  const changed = [...after.keys()].filter((key) => before.has(key) && before.get(key) !== after.get(key));
  assert.deepEqual({ added, removed, changed }, { added: [], removed: [], changed: [] }, `storage under ${dir} changed`);
}

/** Files (not directories) under `dir` whose relative path starts with `prefix`. */
export async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const snapshot = await snapshotTree(dir);
  return [...snapshot.entries()].filter(([path, kind]) => kind !== "dir" && path.startsWith(prefix)).map(([path]) => path);
}

/** Parses `Link: <url>; rel="next"` and returns the URL. */
export function nextLink(response: Response): string | undefined {
  const header = response.headers.get("link");
  if (!header) return undefined;
  const match = /^<([^>]+)>;\s*rel="next"$/.exec(header.trim());
  assert.ok(match, `Link header format: ${header}`);
  return match[1];
}

/** Resolves after `check` returns true, or fails after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The storage root's registry tree, where blobs/ and repositories/ live. */
export function registryTree(root: string): string {
  return join(root, "docker", "registry", "v2");
}
