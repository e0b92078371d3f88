/**
 * http.h2c.enabled: HTTP/2 with prior knowledge beside HTTP/1.1 on berth's plain port, shown with
 * Debian's curl (--http2-prior-knowledge) and Node's http2 client against a real `berth serve`:
 * the base endpoint, a streamed blob upload and download (digest checked), a manifest put and get,
 * HTTP/1.1 on the same port; bad input: a truncated preface, garbage after it. With h2c off (the
 * default) a client with prior knowledge gets HTTP/1.1's 400, as from distribution.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { connect as connectHttp2, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http2";
import { connect as connectTcp } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { HTTP2_PREFACE } from "../src/server/h2c-listener.js";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { describeRun, requireProgram, run } from "./support/external-program.js";
import { digestOf, OCI_MANIFEST, randomImage } from "./support/registry-client.js";

interface H2Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request on an HTTP/2 session; `body` chunks are written with backpressure. */
function request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body: Iterable<Buffer> = []): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers);
    const chunks: Buffer[] = [];
    let responseHeaders: IncomingHttpHeaders = {};
    stream.on("response", (received) => (responseHeaders = received));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve({ status: Number(responseHeaders[":status"]), headers: responseHeaders, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    const iterator = body[Symbol.iterator]();
    const writeMore = (): void => {
      for (let next = iterator.next(); !next.done; next = iterator.next()) {
        if (!stream.write(next.value)) {
          stream.once("drain", writeMore);
          return;
        }
      }
      stream.end();
    };
    writeMore();
  });
}

/** `count` random chunks of `size` bytes, hashed as they are made. */
function* randomChunks(count: number, size: number, hash: ReturnType<typeof createHash>): Generator<Buffer> {
  for (let i = 0; i < count; i++) {
    const chunk = Buffer.alloc(size, i % 251);
    chunk.writeUInt32BE(i, 0);
    hash.update(chunk);
    yield chunk;
  }
}

/** Everything a raw TCP client receives after sending `bytes` (and ending its side when `end`). */
function rawExchange(hostPort: string, bytes: Buffer, end: boolean): Promise<Buffer> {
  const [host, port] = hostPort.split(":");
  return new Promise((resolve, reject) => {
    const socket = connectTcp(Number(port), host, () => {
      socket.write(bytes);
      if (end) socket.end();
    });
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(chunks)));
  });
}

/** The HTTP/2 frames in `bytes`: type and payload each. */
function frames(bytes: Buffer): Array<{ type: number; payload: Buffer }> {
  const out: Array<{ type: number; payload: Buffer }> = [];
  for (let at = 0; at + 9 <= bytes.length; ) {
    const length = bytes.readUIntBE(at, 3);
    out.push({ type: bytes[at + 3]!, payload: bytes.subarray(at + 9, at + 9 + length) });
    at += 9 + length;
  }
  return out;
}

const SETTINGS = 0x4;
const GOAWAY = 0x7;
const HEADERS = 0x1;

const curl = requireProgram("curl");

describe("http.h2c.enabled on berth's plain port", () => {
  let berth: BerthProcess;
  let session: ClientHttp2Session;

  before(async () => {
    // A short header timeout, so the connection that never finishes its preface is cut soon.
    berth = await startBerth({ configYaml: testConfig({ http: "  h2c:\n    enabled: true\n  timeout:\n    readheader: 2s" }) });
    session = connectHttp2(berth.url);
  });
  after(async () => {
    session?.close();
    await berth?.stop();
  });

  it("curl --http2-prior-knowledge GET /v2/ answers HTTP/2 200", { skip: curl.skip }, async () => {
    const result = await run(curl.path!, ["-sS", "-i", "--http2-prior-knowledge", `${berth.url}/v2/`]);
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stdout, /^HTTP\/2 200 ?\r\n/);
    assert.match(result.stdout, /\r\ndocker-distribution-api-version: registry\/2\.0\r\n/);
  });

  it("curl --http2 (an HTTP/1.1 request with Upgrade: h2c) is answered over HTTP/1.1, as the upgrade is not offered", { skip: curl.skip }, async () => {
    const result = await run(curl.path!, ["-sS", "-i", "--http2", `${berth.url}/v2/`]);
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stdout, /^HTTP\/1\.1 200 OK\r\n/);
  });

  it("Node's http2 client: GET /v2/ answers 200 with the API version header", async () => {
    const response = await request(session, { ":method": "GET", ":path": "/v2/" });
    assert.equal(response.status, 200);
    assert.equal(response.headers["docker-distribution-api-version"], "registry/2.0");
  });

  it("a blob streamed in one PATCH (8 MiB) is completed by PUT and downloaded whole; both digests match", async () => {
    const hash = createHash("sha256");
    const started = await request(session, { ":method": "POST", ":path": "/v2/h2c/blob/blobs/uploads/" });
    assert.equal(started.status, 202);
    const location = new URL(String(started.headers.location));
    assert.equal(location.origin, berth.url, "the Location is built from :authority");
    const patched = await request(session, { ":method": "PATCH", ":path": location.pathname + location.search, "content-type": "application/octet-stream" }, randomChunks(128, 64 * 1024, hash));
    assert.equal(patched.status, 202, patched.body.toString());
    assert.equal(patched.headers.range, `0-${8 * 1024 * 1024 - 1}`);
    const digest = `sha256:${hash.digest("hex")}`;
    const next = new URL(String(patched.headers.location));
    next.searchParams.set("digest", digest);
    const done = await request(session, { ":method": "PUT", ":path": next.pathname + next.search });
    assert.equal(done.status, 201, done.body.toString());
    assert.equal(done.headers["docker-content-digest"], digest);

    const got = await request(session, { ":method": "GET", ":path": `/v2/h2c/blob/blobs/${digest}` });
    assert.equal(got.status, 200);
    assert.equal(got.headers["content-length"], String(8 * 1024 * 1024));
    assert.equal(digestOf(got.body), digest);
  });

  it("PUT a manifest and GET it by tag: the bytes as pushed; HEAD gives its digest", async () => {
    const image = randomImage();
    for (const blob of [image.config, ...image.layers]) {
      const put = await request(session, { ":method": "POST", ":path": `/v2/h2c/image/blobs/uploads/?digest=${digestOf(blob)}`, "content-type": "application/octet-stream" }, [blob]);
      assert.equal(put.status, 201);
    }
    const put = await request(session, { ":method": "PUT", ":path": "/v2/h2c/image/manifests/v1", "content-type": image.mediaType }, [image.bytes]);
    assert.equal(put.status, 201, put.body.toString());
    assert.equal(put.headers.location, `${berth.url}/v2/h2c/image/manifests/${image.digest}`);
    const got = await request(session, { ":method": "GET", ":path": "/v2/h2c/image/manifests/v1", accept: OCI_MANIFEST });
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, image.bytes);
    const head = await request(session, { ":method": "HEAD", ":path": "/v2/h2c/image/manifests/v1", accept: OCI_MANIFEST });
    assert.equal(head.status, 200);
    assert.equal(head.headers["docker-content-digest"], image.digest);
  });

  it("a bad request over HTTP/2 gets the registry's error: 404 MANIFEST_UNKNOWN as JSON", async () => {
    const response = await request(session, { ":method": "GET", ":path": "/v2/h2c/none/manifests/missing" });
    assert.equal(response.status, 404);
    assert.equal((JSON.parse(response.body.toString()) as { errors: Array<{ code: string }> }).errors[0]!.code, "MANIFEST_UNKNOWN");
  });

  it("HTTP/1.1 is still served on the same port, beside the open HTTP/2 session", async () => {
    const response = await fetch(`${berth.url}/v2/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-distribution-api-version"), "registry/2.0");
    await response.arrayBuffer();
    // And a PUT: its request line starts with the preface's "P".
    const put = await fetch(`${berth.url}/v2/h2c/http1/manifests/v1`, { method: "PUT", headers: { "content-type": OCI_MANIFEST }, body: "{}" });
    assert.equal(put.status, 400);
    await put.arrayBuffer();
  });

  it("a truncated preface gets no answer: the connection is closed, and one that stalls is cut by the header timeout", async () => {
    const ended = await rawExchange(berth.hostPort, HTTP2_PREFACE.subarray(0, 16), true);
    assert.equal(ended.length, 0);
    const stalled = await rawExchange(berth.hostPort, HTTP2_PREFACE.subarray(0, 20), false);
    assert.equal(stalled.length, 0);
  });

  it("garbage after the preface: the server's SETTINGS, then GOAWAY with an error code, no response, nothing stored", async () => {
    const answer = await rawExchange(berth.hostPort, Buffer.concat([HTTP2_PREFACE, Buffer.from("POST /v2/garbage/blobs/uploads/ HTTP/1.1\r\n\r\n")]), false);
    const received = frames(answer);
    assert.equal(received[0]?.type, SETTINGS);
    const goaway = received.find((frame) => frame.type === GOAWAY);
    assert.ok(goaway, `a GOAWAY frame in ${answer.toString("hex")}`);
    assert.notEqual(goaway.payload.readUInt32BE(4), 0, "GOAWAY carries an error code");
    assert.ok(!received.some((frame) => frame.type === HEADERS), "no response");
    const repositories = await readdir(join(berth.root!, "docker/registry/v2/repositories")).catch(() => [] as string[]);
    assert.ok(!repositories.includes("garbage"));
  });
});

describe("http.h2c off (the default)", () => {
  let berth: BerthProcess;
  before(async () => {
    berth = await startBerth({ configYaml: testConfig() });
  });
  after(async () => {
    await berth?.stop();
  });

  it("the HTTP/2 preface is an HTTP/1.1 request line berth's parser refuses: 400, connection closed", async () => {
    const answer = await rawExchange(berth.hostPort, HTTP2_PREFACE, false);
    assert.match(answer.toString("latin1"), /^HTTP\/1\.1 400 Bad Request\r\n/);
  });
});
