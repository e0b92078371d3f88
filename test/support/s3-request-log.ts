/**
 * An HTTP proxy in front of an S3 server that records every request a registry makes, so that
 * tests can count them by operation. It forwards bytes untouched (the client signs for the
 * upstream's host, which the proxy sends on), so anything that talks S3 can be pointed at it.
 *
 * With `delayMs`, each request waits that long before it is forwarded: an object store farther
 * away than loopback (the benchmark's S3 latency case).
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface S3Request {
  /** The S3 operation, from the method and query: PutObject, CopyObject, HeadObject, ListObjectsV2… */
  operation: string;
  /** The object key, or for a listing its `prefix`, without the bucket. */
  key: string;
  status: number;
  /** The User-Agent header the registry sent. */
  userAgent: string;
}

export interface S3RequestLog {
  /** Where to point the registry's `regionendpoint`. */
  endpoint: string;
  /** Requests since the last `take()`, oldest first. */
  take(): S3Request[];
  close(): Promise<void>;
}

export interface S3RequestLogOptions {
  /** Milliseconds each request waits before it is forwarded (its body waits in the socket). Default 0. */
  delayMs?: number;
}

export async function startS3RequestLog(upstreamEndpoint: string, options: S3RequestLogOptions = {}): Promise<S3RequestLog> {
  const upstream = new URL(upstreamEndpoint);
  const delayMs = options.delayMs ?? 0;
  let recorded: S3Request[] = [];
  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://proxy");
    const forwarded = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        recorded.push({ operation: operationOf(req.method ?? "", url, req.headers["x-amz-copy-source"] !== undefined), key: keyOf(url), status: answer.statusCode ?? 0, userAgent: req.headers["user-agent"] ?? "" });
      },
    );
    forwarded.on("error", () => res.destroy());
    req.pipe(forwarded);
  };
  const server: Server = createServer((req, res) => {
    if (delayMs > 0) setTimeout(forward, delayMs, req, res);
    else forward(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    take() {
      const taken = recorded;
      recorded = [];
      return taken;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export function operationOf(method: string, url: URL, copy: boolean): string {
  const q = url.searchParams;
  const objectPath = url.pathname.split("/").filter(Boolean).length > 1;
  if (q.has("uploads")) return method === "POST" ? "CreateMultipartUpload" : "ListMultipartUploads";
  if (q.has("uploadId")) {
    if (method === "PUT") return copy ? "UploadPartCopy" : "UploadPart";
    if (method === "POST") return "CompleteMultipartUpload";
    if (method === "DELETE") return "AbortMultipartUpload";
    return "ListParts";
  }
  if (q.has("delete")) return "DeleteObjects";
  if (!objectPath) return method === "GET" ? "ListObjectsV2" : `${method} bucket`;
  switch (method) {
    case "PUT":
      return copy ? "CopyObject" : "PutObject";
    case "GET":
      return "GetObject";
    case "HEAD":
      return "HeadObject";
    case "DELETE":
      return "DeleteObject";
    default:
      return method;
  }
}

/** The key under the bucket (path style: /<bucket>/<key>), or a listing's prefix. */
export function keyOf(url: URL): string {
  const prefix = url.searchParams.get("prefix");
  if (prefix !== null) return prefix;
  return decodeURIComponent(url.pathname.split("/").slice(2).join("/"));
}
