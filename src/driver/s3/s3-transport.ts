/**
 * Sends S3 requests: addressing (path style or virtual-hosted), SigV4 signing, Node's keep-alive
 * HTTP(S) agent, timeouts, bounded retries, and S3's error answers as typed errors. It knows S3's
 * wire format, not its operations (bucket.ts builds those).
 *
 * Why not the AWS SDK: measured on berth's S3 benchmarks, the SDK v3 spent ~4 ms of CPU per request
 * in its middleware stack and hashed every payload for the signature, which made berth CPU-bound
 * on small requests and on pushes (docs/benchmarks.md). Here a request is one signature (the
 * signing key cached per day), one `http.request`, and bodies go out as they are
 * (UNSIGNED-PAYLOAD). A streamed GetObject is read by ObjectBodyClient, on connections of its own,
 * into buffers used again.
 */
import { createHash } from "node:crypto";
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import { ObjectBodyClient, UnframedAnswerError, type ObjectBody } from "./object-body-client.js";
import { DEFAULT_RETRY_POLICY, withRetries, type RetryPolicy } from "./retry-policy.js";
import type { CredentialSource } from "./s3-credentials.js";
import type { S3RequestLog } from "./s3-request-log.js";
import { asStorageFault, codeOfStatus, S3ResponseError, S3TimeoutError } from "./s3-errors.js";
import { parseError } from "./s3-xml.js";
import { canonicalQuery, EMPTY_SHA256, encodeKeyPath, SigV4Signer, UNSIGNED_PAYLOAD } from "./sigv4.js";

/** Where a bucket's requests go. */
export interface S3Endpoint {
  protocol: "http:" | "https:";
  hostname: string;
  port: number;
  /** The Host header: hostname, and the port unless it is the scheme's default. */
  host: string;
  /** The path of the bucket: "/bucket" in path style (after any path of the endpoint), "" when the bucket is in the host name. */
  bucketPath: string;
  region: string;
}

export type S3Method = "GET" | "HEAD" | "PUT" | "POST" | "DELETE";

export interface S3Request {
  /** S3's name of the operation (PutObject, ListObjectsV2…): for observers and error messages. */
  operation: string;
  method: S3Method;
  /** The object's key; none for a request on the bucket (listings, DeleteObjects). */
  key?: string;
  /** Query parameters, not encoded; a subresource (`?uploads`) has the value "". */
  query?: Array<[string, string]>;
  /** Further headers, names in lower case. */
  headers?: Record<string, string>;
  /** Always a buffer, so that a retry can send it again. */
  body?: Uint8Array;
  /**
   * The body is a small document berth built (XML) rather than object data: its SHA-256 is signed.
   * Object data is sent UNSIGNED-PAYLOAD (TLS protects it in transit; hashing it again after the
   * content digest cost 13% of a push's CPU).
   */
  signedBody?: boolean;
  /** CopyObject, UploadPartCopy and CompleteMultipartUpload may answer 200 with an <Error> body. */
  errorIn200?: boolean;
}

export interface S3Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface S3TransportOptions {
  /** Inactivity on a connection after which the attempt fails (and is retried). */
  socketTimeoutMs: number;
  connectTimeoutMs: number;
  maxSockets: number;
  /** Verify the server's TLS certificate (not with `skipverify`). */
  rejectUnauthorized: boolean;
  retry?: RetryPolicy;
  /** The User-Agent header of every request. */
  userAgent: string;
  /** storage.s3.loglevel: a line per attempt. */
  requestLog?: S3RequestLog;
}

/** What the request log needs of one attempt, gathered while it runs. */
interface AttemptTrace {
  attempt: number;
  started: number;
  canonical: string;
}

/** An answer whose body is not read yet: Node's, or ObjectBodyClient's for a streamed GetObject. */
export type S3Answer = IncomingMessage | ObjectBody;

/** Called once per request (not per attempt), before it is sent. */
export type RequestObserver = (request: Readonly<S3Request>) => void;

const SOCKET_BUFFER = 256 * 1024;
/** Connections kept open for streamed GetObjects, each with a 256 KiB read buffer. */
const MAX_IDLE_BODY_CONNECTIONS = 16;
/** An error answer's body is read up to this much: enough for any <Error> document. */
const MAX_ERROR_BODY = 64 * 1024;

export class S3Transport {
  readonly #endpoint: S3Endpoint;
  readonly #credentials: CredentialSource;
  readonly #signer: SigV4Signer;
  readonly #agent: HttpAgent;
  readonly #options: S3TransportOptions;
  readonly #retry: RetryPolicy;
  readonly #observers: RequestObserver[] = [];
  /** Reads streamed GetObjects. */
  readonly #bodies: ObjectBodyClient;
  /** False once the server answered a streamed GetObject without a Content-Length: Node's client reads them from then on. */
  #bodiesFramed = true;

  constructor(endpoint: S3Endpoint, credentials: CredentialSource, options: S3TransportOptions) {
    this.#endpoint = endpoint;
    this.#credentials = credentials;
    this.#signer = new SigV4Signer(endpoint.region);
    this.#options = options;
    this.#retry = options.retry ?? DEFAULT_RETRY_POLICY;
    // 256 KiB buffered per socket rather than Node's 16 KiB, so that the 64 KiB reads of a
    // GetObject body do not each fill the buffer and pause the socket. Its effect on the pull's
    // CPU was within the noise of the measurements (docs/benchmarks.md); it costs nothing.
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets, highWaterMark: SOCKET_BUFFER };
    this.#agent = endpoint.protocol === "https:" ? new HttpsAgent({ ...agentOptions, rejectUnauthorized: options.rejectUnauthorized }) : new HttpAgent(agentOptions);
    this.#bodies = new ObjectBodyClient(endpoint, {
      connectTimeoutMs: options.connectTimeoutMs,
      socketTimeoutMs: options.socketTimeoutMs,
      rejectUnauthorized: options.rejectUnauthorized,
      maxIdle: Math.min(options.maxSockets, MAX_IDLE_BODY_CONNECTIONS),
    });
  }

  /** Sees every request from now on (tests count them; tracing could name them). */
  observe(observer: RequestObserver): void {
    this.#observers.push(observer);
  }

  /** Closes idle connections; requests in flight finish. */
  destroy(): void {
    this.#agent.destroy();
    this.#bodies.destroy();
  }

  /**
   * Sends a request, retried as the policy says, and reads the whole answer. A failure answer is an
   * S3ResponseError; what is still failing after the retries (5xx, throttling, no answer) is the
   * StorageFaultError it means.
   */
  async send(request: S3Request): Promise<S3Response> {
    this.#notify(request);
    try {
      return await withRetries(this.#retry, async (n) => {
        const trace = this.#trace(n);
        const response = await this.#attempt(request, trace);
        let body: Buffer;
        try {
          body = await readBody(response, Infinity);
          if (request.errorIn200 && response.statusCode === 200) throwIfErrorDocument(request.operation, body);
        } catch (err) {
          if (trace) this.#record(request, trace, response.statusCode, err, undefined);
          throw err;
        }
        if (trace) this.#record(request, trace, response.statusCode, undefined, body);
        return { status: response.statusCode ?? 0, headers: response.headers, body };
      });
    } catch (err) {
      throw asStorageFault(err);
    }
  }

  /**
   * Sends a request (a GetObject) and returns its successful answer as soon as its head has
   * arrived: the body is not read here and never replayed. Its socket's inactivity timeout stays
   * on while the body flows, so a body that stops arriving fails.
   */
  async stream(request: S3Request): Promise<S3Answer> {
    this.#notify(request);
    try {
      return await withRetries(this.#retry, async (n) => {
        const trace = this.#trace(n);
        const response = await this.#attempt(request, trace, request.method === "GET" && request.body === undefined);
        if (trace) this.#record(request, trace, response.statusCode, undefined, undefined);
        return response;
      });
    } catch (err) {
      throw asStorageFault(err);
    }
  }

  /** A URL any client can use for `expiresInSeconds` to GET or HEAD the key, without credentials. */
  async presign(method: "GET" | "HEAD", key: string, expiresInSeconds: number): Promise<string> {
    const e = this.#endpoint;
    const path = this.#path(key);
    const query = this.#signer.presignQuery({ method, path, query: [], host: e.host }, await this.#credentials(), expiresInSeconds, new Date());
    return `${e.protocol}//${e.host}${path}?${query}`;
  }

  #trace(attempt: number): AttemptTrace | undefined {
    return this.#options.requestLog === undefined ? undefined : { attempt, started: performance.now(), canonical: "" };
  }

  #record(request: S3Request, trace: AttemptTrace, status: number | undefined, error: unknown, responseBody: Buffer | undefined): void {
    this.#options.requestLog!.record({ request, attempt: trace.attempt, status, error, ms: performance.now() - trace.started, canonicalRequest: trace.canonical, responseBody });
  }

  #notify(request: S3Request): void {
    for (const observer of this.#observers) observer(request);
  }

  #path(key: string | undefined): string {
    if (key === undefined) return this.#endpoint.bucketPath === "" ? "/" : this.#endpoint.bucketPath;
    return `${this.#endpoint.bucketPath}/${encodeKeyPath(key)}`;
  }

  /**
   * One attempt: resolves with a 2xx answer whose body is unread, rejects with the failure (logged
   * when `trace`). `streamed`: the answer's body is for a reader, and read by ObjectBodyClient.
   */
  async #attempt(request: S3Request, trace: AttemptTrace | undefined, streamed = false): Promise<S3Answer> {
    const e = this.#endpoint;
    const path = this.#path(request.key);
    const query = request.query ?? [];
    const headers: Record<string, string> = { host: e.host, ...request.headers };
    const body = request.body;
    if (body !== undefined || request.method === "PUT" || request.method === "POST") headers["content-length"] = String(body?.byteLength ?? 0);
    let payloadHash = EMPTY_SHA256;
    if (body !== undefined && body.byteLength > 0) payloadHash = request.signedBody ? createHash("sha256").update(body).digest("hex") : UNSIGNED_PAYLOAD;
    const canonical = this.#signer.sign({ method: request.method, path, query, headers }, await this.#credentials(), payloadHash, new Date());
    // Not signed (sigv4.ts): proxies may rewrite it.
    headers["user-agent"] = this.#options.userAgent;
    const queryString = canonicalQuery(query);
    const target = queryString === "" ? path : `${path}?${queryString}`;
    let response: S3Answer;
    try {
      response = streamed && this.#bodiesFramed ? await this.#streamedExchange(target, headers) : await this.#exchange(request.method, target, headers, body);
    } catch (err) {
      if (trace) this.#record(request, { ...trace, canonical }, undefined, err, undefined);
      throw err;
    }
    if (trace) trace.canonical = canonical;
    const status = response.statusCode ?? 0;
    if (status >= 200 && status < 300) return response;
    const errorBody = await readBody(response, MAX_ERROR_BODY).catch(() => Buffer.alloc(0));
    const error = parseError(errorBody.toString("utf8"));
    const failure = new S3ResponseError(request.operation, status, error?.code || codeOfStatus(status), error?.message ?? "");
    if (trace) this.#record(request, trace, status, failure, errorBody);
    throw failure;
  }

  /** A GET whose answer ObjectBodyClient reads; Node's client from then on for a server it cannot read. */
  async #streamedExchange(target: string, headers: Record<string, string>): Promise<S3Answer> {
    try {
      return await this.#bodies.get(target, headers);
    } catch (err) {
      if (!(err instanceof UnframedAnswerError)) throw err;
      // Bodies being read on its other connections finish; idle ones close by themselves.
      this.#bodiesFramed = false;
      return this.#exchange("GET", target, headers, undefined);
    }
  }

  /** The HTTP exchange: resolves when the answer's head has arrived. */
  #exchange(method: S3Method, path: string, headers: Record<string, string>, body: Uint8Array | undefined): Promise<IncomingMessage> {
    const e = this.#endpoint;
    const send = e.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send({ agent: this.#agent, protocol: e.protocol, hostname: e.hostname, port: e.port, method, path, headers }, resolve);
      // Kept for the request's life: an error after the answer arrived (its body cut, a timeout, the
      // reader destroying it) reaches the body's reader; here it must not go unhandled.
      req.on("error", reject);
      req.setTimeout(this.#options.socketTimeoutMs, () => {
        req.destroy(new S3TimeoutError(`s3: no data from ${e.host} for ${this.#options.socketTimeoutMs} ms`));
      });
      req.once("socket", (socket: Socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => req.destroy(new S3TimeoutError(`s3: could not connect to ${e.host} in ${this.#options.connectTimeoutMs} ms`)), this.#options.connectTimeoutMs);
        socket.once("connect", () => clearTimeout(timer));
        socket.once("close", () => clearTimeout(timer));
      });
      req.end(body);
    });
  }
}

/** The whole body of an answer, or its first `limit` bytes; fails when the body is cut. */
function readBody(response: S3Answer, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    response.on("data", (chunk: Buffer) => {
      if (length >= limit) return;
      chunks.push(chunk);
      length += chunk.length;
    });
    response.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length)));
    response.once("error", reject);
    response.once("aborted", () => reject(Object.assign(new Error("s3: the answer's body was cut"), { code: "ECONNRESET" })));
  });
}

/** A 200 answer whose body is an <Error>: the operation failed after S3 had started answering (it is retried). */
function throwIfErrorDocument(operation: string, body: Buffer): void {
  const error = parseError(body.toString("utf8"));
  if (error !== undefined) throw new S3ResponseError(operation, 500, error.code || "InternalError", `${error.message} (in a 200 answer)`);
}

