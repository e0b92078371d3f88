// storage.s3, with distribution's defaults and limits.
import { S3_LOG_LEVELS, type S3LogLevel } from "../driver/s3/s3-request-log.js";
import type { S3Storage } from "./config.js";
import { child, fail, readBool, readOptionalString, readPositiveInt } from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

const MiB = 1024 * 1024;
const S3_MIN_PART = 5 * MiB;
const S3_MAX_PART = 5 * 1024 * MiB;

/** storage.s3, with distribution's defaults and limits. */
export function buildS3(s3: RawMap | undefined, node: Raw | undefined, warnings: string[]): S3Storage {
  const at = "storage.s3";
  const str = (key: string): string | undefined => readOptionalString(child(s3, key), `${at}.${key}`);
  const bool = (key: string, fallback: boolean): boolean => readBool(child(s3, key), `${at}.${key}`) ?? fallback;
  const size = (key: string, fallback: number, min: number, max: number): number => {
    const value = readPositiveInt(child(s3, key), `${at}.${key}`) ?? fallback;
    if (value < min || value > max) throw fail(`${at}.${key}`, child(s3, key), `must be between ${min} and ${max} bytes, got ${value}`);
    return value;
  };
  const bucket = str("bucket");
  if (bucket === undefined) throw fail(`${at}.bucket`, child(s3, "bucket") ?? node, "required");
  const region = str("region");
  if (region === undefined) throw fail(`${at}.region`, child(s3, "region") ?? node, "required (any region name for an S3-compatible server)");
  const regionEndpoint = str("regionendpoint");
  if (regionEndpoint !== undefined && !/^(https?:\/\/)?[^\s/]+(\/[^\s]*)?$/.test(regionEndpoint)) {
    throw fail(`${at}.regionendpoint`, child(s3, "regionendpoint"), `expected a URL or host:port, got ${JSON.stringify(regionEndpoint)}`);
  }
  const accessKey = str("accesskey");
  const secretKey = str("secretkey");
  if ((accessKey === undefined) !== (secretKey === undefined)) {
    const missing = accessKey === undefined ? "accesskey" : "secretkey";
    throw fail(`${at}.${missing}`, node, "accesskey and secretkey go together (leave both out to use the AWS credential chain)");
  }
  const dualStack = bool("usedualstack", false);
  const accelerate = bool("accelerate", false);
  // The AWS SDK for Go ignores both for a custom endpoint; berth says so.
  if (regionEndpoint !== undefined) {
    for (const [key, on] of [["usedualstack", dualStack], ["accelerate", accelerate]] as const) {
      if (on) warnings.push(`${at}.${key}: ignored with ${at}.regionendpoint (it chooses one of AWS's own endpoints)`);
    }
  }
  if (accelerate && regionEndpoint === undefined && (!/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket))) {
    throw fail(`${at}.accelerate`, child(s3, "accelerate"), `bucket ${JSON.stringify(bucket)} cannot use S3 Transfer Acceleration: its name must be a host name label without dots`);
  }
  const logLevel = (str("loglevel") ?? "off").toLowerCase();
  if (!(S3_LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw fail(`${at}.loglevel`, child(s3, "loglevel"), `expected one of ${S3_LOG_LEVELS.join(", ")}, got ${JSON.stringify(logLevel)}`);
  }
  if (readBool(child(s3, "v4auth"), `${at}.v4auth`) === false) warnings.push(`${at}.v4auth: false is ignored; berth always signs requests with AWS Signature Version 4`);
  return {
    kind: "s3",
    bucket,
    region,
    regionEndpoint,
    accessKey,
    secretKey,
    sessionToken: str("sessiontoken"),
    rootDirectory: str("rootdirectory") ?? "",
    forcePathStyle: bool("forcepathstyle", false),
    encrypt: bool("encrypt", false),
    keyId: str("keyid"),
    secure: bool("secure", true),
    skipVerify: bool("skipverify", false),
    chunkSize: size("chunksize", 10 * MiB, S3_MIN_PART, S3_MAX_PART),
    multipartCopyChunkSize: size("multipartcopychunksize", 32 * MiB, S3_MIN_PART, S3_MAX_PART),
    multipartCopyMaxConcurrency: size("multipartcopymaxconcurrency", 100, 1, 10_000),
    multipartCopyThresholdSize: size("multipartcopythresholdsize", 32 * MiB, 1, S3_MAX_PART),
    storageClass: str("storageclass") ?? "STANDARD",
    objectAcl: str("objectacl"),
    userAgent: str("useragent"),
    useDualStack: dualStack,
    accelerate,
    logLevel: logLevel as S3LogLevel,
  };
}
