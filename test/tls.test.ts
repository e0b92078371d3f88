/**
 * HTTPS (http.tls) over real `berth serve` processes, with certificates the test makes (openssl):
 * HTTP/2 and HTTP/1.1 on one port, the API working through HTTP/2 (chunked uploads, Range,
 * errors, absolute Locations), mutual TLS, the minimum version, cipher suites, http2.disabled,
 * graceful stop with HTTP/2 sessions open, and start-up errors naming the key.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { connect as http2Connect, type ClientHttp2Session, type IncomingHttpHeaders } from "node:http2";
import { request as httpsRequest } from "node:https";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { after, before, describe, it } from "node:test";
import { startBerth, type BerthProcess } from "./support/berth-process.js";
import { requireProgram, run, describeRun } from "./support/external-program.js";
import { digestOf, randomBlob } from "./support/registry-client.js";
import { createTestPki, type CertFiles, type TestPki } from "./support/test-pki.js";

const openssl = requireProgram("openssl");
const curl = requireProgram("curl");

function configWith(tls: string, extra = ""): string {
  return `version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  inmemory: {}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
  secret: tls-test
  tls:
${tls}
${extra}`;
}

interface H2Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request on an HTTP/2 session. */
function h2(session: ClientHttp2Session, method: string, path: string, options: { headers?: Record<string, string>; body?: Uint8Array } = {}): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": method, ":path": path, ...options.headers }, { endStream: options.body === undefined });
    const chunks: Buffer[] = [];
    let headers: IncomingHttpHeaders = {};
    stream.on("response", (h) => (headers = h));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve({ status: Number(headers[":status"]), headers, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    if (options.body !== undefined) stream.end(options.body);
  });
}

function h2Session(url: string, tls: ConnectionOptions): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(url, tls);
    session.once("connect", () => resolve(session));
    session.once("error", reject);
  });
}

/** An HTTPS/1.1 request; resolves with status, headers and the negotiated protocol. */
function https1(url: string, tls: ConnectionOptions, method = "GET"): Promise<{ status: number; headers: Record<string, unknown>; alpn: string | false | null; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method, ...tls, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, alpn: (res.socket as unknown as { alpnProtocol?: string | false }).alpnProtocol ?? null, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A bare TLS handshake: the negotiated protocol, version and cipher, or the error. */
function handshake(port: number, options: ConnectionOptions): Promise<{ ok: true; alpn: string | false | null; version: string | null; cipher: string } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, servername: "localhost", ...options }, () => {
      // With TLS 1.3 a refused client certificate is only reported after the handshake: wait a moment.
      setTimeout(() => {
        if (socket.destroyed) return;
        resolve({ ok: true, alpn: socket.alpnProtocol, version: socket.getProtocol(), cipher: socket.getCipher().name });
        socket.end();
      }, 150);
    });
    socket.on("error", (err) => resolve({ ok: false, error: err.message }));
    socket.on("close", () => resolve({ ok: false, error: "closed" }));
  });
}

describe("TLS", { skip: openssl.skip }, () => {
  let pki: TestPki;
  let server: CertFiles;
  let clientCA: CertFiles;
  let client: CertFiles;
  let strangerClient: CertFiles;
  let ca: Buffer;
  let berth: BerthProcess;
  let port: number;

  before(async () => {
    pki = await createTestPki(openssl.path);
    server = await pki.issue("registry", { serverNames: { dns: ["localhost"], ips: ["127.0.0.1"] }, keyType: "ec" });
    clientCA = await pki.newRoot("client-ca");
    client = await pki.issue("ci-runner", { client: true, issuer: clientCA });
    const otherCA = await pki.newRoot("other-client-ca");
    strangerClient = await pki.issue("stranger", { client: true, issuer: otherCA });
    ca = await readFile(pki.ca.cert);
    berth = await startBerth({ configYaml: configWith(`    certificate: ${server.cert}\n    key: ${server.key}`) });
    port = Number(new URL(berth.url).port);
  });

  after(async () => {
    await berth?.stop();
    await pki?.cleanup();
  });

  it("berth announces an https URL", () => {
    assert.match(berth.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it("HTTP/2 and HTTP/1.1 are both offered on the port (ALPN), and GET /v2/ answers on each", async () => {
    const h1 = await https1(`${berth.url}/v2/`, { ca });
    assert.equal(h1.status, 200);
    assert.equal(h1.headers["docker-distribution-api-version"], "registry/2.0");
    const session = await h2Session(berth.url, { ca });
    try {
      assert.equal(session.alpnProtocol, "h2");
      const response = await h2(session, "GET", "/v2/");
      assert.equal(response.status, 200);
      assert.equal(response.headers["docker-distribution-api-version"], "registry/2.0");
    } finally {
      session.close();
    }
  });

  it("over HTTP/2: a chunked upload (POST, PATCH, PUT) with absolute https Locations, a Range read, HEAD, and an error body", async () => {
    const session = await h2Session(berth.url, { ca });
    try {
      const blob = randomBlob(3 * 1024 * 1024 + 7);
      const digest = digestOf(blob);
      const started = await h2(session, "POST", "/v2/h2/app/blobs/uploads/");
      assert.equal(started.status, 202);
      let location = String(started.headers["location"]);
      assert.match(location, new RegExp(`^https://127\\.0\\.0\\.1:${port}/v2/h2/app/blobs/uploads/`), "Location is built from :authority");
      const half = Math.floor(blob.length / 2);
      for (const [start, end] of [
        [0, half],
        [half, blob.length],
      ] as const) {
        const url = new URL(location);
        const patched = await h2(session, "PATCH", url.pathname + url.search, {
          headers: { "content-type": "application/octet-stream", "content-range": `${start}-${end - 1}` },
          body: blob.subarray(start, end),
        });
        assert.equal(patched.status, 202, patched.body.toString());
        location = String(patched.headers["location"]);
      }
      const done = new URL(location);
      done.searchParams.set("digest", digest);
      const put = await h2(session, "PUT", done.pathname + done.search);
      assert.equal(put.status, 201, put.body.toString());

      const whole = await h2(session, "GET", `/v2/h2/app/blobs/${digest}`);
      assert.equal(whole.status, 200);
      assert.equal(digestOf(whole.body), digest, "a multi-MiB blob read back over HTTP/2 is intact");
      const range = await h2(session, "GET", `/v2/h2/app/blobs/${digest}`, { headers: { range: "bytes=10-19" } });
      assert.equal(range.status, 206);
      assert.deepEqual(range.body, blob.subarray(10, 20));
      const head = await h2(session, "HEAD", `/v2/h2/app/blobs/${digest}`);
      assert.equal(head.status, 200);
      assert.equal(head.headers["content-length"], String(blob.length));
      assert.equal(head.body.length, 0);
      const missing = await h2(session, "GET", `/v2/h2/app/blobs/${digestOf("nothing")}`);
      assert.equal(missing.status, 404);
      assert.equal((JSON.parse(missing.body.toString()) as { errors: { code: string }[] }).errors[0]?.code, "BLOB_UNKNOWN");
    } finally {
      session.close();
    }
  });

  it("curl --http2 speaks HTTP/2 and curl --http1.1 HTTP/1.1, verifying the certificate with the test CA", { skip: curl.skip }, async () => {
    for (const [flag, version] of [
      ["--http2", "2"],
      ["--http1.1", "1.1"],
    ] as const) {
      const result = await run(curl.path!, ["-sS", flag, "--cacert", pki.ca.cert, "-o", "/dev/null", "-w", "%{http_code} %{http_version}", `${berth.url}/v2/`]);
      assert.equal(result.code, 0, describeRun(result));
      assert.equal(result.stdout, `200 ${version}`);
    }
    const untrusted = await run(curl.path!, ["-sS", "--http2", "-o", "/dev/null", `${berth.url}/v2/`]);
    assert.notEqual(untrusted.code, 0, "curl without the CA refuses the certificate");
  });

  it("a client offering at most TLS 1.1 is refused at the default minimum (tls1.2)", async () => {
    const old = await handshake(port, { ca, maxVersion: "TLSv1.1", minVersion: "TLSv1" });
    assert.equal(old.ok, false);
    const current = await handshake(port, { ca, maxVersion: "TLSv1.2" });
    assert.ok(current.ok && current.version === "TLSv1.2");
    assert.ok(/GCM|CHACHA20/.test(current.cipher), `default TLS 1.2 suites are AEAD only, got ${current.cipher}`);
  });

  it("minimumtls tls1.3 refuses TLS 1.2 clients", async () => {
    const strict = await startBerth({ configYaml: configWith(`    certificate: ${server.cert}\n    key: ${server.key}\n    minimumtls: tls1.3`) });
    try {
      const strictPort = Number(new URL(strict.url).port);
      assert.equal((await handshake(strictPort, { ca, maxVersion: "TLSv1.2" })).ok, false);
      const ok = await handshake(strictPort, { ca });
      assert.ok(ok.ok && ok.version === "TLSv1.3");
    } finally {
      await strict.stop();
    }
  });

  it("ciphersuites restricts TLS 1.2 to the listed suites", async () => {
    const rsaServer = await pki.issue("registry-rsa", { serverNames: { ips: ["127.0.0.1"], dns: ["localhost"] } });
    const limited = await startBerth({
      configYaml: configWith(`    certificate: ${rsaServer.cert}\n    key: ${rsaServer.key}\n    ciphersuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]`),
    });
    try {
      const limitedPort = Number(new URL(limited.url).port);
      const negotiated = await handshake(limitedPort, { ca, maxVersion: "TLSv1.2" });
      assert.ok(negotiated.ok, JSON.stringify(negotiated));
      assert.equal(negotiated.cipher, "ECDHE-RSA-AES128-GCM-SHA256");
      const other = await handshake(limitedPort, { ca, maxVersion: "TLSv1.2", ciphers: "ECDHE-RSA-AES256-GCM-SHA384" });
      assert.equal(other.ok, false, "a client without the listed suite cannot connect over TLS 1.2");
    } finally {
      await limited.stop();
    }
  });

  it("http.http2.disabled offers HTTP/1.1 only", async () => {
    const h1only = await startBerth({ configYaml: configWith(`    certificate: ${server.cert}\n    key: ${server.key}`, "  http2:\n    disabled: true\n") });
    try {
      const negotiated = await handshake(Number(new URL(h1only.url).port), { ca, ALPNProtocols: ["h2", "http/1.1"] });
      assert.ok(negotiated.ok && negotiated.alpn === "http/1.1", JSON.stringify(negotiated));
      assert.equal((await https1(`${h1only.url}/v2/`, { ca })).status, 200);
    } finally {
      await h1only.stop();
    }
  });

  describe("mutual TLS (http.tls.clientcas)", () => {
    let mtls: BerthProcess;
    let mtlsPort: number;
    before(async () => {
      mtls = await startBerth({ configYaml: configWith(`    certificate: ${server.cert}\n    key: ${server.key}\n    clientcas:\n      - ${clientCA.cert}`) });
      mtlsPort = Number(new URL(mtls.url).port);
    });
    after(async () => {
      await mtls?.stop();
    });

    it("a client without a certificate is refused", async () => {
      assert.equal((await handshake(mtlsPort, { ca })).ok, false);
      await assert.rejects(https1(`${mtls.url}/v2/`, { ca }));
    });

    it("a client whose certificate another CA signed is refused", async () => {
      const tls = { ca, cert: await readFile(strangerClient.cert), key: await readFile(strangerClient.key) };
      assert.equal((await handshake(mtlsPort, tls)).ok, false);
    });

    it("a client with a certificate from a client CA is served, over HTTP/2 and HTTP/1.1", async () => {
      const tls = { ca, cert: await readFile(client.cert), key: await readFile(client.key) };
      assert.equal((await https1(`${mtls.url}/v2/`, tls)).status, 200);
      const session = await h2Session(mtls.url, tls);
      try {
        assert.equal((await h2(session, "GET", "/v2/")).status, 200);
      } finally {
        session.close();
      }
    });

    it("curl without a client certificate fails, with one succeeds", { skip: curl.skip }, async () => {
      const without = await run(curl.path!, ["-sS", "--cacert", pki.ca.cert, "-o", "/dev/null", `${mtls.url}/v2/`]);
      assert.notEqual(without.code, 0);
      const withCert = await run(curl.path!, ["-sS", "--http2", "--cacert", pki.ca.cert, "--cert", client.cert, "--key", client.key, "-o", "/dev/null", "-w", "%{http_code}", `${mtls.url}/v2/`]);
      assert.equal(withCert.stdout, "200", describeRun(withCert));
    });
  });

  it("stops promptly on SIGTERM while an idle HTTP/2 session and an HTTP/1.1 keep-alive connection are open", async () => {
    const stopping = await startBerth({ configYaml: configWith(`    certificate: ${server.cert}\n    key: ${server.key}`) });
    const session = await h2Session(stopping.url, { ca });
    session.on("error", () => undefined);
    assert.equal((await h2(session, "GET", "/v2/")).status, 200);
    const started = Date.now();
    const code = await stopping.stop();
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`);
    session.destroy();
  });

  it("start-up fails naming the key when a TLS file is missing or does not match", async () => {
    const cases: Array<[string, RegExp]> = [
      [`    certificate: /nonexistent/cert.pem\n    key: ${server.key}`, /http\.tls\.certificate: cannot read \/nonexistent\/cert\.pem/],
      [`    certificate: ${server.cert}\n    key: /nonexistent/key.pem`, /http\.tls\.key: cannot read/],
      [`    certificate: ${server.cert}\n    key: ${client.key}`, /http\.tls\.key: .* is not the private key of the certificate/],
      [`    certificate: ${server.key}\n    key: ${server.key}`, /http\.tls\.certificate: .* holds no usable PEM certificate/],
      [`    certificate: ${server.cert}\n    key: ${server.key}\n    clientcas: [${server.key}]`, /http\.tls\.clientcas: .* holds no PEM certificate/],
    ];
    for (const [tls, message] of cases) {
      await assert.rejects(startBerth({ configYaml: configWith(tls) }), (err: Error) => {
        assert.match(err.message, message);
        return true;
      });
    }
  });
});
