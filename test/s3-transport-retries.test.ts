/**
 * The S3 transport's retry policy against a real local HTTP server that fails in the ways an object
 * store does: 5xx and SlowDown answers, a connection reset before any answer, an answer that never
 * comes, a body cut in the middle, a 200 carrying an <Error>. What is retried is retried a bounded
 * number of times with the same body; what is an answer about the request (404, 403, 400) is not;
 * a body already handed to a reader is never replayed.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";
import { StorageFaultError } from "../src/driver/storage-fault.js";
import { S3ResponseError } from "../src/driver/s3/s3-errors.js";
import { S3Transport } from "../src/driver/s3/s3-transport.js";
import { DEFAULT_RETRY_POLICY } from "../src/driver/s3/retry-policy.js";
import { credentialSource } from "../src/driver/s3/s3-credentials.js";

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer, attempt: number) => void;

describe("S3 transport retries against a failing HTTP server", () => {
  let server: Server;
  let port: number;
  let handler: Handler;
  let bodies: Buffer[];
  let transport: S3Transport;

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        bodies.push(Buffer.concat(chunks));
        handler(req, res, Buffer.concat(chunks), bodies.length);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
    transport = new S3Transport(
      { protocol: "http:", hostname: "127.0.0.1", port, host: `127.0.0.1:${port}`, bucketPath: "/bucket", region: "us-east-1" },
      credentialSource({ accesskey: "key", secretkey: "secret" }),
      // Short waits, so that the test does not sleep; the number of attempts is the default.
      { socketTimeoutMs: 300, connectTimeoutMs: 1000, maxSockets: 4, rejectUnauthorized: true, retry: { ...DEFAULT_RETRY_POLICY, baseDelayMs: 1, throttledDelayMs: 1 }, userAgent: "berth-test" },
    );
  });

  beforeEach(() => {
    bodies = [];
  });

  after(async () => {
    transport.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const errorXml = (code: string): string => `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code} here</Message></Error>`;
  /** A 200 announcing 1000 bytes whose connection closes after 100. */
  const cutAfter100Bytes: Handler = (_req, res) => {
    res.writeHead(200, { "content-length": 1000 });
    res.write(Buffer.alloc(100));
    setImmediate(() => res.socket?.destroy());
  };
  const answer = (res: ServerResponse, status: number, body = ""): void => void res.writeHead(status, { "content-length": Buffer.byteLength(body) }).end(body);

  it("500 InternalError every time: 3 attempts, the same body each time, then StorageFaultError unavailable", async () => {
    handler = (_req, res) => answer(res, 500, errorXml("InternalError"));
    const body = Buffer.from("object bytes");
    const err = await transport.send({ operation: "PutObject", method: "PUT", key: "a/b", body }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof StorageFaultError && err.kind === "unavailable", String(err));
    assert.ok(err.cause instanceof S3ResponseError && err.cause.code === "InternalError");
    assert.deepEqual(bodies, [body, body, body]);
  });

  it("503 SlowDown once: the second attempt succeeds", async () => {
    handler = (_req, res, _body, attempt) => (attempt === 1 ? answer(res, 503, errorXml("SlowDown")) : answer(res, 200));
    const out = await transport.send({ operation: "PutObject", method: "PUT", key: "k", body: Buffer.from("x") });
    assert.equal(out.status, 200);
    assert.equal(bodies.length, 2);
  });

  it("the connection reset before any answer: retried, 3 attempts, then unavailable", async () => {
    handler = (req) => req.socket.destroy();
    const err = await transport.send({ operation: "HeadObject", method: "HEAD", key: "k" }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof StorageFaultError && err.kind === "unavailable", String(err));
    assert.equal(bodies.length, 3);
  });

  it("reset once, then answered: the request succeeds", async () => {
    handler = (req, res, _body, attempt) => (attempt === 1 ? req.socket.destroy() : answer(res, 200, "<ListBucketResult></ListBucketResult>"));
    const out = await transport.send({ operation: "ListObjectsV2", method: "GET", query: [["list-type", "2"]] });
    assert.equal(out.body.toString(), "<ListBucketResult></ListBucketResult>");
    assert.equal(bodies.length, 2);
  });

  it("never answered: each attempt ends at the socket timeout, 3 attempts, then unavailable", async () => {
    handler = () => undefined;
    const err = await transport.send({ operation: "HeadObject", method: "HEAD", key: "k" }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof StorageFaultError && err.kind === "unavailable", String(err));
    assert.equal(bodies.length, 3);
  });

  it("a small object's body cut in the middle: retried, then unavailable (never a short buffer)", async () => {
    handler = cutAfter100Bytes;
    const err = await transport.send({ operation: "GetObject", method: "GET", key: "k" }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof StorageFaultError && err.kind === "unavailable", String(err));
    assert.equal(bodies.length, 3);
  });

  it("a streamed body cut in the middle: the reader's stream fails, and the request is not replayed", async () => {
    handler = cutAfter100Bytes;
    const body = await transport.stream({ operation: "GetObject", method: "GET", key: "k" });
    await assert.rejects(async () => {
      for await (const chunk of body) void chunk;
    });
    assert.equal(bodies.length, 1);
  });

  it("a 200 carrying an <Error> (CopyObject): retried like a 500", async () => {
    handler = (_req, res, _body, attempt) => (attempt === 1 ? answer(res, 200, errorXml("InternalError")) : answer(res, 200, "<CopyObjectResult><ETag>e</ETag></CopyObjectResult>"));
    const out = await transport.send({ operation: "CopyObject", method: "PUT", key: "k", errorIn200: true });
    assert.match(out.body.toString(), /CopyObjectResult/);
    assert.equal(bodies.length, 2);
  });

  it("404 NoSuchKey, 400 and 403: one attempt each; 404 and 400 stay S3ResponseErrors, 403 is access-denied", async () => {
    for (const [status, code] of [[404, "NoSuchKey"], [400, "InvalidArgument"]] as const) {
      bodies = [];
      handler = (_req, res) => answer(res, status, errorXml(code));
      const err = await transport.send({ operation: "GetObject", method: "GET", key: "k" }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof S3ResponseError && err.status === status && err.code === code, String(err));
      assert.equal(bodies.length, 1);
    }
    bodies = [];
    handler = (_req, res) => answer(res, 403, errorXml("AccessDenied"));
    const denied = await transport.send({ operation: "GetObject", method: "GET", key: "k" }).then(() => undefined, (e: unknown) => e);
    assert.ok(denied instanceof StorageFaultError && denied.kind === "access-denied", String(denied));
    assert.equal(bodies.length, 1);
  });

  it("a HEAD answered 404 without a body: NotFound", async () => {
    handler = (_req, res) => void res.writeHead(404).end();
    const err = await transport.send({ operation: "HeadObject", method: "HEAD", key: "k" }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof S3ResponseError && err.code === "NotFound", String(err));
  });

  it("signs what it sends: the Authorization header names the signed headers, the body is sent UNSIGNED-PAYLOAD", async () => {
    let seen: IncomingMessage | undefined;
    handler = (req, res) => {
      seen = req;
      answer(res, 200);
    };
    await transport.send({ operation: "PutObject", method: "PUT", key: "a b/c", body: Buffer.from("x"), headers: { "x-amz-meta-k": "v" } });
    assert.equal(seen?.url, "/bucket/a%20b/c");
    assert.equal(seen?.headers["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
    assert.match(String(seen?.headers.authorization), /SignedHeaders=content-length;host;x-amz-content-sha256;x-amz-date;x-amz-meta-k, Signature=[0-9a-f]{64}$/);
  });
});
