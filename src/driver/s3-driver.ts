import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { PassThrough, Readable, pipeline } from "node:stream";
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
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type ListObjectsV2CommandOutput,
  type ObjectCannedACL,
  type ServerSideEncryption,
  type StorageClass,
  type _Object,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import {
  assertValidPath,
  PathNotFoundError,
  type FileInfo,
  type FileWriter,
  type StorageDriver,
} from "./storage-driver.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** S3's smallest part, except the last one of an upload. */
export const MIN_PART_SIZE = 5 * MiB;
/** S3's largest part, and the largest object CopyObject accepts. */
const MAX_PART_SIZE = 5 * GiB;
const MAX_PARTS = 10_000;
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;
/** How long a redirect URL stays valid (distribution: 20 minutes). */
const REDIRECT_EXPIRY_SECONDS = 20 * 60;

/**
 * Suffix of the side object that keeps a closed writer's small tail (see S3FileWriter). `~` is not
 * in the path alphabet, so no driver path can name it, and list/walk never show it; it shares the
 * path's prefix, so a recursive delete removes it.
 */
export const PENDING_SUFFIX = "~pending";
const META_UPLOAD_ID = "berth-upload-id";
const META_PARTS = "berth-parts";
const NO_UPLOAD = "none";

const VALID_SEGMENT = /^[A-Za-z0-9._:-]+$/;

/**
 * The S3 driver's configuration, with the keys (and defaults) of distribution's `storage.s3`.
 * Sizes are in bytes.
 */
export interface S3DriverOptions {
  /** Access key id; when absent, credentials come from the AWS SDK's default chain (environment, profile, SSO, instance role…). */
  accesskey?: string;
  secretkey?: string;
  sessiontoken?: string;
  /** AWS region (or any region name a compatible server accepts); when absent, from AWS_REGION / the profile. */
  region?: string;
  /** Endpoint of an S3-compatible server ("https://minio:9000", "127.0.0.1:7480"); the AWS endpoint when absent. */
  regionendpoint?: string;
  bucket: string;
  /** Prefix of every key, like distribution ("/registry" → keys "registry/docker/registry/v2/…"). */
  rootdirectory?: string;
  /** Path-style requests (http://endpoint/bucket/key), which most compatible servers need. Default false. */
  forcepathstyle?: boolean;
  /** Server-side encryption (AES256, or aws:kms with `keyid`). Default false. */
  encrypt?: boolean;
  /** KMS key id for `encrypt`. */
  keyid?: string;
  /** Scheme for a `regionendpoint` given without one, and for the AWS endpoint: https when true (default). */
  secure?: boolean;
  /** Do not verify the server's TLS certificate. Default false. */
  skipverify?: boolean;
  /** Size of the parts a writer uploads. Default 10 MiB, at least 5 MiB. */
  chunksize?: number;
  /** Size of the parts of a multipart copy (move of a large object). Default 32 MiB. */
  multipartcopychunksize?: number;
  /** Parts of one multipart copy copied at the same time. Default 100. */
  multipartcopymaxconcurrency?: number;
  /** Objects larger than this are moved with a multipart copy, smaller ones with CopyObject. Default 32 MiB. */
  multipartcopythresholdsize?: number;
  /** Storage class of written objects. Default STANDARD; "NONE" sends none (for servers that refuse the header). */
  storageclass?: string;
  /** Canned ACL of written objects; none is sent when absent (buckets with ACLs disabled refuse most). */
  objectacl?: string;
}

/** Knobs for tests and benchmarks, not configuration. */
export interface S3DriverTuning {
  /** MaxKeys of listings (S3's maximum and default: 1000). Small values exercise pagination. */
  listPageSize?: number;
}

/** S3DriverOptions with defaults applied and sizes checked. */
export interface S3ResolvedOptions {
  bucket: string;
  /** Key prefix: `rootdirectory` without leading or trailing slashes ("" for none). */
  root: string;
  chunkSize: number;
  copyChunkSize: number;
  copyConcurrency: number;
  copyThreshold: number;
  storageClass: StorageClass | undefined;
  acl: ObjectCannedACL | undefined;
  sse: ServerSideEncryption | undefined;
  kmsKeyId: string | undefined;
  listPageSize: number;
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

interface Part {
  PartNumber: number;
  ETag: string;
  size: number;
}

/**
 * Stores objects in an S3 bucket (AWS, Ceph radosgw, MinIO…), with the key layout of distribution's
 * s3-aws driver: the key of a path is `rootdirectory` + path without its leading slash, so a bucket
 * written by distribution is served as it is. Directories are key prefixes.
 */
export class S3Driver implements StorageDriver {
  readonly name = "s3";
  /** The SDK client, for instrumentation (middleware) and tests. */
  readonly client: S3Client;
  readonly #b: Bucket;

  constructor(options: S3DriverOptions, tuning: S3DriverTuning = {}) {
    const resolved = resolveOptions(options, tuning);
    // berth pins SDK releases that support its Node versions; the SDK's warning that later releases
    // will not is addressed to whoever upgrades the dependency, not to a registry's operator.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
    const maxSockets = Math.max(50, resolved.copyConcurrency);
    this.client = new S3Client({
      region: options.region,
      endpoint: endpointOf(options),
      forcePathStyle: options.forcepathstyle ?? false,
      credentials:
        options.accesskey !== undefined && options.accesskey !== ""
          ? { accessKeyId: options.accesskey, secretAccessKey: options.secretkey ?? "", sessionToken: options.sessiontoken }
          : undefined,
      // Checksums only where the API demands them: S3-compatible servers (Ceph 16, older MinIO) reject
      // the aws-chunked trailers that the default ("WHEN_SUPPORTED") puts on every upload.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: {
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets, rejectUnauthorized: !(options.skipverify ?? false) }),
      },
    });
    this.#b = new Bucket(this.client, resolved);
  }

  /** The configuration in effect: bucket, key prefix (`root`), sizes, with defaults applied. */
  get options(): Readonly<S3ResolvedOptions> {
    return this.#b.o;
  }

  async getContent(path: string): Promise<Buffer> {
    assertValidPath(path);
    try {
      return (await this.#b.getObject(this.#b.key(path))).bytes;
    } catch (err) {
      throw this.#mapError(err, path);
    }
  }

  async putContent(path: string, content: Uint8Array): Promise<void> {
    assertValidPath(path);
    await this.#b.putObject(this.#b.key(path), content);
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    assertValidPath(path);
    assertOffset(offset, end);
    const key = this.#b.key(path);
    if (end === undefined || end > offset) {
      const range = offset === 0 && end === undefined ? undefined : `bytes=${offset}-${end === undefined ? "" : end - 1}`;
      try {
        const out = await this.client.send(new GetObjectCommand({ Bucket: this.#b.o.bucket, Key: key, Range: range }));
        // The SDK's body is the HTTP response, which a consumer cannot destroy synchronously (Node
        // aborts its request instead); the pass-through can be, and the pipeline then aborts the response.
        const stream = new PassThrough({ highWaterMark: 256 * KiB });
        pipeline(out.Body as Readable, stream, () => undefined);
        return stream;
      } catch (err) {
        // 416: the offset is at or past the end (or the object is empty); an absent object answers 404.
        if (!isInvalidRange(err)) throw this.#mapError(err, path);
      }
    }
    if ((await this.#b.head(key)) === undefined) throw new PathNotFoundError(path, this.name);
    return Readable.from([], { objectMode: false });
  }

  async writer(path: string, append: boolean): Promise<FileWriter> {
    assertValidPath(path);
    const key = this.#b.key(path);
    return new S3FileWriter(this.#b, key, append ? await resumeState(this.#b, key) : await freshState(this.#b, key));
  }

  /** HeadObject for a file; for a directory, a listing of one key under `<key>/`. */
  async stat(path: string): Promise<FileInfo> {
    assertValidPath(path);
    if (path === "/") return { path, size: 0, modTime: new Date(0), isDir: true };
    const key = this.#b.key(path);
    const head = await this.#b.head(key);
    if (head !== undefined) return { path, size: head.size, modTime: head.modTime, isDir: false };
    const first = (await this.#b.listPage({ Prefix: `${key}/`, MaxKeys: 1 })).Contents?.[0];
    if (first === undefined) throw new PathNotFoundError(path, this.name);
    return { path, size: 0, modTime: first.LastModified ?? new Date(0), isDir: true };
  }

  /** Files and common prefixes of a delimited listing, page by page; side objects are not shown. */
  async list(path: string): Promise<string[]> {
    assertValidPath(path);
    const prefix = this.#b.dirPrefix(path);
    const children: string[] = [];
    let seen = 0;
    let token: string | undefined;
    do {
      const page = await this.#b.listPage({ Prefix: prefix, Delimiter: "/", ContinuationToken: token });
      for (const object of page.Contents ?? []) {
        seen++;
        if (isValidSegment(object.Key!.slice(prefix.length))) children.push(this.#b.pathOf(object.Key!));
      }
      for (const common of page.CommonPrefixes ?? []) {
        seen++;
        const dir = common.Prefix!.slice(0, -1);
        if (isValidSegment(dir.slice(prefix.length))) children.push(this.#b.pathOf(dir));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    if (seen === 0) throw new PathNotFoundError(path, this.name);
    return children;
  }

  /**
   * Server-side copy, then delete of the source: CopyObject up to `multipartcopythresholdsize`,
   * a multipart copy (UploadPartCopy, `multipartcopymaxconcurrency` parts at a time) above it.
   * The bytes never pass through this process.
   */
  async move(sourcePath: string, destPath: string): Promise<void> {
    assertValidPath(sourcePath);
    assertValidPath(destPath);
    const source = this.#b.key(sourcePath);
    const dest = this.#b.key(destPath);
    const head = await this.#b.head(source);
    if (head === undefined) throw new PathNotFoundError(sourcePath, this.name);
    try {
      if (head.size <= this.#b.o.copyThreshold && head.size <= MAX_PART_SIZE) {
        await this.client.send(
          new CopyObjectCommand({
            ...this.#b.writeParams(dest),
            CopySource: this.#b.copySource(source),
            ContentType: "application/octet-stream",
            MetadataDirective: "REPLACE",
          }),
        );
      } else {
        await this.#b.multipartCopy(source, head.size, dest);
      }
    } catch (err) {
      throw this.#mapError(err, sourcePath);
    }
    await this.#b.deleteKey(source);
  }

  /**
   * Deletes the object at the path, everything under it and the path's side object (DeleteObjects,
   * 1000 keys a request), and aborts the multipart uploads of those keys, so that abandoned uploads
   * do not keep their parts. PathNotFoundError when none of these exist.
   */
  async delete(path: string): Promise<void> {
    assertValidPath(path);
    const key = this.#b.key(path);
    const dirPrefix = this.#b.dirPrefix(path);
    const isRoot = path === "/";
    const [uploads, top] = await Promise.all([
      this.#b.listUploads(isRoot ? dirPrefix : key, (k) => isRoot || k === key || k.startsWith(dirPrefix)),
      isRoot ? { keys: [], hasDir: true } : this.#b.nameLevel(key),
    ]);
    let found = top.keys.length > 0;
    if (found) await this.#b.deleteKeys(top.keys);
    if (top.hasDir) {
      // Page by page, listing again from the start: what was deleted is no longer listed.
      for (;;) {
        const page = await this.#b.listPage({ Prefix: dirPrefix });
        const keys = (page.Contents ?? []).map((object) => object.Key!);
        if (keys.length === 0) break;
        found = true;
        await this.#b.deleteKeys(keys);
        if (!page.IsTruncated) break;
      }
    }
    await Promise.all(uploads.map((upload) => this.#b.abortUpload(upload.key, upload.uploadId)));
    if (!found && uploads.length === 0) throw new PathNotFoundError(path, this.name);
  }

  /** A presigned GET or HEAD URL, valid for 20 minutes. */
  async redirectURL(path: string, method: "GET" | "HEAD"): Promise<string | undefined> {
    assertValidPath(path);
    const input = { Bucket: this.#b.o.bucket, Key: this.#b.key(path) };
    const command = method === "GET" ? new GetObjectCommand(input) : new HeadObjectCommand(input);
    return getSignedUrl(this.client, command, { expiresIn: REDIRECT_EXPIRY_SECONDS });
  }

  /**
   * Depth-first, children in lexical order, from a flat (recursive) listing: one request per
   * thousand keys rather than one per directory. See Walker for how S3's key order (where "a-b" and
   * "a.b" sort before "a/…") is turned into the lexical order of path segments.
   */
  async walk(path: string, visit: (info: FileInfo) => Promise<void | "skip"> | void | "skip"): Promise<void> {
    assertValidPath(path);
    const walker = new Walker(this.#b, visit);
    if (!(await walker.walkDir(this.#b.dirPrefix(path)))) throw new PathNotFoundError(path, this.name);
  }

  #mapError(err: unknown, path: string): unknown {
    return isNotFound(err) ? new PathNotFoundError(path, this.name) : err;
  }
}

/** The S3 requests the driver, its writers and its walker make, on one bucket and key prefix. */
class Bucket {
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

  listPage(params: { Prefix: string; Delimiter?: string; ContinuationToken?: string; StartAfter?: string; MaxKeys?: number }): Promise<ListObjectsV2CommandOutput> {
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

  /**
   * One delimited listing of a key's name prefix: the object and its side object, and whether a
   * directory of that name exists (its siblings sharing the prefix, such as "blob2", are ignored).
   */
  async nameLevel(key: string): Promise<{ keys: string[]; hasDir: boolean }> {
    const keys: string[] = [];
    let hasDir = false;
    let token: string | undefined;
    do {
      const page = await this.listPage({ Prefix: key, Delimiter: "/", ContinuationToken: token });
      for (const object of page.Contents ?? []) {
        if (object.Key === key || object.Key === key + PENDING_SUFFIX) keys.push(object.Key);
      }
      if ((page.CommonPrefixes ?? []).some((common) => common.Prefix === `${key}/`)) hasDir = true;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return { keys, hasDir };
  }

  /** Size and modification time, or undefined when there is no object at the key. */
  async head(key: string): Promise<{ size: number; modTime: Date } | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.o.bucket, Key: key }));
      return { size: head.ContentLength ?? 0, modTime: head.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async getObject(key: string): Promise<{ bytes: Buffer; metadata: Record<string, string> }> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.o.bucket, Key: key }));
    const bytes = await out.Body!.transformToByteArray();
    return { bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), metadata: out.Metadata ?? {} };
  }

  async putObject(key: string, body: Uint8Array, metadata?: Record<string, string>): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        ...this.writeParams(key),
        Body: body,
        ContentLength: body.byteLength,
        ContentType: "application/octet-stream",
        Metadata: metadata,
      }),
    );
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
      new CreateMultipartUploadCommand({ ...this.writeParams(key), ContentType: "application/octet-stream" }),
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
          CopySource: this.copySource(source),
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

  writeParams(key: string): WriteParams {
    return {
      Bucket: this.o.bucket,
      Key: key,
      StorageClass: this.o.storageClass,
      ACL: this.o.acl,
      ServerSideEncryption: this.o.sse,
      SSEKMSKeyId: this.o.kmsKeyId,
    };
  }

  copySource(key: string): string {
    return `${this.o.bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
  }
}

interface Upload {
  key: string;
  uploadId: string;
  initiated: number;
}

// --- the writer -------------------------------------------------------------------------------------

interface WriterState {
  uploadId: string | undefined;
  parts: Part[];
  /** Bytes not yet in a part: a pending tail, or a small committed object being continued. */
  tail: Buffer;
  /** A `<key>~pending` side object may exist and must be replaced or removed. */
  pendingStored: boolean;
  /** Uploads of the same key found alongside the live one: aborted at commit or cancel. */
  stale: string[];
  /** A committed object being continued; `copied` once its bytes are in parts (or in `tail`). */
  base: { size: number; copied: boolean } | undefined;
  /** Opened without `append`: the content starts empty even if nothing is written. */
  fresh: boolean;
}

type Phase = "open" | "closed" | "committed" | "cancelled";

/**
 * The state a writer with `append` continues: the newest multipart upload of the key and its
 * parts, the side object's tail when its tags match them, or else the committed object.
 */
async function resumeState(b: Bucket, key: string): Promise<WriterState> {
  const [uploads, pending, committed] = await Promise.all([
    b.listUploads(key, (k) => k === key),
    getPending(b, key),
    b.head(key),
  ]);
  // The newest upload is the live one; older ones are leftovers of abandoned sessions.
  uploads.sort((x, y) => x.initiated - y.initiated);
  let live = uploads.pop();
  let parts: Part[] = [];
  if (live !== undefined) {
    const listed = await b.listParts(key, live.uploadId);
    if (listed === undefined) live = undefined;
    else parts = listed;
  }
  const state: WriterState = {
    uploadId: live?.uploadId,
    parts,
    tail: Buffer.alloc(0),
    pendingStored: pending !== undefined,
    stale: uploads.map((upload) => upload.uploadId),
    base: undefined,
    fresh: false,
  };
  const pendingValid = pending !== undefined && pending.uploadId === (live?.uploadId ?? NO_UPLOAD) && pending.parts === parts.length;
  if (pendingValid) state.tail = pending.bytes;
  if (live !== undefined || pendingValid || committed === undefined) return state;
  // No writer state: continue the committed object.
  if (committed.size < MIN_PART_SIZE) {
    // Small enough to become the head of the next part (or of a PutObject), in memory.
    state.tail = (await b.getObject(key)).bytes;
    state.base = { size: committed.size, copied: true };
  } else {
    // Copied server-side into the upload's first parts when the upload starts.
    state.base = { size: committed.size, copied: false };
  }
  return state;
}

/** A writer without `append` discards earlier sessions: their uploads and side object. */
async function freshState(b: Bucket, key: string): Promise<WriterState> {
  const [uploads] = await Promise.all([b.listUploads(key, (k) => k === key), b.deleteKey(key + PENDING_SUFFIX)]);
  await Promise.all(uploads.map((upload) => b.abortUpload(key, upload.uploadId)));
  return { uploadId: undefined, parts: [], tail: Buffer.alloc(0), pendingStored: false, stale: [], base: undefined, fresh: true };
}

async function getPending(b: Bucket, key: string): Promise<{ bytes: Buffer; uploadId: string; parts: number } | undefined> {
  try {
    const { bytes, metadata } = await b.getObject(key + PENDING_SUFFIX);
    return { bytes, uploadId: metadata[META_UPLOAD_ID] ?? "", parts: Number(metadata[META_PARTS] ?? NaN) };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * S3 has no append, so a writer streams into a multipart upload: bytes are gathered up to
 * `chunksize`, then uploaded as one part while the next one fills (at most two parts in memory;
 * awaiting `write` is the backpressure).
 *
 * `close()` leaves the multipart upload open: a later `writer(path, true)` finds it
 * (ListMultipartUploads for the key) and its parts (ListParts) and continues. The only bytes that
 * cannot go into a part at close are a tail under 5 MiB (S3 accepts a part that small only as the
 * last one of a completed upload). That tail is stored as a side object `<key>~pending`, tagged with
 * the upload id and the number of parts it follows; the next session reads it back (it is under
 * 5 MiB) as the start of its buffer, so it becomes the head of that session's next part. The tags
 * make a crash harmless: a pending object whose upload or part count does not match (because a
 * later part already took its bytes, or the upload was completed or aborted) is ignored.
 * distribution instead uploads the small tail as a part, and on the next write completes the upload
 * and starts a new one whose first part is a copy of the whole object (re-copying everything so
 * far on every small-tail session, and exposing a partial object at the path in between); the side
 * object costs one small PUT per close and one GET per reopen instead.
 *
 * `commit()` uploads the buffer as the last part and completes the upload (a writer that never
 * filled a part commits with a single PutObject, empty or not), then checks the stored size with a
 * HEAD. `cancel()` aborts the upload and removes the side object and any committed object.
 */
class S3FileWriter implements FileWriter {
  readonly #b: Bucket;
  readonly #key: string;
  readonly #chunkSize: number;
  #uploadId: string | undefined;
  #parts: Part[];
  #partBytes: number;
  #stale: string[];
  #pendingStored: boolean;
  #base: { size: number; copied: boolean } | undefined;
  #phase: Phase = "open";
  #size: number;
  /** True once this session has changed anything (from the start without `append`). */
  #dirty: boolean;
  /**
   * The part being filled. Grows geometrically up to chunkSize, so small writers stay small; once a
   * part has been cut, full-size buffers are recycled (see #queuePart).
   */
  #buffer: Buffer;
  /** Full-size buffers whose part upload finished, ready to fill again. */
  #free: Buffer[] = [];
  #cutParts = 0;
  #fill: number;
  /** Writes absorbed one after another on this chain; a failure leaves it rejected. */
  #writing: Promise<void> = Promise.resolve();
  /** Part uploads run one after another on this chain; a failure leaves it rejected. */
  #chain: Promise<void> = Promise.resolve();
  #queued: Array<Promise<void>> = [];
  #error: unknown;
  #finished: Promise<void> = Promise.resolve();

  constructor(bucket: Bucket, key: string, state: WriterState) {
    this.#b = bucket;
    this.#key = key;
    this.#chunkSize = bucket.o.chunkSize;
    this.#uploadId = state.uploadId;
    this.#parts = state.parts;
    this.#partBytes = state.parts.reduce((sum, part) => sum + part.size, 0);
    this.#stale = state.stale;
    this.#pendingStored = state.pendingStored;
    this.#base = state.base;
    this.#dirty = state.fresh;
    this.#buffer = state.tail;
    this.#fill = state.tail.length;
    this.#size = this.#partBytes + this.#fill + (state.base && !state.base.copied ? state.base.size : 0);
  }

  get size(): number {
    return this.#size;
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.#phase !== "open") return Promise.reject(new Error(`writer is ${this.#phase}: ${this.#key}`));
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (chunk.byteLength === 0) return this.#writing;
    this.#dirty = true;
    this.#size += chunk.byteLength;
    // Chained, so that writes not awaited keep their order while one waits for a free buffer.
    const absorbed = this.#writing.then(() => this.#absorb(chunk));
    absorbed.catch((err: unknown) => {
      this.#error ??= err;
    });
    this.#writing = absorbed;
    return absorbed;
  }

  close(): Promise<void> {
    if (this.#phase !== "open") return this.#finished.catch(() => undefined);
    this.#phase = "closed";
    this.#finished = this.#persist();
    return this.#finished;
  }

  commit(): Promise<void> {
    if (this.#phase === "committed") return this.#finished;
    if (this.#phase !== "open") return Promise.reject(new Error(`cannot commit a ${this.#phase} writer: ${this.#key}`));
    this.#phase = "committed";
    this.#finished = this.#commit().catch((err: unknown) => {
      // It can still be cancelled; a later writer resumes from what was stored.
      this.#phase = "closed";
      throw err;
    });
    return this.#finished;
  }

  cancel(): Promise<void> {
    if (this.#phase === "cancelled") return this.#finished;
    if (this.#phase === "committed") return Promise.reject(new Error(`writer already committed: ${this.#key}`));
    const previous = this.#finished;
    this.#phase = "cancelled";
    this.#finished = (async () => {
      await previous.catch(() => undefined);
      await this.#writing.catch(() => undefined);
      await this.#chain.catch(() => undefined);
      this.#buffer = Buffer.alloc(0);
      this.#fill = 0;
      const uploads = [...this.#stale, ...(this.#uploadId === undefined ? [] : [this.#uploadId])];
      await Promise.all([
        ...uploads.map((id) => this.#b.abortUpload(this.#key, id)),
        this.#b.deleteKey(this.#key + PENDING_SUFFIX),
        this.#b.deleteKey(this.#key),
      ]);
      this.#uploadId = undefined;
    })();
    return this.#finished;
  }

  /**
   * Copies a chunk into the part being filled, cutting parts as they fill. Once a part is cut while
   * the previous one is still uploading, it waits for that upload: at most two parts exist, one
   * uploading and one filling (or waiting to upload).
   */
  async #absorb(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.byteLength && this.#phase !== "cancelled") {
      const take = Math.min(chunk.byteLength - offset, this.#chunkSize - this.#fill);
      this.#reserve(this.#fill + take);
      this.#buffer.set(chunk.subarray(offset, offset + take), this.#fill);
      this.#fill += take;
      offset += take;
      if (this.#fill === this.#chunkSize) {
        this.#queuePart(this.#takeBuffer());
        if (this.#queued.length >= 2) await this.#queued[this.#queued.length - 2];
      }
    }
  }

  #reserve(needed: number): void {
    if (this.#buffer.length >= needed) return;
    const capacity =
      this.#cutParts > 0 ? this.#chunkSize : Math.min(this.#chunkSize, Math.max(needed, 64 * KiB, this.#buffer.length * 2));
    const grown = (capacity === this.#chunkSize ? this.#free.pop() : undefined) ?? Buffer.allocUnsafe(capacity);
    this.#buffer.copy(grown, 0, 0, this.#fill);
    this.#buffer = grown;
  }

  #takeBuffer(): Buffer {
    const bytes = this.#buffer.subarray(0, this.#fill);
    this.#buffer = Buffer.alloc(0);
    this.#fill = 0;
    return bytes;
  }

  /**
   * Uploads `bytes` after the parts queued before it. A full-size buffer goes back to the free list
   * once its part is stored: the SDK keeps a reference to a request's body for a while after the
   * request, so allocating a fresh buffer per part would keep one more part alive than the two that
   * backpressure allows.
   */
  #queuePart(bytes: Buffer): void {
    this.#cutParts++;
    const link = this.#chain.then(async () => {
      await this.#uploadPart(bytes);
      if (bytes.buffer.byteLength >= this.#chunkSize && bytes.byteOffset === 0 && this.#free.length < 2) {
        this.#free.push(Buffer.from(bytes.buffer, 0, this.#chunkSize));
      }
    });
    // Recorded here so that a failure no one awaits is not an unhandled rejection.
    link.catch((err: unknown) => {
      this.#error ??= err;
    });
    this.#chain = link;
    this.#queued.push(link);
    const forget = (): void => {
      this.#queued.splice(this.#queued.indexOf(link), 1);
    };
    link.then(forget, forget);
  }

  async #ensureUpload(): Promise<string> {
    if (this.#uploadId === undefined) this.#uploadId = await this.#b.createUpload(this.#key);
    if (this.#base !== undefined && !this.#base.copied) {
      // Continuing a committed object of 5 MiB or more: its bytes become the first parts, server-side.
      const copied = await this.#b.copyParts(this.#key, this.#base.size, this.#key, this.#uploadId, this.#parts.length + 1);
      this.#parts.push(...copied);
      this.#partBytes += this.#base.size;
      this.#base.copied = true;
    }
    return this.#uploadId;
  }

  async #uploadPart(bytes: Buffer): Promise<void> {
    const uploadId = await this.#ensureUpload();
    const part = await this.#b.uploadPart(this.#key, uploadId, this.#parts.length + 1, bytes);
    this.#parts.push(part);
    this.#partBytes += part.size;
  }

  /** close(): everything written becomes parts, except a tail under 5 MiB, which goes to the side object. */
  async #persist(): Promise<void> {
    await this.#writing;
    if (!this.#dirty) {
      await this.#chain;
      return;
    }
    if (this.#fill >= MIN_PART_SIZE) this.#queuePart(this.#takeBuffer());
    await this.#chain;
    const tail = this.#takeBuffer();
    // A committed object being continued must be in the upload before a tail can follow it.
    if (this.#base !== undefined && !this.#base.copied) await this.#ensureUpload();
    // Without an upload, even an empty tail is stored: it stands for the content in place of any
    // committed object (which a writer without `append` discards).
    if (tail.length > 0 || this.#uploadId === undefined) {
      const tags = { [META_UPLOAD_ID]: this.#uploadId ?? NO_UPLOAD, [META_PARTS]: String(this.#parts.length) };
      await this.#b.putObject(this.#key + PENDING_SUFFIX, tail, tags);
      this.#pendingStored = true;
    } else if (this.#pendingStored) {
      await this.#b.deleteKey(this.#key + PENDING_SUFFIX);
      this.#pendingStored = false;
    }
  }

  async #commit(): Promise<void> {
    if (!this.#dirty && this.#base !== undefined && this.#uploadId === undefined && !this.#pendingStored) {
      return; // a committed object reopened and left as it was
    }
    await this.#writing;
    await this.#chain;
    const tail = this.#takeBuffer();
    if (this.#parts.length === 0 && (this.#base === undefined || this.#base.copied)) {
      await this.#b.putObject(this.#key, tail);
      await this.#b.verifySize(this.#key, this.#size);
      if (this.#uploadId !== undefined) this.#stale.push(this.#uploadId);
      this.#uploadId = undefined;
    } else {
      if (tail.length > 0) this.#queuePart(tail);
      else await this.#ensureUpload();
      await this.#chain;
      await this.#b.completeUpload(this.#key, this.#uploadId!, this.#parts, this.#size);
      this.#uploadId = undefined;
    }
    await Promise.all([
      ...this.#stale.map((id) => this.#b.abortUpload(this.#key, id)),
      this.#pendingStored ? this.#b.deleteKey(this.#key + PENDING_SUFFIX) : undefined,
    ]);
    this.#stale = [];
    this.#pendingStored = false;
  }
}

// --- walk ---------------------------------------------------------------------------------------------

type Visit = (info: FileInfo) => Promise<void | "skip"> | void | "skip";

interface PageCursor {
  contents: _Object[];
  index: number;
  truncated: boolean;
}

/**
 * Turns a flat listing (S3 key order) into a depth-first walk with children in lexical order.
 *
 * The two orders differ in one way only: "/" sorts after "-" and "." in keys, so S3 lists "a-b" and
 * "a.txt" before "a/…", while the walk must visit directory "a" (and everything under it) before its
 * siblings "a-b" and "a.txt". So when a name holds "-" or "." at position p, the walker checks
 * whether a directory named by the first p characters exists; if so it walks that directory first
 * and then ignores its keys when the main listing reaches them (skipping past them with StartAfter
 * when they fill whole pages). The page at hand answers both when it holds the directory's keys;
 * otherwise a one-key listing tells whether it exists, and a listing of its own walks it.
 * Directories the visitor skips are passed over the same way.
 */
class Walker {
  readonly #b: Bucket;
  readonly #visit: Visit;
  /** Directory prefixes ("…/") whose keys are done with: walked ahead of order, or skipped. */
  readonly #done = new Set<string>();
  /** Names (keys) already looked up as directories that could come ahead of S3's order. */
  readonly #checked = new Set<string>();
  #depth = 0;
  #pruneAt = 256;

  constructor(bucket: Bucket, visit: Visit) {
    this.#b = bucket;
    this.#visit = visit;
  }

  /**
   * Walks everything under `prefix` (which the caller has visited); false when nothing is there.
   * `known` is every key under the prefix when the caller has them at hand, saving the listing.
   */
  async walkDir(prefix: string, known?: _Object[]): Promise<boolean> {
    this.#depth++;
    try {
      return await this.#walkDir(prefix, known);
    } finally {
      this.#depth--;
    }
  }

  async #walkDir(prefix: string, known: _Object[] | undefined): Promise<boolean> {
    const open: string[] = [];
    let any = false;
    let token: string | undefined;
    let startAfter: string | undefined;
    for (;;) {
      const page =
        known !== undefined
          ? { Contents: known, IsTruncated: false, NextContinuationToken: undefined }
          : await this.#b.listPage({ Prefix: prefix, ContinuationToken: token, StartAfter: startAfter });
      const cursor: PageCursor = { contents: page.Contents ?? [], index: 0, truncated: page.IsTruncated ?? false };
      if (cursor.contents.length > 0) any = true;
      for (; cursor.index < cursor.contents.length; cursor.index++) {
        const object = cursor.contents[cursor.index]!;
        const key = object.Key!;
        if (this.#depth === 1 && this.#checked.size + this.#done.size > this.#pruneAt) this.#prune(key);
        if (this.#doneDirOf(key) !== undefined) continue;
        const segments = key.slice(prefix.length).split("/");
        if (!segments.every(isValidSegment)) continue;
        await this.#visitKey(prefix, segments, object, open, cursor);
      }
      if (!cursor.truncated) break;
      const last = cursor.contents.at(-1)?.Key;
      const doneDir = last === undefined ? undefined : this.#doneDirOf(last);
      if (doneDir !== undefined && `${doneDir}\u007f` > last!) {
        // The page ended inside a directory already walked or skipped: jump past it.
        startAfter = `${doneDir}\u007f`;
        token = undefined;
      } else if (page.NextContinuationToken !== undefined) {
        token = page.NextContinuationToken;
        startAfter = undefined;
      } else {
        startAfter = last;
        token = undefined;
      }
    }
    return any;
  }

  async #visitKey(prefix: string, segments: string[], object: _Object, open: string[], cursor: PageCursor): Promise<void> {
    const modTime = object.LastModified ?? new Date(0);
    for (let depth = 0; depth < segments.length; depth++) {
      const name = segments[depth]!;
      const parent = segments.slice(0, depth);
      for (let p = 1; p < name.length; p++) {
        if (name[p] !== "-" && name[p] !== ".") continue;
        const dirKey = prefix + [...parent, name.slice(0, p)].join("/");
        if (this.#checked.has(dirKey)) continue;
        this.#checked.add(dirKey);
        const block = blockInPage(`${dirKey}/`, cursor);
        const exists = block !== undefined ? block.length > 0 : await this.#dirExists(`${dirKey}/`);
        if (!exists) continue;
        if (!(await this.#openDirs(prefix, parent, open, modTime))) return;
        const decision = await this.#visit({ path: this.#b.pathOf(dirKey), size: 0, modTime, isDir: true });
        if (decision !== "skip") await this.walkDir(`${dirKey}/`, block);
        this.#done.add(`${dirKey}/`);
      }
    }
    if (!(await this.#openDirs(prefix, segments.slice(0, -1), open, modTime))) return;
    await this.#visit({ path: this.#b.pathOf(object.Key!), size: object.Size ?? 0, modTime, isDir: false });
  }

  /**
   * Visits the directories of `target` not visited yet (the walk is depth-first, so `open` is the
   * chain of directories being walked). False when the visitor skips one of them.
   */
  async #openDirs(prefix: string, target: string[], open: string[], modTime: Date): Promise<boolean> {
    let common = 0;
    while (common < open.length && common < target.length && open[common] === target[common]) common++;
    open.length = common;
    for (let depth = common; depth < target.length; depth++) {
      open.push(target[depth]!);
      const dirKey = prefix + target.slice(0, depth + 1).join("/");
      const decision = await this.#visit({ path: this.#b.pathOf(dirKey), size: 0, modTime, isDir: true });
      if (decision === "skip") {
        this.#done.add(`${dirKey}/`);
        return false;
      }
    }
    return true;
  }

  /**
   * Forgets what the outermost listing has passed for good: a name's "-"/"." siblings and its
   * directory all sort before `<name>/\u007f`, so once the listing is beyond that, none comes back.
   * Keeps the walk's memory bounded however many keys it visits.
   */
  #prune(current: string): void {
    for (const name of this.#checked) if (`${name}/\u007f` < current) this.#checked.delete(name);
    for (const dir of this.#done) if (`${dir}\u007f` < current) this.#done.delete(dir);
    this.#pruneAt = Math.max(256, 2 * (this.#checked.size + this.#done.size));
  }

  async #dirExists(dirPrefix: string): Promise<boolean> {
    const probe = await this.#b.listPage({ Prefix: dirPrefix, MaxKeys: 1 });
    return (probe.Contents ?? []).length > 0;
  }

  #doneDirOf(key: string): string | undefined {
    if (this.#done.size === 0) return undefined;
    for (let slash = key.indexOf("/"); slash !== -1; slash = key.indexOf("/", slash + 1)) {
      const dir = key.slice(0, slash + 1);
      if (this.#done.has(dir)) return dir;
    }
    return undefined;
  }
}

/**
 * The keys under `dirPrefix` that follow the cursor in its page, when the page holds all of them
 * (it reaches past them, or is the last page); undefined when the page ends first.
 */
function blockInPage(dirPrefix: string, cursor: PageCursor): _Object[] | undefined {
  const { contents } = cursor;
  let i = cursor.index + 1;
  while (i < contents.length && contents[i]!.Key! < dirPrefix) i++;
  const start = i;
  while (i < contents.length && contents[i]!.Key!.startsWith(dirPrefix)) i++;
  return i < contents.length || !cursor.truncated ? contents.slice(start, i) : undefined;
}

// --- helpers --------------------------------------------------------------------------------------------

function resolveOptions(options: S3DriverOptions, tuning: S3DriverTuning): S3ResolvedOptions {
  if (typeof options.bucket !== "string" || options.bucket === "") throw new Error("s3: bucket is required");
  const chunkSize = options.chunksize ?? 10 * MiB;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < MIN_PART_SIZE || chunkSize > MAX_PART_SIZE) {
    throw new Error(`s3: chunksize must be between ${MIN_PART_SIZE} and ${MAX_PART_SIZE} bytes, got ${chunkSize}`);
  }
  const copyChunkSize = options.multipartcopychunksize ?? 32 * MiB;
  if (!Number.isSafeInteger(copyChunkSize) || copyChunkSize < MIN_PART_SIZE || copyChunkSize > MAX_PART_SIZE) {
    throw new Error(`s3: multipartcopychunksize must be between ${MIN_PART_SIZE} and ${MAX_PART_SIZE} bytes, got ${copyChunkSize}`);
  }
  const copyConcurrency = options.multipartcopymaxconcurrency ?? 100;
  if (!Number.isSafeInteger(copyConcurrency) || copyConcurrency < 1) {
    throw new Error(`s3: multipartcopymaxconcurrency must be a positive integer, got ${copyConcurrency}`);
  }
  const copyThreshold = options.multipartcopythresholdsize ?? 32 * MiB;
  if (!Number.isSafeInteger(copyThreshold) || copyThreshold < 0 || copyThreshold > MAX_PART_SIZE) {
    throw new Error(`s3: multipartcopythresholdsize must be between 0 and ${MAX_PART_SIZE} bytes, got ${copyThreshold}`);
  }
  const listPageSize = tuning.listPageSize ?? 1000;
  if (!Number.isSafeInteger(listPageSize) || listPageSize < 1 || listPageSize > 1000) {
    throw new Error(`s3: listPageSize must be between 1 and 1000, got ${listPageSize}`);
  }
  const storageClass = options.storageclass ?? "STANDARD";
  const encrypt = options.encrypt ?? false;
  return {
    bucket: options.bucket,
    root: (options.rootdirectory ?? "").replace(/^\/+|\/+$/g, ""),
    chunkSize,
    copyChunkSize,
    copyConcurrency,
    copyThreshold,
    storageClass: storageClass === "NONE" ? undefined : (storageClass as StorageClass),
    acl: options.objectacl === undefined || options.objectacl === "" ? undefined : (options.objectacl as ObjectCannedACL),
    sse: encrypt ? (options.keyid ? "aws:kms" : "AES256") : undefined,
    kmsKeyId: encrypt && options.keyid ? options.keyid : undefined,
    listPageSize,
  };
}

function endpointOf(options: S3DriverOptions): string | undefined {
  const secure = options.secure ?? true;
  const endpoint = options.regionendpoint;
  if (endpoint !== undefined && endpoint !== "") {
    return /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `${secure ? "https" : "http"}://${endpoint}`;
  }
  if (!secure && options.region) return `http://s3.${options.region}.amazonaws.com`;
  return undefined;
}

/**
 * Splits `size` bytes into [start, end) ranges of at least `chunk` bytes (the last one excepted
 * when `size` is smaller) and at most 5 GiB, in at most 10 000 ranges, of nearly equal sizes.
 */
export function splitRanges(size: number, chunk: number): Array<[number, number]> {
  let count = Math.max(1, Math.floor(size / chunk), Math.ceil(size / MAX_PART_SIZE));
  count = Math.min(count, MAX_PARTS);
  if (Math.ceil(size / count) > MAX_PART_SIZE) throw new Error(`s3: ${size} bytes do not fit in ${MAX_PARTS} parts`);
  const ranges: Array<[number, number]> = [];
  const base = Math.floor(size / count);
  let extra = size - base * count;
  let start = 0;
  for (let i = 0; i < count; i++) {
    const length = base + (extra > 0 ? 1 : 0);
    if (extra > 0) extra--;
    ranges.push([start, start + length]);
    start += length;
  }
  return ranges;
}

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

function isValidSegment(segment: string): boolean {
  return VALID_SEGMENT.test(segment) && segment !== "." && segment !== "..";
}

function emptyStream(): Readable {
  return Readable.from([], { objectMode: false });
}

function assertOffset(offset: number, end: number | undefined): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid offset ${offset}`);
  if (end !== undefined && (!Number.isSafeInteger(end) || end < 0)) throw new RangeError(`invalid end ${end}`);
}

interface SdkError {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function isNotFound(err: unknown): boolean {
  const e = err as SdkError | undefined;
  if (e?.name === "NoSuchBucket" || e?.Code === "NoSuchBucket") return false;
  return e?.name === "NoSuchKey" || e?.name === "NotFound" || e?.$metadata?.httpStatusCode === 404;
}

/** AWS answers NoSuchUpload for an upload that is gone; Ceph 16 answers NoSuchKey to ListParts. */
function isNoSuchUpload(err: unknown): boolean {
  const e = err as SdkError | undefined;
  return e?.name === "NoSuchUpload" || e?.name === "NoSuchKey" || e?.$metadata?.httpStatusCode === 404;
}

function isInvalidRange(err: unknown): boolean {
  const e = err as SdkError | undefined;
  return e?.name === "InvalidRange" || e?.$metadata?.httpStatusCode === 416;
}
