/**
 * AWS Signature Version 4 for S3, with node:crypto: the Authorization header of a request, and
 * presigned URLs (the signature in the query). Payloads are never hashed here: the caller gives the
 * payload hash it vouches for (UNSIGNED-PAYLOAD for object bodies, which S3 accepts).
 *
 * The derived signing key depends only on the secret, the day, the region and the service, so it
 * is computed once a day (four HMACs) rather than for every request.
 */
import { createHash, createHmac } from "node:crypto";

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** What is signed of a request. `path` is already URI-encoded (see encodeKeyPath); header names are lower case. */
export interface SignableRequest {
  method: string;
  path: string;
  /** Query parameters, not encoded; a subresource such as `?uploads` has the value "". */
  query: ReadonlyArray<readonly [string, string]>;
  /** Every header sent except those in UNSIGNED_HEADERS; must include `host`. */
  headers: Record<string, string>;
}

export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
/** SHA-256 of zero bytes: the payload hash of a request without a body. */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const ALGORITHM = "AWS4-HMAC-SHA256";
/** Headers a proxy may change or add (the SDK leaves the same ones out). */
const UNSIGNED_HEADERS = new Set(["authorization", "connection", "expect", "keep-alive", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "user-agent"]);

/** RFC 3986 encoding as SigV4 wants it: everything but A–Z a–z 0–9 - _ . ~ as %XX (encodeURIComponent spares !'()*). */
export function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** An object key as a URL path: each segment encoded, slashes kept (S3 keys are not normalised). */
export function encodeKeyPath(key: string): string {
  return key.split("/").map(uriEncode).join("/");
}

/** The query string, sorted by name then value, encoded: the same string is signed and sent. */
export function canonicalQuery(query: ReadonlyArray<readonly [string, string]>): string {
  if (query.length === 0) return "";
  return query
    .map(([name, value]) => [uriEncode(name), uriEncode(value)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join("&");
}

/** "20130524T000000Z" */
export function amzDate(now: Date): string {
  return now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

const sha256Hex = (data: string): string => createHash("sha256").update(data, "utf8").digest("hex");
const hmac = (key: Buffer | string, data: string): Buffer => createHmac("sha256", key).update(data, "utf8").digest();

export class SigV4Signer {
  #cached: { secret: string; day: string; key: Buffer } | undefined;

  constructor(
    readonly region: string,
    readonly service = "s3",
  ) {}

  /**
   * Adds `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (with temporary
   * credentials) and `authorization` to the request's headers. Returns the canonical request
   * (storage.s3.loglevel: debugwithsigning logs it).
   */
  sign(request: SignableRequest, credentials: Credentials, payloadHash: string, now: Date): string {
    const date = amzDate(now);
    const headers = request.headers;
    headers["x-amz-date"] = date;
    headers["x-amz-content-sha256"] = payloadHash;
    if (credentials.sessionToken) headers["x-amz-security-token"] = credentials.sessionToken;
    const names = Object.keys(headers)
      .filter((name) => !UNSIGNED_HEADERS.has(name))
      .sort();
    const signedHeaders = names.join(";");
    let canonicalHeaders = "";
    for (const name of names) canonicalHeaders += `${name}:${headers[name]!.trim().replace(/\s+/g, " ")}\n`;
    const canonical = `${request.method}\n${request.path}\n${canonicalQuery(request.query)}\n${canonicalHeaders}\n${signedHeaders}\n${payloadHash}`;
    const scope = this.#scope(date);
    const signature = this.#signature(credentials.secretAccessKey, date, scope, canonical);
    headers.authorization = `${ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    return canonical;
  }

  /**
   * The query string of a presigned URL for a request without a body: the request's own query
   * plus the X-Amz-* parameters and the signature. Only `host` is signed, so any client can use it.
   */
  presignQuery(request: Omit<SignableRequest, "headers"> & { host: string }, credentials: Credentials, expiresInSeconds: number, now: Date): string {
    const date = amzDate(now);
    const scope = this.#scope(date);
    const query: Array<readonly [string, string]> = [
      ...request.query,
      ["X-Amz-Algorithm", ALGORITHM],
      ["X-Amz-Credential", `${credentials.accessKeyId}/${scope}`],
      ["X-Amz-Date", date],
      ["X-Amz-Expires", String(expiresInSeconds)],
      ["X-Amz-SignedHeaders", "host"],
    ];
    if (credentials.sessionToken) query.push(["X-Amz-Security-Token", credentials.sessionToken]);
    const queryString = canonicalQuery(query);
    const canonical = `${request.method}\n${request.path}\n${queryString}\nhost:${request.host}\n\nhost\n${UNSIGNED_PAYLOAD}`;
    return `${queryString}&X-Amz-Signature=${this.#signature(credentials.secretAccessKey, date, scope, canonical)}`;
  }

  #scope(date: string): string {
    return `${date.slice(0, 8)}/${this.region}/${this.service}/aws4_request`;
  }

  #signature(secret: string, date: string, scope: string, canonicalRequest: string): string {
    const stringToSign = `${ALGORITHM}\n${date}\n${scope}\n${sha256Hex(canonicalRequest)}`;
    return createHmac("sha256", this.#signingKey(secret, date.slice(0, 8))).update(stringToSign, "utf8").digest("hex");
  }

  #signingKey(secret: string, day: string): Buffer {
    const cached = this.#cached;
    if (cached !== undefined && cached.day === day && cached.secret === secret) return cached.key;
    const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, day), this.region), this.service), "aws4_request");
    this.#cached = { secret, day, key };
    return key;
  }
}
