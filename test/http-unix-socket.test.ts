/**
 * http.net: unix. berth listens on a Unix socket at http.addr; the registry API answers over it,
 * from Node and from curl --unix-socket (curl started and waited for by PID by run()).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { serve, type RunningRegistry } from "../src/cli/serve.js";
import { parseConfig } from "../src/config/load-config.js";
import { createLogger } from "../src/log/logger.js";
import { testConfig } from "./support/berth-process.js";
import { requireProgram, run } from "./support/external-program.js";
import { digestOf, randomBlob } from "./support/registry-client.js";

const curl = requireProgram("curl");
const quiet = createLogger({ level: "error", formatter: "json", destination: { write: () => true } as unknown as NodeJS.WritableStream });

/** One request over the socket; the body read whole (small answers only). */
function unixRequest(socketPath: string, method: string, path: string, body?: Buffer): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { Host: "registry.local", ...(body ? { "Content-Length": body.length } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("http.net: unix", () => {
  let work: string;
  let socketPath: string;
  let running: RunningRegistry;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-unix-"));
    socketPath = join(work, "registry.sock");
    const yaml = testConfig({}).replace("  addr: 127.0.0.1:0", `  net: unix\n  addr: ${socketPath}`).replace("{{root}}", join(work, "root"));
    running = await serve(parseConfig(yaml, {}, "unix.yml").config, [], quiet);
  });
  after(async () => {
    await running?.close();
    await rm(work, { recursive: true, force: true });
  });

  it("listens on the socket file and names it as its URL", async () => {
    assert.ok((await stat(socketPath)).isSocket());
    assert.equal(running.url, `unix:${socketPath}`);
  });

  it("GET /v2/ answers 200 over the socket", async () => {
    const response = await unixRequest(socketPath, "GET", "/v2/");
    assert.equal(response.status, 200);
    assert.equal(response.headers["docker-distribution-api-version"], "registry/2.0");
  });

  it("a blob pushed over the socket is served back, its Location built from the Host header", async () => {
    const bytes = randomBlob(100);
    const digest = digestOf(bytes);
    const put = await unixRequest(socketPath, "POST", `/v2/unix/app/blobs/uploads/?digest=${digest}`, bytes);
    assert.equal(put.status, 201);
    assert.equal(put.headers.location, `http://registry.local/v2/unix/app/blobs/${digest}`);
    const get = await unixRequest(socketPath, "GET", `/v2/unix/app/blobs/${digest}`);
    assert.equal(get.status, 200);
    assert.equal(get.body, bytes.toString());
  });

  it("curl --unix-socket gets the API version and a 404 BLOB_UNKNOWN", { skip: curl.skip }, async () => {
    const ok = await run(curl.path!, ["-sS", "--unix-socket", socketPath, "-o", "/dev/null", "-w", "%{http_code}", "http://localhost/v2/"]);
    assert.equal(ok.stdout, "200");
    const missing = await run(curl.path!, ["-sS", "--unix-socket", socketPath, `http://localhost/v2/unix/app/blobs/${digestOf("nothing")}`]);
    assert.equal((JSON.parse(missing.stdout) as { errors: Array<{ code: string }> }).errors[0]!.code, "BLOB_UNKNOWN");
  });
});

describe("http.net: unix configuration", () => {
  it("refuses to start where the socket file already exists, as distribution", async () => {
    const work = await mkdtemp(join(tmpdir(), "berth-unix-"));
    const socketPath = join(work, "registry.sock");
    const yaml = testConfig({}).replace("  addr: 127.0.0.1:0", `  net: unix\n  addr: ${socketPath}`).replace("{{root}}", join(work, "root"));
    const first = await serve(parseConfig(yaml, {}, "unix.yml").config, [], quiet);
    try {
      await assert.rejects(serve(parseConfig(yaml, {}, "unix.yml").config, [], quiet), /EADDRINUSE/);
    } finally {
      await first.close();
      await rm(work, { recursive: true, force: true });
    }
  });
});
