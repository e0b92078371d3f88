/**
 * The S3 requests the driver, its writers and its walker make, on one bucket and key prefix, and
 * the mapping between driver paths and keys.
 */
import { createHash } from "node:crypto";
import { isNoSuchUpload, unlessNotFound } from "./s3-errors.js";
import { DELETE_BATCH, MAX_PARTS, splitRanges } from "./s3-limits.js";
import type { S3ResolvedOptions } from "./s3-options.js";
import type { S3Answer, S3Request, S3Transport } from "./s3-transport.js";
import { completeUploadXml, deleteObjectsXml, parseCompleteETag, parseCopyPartETag, parseDeleteErrors, parseListPage, parsePartsPage, parseUploadId, parseUploadsPage, type ListPage } from "./s3-xml.js";
import { encodeKeyPath } from "./sigv4.js";

export type { ListedObject, ListPage } from "./s3-xml.js";

/** A part of a multipart upload, with what CompleteMultipartUpload needs and its size. */
export interface Part {
  PartNumber: number;
  ETag: string;
  size: number;
}

/** A multipart upload in progress. */
export interface Upload {
  key: string;
  uploadId: string;
  initiated: number;
}

export interface ListParams {
  Prefix: string;
  Delimiter?: string;
  ContinuationToken?: string;
  StartAfter?: string;
  MaxKeys?: number;
}

/** User metadata travels in these headers (S3 lowercases the names). */
const META_PREFIX = "x-amz-meta-";

const VALID_SEGMENT = /^[A-Za-z0-9._:-]+$/;

/** Whether a piece of a key between slashes can be a path segment (a side object's name cannot). */
export function isValidSegment(segment: string): boolean {
  return VALID_SEGMENT.test(segment) && segment !== "." && segment !== "..";
}

export class Bucket {
  constructor(
    readonly transport: S3Transport,
    readonly o: S3ResolvedOptions,
  ) {}

  key(path: string): string {
    if (path === "/") return this.o.root;
    return this.o.root === "" ? path.slice(1) : this.o.root + path;
  }

  /** The key prefix of everything under a directory path. */
  dirPrefix(path: string): string {
    if (path === "/") return this.o.root === "" ? "" : `${this.o.root}/`;
    return `${this.key(path)}/`;
  }

  /** The driver path of a key under the root. */
  pathOf(key: string): string {
    return this.o.root === "" ? `/${key}` : key.slice(this.o.root.length);
  }

  async listPage(params: ListParams): Promise<ListPage> {
    const query: Array<[string, string]> = [
      ["list-type", "2"],
      ["prefix", params.Prefix],
      ["max-keys", String(params.MaxKeys ?? this.o.listPageSize)],
    ];
    if (params.Delimiter !== undefined) query.push(["delimiter", params.Delimiter]);
    if (params.ContinuationToken !== undefined) query.push(["continuation-token", params.ContinuationToken]);
    else if (params.StartAfter !== undefined) query.push(["start-after", params.StartAfter]);
    const out = await this.transport.send({ operation: "ListObjectsV2", method: "GET", query });
    return parseListPage(out.body.toString("utf8"));
  }

  /** Every page of a listing, following continuation tokens. */
  async *listPages(params: { Prefix: string; Delimiter?: string }): AsyncGenerator<ListPage> {
    let token: string | undefined;
    do {
      const page = await this.listPage({ ...params, ContinuationToken: token });
      yield page;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** Size and modification time, or undefined when there is no object at the key. */
  async head(key: string): Promise<{ size: number; modTime: Date } | undefined> {
    const head = await unlessNotFound(this.transport.send({ operation: "HeadObject", method: "HEAD", key }));
    if (head === undefined) return undefined;
    const modified = head.headers["last-modified"];
    return { size: Number(head.headers["content-length"] ?? 0), modTime: modified === undefined ? new Date(0) : new Date(modified) };
  }

  /** A whole (small) object and its user metadata. A body cut on the way is retried, then a StorageFaultError. */
  async getObject(key: string): Promise<{ bytes: Buffer; metadata: Record<string, string> }> {
    const out = await this.transport.send({ operation: "GetObject", method: "GET", key });
    const metadata: Record<string, string> = {};
    for (const [name, value] of Object.entries(out.headers)) {
      if (name.startsWith(META_PREFIX) && typeof value === "string") metadata[name.slice(META_PREFIX.length)] = value;
    }
    return { bytes: out.body, metadata };
  }

  /** The HTTP response body of a GetObject, of the whole object or of an HTTP `range` ("bytes=a-b"). */
  getBody(key: string, range: string | undefined): Promise<S3Answer> {
    return this.transport.stream({ operation: "GetObject", method: "GET", key, headers: range === undefined ? undefined : { range } });
  }

  async putObject(key: string, body: Uint8Array, metadata?: Record<string, string>): Promise<void> {
    const headers = this.#writeHeaders();
    for (const [name, value] of Object.entries(metadata ?? {})) headers[META_PREFIX + name.toLowerCase()] = value;
    await this.transport.send({ operation: "PutObject", method: "PUT", key, headers, body });
  }

  /** CopyObject: a server-side copy of an object of at most 5 GiB. */
  async copyObject(source: string, dest: string): Promise<void> {
    const headers = { ...this.#writeHeaders(), "x-amz-copy-source": this.#copySource(source), "x-amz-metadata-directive": "REPLACE" };
    await this.transport.send({ operation: "CopyObject", method: "PUT", key: dest, headers, errorIn200: true });
  }

  /** A presigned GET or HEAD URL of the key. */
  presignedURL(key: string, method: "GET" | "HEAD", expiresIn: number): Promise<string> {
    return this.transport.presign(method, key, expiresIn);
  }

  /** DeleteObject; S3 answers 204 whether or not the key existed. */
  async deleteKey(key: string): Promise<void> {
    await this.transport.send({ operation: "DeleteObject", method: "DELETE", key });
  }

  async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const body = Buffer.from(deleteObjectsXml(keys.slice(i, i + DELETE_BATCH)), "utf8");
      // S3 requires Content-MD5 on DeleteObjects.
      const headers = { "content-md5": createHash("md5").update(body).digest("base64"), "content-type": "application/xml" };
      const out = await this.transport.send({ operation: "DeleteObjects", method: "POST", query: [["delete", ""]], headers, body, signedBody: true });
      const failed = parseDeleteErrors(out.body.toString("utf8")).filter((error) => error.Code !== "NoSuchKey");
      if (failed.length > 0) {
        const first = failed[0]!;
        throw new Error(`s3: could not delete ${failed.length} keys, first ${first.Key}: ${first.Code} ${first.Message}`);
      }
    }
  }

  async createUpload(key: string): Promise<string> {
    const out = await this.transport.send({ operation: "CreateMultipartUpload", method: "POST", key, query: [["uploads", ""]], headers: this.#writeHeaders() });
    return parseUploadId(out.body.toString("utf8"));
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, bytes: Buffer): Promise<Part> {
    if (partNumber > MAX_PARTS) throw new Error(`s3: ${key}: more than ${MAX_PARTS} parts (raise chunksize)`);
    const out = await this.transport.send({ operation: "UploadPart", method: "PUT", key, query: this.#partQuery(uploadId, partNumber), body: bytes });
    return { PartNumber: partNumber, ETag: etagOf(out.headers.etag, key), size: bytes.length };
  }

  /** Copies `size` bytes of `source` as parts `firstPart`, `firstPart + 1`… of an upload, server-side. */
  async copyParts(source: string, size: number, dest: string, uploadId: string, firstPart: number): Promise<Part[]> {
    const ranges = splitRanges(size, this.o.copyChunkSize);
    if (firstPart - 1 + ranges.length > MAX_PARTS) throw new Error(`s3: ${dest}: more than ${MAX_PARTS} parts`);
    return mapLimit(ranges, this.o.copyConcurrency, async ([start, end], i) => {
      const request: S3Request = {
        operation: "UploadPartCopy",
        method: "PUT",
        key: dest,
        query: this.#partQuery(uploadId, firstPart + i),
        headers: { "x-amz-copy-source": this.#copySource(source), "x-amz-copy-source-range": `bytes=${start}-${end - 1}` },
        errorIn200: true,
      };
      const out = await this.transport.send(request);
      return { PartNumber: firstPart + i, ETag: parseCopyPartETag(out.body.toString("utf8")), size: end - start };
    });
  }

  async multipartCopy(source: string, size: number, dest: string): Promise<void> {
    const uploadId = await this.createUpload(dest);
    try {
      const parts = await this.copyParts(source, size, dest, uploadId, 1);
      await this.completeUpload(dest, uploadId, parts, size);
    } catch (err) {
      await this.abortUpload(dest, uploadId).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Completes an upload of `size` bytes from `parts`. The object is then exactly those parts: S3
   * refuses a part whose ETag differs from the one named (InvalidPart), so a part uploaded again
   * by another session fails the completion instead of changing the object. So no HEAD checks the
   * stored size afterwards (it cost every multipart blob a request); the parts' sizes are checked
   * against `size` before, and the answer's ETag, where S3 gives one, must count the parts.
   */
  async completeUpload(key: string, uploadId: string, parts: Part[], size: number): Promise<void> {
    const listed = parts.reduce((sum, part) => sum + part.size, 0);
    if (listed !== size) throw new Error(`s3: ${key}: parts of ${listed} bytes, expected ${size}`);
    const body = Buffer.from(completeUploadXml(parts), "utf8");
    const headers = { "content-type": "application/xml" };
    const out = await this.transport.send({ operation: "CompleteMultipartUpload", method: "POST", key, query: [["uploadId", uploadId]], headers, body, signedBody: true, errorIn200: true });
    // A multipart ETag is the parts' MD5s hashed, then "-" and their count.
    const count = /-(\d+)"?$/.exec(parseCompleteETag(out.body.toString("utf8")) ?? "")?.[1];
    if (count !== undefined && Number(count) !== parts.length) throw new Error(`s3: ${key}: completed with ${count} parts, sent ${parts.length}`);
  }

  /** Aborts an upload; one that is already gone is fine. */
  async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.transport.send({ operation: "AbortMultipartUpload", method: "DELETE", key, query: [["uploadId", uploadId]] });
    } catch (err) {
      if (!isNoSuchUpload(err)) throw err;
    }
  }

  async listUploads(prefix: string, keep: (key: string) => boolean): Promise<Upload[]> {
    const uploads: Upload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const query: Array<[string, string]> = [["uploads", ""], ["prefix", prefix]];
      if (keyMarker !== undefined) query.push(["key-marker", keyMarker]);
      if (uploadIdMarker !== undefined) query.push(["upload-id-marker", uploadIdMarker]);
      const out = await this.transport.send({ operation: "ListMultipartUploads", method: "GET", query });
      const page = parseUploadsPage(out.body.toString("utf8"));
      for (const upload of page.Uploads) {
        if (keep(upload.Key)) uploads.push({ key: upload.Key, uploadId: upload.UploadId, initiated: upload.Initiated.getTime() || 0 });
      }
      if (!page.IsTruncated) break;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
    return uploads;
  }

  /** The parts of an upload, or undefined when the upload is gone (Ceph 16 answers NoSuchKey, AWS NoSuchUpload). */
  async listParts(key: string, uploadId: string): Promise<Part[] | undefined> {
    const parts: Part[] = [];
    let marker: string | undefined;
    try {
      for (;;) {
        const query: Array<[string, string]> = [["uploadId", uploadId]];
        if (marker !== undefined) query.push(["part-number-marker", marker]);
        const out = await this.transport.send({ operation: "ListParts", method: "GET", key, query });
        const page = parsePartsPage(out.body.toString("utf8"));
        for (const part of page.Parts) parts.push({ PartNumber: part.PartNumber, ETag: part.ETag, size: part.Size });
        if (!page.IsTruncated || page.NextPartNumberMarker === undefined) break;
        marker = page.NextPartNumberMarker;
      }
    } catch (err) {
      if (isNoSuchUpload(err)) return undefined;
      throw err;
    }
    parts.sort((a, b) => a.PartNumber - b.PartNumber);
    parts.forEach((part, i) => {
      // Parts are uploaded in order and awaited before close() returns: a gap means a crash mid-session.
      if (part.PartNumber !== i + 1) throw new Error(`s3: upload ${uploadId} of ${key} lacks part ${i + 1}`);
    });
    return parts;
  }

  /** The headers of every object-creating request: content type, storage class, ACL, encryption. */
  #writeHeaders(): Record<string, string> {
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    if (this.o.storageClass !== undefined) headers["x-amz-storage-class"] = this.o.storageClass;
    if (this.o.acl !== undefined) headers["x-amz-acl"] = this.o.acl;
    if (this.o.sse !== undefined) headers["x-amz-server-side-encryption"] = this.o.sse;
    if (this.o.kmsKeyId !== undefined) headers["x-amz-server-side-encryption-aws-kms-key-id"] = this.o.kmsKeyId;
    return headers;
  }

  #partQuery(uploadId: string, partNumber: number): Array<[string, string]> {
    return [["partNumber", String(partNumber)], ["uploadId", uploadId]];
  }

  #copySource(key: string): string {
    return `${this.o.bucket}/${encodeKeyPath(key)}`;
  }
}

/** An UploadPart's ETag, which CompleteMultipartUpload needs. */
function etagOf(etag: string | undefined, key: string): string {
  if (etag === undefined) throw new Error(`s3: UploadPart of ${key} answered no ETag`);
  return etag;
}

/** Runs `fn` on every item, at most `limit` at a time; after a failure, starts no more. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!, index);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
