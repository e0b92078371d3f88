/**
 * One bucket through the official SDK (@google-cloud/storage): object names under the root, the
 * requests the driver makes, and GCS's answers turned into what the driver needs (404 → undefined).
 */
import { IdempotencyStrategy, Storage, type Bucket, type File } from "@google-cloud/storage";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";
import type { GcsServiceAccount } from "../../config/config.js";
import { ConcurrencyGate } from "../concurrency-gate.js";
import { cancelSession, putChunk, querySession, type SessionStatus } from "./resumable-session.js";
import type { ListedObject, ListPage, ListParams } from "../s3/bucket.js";
import type { FlatListing } from "../s3/s3-walk.js";

export interface GcsDriverOptions {
  bucket: string;
  /** A service account key; undefined: the SDK's Application Default Credentials. */
  serviceAccount?: GcsServiceAccount;
  /** Name prefix, as distribution's `rootdirectory` (leading and trailing slashes dropped). */
  rootDirectory?: string;
  /** Bytes per resumable session request: a positive multiple of 256 KiB. */
  chunkSize: number;
  /** The JSON API's base URL (an emulator). Requests to it are sent without credentials. */
  apiEndpoint?: string;
  /** Put before the SDK's own User-Agent on every request (distribution 3's `useragent`). */
  userAgent?: string;
  /** Requests to GCS at once (distribution 3's `maxconcurrency`); the rest wait. */
  maxConcurrency: number;
}

export interface ObjectHead {
  size: number;
  modTime: Date;
  metadata: Record<string, string>;
}

/** The SDK's error for an HTTP answer carries its status as `code`. */
export function httpStatusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

export function isNotFound(err: unknown): boolean {
  return httpStatusOf(err) === 404;
}

function asListed(item: unknown): ListedObject | undefined {
  if (typeof item !== "object" || item === null) return undefined;
  const { name, size, updated } = item as { name?: unknown; size?: unknown; updated?: unknown };
  if (typeof name !== "string") return undefined;
  return { Key: name, Size: Number(size ?? 0), LastModified: typeof updated === "string" ? new Date(updated) : new Date(0) };
}

export class GcsBucket implements FlatListing {
  readonly storage: Storage;
  readonly bucket: Bucket;
  readonly root: string;
  readonly chunkSize: number;
  readonly canSign: boolean;
  /** The JSON API's base URL; a custom one (an emulator) gets no credentials, as the SDK does. */
  readonly #api: string;
  readonly #custom: boolean;
  readonly #gate: ConcurrencyGate;
  /** Headers of the requests made here rather than through the SDK. */
  readonly #headers: Record<string, string>;

  constructor(options: GcsDriverOptions) {
    const account = options.serviceAccount;
    this.storage = new Storage({
      // Every request berth makes may be repeated: a put replaces the whole object, a delete of an
      // object already gone counts as done, a rewrite copies the same source. The SDK's default
      // retries only those with preconditions, so a reset connection would fail a delete.
      retryOptions: { autoRetry: true, maxRetries: 3, idempotencyStrategy: IdempotencyStrategy.RetryAlways },
      ...(options.apiEndpoint === undefined ? {} : { apiEndpoint: options.apiEndpoint }),
      ...(options.userAgent === undefined ? {} : { userAgent: options.userAgent }),
      ...(account === undefined ? {} : { credentials: account, projectId: account["project_id"] }),
    });
    this.bucket = this.storage.bucket(options.bucket);
    this.#api = options.apiEndpoint ?? "https://storage.googleapis.com";
    this.#custom = options.apiEndpoint !== undefined;
    this.root = (options.rootDirectory ?? "").replace(/^\/+|\/+$/g, "");
    this.chunkSize = options.chunkSize;
    this.#gate = new ConcurrencyGate(options.maxConcurrency);
    this.#headers = options.userAgent === undefined ? {} : { "user-agent": options.userAgent };
    // distribution redirects only when it holds a private key to sign with.
    this.canSign = account !== undefined;
  }

  key(path: string): string {
    if (path === "/") return this.root;
    return this.root === "" ? path.slice(1) : `${this.root}${path}`;
  }

  dirPrefix(path: string): string {
    if (path === "/") return this.root === "" ? "" : `${this.root}/`;
    return `${this.key(path)}/`;
  }

  pathOf(key: string): string {
    return this.root === "" ? `/${key}` : key.slice(this.root.length);
  }

  file(key: string): File {
    return this.bucket.file(key);
  }

  /**
   * One page of objects in name order, with S3's parameter names (the walker's). StartAfter is
   * sent as GCS's startOffset (inclusive) and also applied here, so that a server which ignores it
   * (the emulator) still gives the right answer, only more slowly.
   */
  async listPage(params: ListParams): Promise<ListPage> {
    const query = {
      prefix: params.Prefix,
      autoPaginate: false,
      ...(params.Delimiter === undefined ? {} : { delimiter: params.Delimiter }),
      ...(params.ContinuationToken === undefined ? {} : { pageToken: params.ContinuationToken }),
      ...(params.StartAfter === undefined || params.ContinuationToken !== undefined ? {} : { startOffset: params.StartAfter }),
      ...(params.MaxKeys === undefined ? {} : { maxResults: params.MaxKeys }),
    };
    const [, , response] = await this.#gate.run(() => this.bucket.getFiles(query));
    const body = (response ?? {}) as { items?: unknown; prefixes?: unknown; nextPageToken?: unknown };
    let contents = (Array.isArray(body.items) ? body.items : []).map(asListed).filter((item): item is ListedObject => item !== undefined);
    const after = params.StartAfter;
    if (after !== undefined) contents = contents.filter((item) => item.Key > after);
    const prefixes = Array.isArray(body.prefixes) ? body.prefixes.filter((p): p is string => typeof p === "string").map((p) => ({ Prefix: p })) : [];
    const token = typeof body.nextPageToken === "string" && body.nextPageToken !== "" ? body.nextPageToken : undefined;
    return { Contents: contents, CommonPrefixes: prefixes, IsTruncated: token !== undefined, NextContinuationToken: token };
  }

  async head(key: string): Promise<ObjectHead | undefined> {
    try {
      const [metadata] = await this.#gate.run(() => this.file(key).getMetadata());
      const custom: Record<string, string> = {};
      for (const [name, value] of Object.entries(metadata.metadata ?? {})) if (typeof value === "string") custom[name] = value;
      return { size: Number(metadata.size ?? 0), modTime: new Date(String(metadata.updated ?? 0)), metadata: custom };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async getBytes(key: string): Promise<Buffer | undefined> {
    try {
      const [bytes] = await this.#gate.run(() => this.file(key).download({ validation: false }));
      return bytes;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** One request (no resumable session): small objects, atomic like every GCS object write. */
  async putBytes(key: string, bytes: Uint8Array, metadata?: Record<string, string>): Promise<void> {
    await this.#gate.run(() =>
      this.file(key).save(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), {
        resumable: false,
        validation: false,
        contentType: "application/octet-stream",
        ...(metadata === undefined ? {} : { metadata: { metadata } }),
      }),
    );
  }

  /** Deletes one object; true when it was there. */
  async deleteKey(key: string): Promise<boolean> {
    try {
      await this.#gate.run(() => this.file(key).delete());
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * A stream of [start, end) of the object's bytes, or undefined when there is no object. Not the
   * SDK's download stream, which left an abandoned download's connection to be reused half read
   * (the next request on it failed), nor fetch (see resumable-session.ts): a response on
   * node:http, whose socket is destroyed with it and which reads only as fast as it is consumed.
   * Requests to a custom endpoint carry no credentials, as the SDK's own do not.
   */
  async download(key: string, start: number, end: number | undefined): Promise<Readable | undefined> {
    const url = `${this.#api}/storage/v1/b/${encodeURIComponent(this.bucket.name)}/o/${encodeURIComponent(key)}?alt=media`;
    const headers: Record<string, string> = { ...this.#headers };
    if (start > 0 || end !== undefined) headers["range"] = `bytes=${start}-${end === undefined ? "" : end - 1}`;
    if (!this.#custom) {
      const auth = await this.storage.authClient.getRequestHeaders(url);
      for (const [name, value] of Object.entries(auth as unknown as Record<string, string>)) headers[name.toLowerCase()] = value;
    }
    // A slot until the answer's head arrives, as distribution's regulator holds one while a reader opens.
    const response = await this.#gate.run(
      () =>
        new Promise<IncomingMessage>((resolve, reject) => {
          const request = url.startsWith("https:") ? httpsRequest : httpRequest;
          request(url, { headers }, resolve).on("error", reject).end();
        }),
    );
    const status = response.statusCode ?? 0;
    if (status === 200 || status === 206) return response;
    const parts: Buffer[] = [];
    for await (const part of response) parts.push(part as Buffer);
    if (status === 404) return undefined;
    throw Object.assign(new Error(`gcs: GET ${key}: HTTP ${status} ${Buffer.concat(parts).toString("utf8").slice(0, 200)}`), { code: status });
  }

  /** Server-side copy (the SDK's rewrite loop): the bytes do not pass through this process. */
  async copy(source: string, dest: string): Promise<void> {
    await this.#gate.run(() => this.file(source).copy(this.file(dest)));
  }

  /** Starts a resumable upload session for `key`; its URI is the capability to continue it. */
  async startSession(key: string): Promise<string> {
    const [uri] = await this.#gate.run(() => this.file(key).createResumableUpload({ metadata: { contentType: "application/octet-stream" } }));
    return uri;
  }

  /** The session's state (src/driver/gcs/resumable-session.ts), as one of this bucket's requests. */
  querySession(uri: string): Promise<SessionStatus> {
    return this.#gate.run(() => querySession(uri, this.#headers));
  }

  putChunk(uri: string, offset: number, bytes: Uint8Array, total?: number): Promise<number> {
    return this.#gate.run(() => putChunk(uri, offset, bytes, total, this.#headers));
  }

  cancelSession(uri: string): Promise<void> {
    return this.#gate.run(() => cancelSession(uri, this.#headers));
  }

  async signedGetURL(key: string, expirySeconds: number): Promise<string> {
    const [url] = await this.file(key).getSignedUrl({ version: "v4", action: "read", expires: Date.now() + expirySeconds * 1000 });
    return url;
  }
}
