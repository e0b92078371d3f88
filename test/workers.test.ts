import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { request } from "node:http";
import { startBerth, type BerthProcess } from "./support/berth-process.js";

/** One request on a fresh connection, so the cluster's primary hands it to the next worker. */
function send(url: string, method: string, body?: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false, headers: { Connection: "close", ...(body ? { "Content-Length": String(body.length) } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("berth serve --workers 2", () => {
  let registry: BerthProcess;
  before(async () => {
    registry = await startBerth({ args: ["--workers", "2"] });
  });
  after(async () => {
    assert.equal(await registry.stop(), 0);
  });

  it("starts two workers sharing the port", async () => {
    await waitFor(() => (registry.log().match(/listening on/g) ?? []).length >= 2);
    assert.match(registry.log(), /starting 2 workers/);
  });

  it("finishes a chunked upload whose chunks went to different workers, and serves it from every worker", async () => {
    const data = randomBytes(6 * 256 * 1024);
    const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
    const started = await send(`${registry.url}/v2/workers/app/blobs/uploads/`, "POST");
    assert.equal(started.status, 202);
    let location = String(started.headers.location);
    for (let offset = 0; offset < data.length; offset += 256 * 1024) {
      const chunk = data.subarray(offset, offset + 256 * 1024);
      const patched = await send(location, "PATCH", chunk, { "Content-Range": `${offset}-${offset + chunk.length - 1}`, "Content-Type": "application/octet-stream" });
      assert.equal(patched.status, 202, patched.body.toString());
      location = String(patched.headers.location);
    }
    const finished = await send(`${location}&digest=${digest}`, "PUT");
    assert.equal(finished.status, 201, finished.body.toString());
    for (let i = 0; i < 4; i++) {
      const pulled = await send(`${registry.url}/v2/workers/app/blobs/${digest}`, "GET");
      assert.equal(pulled.status, 200);
      assert.equal(createHash("sha256").update(pulled.body).digest("hex"), digest.slice(7));
    }
  });

  it("refuses to start workers on in-memory storage", async () => {
    await assert.rejects(
      startBerth({ args: ["--workers", "2"], configYaml: "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.1:0\n" }),
      /shared storage/,
    );
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
