/** The S3 driver's configuration: the options as configured, their checked form, and the transport they make. */
import { isIP } from "node:net";
import { berthVersion } from "../../berth-version.js";
import { credentialSource } from "./s3-credentials.js";
import { MAX_PART_SIZE, MiB, MIN_PART_SIZE } from "./s3-limits.js";
import type { S3RequestLog } from "./s3-request-log.js";
import { S3Transport, type S3Endpoint } from "./s3-transport.js";

/**
 * The S3 driver's configuration, with the keys (and defaults) of distribution's `storage.s3`.
 * Sizes are in bytes.
 */
export interface S3DriverOptions {
  /** Access key id; when absent, credentials come from the AWS SDK's default chain (environment, profile, SSO, instance role…). */
  accesskey?: string;
  secretkey?: string;
  sessiontoken?: string;
  /** AWS region (or any region name a compatible server accepts); when absent, AWS_REGION or AWS_DEFAULT_REGION. */
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
  /** Appended to the User-Agent header of every request (after `berth/<version>`), as distribution appends it to the SDK's. */
  useragent?: string;
  /** AWS's dual-stack (IPv4 and IPv6) endpoint, `s3.dualstack.<region>.amazonaws.com`. Not with `regionendpoint`. Default false. */
  usedualstack?: boolean;
  /** S3 Transfer Acceleration: `<bucket>.s3-accelerate.amazonaws.com`. Not with `regionendpoint`. Default false. */
  accelerate?: boolean;
}

/** Knobs for tests and benchmarks, not configuration. */
export interface S3DriverTuning {
  /** MaxKeys of listings (S3's maximum and default: 1000). Small values exercise pagination. */
  listPageSize?: number;
  /** Inactivity on an S3 connection after which the request fails (and is retried). Default SOCKET_TIMEOUT_MS. */
  socketTimeoutMs?: number;
  /** storage.s3.loglevel, made into a log by the composition root (it has the logger). */
  requestLog?: S3RequestLog;
  /** The least age of a multipart upload removeTemporaries aborts. Default LEFTOVER_UPLOAD_MIN_AGE_MS. */
  leftoverUploadMinAgeMs?: number;
}

/**
 * removeTemporaries never aborts a multipart upload started less than this long ago, whatever it
 * is asked: in a bucket shared with other programs an upload with nothing beside it may be one
 * of theirs in progress.
 */
export const LEFTOVER_UPLOAD_MIN_AGE_MS = 24 * 60 * 60 * 1000;

/**
 * How long an S3 connection may be silent (no byte either way) before the request fails and is
 * retried. The SDK has no limit by default, so an object store that accepts a connection and never
 * answers held the registry's request, and its client, for good. A minute is far longer than any
 * healthy request stays silent: AWS and radosgw send whitespace while a long CompleteMultipartUpload
 * or copy runs, and bodies flow continuously.
 */
export const SOCKET_TIMEOUT_MS = 60_000;
/** How long connecting to S3 may take. */
const CONNECT_TIMEOUT_MS = 10_000;

/** S3DriverOptions with defaults applied and sizes checked. */
export interface S3ResolvedOptions {
  bucket: string;
  /** Key prefix: `rootdirectory` without leading or trailing slashes ("" for none). */
  root: string;
  chunkSize: number;
  copyChunkSize: number;
  copyConcurrency: number;
  copyThreshold: number;
  storageClass: string | undefined;
  acl: string | undefined;
  sse: "AES256" | "aws:kms" | undefined;
  kmsKeyId: string | undefined;
  listPageSize: number;
  socketTimeoutMs: number;
  leftoverUploadMinAgeMs: number;
}

export function resolveOptions(options: S3DriverOptions, tuning: S3DriverTuning): S3ResolvedOptions {
  if (typeof options.bucket !== "string" || options.bucket === "") throw new Error("s3: bucket is required");
  const partSize = `between ${MIN_PART_SIZE} and ${MAX_PART_SIZE} bytes`;
  const storageClass = options.storageclass ?? "STANDARD";
  const encrypt = options.encrypt ?? false;
  return {
    bucket: options.bucket,
    root: (options.rootdirectory ?? "").replace(/^\/+|\/+$/g, ""),
    chunkSize: integerOption("chunksize", options.chunksize ?? 10 * MiB, MIN_PART_SIZE, MAX_PART_SIZE, partSize),
    copyChunkSize: integerOption("multipartcopychunksize", options.multipartcopychunksize ?? 32 * MiB, MIN_PART_SIZE, MAX_PART_SIZE, partSize),
    copyConcurrency: integerOption("multipartcopymaxconcurrency", options.multipartcopymaxconcurrency ?? 100, 1, Infinity, "a positive integer"),
    copyThreshold: integerOption("multipartcopythresholdsize", options.multipartcopythresholdsize ?? 32 * MiB, 0, MAX_PART_SIZE, `between 0 and ${MAX_PART_SIZE} bytes`),
    storageClass: storageClass === "NONE" ? undefined : storageClass,
    acl: options.objectacl === undefined || options.objectacl === "" ? undefined : options.objectacl,
    sse: encrypt ? (options.keyid ? "aws:kms" : "AES256") : undefined,
    kmsKeyId: encrypt && options.keyid ? options.keyid : undefined,
    listPageSize: integerOption("listPageSize", tuning.listPageSize ?? 1000, 1, 1000, "between 1 and 1000"),
    socketTimeoutMs: integerOption("socketTimeoutMs", tuning.socketTimeoutMs ?? SOCKET_TIMEOUT_MS, 1, 2 ** 31 - 1, "a positive number of milliseconds"),
    leftoverUploadMinAgeMs: integerOption("leftoverUploadMinAgeMs", tuning.leftoverUploadMinAgeMs ?? LEFTOVER_UPLOAD_MIN_AGE_MS, 0, Infinity, "a number of milliseconds"),
  };
}

/** `value` when it is a safe integer from `min` to `max`; otherwise an error saying what it must be. */
function integerOption(name: string, value: number, min: number, max: number, mustBe: string): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new Error(`s3: ${name} must be ${mustBe}, got ${value}`);
  return value;
}

/** The transport to the options' endpoint with their credentials, with sockets enough for `multipartcopymaxconcurrency`. */
export function createTransport(options: S3DriverOptions, resolved: S3ResolvedOptions, requestLog?: S3RequestLog): S3Transport {
  return new S3Transport(endpointOf(options), credentialSource(options), {
    socketTimeoutMs: resolved.socketTimeoutMs,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    maxSockets: Math.max(50, resolved.copyConcurrency),
    rejectUnauthorized: !(options.skipverify ?? false),
    userAgent: userAgent(options.useragent),
    requestLog,
  });
}

/** `berth/<version>`, then the configured suffix, as the AWS SDK for Go appends it to its own. */
export function userAgent(suffix: string | undefined): string {
  const base = `berth/${berthVersion()}`;
  return suffix === undefined || suffix === "" ? base : `${base} ${suffix}`;
}

/**
 * Where requests go, as the AWS SDK decided it: `regionendpoint` (its scheme from `secure` when it
 * has none) or AWS's regional endpoint; the bucket in the host name (virtual-hosted style) unless
 * `forcepathstyle`, or the bucket cannot be a host name label (uppercase, underscores, dots under
 * TLS, where the certificate would not match), or the endpoint is an IP address.
 */
export function endpointOf(options: S3DriverOptions): S3Endpoint {
  const region = options.region || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
  if (!region) throw new Error("s3: region is required (any region name for an S3-compatible server)");
  const secure = options.secure ?? true;
  const configured = options.regionendpoint;
  let url: URL;
  if (configured !== undefined && configured !== "") {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(configured) ? configured : `${secure ? "https" : "http"}://${configured}`);
  } else {
    url = new URL(`${secure ? "https" : "http"}://${awsHost(region, options)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`s3: regionendpoint must be http or https, got ${url.protocol}`);
  const protocol = url.protocol;
  const basePath = url.pathname.replace(/\/+$/, "");
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  if (accelerated(options) && !isDnsBucket(options.bucket, true)) {
    throw new Error(`s3: bucket ${JSON.stringify(options.bucket)} cannot use accelerate: S3 Transfer Acceleration needs a bucket name that is a host name label without dots`);
  }
  const pathStyle = !accelerated(options) && ((options.forcepathstyle ?? false) || !isDnsBucket(options.bucket, protocol === "https:") || isIP(hostname) !== 0 || hostname === "localhost");
  const port = url.port === "" ? (protocol === "https:" ? 443 : 80) : Number(url.port);
  const host = pathStyle ? url.host : `${options.bucket}.${url.host}`;
  return {
    protocol,
    hostname: pathStyle ? hostname : `${options.bucket}.${hostname}`,
    port,
    host,
    bucketPath: pathStyle ? `${basePath}/${options.bucket}` : basePath,
    region,
  };
}

/**
 * AWS's host for the region, as the AWS SDK for Go (distribution's) chooses it: the dual-stack and
 * accelerate endpoints when asked for. Accelerate is global (no region in the name) and needs the
 * bucket in the host name, so it overrides forcepathstyle, as the SDK does. The China partition
 * has neither.
 */
function awsHost(region: string, options: S3DriverOptions): string {
  const suffix = region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  const dualStack = options.usedualstack ?? false;
  if (accelerated(options)) return dualStack ? `s3-accelerate.dualstack.${suffix}` : `s3-accelerate.${suffix}`;
  return dualStack ? `s3.dualstack.${region}.${suffix}` : `s3.${region}.${suffix}`;
}

/** Transfer Acceleration applies: asked for, on AWS's own endpoint. */
function accelerated(options: S3DriverOptions): boolean {
  return (options.accelerate ?? false) && (options.regionendpoint === undefined || options.regionendpoint === "");
}

/** A bucket name that can be the first label of a host name (and, under TLS, match a wildcard certificate). */
function isDnsBucket(bucket: string, tls: boolean): boolean {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes("..") || isIP(bucket) !== 0) return false;
  return !(tls && bucket.includes("."));
}
