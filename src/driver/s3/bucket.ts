/**
 * The S3 requests the driver, its writers and its walker make, on one bucket and key prefix, and
 * the mapping between driver paths and keys.
 */
import type { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type ListObjectsV2CommandOutput,
  type ObjectCannedACL,
  type S3Client,
  type ServerSideEncryption,
  type StorageClass,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { StorageFaultError } from "../storage-fault.js";
import { isNoSuchUpload, unlessNotFound } from "./s3-errors.js";
import { DELETE_BATCH, MAX_PARTS, splitRanges } from "./s3-limits.js";
import type { S3ResolvedOptions } from "./s3-options.js";

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

/** Parameters every object-creating request carries. */
interface WriteParams {
  Bucket: string;
  Key: string;
  StorageClass?: StorageClass;
  ACL?: ObjectCannedACL;
  ServerSideEncryption?: ServerSideEncryption;
  SSEKMSKeyId?: string;
}

const VALID_SEGMENT = /^[A-Za-z0-9._:-]+$/;

/** Whether a piece of a key between slashes can be a path segment (a side object's name cannot). */
export function isValidSegment(segment: string): boolean {
  return VALID_SEGMENT.test(segment) && segment !== "." && segment !== "..";
}

export class Bucket {
  constructor(
    readonly client: S3Client,
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

  listPage(params: ListParams): Promise<ListObjectsV2CommandOutput> {
    return this.client.send(
      new ListObjectsV2Command({
        Bucket: this.o.bucket,
        Prefix: params.Prefix,
        Delimiter: params.Delimiter,
        ContinuationToken: params.ContinuationToken,
        StartAfter: params.ContinuationToken === undefined ? params.StartAfter : undefined,
        MaxKeys: params.MaxKeys ?? this.o.listPageSize,
      }),
    );
  }

  /** Every page of a listing, following continuation tokens. */
  async *listPages(params: { Prefix: string; Delimiter?: string }): AsyncGenerator<ListObjectsV2CommandOutput> {
    let token: string | undefined;
    do {
      const page = await this.listPage({ ...params, ContinuationToken: token });
      yield page;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** Size and modification time, or undefined when there is no object at the key. */
  async head(key: string): Promise<{ size: number; modTime: Date } | undefined> {
    const head = await unlessNotFound(this.client.send(new HeadObjectCommand({ Bucket: this.o.bucket, Key: key })));
    return head === undefined ? undefined : { size: head.ContentLength ?? 0, modTime: head.LastModified ?? new Date(0) };
  }

  async getObject(key: string): Promise<{ bytes: Buffer; metadata: Record<string, string> }> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.o.bucket, Key: key }));
    let bytes: Uint8Array;
    try {
      bytes = await out.Body!.transformToByteArray();
    } catch (err) {
      // The answer began but its body did not arrive whole (connection cut, timeout): the store failed, not the key.
      throw new StorageFaultError("unavailable", `s3: the body of ${key} was cut`, { cause: err });
    }
    return { bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), metadata: out.Metadata ?? {} };
  }

  /** The HTTP response body of a GetObject, of the whole object or of an HTTP `range` ("bytes=a-b"). */
  async getBody(key: string, range: string | undefined): Promise<Readable> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.o.bucket, Key: key, Range: range }));
    return out.Body as Readable;
  }

  async putObject(key: string, body: Uint8Array, metadata?: Record<string, string>): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        ...this.#writeParams(key),
        Body: body,
        ContentLength: body.byteLength,
        ContentType: "application/octet-stream",
        Metadata: metadata,
      }),
    );
  }

  /** CopyObject: a server-side copy of an object of at most 5 GiB. */
  async copyObject(source: string, dest: string): Promise<void> {
    await this.client.send(
      new CopyObjectCommand({
        ...this.#writeParams(dest),
        CopySource: this.#copySource(source),
        ContentType: "application/octet-stream",
        MetadataDirective: "REPLACE",
      }),
    );
  }

  /** A presigned GET or HEAD URL of the key. */
  presignedURL(key: string, method: "GET" | "HEAD", expiresIn: number): Promise<string> {
    const input = { Bucket: this.o.bucket, Key: key };
    const command = method === "GET" ? new GetObjectCommand(input) : new HeadObjectCommand(input);
    return getSignedUrl(this.client, command, { expiresIn });
  }

  /** DeleteObject; S3 answers 204 whether or not the key existed. */
  async deleteKey(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.o.bucket, Key: key }));
  }

  async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const out = await this.client.send(
        new DeleteObjectsCommand({ Bucket: this.o.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
      );
      const failed = (out.Errors ?? []).filter((error) => error.Code !== "NoSuchKey");
      if (failed.length > 0) {
        const first = failed[0]!;
        throw new Error(`s3: could not delete ${failed.length} keys, first ${first.Key}: ${first.Code} ${first.Message ?? ""}`);
      }
    }
  }

  async createUpload(key: string): Promise<string> {
    const out = await this.client.send(
      new CreateMultipartUploadCommand({ ...this.#writeParams(key), ContentType: "application/octet-stream" }),
    );
    return out.UploadId!;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, bytes: Buffer): Promise<Part> {
    if (partNumber > MAX_PARTS) throw new Error(`s3: ${key}: more than ${MAX_PARTS} parts (raise chunksize)`);
    const out = await this.client.send(
      new UploadPartCommand({ Bucket: this.o.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: bytes, ContentLength: bytes.length }),
    );
    return { PartNumber: partNumber, ETag: out.ETag!, size: bytes.length };
  }

  /** Copies `size` bytes of `source` as parts `firstPart`, `firstPart + 1`… of an upload, server-side. */
  async copyParts(source: string, size: number, dest: string, uploadId: string, firstPart: number): Promise<Part[]> {
    const ranges = splitRanges(size, this.o.copyChunkSize);
    if (firstPart - 1 + ranges.length > MAX_PARTS) throw new Error(`s3: ${dest}: more than ${MAX_PARTS} parts`);
    return mapLimit(ranges, this.o.copyConcurrency, async ([start, end], i) => {
      const out = await this.client.send(
        new UploadPartCopyCommand({
          Bucket: this.o.bucket,
          Key: dest,
          UploadId: uploadId,
          PartNumber: firstPart + i,
          CopySource: this.#copySource(source),
          CopySourceRange: `bytes=${start}-${end - 1}`,
        }),
      );
      return { PartNumber: firstPart + i, ETag: out.CopyPartResult!.ETag!, size: end - start };
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

  /** Completes an upload, then checks the object's size (Ceph 16 answers an empty ETag: HEAD is the truth). */
  async completeUpload(key: string, uploadId: string, parts: Part[], size: number): Promise<void> {
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.o.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts.map(({ PartNumber, ETag }) => ({ PartNumber, ETag })) },
      }),
    );
    await this.verifySize(key, size);
  }

  async verifySize(key: string, size: number): Promise<void> {
    const stored = (await this.head(key))?.size;
    if (stored !== size) throw new Error(`s3: ${key}: stored ${stored ?? "no"} bytes, expected ${size}`);
  }

  /** Aborts an upload; one that is already gone is fine. */
  async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.o.bucket, Key: key, UploadId: uploadId }));
    } catch (err) {
      if (!isNoSuchUpload(err)) throw err;
    }
  }

  async listUploads(prefix: string, keep: (key: string) => boolean): Promise<Upload[]> {
    const uploads: Upload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.o.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
      );
      for (const upload of page.Uploads ?? []) {
        if (keep(upload.Key!)) uploads.push({ key: upload.Key!, uploadId: upload.UploadId!, initiated: upload.Initiated?.getTime() ?? 0 });
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
        const page = await this.client.send(
          new ListPartsCommand({ Bucket: this.o.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }),
        );
        for (const part of page.Parts ?? []) parts.push({ PartNumber: part.PartNumber!, ETag: part.ETag!, size: part.Size ?? 0 });
        if (!page.IsTruncated || page.NextPartNumberMarker === undefined) break;
        marker = String(page.NextPartNumberMarker);
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

  #writeParams(key: string): WriteParams {
    return {
      Bucket: this.o.bucket,
      Key: key,
      StorageClass: this.o.storageClass,
      ACL: this.o.acl,
      ServerSideEncryption: this.o.sse,
      SSEKMSKeyId: this.o.kmsKeyId,
    };
  }

  #copySource(key: string): string {
    return `${this.o.bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
  }
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
