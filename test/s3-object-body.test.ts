/**
 * Streamed GetObjects read by berth's own client (object-body-client.ts) into reused buffers,
 * against a real server on a loopback socket that answers byte for byte as a test says: heads
 * split across reads, bodies cut, stalled, longer than announced or chunked, error answers, TLS.
 * What must hold: the bytes are the object's, a chunk not released is never overwritten, a
 * connection is used again only after an answer read whole, and a failure reaches the reader.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, before, beforeEach, describe, it } from "node:test";
import { createServer as createTlsServer } from "node:tls";
import { ReadBufferPool } from "../src/driver/read-buffer-pool.js";
import { ObjectBody } from "../src/driver/s3/object-body-client.js";
import { DEFAULT_RETRY_POLICY } from "../src/driver/s3/retry-policy.js";
import { credentialSource } from "../src/driver/s3/s3-credentials.js";
import { S3ProtocolError, S3ResponseError } from "../src/driver/s3/s3-errors.js";
import { S3Transport, type S3Answer } from "../src/driver/s3/s3-transport.js";
import { releaseChunk } from "../src/native/release-buffer.js";

/** One request as the server read it; `answer` writes to its socket. */
interface Exchange {
  socket: Socket;
  head: string;
  /** Which connection (1-based, in the order they were accepted). */
  connection: number;
}
type Answer = (exchange: Exchange) => void;

const OBJECT = randomBytes(3 * 1024 * 1024 + 12345);
const okHead = (length: number, extra = ""): string => `HTTP/1.1 200 OK\r\nContent-Length: ${length}\r\nETag: "x"\r\n${extra}\r\n`;

/** A server that reads request heads off raw sockets and lets the test write the answers. */
async function startServer(tlsFiles?: { key: Buffer; cert: Buffer }): Promise<{ server: Server; port: number; exchanges: Exchange[]; closed: number[]; setAnswer(a: Answer): void }> {
  const exchanges: Exchange[] = [];
  const closed: number[] = [];
  let answer: Answer = () => undefined;
  let connections = 0;
  const onSocket = (socket: Socket): void => {
    const connection = ++connections;
    let pending = "";
    socket.on("data", (data: Buffer) => {
      pending += data.toString("latin1");
      for (let at = pending.indexOf("\r\n\r\n"); at !== -1; at = pending.indexOf("\r\n\r\n")) {
        const exchange = { socket, head: pending.slice(0, at), connection };
        pending = pending.slice(at + 4);
        exchanges.push(exchange);
        answer(exchange);
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => closed.push(connection));
  };
  const server = tlsFiles ? createTlsServer(tlsFiles, onSocket) : createNetServer(onSocket);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port, exchanges, closed, setAnswer: (a) => (answer = a) };
}

function transportFor(port: number, protocol: "http:" | "https:" = "http:", socketTimeoutMs = 2000): S3Transport {
  return new S3Transport(
    { protocol, hostname: "127.0.0.1", port, host: `127.0.0.1:${port}`, bucketPath: "/bucket", region: "us-east-1" },
    credentialSource({ accesskey: "key", secretkey: "secret" }),
    { socketTimeoutMs, connectTimeoutMs: 1000, maxSockets: 4, rejectUnauthorized: false, retry: { ...DEFAULT_RETRY_POLICY, baseDelayMs: 1, throttledDelayMs: 1 }, userAgent: "berth-test" },
  );
}

/** Reads a stream whole, keeping its chunks (not released). */
async function chunksOf(stream: Readable): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return chunks;
}

/** Reads a stream whole, releasing each chunk once copied, as a download does once the kernel has it. */
async function readReleasing(stream: Readable): Promise<Buffer> {
  const copies: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on("data", (chunk: Buffer) => {
      copies.push(Buffer.from(chunk));
      releaseChunk(chunk);
    });
    stream.on("end", resolve);
    stream.on("error", reject);
  });
  return Buffer.concat(copies);
}

const get = (transport: S3Transport, key = "k", range?: string): Promise<S3Answer> =>
  transport.stream({ operation: "GetObject", method: "GET", key, headers: range === undefined ? undefined : { range } });

/** Writes `bytes` in pieces of `size`, one per turn of the server's event loop. */
async function dribble(socket: Socket, bytes: Buffer, size: number): Promise<void> {
  for (let at = 0; at < bytes.length; at += size) {
    socket.write(bytes.subarray(at, at + size));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe("S3 GetObject bodies read into reused buffers", () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  let transport: S3Transport;

  before(async () => {
    s = await startServer();
    transport = transportFor(s.port);
  });
  beforeEach(() => {
    s.exchanges.length = 0;
    s.setAnswer(({ socket }) => socket.write(Buffer.concat([Buffer.from(okHead(OBJECT.length), "latin1"), OBJECT])));
  });
  after(async () => {
    transport.destroy();
    await new Promise((resolve) => s.server.close(resolve));
  });

  it("a body arrives whole as the object's bytes, signed, and its connection serves the next GETs", async () => {
    for (let i = 0; i < 3; i++) {
      const body = await get(transport, "a/b c");
      assert.ok(body instanceof ObjectBody, "read by berth's own client");
      assert.equal(body.statusCode, 200);
      assert.equal(body.headers.etag, '"x"');
      assert.ok((await readReleasing(body)).equals(OBJECT));
    }
    assert.equal(s.exchanges.length, 3);
    assert.deepEqual(
      s.exchanges.map((e) => e.connection),
      [s.exchanges[0]!.connection, s.exchanges[0]!.connection, s.exchanges[0]!.connection],
    );
    const head = s.exchanges[0]!.head;
    assert.match(head, /^GET \/bucket\/a\/b%20c HTTP\/1\.1\r\n/);
    assert.match(head, /\r\nauthorization: AWS4-HMAC-SHA256 Credential=key\/\d{8}\/us-east-1\/s3\/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}(\r\n|$)/);
    assert.match(head, /\r\nuser-agent: berth-test(\r\n|$)/);
  });

  it("a chunk that is not released keeps its bytes while later bodies are read", async () => {
    const kept = await chunksOf(await get(transport));
    const other = Buffer.alloc(OBJECT.length, 0xab);
    s.setAnswer(({ socket }) => socket.write(Buffer.concat([Buffer.from(okHead(other.length), "latin1"), other])));
    for (let i = 0; i < 3; i++) assert.ok((await readReleasing(await get(transport))).equals(other));
    assert.ok(Buffer.concat(kept).equals(OBJECT), "the first body's chunks were not overwritten");
  });

  it("released chunks' buffers go back to the pool once each, and no more than it keeps", () => {
    const pool = new ReadBufferPool(64 * 1024, 2);
    const [a, b, c] = [pool.take(), pool.take(), pool.take()];
    assert.equal(releaseChunk(a.subarray(10, 20)), true, "any view of a pool buffer gives it back");
    assert.equal(releaseChunk(a.subarray(0, 5)), false, "not twice");
    assert.equal(pool.giveBack(a.buffer as ArrayBuffer), false);
    assert.equal(releaseChunk(b.subarray(0, 1)), true);
    assert.equal(releaseChunk(c.subarray(0, 1)), true);
    assert.equal(pool.free, 2, "no more kept than maxFree");
    const again = [pool.take(), pool.take()];
    assert.notEqual(again[0]!.buffer, again[1]!.buffer);
    for (const taken of again) assert.ok([a, b, c].some((given) => given.buffer === taken.buffer));
    const fresh = pool.take();
    assert.ok(![a, b, c].some((given) => given.buffer === fresh.buffer), "a fresh one when none is free");
    assert.equal(fresh.length, 64 * 1024);
  });

  it("a head split across many reads, then the body in small pieces: the same bytes", async () => {
    s.setAnswer(({ socket }) => void dribble(socket, Buffer.concat([Buffer.from(okHead(5000, "X-Amz-Meta-A: 1\r\n"), "latin1"), OBJECT.subarray(0, 5000)]), 7));
    const body = await get(transport);
    assert.equal(body.headers["x-amz-meta-a"], "1");
    assert.ok((await readReleasing(body)).equals(OBJECT.subarray(0, 5000)));
  });

  it("a 100 Continue before the answer is skipped; a Range answer 206 is read", async () => {
    s.setAnswer(({ socket }) => socket.write(`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nContent-Range: bytes 5-14/${OBJECT.length}\r\n\r\n` + OBJECT.subarray(5, 15).toString("latin1"), "latin1"));
    const body = await get(transport, "k", "bytes=5-14");
    assert.equal(body.statusCode, 206);
    assert.match(s.exchanges[0]!.head, /\r\nrange: bytes=5-14(\r\n|$)/);
    assert.ok((await readReleasing(body)).equals(OBJECT.subarray(5, 15)));
  });

  it("an empty body ends at once and its connection is used again", async () => {
    s.setAnswer(({ socket }) => socket.write(okHead(0)));
    assert.equal((await readReleasing(await get(transport))).length, 0);
    assert.equal((await readReleasing(await get(transport))).length, 0);
    assert.equal(s.exchanges[0]!.connection, s.exchanges[1]!.connection);
  });

  it("a 404 with an <Error> body: S3ResponseError NoSuchKey, one attempt, the connection used again", async () => {
    const xml = "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>";
    s.setAnswer(({ socket }) => socket.write(`HTTP/1.1 404 Not Found\r\nContent-Length: ${xml.length}\r\n\r\n${xml}`));
    const err = await get(transport).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof S3ResponseError && err.status === 404 && err.code === "NoSuchKey", String(err));
    s.setAnswer(({ socket }) => socket.write(okHead(3) + "abc"));
    assert.equal((await readReleasing(await get(transport))).toString(), "abc");
    assert.equal(s.exchanges.length, 2);
    assert.equal(s.exchanges[0]!.connection, s.exchanges[1]!.connection);
  });

  it("a body cut in the middle fails the reader with ECONNRESET and is not replayed", async () => {
    s.setAnswer(({ socket }) => {
      socket.write(okHead(1000) + "x".repeat(100));
      setImmediate(() => socket.destroy());
    });
    const body = await get(transport);
    const err = await readReleasing(body).then(() => undefined, (e: unknown) => e);
    assert.equal((err as { code?: string } | undefined)?.code, "ECONNRESET", String(err));
    assert.equal(s.exchanges.length, 1);
  });

  it("more bytes than announced: the body is the announced bytes, and the connection is not used again", async () => {
    s.setAnswer(({ socket }) => socket.write(okHead(4) + "abcdEXTRA"));
    assert.equal((await readReleasing(await get(transport))).toString(), "abcd");
    s.setAnswer(({ socket }) => socket.write(okHead(2) + "ok"));
    assert.equal((await readReleasing(await get(transport))).toString(), "ok");
    assert.notEqual(s.exchanges[0]!.connection, s.exchanges[1]!.connection);
  });

  it("a reader that stops early closes the connection; the next GET opens another", async () => {
    const body = await get(transport);
    const first = s.exchanges[0]!.connection;
    for await (const chunk of body) {
      releaseChunk(chunk as Buffer);
      break;
    }
    assert.ok(body.destroyed);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(s.closed.includes(first), "the server saw the connection close");
    assert.ok((await readReleasing(await get(transport))).equals(OBJECT));
    assert.notEqual(s.exchanges[1]!.connection, first);
  });

  it("an idle connection the server closed: the next GET still succeeds", async () => {
    await readReleasing(await get(transport));
    s.exchanges[0]!.socket.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok((await readReleasing(await get(transport))).equals(OBJECT));
  });

  it("a malformed answer head is a protocol error", async () => {
    s.setAnswer(({ socket }) => socket.write("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"));
    const err = await get(transport).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof S3ProtocolError, String(err));
  });

  it("a chunked answer: read by Node's client instead, from then on", async () => {
    const chunked = transportFor(s.port);
    try {
      s.setAnswer(({ socket }) => socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
      const first = await get(chunked);
      assert.equal((await readReleasing(first)).toString(), "hello world");
      assert.ok(!(first instanceof ObjectBody));
      s.setAnswer(({ socket }) => socket.write(okHead(2) + "ok"));
      const second = await get(chunked);
      assert.ok(!(second instanceof ObjectBody), "Node's client from then on");
      assert.equal((await readReleasing(second)).toString(), "ok");
    } finally {
      chunked.destroy();
    }
  });

  it("a body that stops arriving fails at the socket timeout with ETIMEDOUT", async () => {
    const impatient = transportFor(s.port, "http:", 200);
    try {
      s.setAnswer(({ socket }) => socket.write(okHead(1000) + "x".repeat(10)));
      const body = await get(impatient);
      const err = await readReleasing(body).then(() => undefined, (e: unknown) => e);
      assert.equal((err as { code?: string } | undefined)?.code, "ETIMEDOUT", String(err));
    } finally {
      impatient.destroy();
    }
  });
});

describe("S3 GetObject bodies over TLS", () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-objbody-"));
  let s: Awaited<ReturnType<typeof startServer>>;
  let transport: S3Transport;

  before(async () => {
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.pem"), "-days", "1", "-subj", "/CN=localhost"], { stdio: "ignore" });
    s = await startServer({ key: readFileSync(join(dir, "k.pem")), cert: readFileSync(join(dir, "c.pem")) });
    transport = transportFor(s.port, "https:");
  });
  after(async () => {
    transport.destroy();
    await new Promise((resolve) => s.server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it("a large body read over TLS is the object's bytes, twice on one connection", async () => {
    s.setAnswer(({ socket }) => socket.write(Buffer.concat([Buffer.from(okHead(OBJECT.length), "latin1"), OBJECT])));
    for (let i = 0; i < 2; i++) {
      const body = await get(transport);
      assert.ok(body instanceof ObjectBody);
      const bytes = await readReleasing(body);
      assert.equal(createHash("sha256").update(bytes).digest("hex"), createHash("sha256").update(OBJECT).digest("hex"));
    }
    assert.equal(s.exchanges[0]!.connection, s.exchanges[1]!.connection);
  });
});
