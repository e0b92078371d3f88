/**
 * storage.s3.loglevel and useragent at the transport, against a real local HTTP server: one line per
 * attempt (a retried request logs each attempt), the canonical request only with
 * debugwithsigning and never the session token in it, documents only with debugwithhttpbody and
 * never object data, and berth's User-Agent on every request.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { DEFAULT_RETRY_POLICY } from "../src/driver/s3/retry-policy.js";
import { credentialSource } from "../src/driver/s3/s3-credentials.js";
import { userAgent } from "../src/driver/s3/s3-options.js";
import { S3RequestLog, type S3LogLevel } from "../src/driver/s3/s3-request-log.js";
import { S3Transport } from "../src/driver/s3/s3-transport.js";

describe("S3 request log (storage.s3.loglevel) and User-Agent", () => {
  let server: Server;
  let port: number;
  let attempts = 0;
  const userAgents: string[] = [];

  before(async () => {
    // The first request to /retry answers 503 SlowDown; everything else 200 with an XML body.
    server = createServer((req, res) => {
      userAgents.push(req.headers["user-agent"] ?? "");
      req.resume();
      req.on("end", () => {
        attempts++;
        if (req.url?.includes("/retry") && attempts === 1) {
          const xml = "<Error><Code>SlowDown</Code><Message>slow</Message></Error>";
          res.writeHead(503, { "content-length": xml.length }).end(xml);
          return;
        }
        const xml = "<ListBucketResult><Name>b</Name></ListBucketResult>";
        res.writeHead(200, { "content-length": xml.length }).end(xml);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  function transportLogging(level: Exclude<S3LogLevel, "off">, lines: Array<Record<string, unknown>>, suffix?: string): S3Transport {
    return new S3Transport(
      { protocol: "http:", hostname: "127.0.0.1", port, host: `127.0.0.1:${port}`, bucketPath: "/bucket", region: "us-east-1" },
      credentialSource({ accesskey: "AKIDEXAMPLE", secretkey: "very-secret-key", sessiontoken: "session-token-secret" }),
      {
        socketTimeoutMs: 5000,
        connectTimeoutMs: 5000,
        maxSockets: 2,
        rejectUnauthorized: true,
        retry: { ...DEFAULT_RETRY_POLICY, baseDelayMs: 1, throttledDelayMs: 1 },
        userAgent: userAgent(suffix),
        requestLog: new S3RequestLog(level, (fields, msg) => lines.push({ ...fields, msg })),
      },
    );
  }

  it("debug: a line per attempt, the retried one twice with its error; berth's User-Agent with the configured suffix", async () => {
    attempts = 0;
    userAgents.length = 0;
    const lines: Array<Record<string, unknown>> = [];
    const transport = transportLogging("debug", lines, "ci-fleet/7");
    try {
      await transport.send({ operation: "GetObject", method: "GET", key: "docker/retry" });
    } finally {
      transport.destroy();
    }
    assert.equal(lines.length, 2);
    assert.deepEqual(
      lines.map((l) => [l.operation, l.method, l.key, l.status, l.attempt, l.msg]),
      [
        ["GetObject", "GET", "docker/retry", 503, 1, "s3 request failed"],
        ["GetObject", "GET", "docker/retry", 200, 2, "s3 request"],
      ],
    );
    assert.match(String(lines[0]!.err), /SlowDown/);
    assert.equal(lines[0]!.canonicalRequest, undefined);
    assert.equal(lines[1]!.responseBody, undefined);
    assert.equal(userAgents.length, 2);
    assert.ok(userAgents.every((ua) => /^berth\/\d+\.\d+\.\d+\S* ci-fleet\/7$/.test(ua)), userAgents.join(", "));
  });

  it("debugwithsigning: the canonical request, with the session token masked", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const transport = transportLogging("debugwithsigning", lines);
    try {
      await transport.send({ operation: "ListObjectsV2", method: "GET", query: [["list-type", "2"], ["prefix", "docker/"]] });
    } finally {
      transport.destroy();
    }
    assert.equal(lines.length, 1);
    const canonical = String(lines[0]!.canonicalRequest);
    assert.match(canonical, /^GET\n\/bucket\n/);
    assert.match(canonical, /\nx-amz-security-token:\*{8}\n/);
    assert.ok(!JSON.stringify(lines).includes("session-token-secret") && !JSON.stringify(lines).includes("very-secret-key"));
    assert.equal(lines[0]!.query, "list-type=2&prefix=docker/");
  });

  it("debugwithhttpbody: the documents berth sent and read, never object data", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const transport = transportLogging("debugwithhttpbody", lines);
    try {
      await transport.send({ operation: "DeleteObjects", method: "POST", query: [["delete", ""]], body: Buffer.from("<Delete><Object><Key>k</Key></Object></Delete>"), signedBody: true });
      await transport.send({ operation: "PutObject", method: "PUT", key: "blob/data", body: Buffer.from("layer bytes, not logged") });
    } finally {
      transport.destroy();
    }
    assert.equal(lines[0]!.requestBody, "<Delete><Object><Key>k</Key></Object></Delete>");
    assert.equal(lines[0]!.query, "delete");
    assert.match(String(lines[0]!.responseBody), /<ListBucketResult>/);
    assert.equal(lines[1]!.requestBody, undefined);
    assert.ok(!JSON.stringify(lines).includes("layer bytes"));
  });
});
