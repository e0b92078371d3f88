/**
 * A FAULT-INJECTING HTTP proxy in front of an S3 server (Ceph's radosgw in the tests). It forwards
 * every request untouched (like s3-request-log.ts, whose operation names it uses) except those a
 * rule picks, which it answers with an S3 error (500 InternalError, 503 SlowDown…), a connection
 * reset before any answer, a connection reset after part of the answer's body (a truncated body:
 * the Content-Length promised more), an answer forwarded and then replaced by an error (the
 * request took effect, the client is told it failed), added latency, or no answer at all.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { keyOf, operationOf } from "./s3-request-log.js";

export type S3Fault =
  /** An S3 error answered by the proxy; the request never reaches the server. */
  | { kind: "error"; status: number; code: string }
  /** The request reaches the server; its answer is dropped and an S3 error sent instead. */
  | { kind: "error-after-forwarding"; status: number; code: string }
  /** The connection is reset before any answer (the request does not reach the server). */
  | { kind: "reset" }
  /** The server's answer is forwarded up to `bytes` bytes of its body, then the connection is reset. */
  | { kind: "truncate"; bytes: number }
  /** The request is forwarded after `ms`. */
  | { kind: "delay"; ms: number }
  /** Nothing is ever answered (the connection stays open until the client gives up). */
  | { kind: "stall" };

export interface S3FaultRule {
  /** S3 operations (PutObject, UploadPart, GetObject…); every operation when absent. */
  operations?: string[];
  /** Keys (or listing prefixes) the rule applies to; every key when absent. */
  key?: RegExp;
  fault: S3Fault;
  /** Matching requests let through first. Default 0. */
  after?: number;
  /** Requests faulted before the rule stops. Default: until removed. */
  times?: number;
}

export interface S3ProxiedRequest {
  operation: string;
  key: string;
  /** The status the client got, or the fault's kind when it got none. */
  outcome: number | "reset" | "truncated" | "stalled";
  faulted: boolean;
}

export interface S3FaultHandle {
  readonly fired: number;
  remove(): void;
}

export interface S3FaultProxy {
  /** Where to point the registry's `regionendpoint`. */
  endpoint: string;
  inject(rule: S3FaultRule): S3FaultHandle;
  /** Removes every rule: the fault ends. Stalled requests are cut. */
  clear(): void;
  /** Requests since the last `take()`, oldest first. */
  take(): S3ProxiedRequest[];
  close(): Promise<void>;
}

function s3ErrorBody(code: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by the test's fault proxy</Message><RequestId>fault-proxy</RequestId></Error>`;
}

function sendS3Error(req: IncomingMessage, res: ServerResponse, status: number, code: string): void {
  const body = req.method === "HEAD" ? "" : s3ErrorBody(code);
  res.writeHead(status, { "Content-Type": "application/xml", "Content-Length": Buffer.byteLength(body), "x-amz-request-id": "fault-proxy" });
  res.end(body);
}

export async function startS3FaultProxy(upstreamEndpoint: string): Promise<S3FaultProxy> {
  const upstream = new URL(upstreamEndpoint);
  const rules: Array<{ rule: S3FaultRule; matched: number; fired: number }> = [];
  let recorded: S3ProxiedRequest[] = [];
  const stalled = new Set<Socket>();
  const sockets = new Set<Socket>();

  const forward = (req: IncomingMessage, onAnswer: (answer: IncomingMessage) => void, onError: () => void): void => {
    const forwarded = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, onAnswer);
    forwarded.on("error", onError);
    req.pipe(forwarded);
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://proxy");
    const operation = operationOf(req.method ?? "", url, req.headers["x-amz-copy-source"] !== undefined);
    const key = keyOf(url);
    let fault: S3Fault | undefined;
    for (const entry of rules) {
      const { rule } = entry;
      if (rule.operations !== undefined && !rule.operations.includes(operation)) continue;
      if (rule.key !== undefined && !rule.key.test(key)) continue;
      entry.matched++;
      if (entry.matched <= (rule.after ?? 0)) continue;
      if (rule.times !== undefined && entry.fired >= rule.times) continue;
      entry.fired++;
      fault = rule.fault;
      break;
    }
    const record = (outcome: S3ProxiedRequest["outcome"]): void => {
      recorded.push({ operation, key, outcome, faulted: fault !== undefined });
    };
    const passThrough = (): void =>
      forward(
        req,
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          record(answer.statusCode ?? 0);
        },
        () => res.destroy(),
      );
    switch (fault?.kind) {
      case undefined:
        passThrough();
        return;
      case "error":
        req.resume();
        req.on("end", () => {
          sendS3Error(req, res, fault.status, fault.code);
          record(fault.status);
        });
        return;
      case "error-after-forwarding":
        forward(
          req,
          (answer) => {
            answer.resume();
            answer.on("end", () => {
              sendS3Error(req, res, fault.status, fault.code);
              record(fault.status);
            });
          },
          () => res.destroy(),
        );
        return;
      case "reset":
        record("reset");
        req.socket.resetAndDestroy();
        return;
      case "truncate": {
        const limit = fault.bytes;
        forward(
          req,
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            let sent = 0;
            answer.on("data", (chunk: Buffer) => {
              if (sent >= limit) return;
              const part = chunk.subarray(0, limit - sent);
              sent += part.length;
              res.write(part);
              if (sent >= limit) {
                answer.destroy();
                // Flushed first, so that the client does receive the bytes before the cut.
                res.socket?.end(() => undefined);
                setTimeout(() => res.socket?.resetAndDestroy(), 50);
              }
            });
            answer.on("end", () => res.end());
            record("truncated");
          },
          () => res.destroy(),
        );
        return;
      }
      case "delay":
        setTimeout(passThrough, fault.ms);
        return;
      case "stall":
        record("stalled");
        req.resume();
        stalled.add(req.socket);
        return;
    }
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => {
      sockets.delete(socket);
      stalled.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    inject(rule) {
      const entry = { rule, matched: 0, fired: 0 };
      rules.push(entry);
      return {
        get fired() {
          return entry.fired;
        },
        remove() {
          const index = rules.indexOf(entry);
          if (index >= 0) rules.splice(index, 1);
        },
      };
    },
    clear() {
      rules.length = 0;
      for (const socket of stalled) socket.destroy();
    },
    take() {
      const taken = recorded;
      recorded = [];
      return taken;
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
