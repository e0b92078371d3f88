/**
 * The pull-through cache tests' upstream proxy (support/upstream-proxy.ts), against a tiny real
 * upstream in this process: it forwards transparently, counts, and injects each kind of fault.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, request as httpRequest, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { freePort } from "./support/distribution-process.js";
import { startUpstreamProxy, type UpstreamProxy } from "./support/upstream-proxy.js";

/** 20 KiB of fixed, non-repeating-looking bytes. */
const BLOB = Buffer.from(Array.from({ length: 20 * 1024 }, (_, i) => (i * 31 + (i >> 8)) & 0xff));
const BLOB_DIGEST = `sha256:${createHash("sha256").update(BLOB).digest("hex")}`;
const BLOB_PATH = "/v2/library/alpine/blobs/" + BLOB_DIGEST;

/**
 * The upstream: GET/HEAD of BLOB_PATH serves BLOB; /v2/ wants credentials; /echo answers, as
 * JSON, what it received (method, URL, headers, body).
 */
function startUpstream(): Promise<{ server: Server; url: string; hostPort: string }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (req.url === BLOB_PATH && (req.method === "GET" || req.method === "HEAD")) {
        res.writeHead(200, {
          "Content-Type": "application/octet-stream",
          "Content-Length": String(BLOB.length),
          "Docker-Content-Digest": BLOB_DIGEST,
        });
        res.end(req.method === "HEAD" ? undefined : BLOB);
      } else if (req.url === "/v2/") {
        if (req.headers.authorization === undefined) {
          res.writeHead(401, { "WWW-Authenticate": 'Bearer realm="http://auth.example/token",service="upstream"', "Content-Length": "0" });
          res.end();
        } else {
          res.writeHead(200, { "Content-Type": "application/json", "Content-Length": "2" });
          res.end("{}");
        }
      } else if (req.url?.startsWith("/echo")) {
        const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        res.writeHead(201, { "Content-Type": "application/json", "X-Upstream": "yes", Location: "/echo/next" });
        res.end(body);
      } else {
        res.writeHead(404, { "Content-Length": "0" });
        res.end();
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      resolve({ server, url: `http://127.0.0.1:${port}`, hostPort: `127.0.0.1:${port}` });
    });
  });
}

interface Echo {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

describe("upstream proxy", () => {
  let upstream: { server: Server; url: string; hostPort: string };
  let proxy: UpstreamProxy;

  before(async () => {
    upstream = await startUpstream();
    proxy = await startUpstreamProxy(upstream.url);
  });
  after(async () => {
    await proxy?.close();
    upstream?.server.closeAllConnections();
    await new Promise((resolve) => upstream?.server.close(resolve));
  });

  /** Each test starts from no faults, no records, and the upstream up. */
  function fresh(): void {
    proxy.clearFaults();
    proxy.resetCounts();
    proxy.setUp(true);
  }

  it("forwards method, path, query, headers and body, and passes the answer back unchanged", async () => {
    fresh();
    assert.match(proxy.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(proxy.url, `http://${proxy.hostPort}`);

    const response = await fetch(`${proxy.url}/echo/upload?digest=sha256%3Aabc&n=1`, {
      method: "PATCH",
      headers: { Authorization: "Bearer t0ken", "X-Test": "forwarded", "Content-Type": "text/plain" },
      body: "hello upstream",
      redirect: "manual",
    });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("x-upstream"), "yes");
    assert.equal(response.headers.get("location"), "/echo/next");
    const echo = (await response.json()) as Echo;
    assert.equal(echo.method, "PATCH");
    assert.equal(echo.url, "/echo/upload?digest=sha256%3Aabc&n=1");
    assert.equal(echo.headers.host, upstream.hostPort, "Host is rewritten to the target's");
    assert.equal(echo.headers.authorization, "Bearer t0ken");
    assert.equal(echo.headers["x-test"], "forwarded");
    assert.equal(echo.body, "hello upstream");

    const blob = await fetch(proxy.url + BLOB_PATH);
    assert.equal(blob.status, 200);
    assert.equal(blob.headers.get("content-length"), String(BLOB.length));
    assert.equal(blob.headers.get("docker-content-digest"), BLOB_DIGEST);
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), BLOB);

    const head = await fetch(proxy.url + BLOB_PATH, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(BLOB.length));
    assert.equal((await head.arrayBuffer()).byteLength, 0);

    const challenge = await fetch(`${proxy.url}/v2/`);
    await challenge.arrayBuffer();
    assert.equal(challenge.status, 401);
    assert.match(challenge.headers.get("www-authenticate") ?? "", /^Bearer realm=/);

    assert.deepEqual(proxy.requests, [
      { method: "PATCH", path: "/echo/upload", query: "digest=sha256%3Aabc&n=1", status: 201, authorization: "Bearer t0ken" },
      { method: "GET", path: BLOB_PATH, query: "", status: 200, authorization: undefined },
      { method: "HEAD", path: BLOB_PATH, query: "", status: 200, authorization: undefined },
      { method: "GET", path: "/v2/", query: "", status: 401, authorization: undefined },
    ]);
  });

  it("counts by method and path, and forgets on resetCounts()", async () => {
    fresh();
    for (const method of ["GET", "GET", "HEAD"]) await (await fetch(proxy.url + BLOB_PATH, { method })).arrayBuffer();
    await (await fetch(`${proxy.url}/v2/`)).arrayBuffer();
    assert.equal(proxy.count("GET"), 3);
    assert.equal(proxy.count("get", /\/blobs\//), 2, "the method is compared without case");
    assert.equal(proxy.count("HEAD", /\/blobs\//), 1);
    assert.equal(proxy.count("HEAD", /\/manifests\//), 0);
    assert.equal(proxy.count("GET", /^\/v2\/$/g), 1);
    assert.equal(proxy.count("GET", /^\/v2\/$/g), 1, "a /g pattern counts the same twice");
    proxy.resetCounts();
    assert.equal(proxy.count("GET"), 0);
    assert.deepEqual(proxy.requests, []);
  });

  it("answers a status fault for `times` matching requests, then forwards again", async () => {
    fresh();
    const body = '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}';
    proxy.inject({ method: "GET", path: /\/blobs\//, times: 1, fault: { kind: "status", status: 429, headers: { "Retry-After": "1" }, body } });
    proxy.inject({ method: "HEAD", fault: { kind: "status", status: 503 } });

    const limited = await fetch(proxy.url + BLOB_PATH);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get("retry-after"), "1");
    assert.equal(limited.headers.get("content-type"), "application/json");
    assert.equal(limited.headers.get("content-length"), String(Buffer.byteLength(body)));
    assert.equal(await limited.text(), body);

    const second = await fetch(proxy.url + BLOB_PATH);
    assert.equal(second.status, 200, "the rule had one time only");
    assert.deepEqual(Buffer.from(await second.arrayBuffer()), BLOB);

    for (let i = 0; i < 2; i++) {
      const head = await fetch(proxy.url + BLOB_PATH, { method: "HEAD" });
      assert.equal(head.status, 503, "a rule without times applies forever");
      assert.equal(head.headers.get("content-length"), "0");
    }
    assert.deepEqual(
      proxy.requests.map((r) => `${r.method} ${r.status}`),
      ["GET 429", "GET 200", "HEAD 503", "HEAD 503"],
    );
    proxy.clearFaults();
    assert.equal((await fetch(proxy.url + BLOB_PATH, { method: "HEAD" })).status, 200);
  });

  it("tries rules in the order added", async () => {
    fresh();
    proxy.inject({ path: /\/blobs\//, times: 1, fault: { kind: "status", status: 500 } });
    proxy.inject({ path: /\/blobs\//, times: 1, fault: { kind: "redirect", location: "http://elsewhere.example/blob", status: 302 } });
    const first = await fetch(proxy.url + BLOB_PATH, { redirect: "manual" });
    await first.arrayBuffer();
    const second = await fetch(proxy.url + BLOB_PATH, { redirect: "manual" });
    await second.arrayBuffer();
    const third = await fetch(proxy.url + BLOB_PATH, { redirect: "manual" });
    await third.arrayBuffer();
    assert.deepEqual([first.status, second.status, third.status], [500, 302, 200]);
    assert.equal(second.headers.get("location"), "http://elsewhere.example/blob");
  });

  it("redirects without forwarding (307 by default)", async () => {
    fresh();
    proxy.inject({ fault: { kind: "redirect", location: "http://storage.example/blob?sig=1" } });
    const response = await fetch(proxy.url + BLOB_PATH, { redirect: "manual" });
    assert.equal(response.status, 307);
    assert.equal(response.headers.get("location"), "http://storage.example/blob?sig=1");
    assert.equal((await response.arrayBuffer()).byteLength, 0);
    assert.equal(proxy.requests[0]?.status, 307);
  });

  it("answers a replace fault exactly", async () => {
    fresh();
    const body = Buffer.from("not what you asked for");
    proxy.inject({ fault: { kind: "replace", status: 200, headers: { "Docker-Content-Digest": BLOB_DIGEST, "Content-Type": "text/plain" }, body } });
    const response = await fetch(proxy.url + BLOB_PATH);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-content-digest"), BLOB_DIGEST);
    assert.equal(response.headers.get("content-length"), String(body.length));
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), body);
  });

  it("resets the socket: the client's request fails, status 0 is recorded", async () => {
    fresh();
    proxy.inject({ times: 1, fault: { kind: "reset" } });
    await assert.rejects(fetch(proxy.url + BLOB_PATH));
    assert.deepEqual(
      proxy.requests.map((r) => r.status),
      [0],
    );
    assert.equal((await fetch(proxy.url + BLOB_PATH)).status, 200, "the next request goes through");
  });

  it("resets every request while the upstream is down", async () => {
    fresh();
    proxy.setUp(false);
    await assert.rejects(fetch(proxy.url + BLOB_PATH));
    await assert.rejects(fetch(`${proxy.url}/v2/`, { headers: { Authorization: "Basic eDp5" } }));
    assert.deepEqual(proxy.requests, [
      { method: "GET", path: BLOB_PATH, query: "", status: 0, authorization: undefined },
      { method: "GET", path: "/v2/", query: "", status: 0, authorization: "Basic eDp5" },
    ]);
    proxy.setUp(true);
    const response = await fetch(`${proxy.url}/v2/`, { headers: { Authorization: "Basic eDp5" } });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "{}");
  });

  it("delays the answer", async () => {
    fresh();
    proxy.inject({ fault: { kind: "delay", ms: 200 } });
    const started = Date.now();
    const response = await fetch(proxy.url + BLOB_PATH);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), BLOB);
    assert.ok(Date.now() - started >= 190, `answered after ${Date.now() - started} ms`);
  });

  it("throttles a slow body: 20 KiB at 40 KiB/s takes at least ~400 ms", async () => {
    fresh();
    proxy.inject({ fault: { kind: "slow", bytesPerSecond: 40 * 1024 } });
    const started = Date.now();
    const response = await fetch(proxy.url + BLOB_PATH);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), String(BLOB.length));
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), BLOB);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 400, `the body arrived in ${elapsed} ms`);
  });

  it("truncates the body after the original headers", async () => {
    fresh();
    proxy.inject({ fault: { kind: "truncate", afterBytes: 1000 } });
    const response = await fetch(proxy.url + BLOB_PATH);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), String(BLOB.length), "the original Content-Length");
    assert.equal(response.headers.get("docker-content-digest"), BLOB_DIGEST);
    let received: number | undefined;
    try {
      received = (await response.arrayBuffer()).byteLength;
    } catch {
      // the body read failing is the expected outcome
    }
    if (received !== undefined) assert.ok(received < BLOB.length, `received ${received} bytes`);
    assert.equal(proxy.requests[0]?.status, 200);

    // Exactly afterBytes arrive before the connection ends.
    proxy.inject({ times: 1, fault: { kind: "truncate", afterBytes: 1000 } });
    const got = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(proxy.url + BLOB_PATH, (res) => {
        let bytes = 0;
        res.on("data", (chunk: Buffer) => (bytes += chunk.length));
        res.on("error", () => resolve(bytes));
        res.on("close", () => resolve(bytes));
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(got, 1000);
  });

  it("corrupts one byte of the body, keeping length and headers", async () => {
    fresh();
    proxy.inject({ times: 1, fault: { kind: "corrupt" } });
    const response = await fetch(proxy.url + BLOB_PATH);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), String(BLOB.length));
    assert.equal(response.headers.get("docker-content-digest"), BLOB_DIGEST);
    const bytes = Buffer.from(await response.arrayBuffer());
    assert.equal(bytes.length, BLOB.length);
    assert.notDeepEqual(bytes, BLOB);
    const differing = [...bytes].filter((byte, i) => byte !== BLOB[i]).length;
    assert.equal(differing, 1);
  });

  it("answers 502 when the target is unreachable", async () => {
    const port = await freePort();
    const orphan = await startUpstreamProxy(`http://127.0.0.1:${port}`);
    try {
      const response = await fetch(orphan.url + BLOB_PATH);
      assert.equal(response.status, 502);
      await response.arrayBuffer();
      assert.equal(orphan.requests[0]?.status, 502);
      const head = await fetch(orphan.url + BLOB_PATH, { method: "HEAD" });
      assert.equal(head.status, 502);
    } finally {
      await orphan.close();
    }
  });

  it("hangs until the client gives up, and close() still ends hung sockets promptly", async () => {
    const hanging = await startUpstreamProxy(upstream.url);
    hanging.inject({ fault: { kind: "hang" } });
    await assert.rejects(fetch(hanging.url + BLOB_PATH, { signal: AbortSignal.timeout(200) }), { name: "TimeoutError" });
    assert.equal(hanging.requests[0]?.status, 0);

    // A client with no timeout at all: only close() ends its request.
    const pending = new Promise<string>((resolve) => {
      const req = httpRequest(hanging.url + BLOB_PATH, () => resolve("answered"));
      req.on("error", (err) => resolve(`error: ${err.message}`));
      req.end();
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(hanging.requests.length, 2);
    const started = Date.now();
    await hanging.close();
    assert.ok(Date.now() - started < 1000, `close() took ${Date.now() - started} ms`);
    assert.match(await pending, /^error: /);
    await hanging.close(); // a second close() resolves too
  });
});
