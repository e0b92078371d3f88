/**
 * Blob downloads with sendfile(2): the native pump on its own (loopback sockets, real files), then
 * through the server — bytes, ranges, keep-alive and pipelining after a kernel-sent body, clients
 * that stall, read slowly or go away.
 */
import assert from "node:assert/strict";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { sendfilePump, type SendfilePump } from "../src/native/sendfile-pump.js";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { RegistryClient, randomBlob, uniqueName, waitFor } from "./support/registry-client.js";
import { collect, connect, fdOf, openFds, parseResponses, socketPair, threadNames } from "./support/raw-sockets.js";

const pump = sendfilePump();
const required = process.env.CI === "true";
const skip = !pump && !required && "native sendfile addon not built (npm install builds it)";

const MiB = 1024 * 1024;

describe("sendfile pump", { skip }, () => {
  let dir: string;
  let path: string;
  const content = randomBlob(6 * MiB);
  let p: SendfilePump;

  before(async () => {
    assert.ok(pump, "CI requires the native sendfile addon");
    p = pump;
    dir = await mkdtemp(join(tmpdir(), "berth-sendfile-"));
    path = join(dir, "blob");
    await writeFile(path, content);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("sends exactly [offset, offset+length) of a file, and the caller may close its descriptor at once", async () => {
    const pair = await socketPair();
    const received = collect(pair.receiver);
    const fd = openSync(path, "r");
    const transfer = p.send(fdOf(pair.sender), fd, 1000, 3 * MiB, 0);
    closeSync(fd);
    await transfer.done;
    pair.sender.end();
    assert.ok((await received).equals(content.subarray(1000, 1000 + 3 * MiB)));
    pair.close();
    assert.ok(threadNames("self").includes("berth-sendfile"), "one named pump thread");
  });

  test("sixteen transfers at once each get their own bytes", async () => {
    const pairs = await Promise.all(Array.from({ length: 16 }, socketPair));
    const fd = openSync(path, "r");
    const results = pairs.map((pair, i) => {
      const received = collect(pair.receiver);
      const offset = i * 4096;
      const done = p.send(fdOf(pair.sender), fd, offset, 2 * MiB, 0).done.then(() => pair.sender.end());
      return { received, done, offset };
    });
    closeSync(fd);
    for (const { received, done, offset } of results) {
      await done;
      assert.ok((await received).equals(content.subarray(offset, offset + 2 * MiB)), `transfer at ${offset}`);
    }
    for (const pair of pairs) pair.close();
  });

  test("a peer that accepts nothing fails the transfer with ETIMEDOUT after stallMs", async () => {
    const big = join(dir, "big");
    await writeFile(big, Buffer.alloc(64 * MiB, 7));
    const pair = await socketPair();
    pair.receiver.pause();
    const fd = openSync(big, "r");
    const started = Date.now();
    const transfer = p.send(fdOf(pair.sender), fd, 0, 64 * MiB, 500);
    closeSync(fd);
    await assert.rejects(transfer.done, (err: NodeJS.ErrnoException) => err.code === "ETIMEDOUT");
    assert.ok(Date.now() - started >= 500, `failed after ${Date.now() - started} ms`);
    pair.close();
  });

  test("a peer that goes away fails the transfer with EPIPE or ECONNRESET", async () => {
    const big = join(dir, "big");
    const pair = await socketPair();
    pair.receiver.once("data", () => pair.receiver.destroy());
    const fd = openSync(big, "r");
    const transfer = p.send(fdOf(pair.sender), fd, 0, 64 * MiB, 0);
    closeSync(fd);
    await assert.rejects(transfer.done, (err: NodeJS.ErrnoException) => err.code === "EPIPE" || err.code === "ECONNRESET");
    pair.close();
  });

  test("cancel ends a transfer with ECANCELED", async () => {
    const pair = await socketPair();
    pair.receiver.pause();
    const fd = openSync(join(dir, "big"), "r");
    const transfer = p.send(fdOf(pair.sender), fd, 0, 64 * MiB, 0);
    closeSync(fd);
    setTimeout(() => transfer.cancel(), 100);
    await assert.rejects(transfer.done, (err: NodeJS.ErrnoException) => err.code === "ECANCELED");
    pair.close();
  });

  test("a file shorter than the range fails with EIO after sending what it has", async () => {
    const pair = await socketPair();
    const received = collect(pair.receiver);
    const fd = openSync(path, "r");
    const transfer = p.send(fdOf(pair.sender), fd, content.length - 100, 1000, 0);
    closeSync(fd);
    await assert.rejects(transfer.done, (err: NodeJS.ErrnoException) => err.code === "EIO");
    pair.sender.end();
    assert.ok((await received).equals(content.subarray(content.length - 100)));
    pair.close();
  });
});

describe("blob downloads through the server (http.timeout.inactivity: 1s)", { skip }, () => {
  let berth: BerthProcess;
  let client: RegistryClient;
  const name = uniqueName("sendfile");
  const blob = randomBlob(48 * MiB);
  let digest: string;
  let pid: number;

  before(async () => {
    berth = await startBerth({ configYaml: testConfig({ http: "  timeout:\n    inactivity: 1s" }) });
    client = new RegistryClient(berth.url);
    digest = await client.pushBlob(name, blob);
    pid = berth.child.pid!;
  });

  after(async () => {
    await berth.stop();
  });

  test("a whole blob arrives intact, sent by the kernel from the pump thread", async () => {
    const { response, bytes } = await client.get(`/v2/${name}/blobs/${digest}`);
    assert.equal(response.status, 200);
    assert.ok(bytes.equals(blob));
    assert.ok(threadNames(pid).includes("berth-sendfile"), `threads: ${threadNames(pid).join(", ")}`);
  });

  test("pipelined requests after a sent body are answered in order on the same connection", async () => {
    const socket = await connect(berth);
    const received = collect(socket);
    socket.write(
      `GET /v2/${name}/blobs/${digest} HTTP/1.1\r\nHost: x\r\nRange: bytes=100-1048675\r\n\r\n` +
        `GET /v2/${name}/blobs/${digest} HTTP/1.1\r\nHost: x\r\n\r\n` +
        `GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    const [range, whole, base] = parseResponses(await received);
    assert.equal(range?.status, 206);
    assert.equal(range?.headers.get("content-range"), `bytes 100-1048675/${blob.length}`);
    assert.ok(range?.body.equals(blob.subarray(100, 1048676)));
    assert.equal(whole?.status, 200);
    assert.ok(whole?.body.equals(blob));
    assert.equal(base?.status, 200);
  });

  test("a client that stops reading is cut after the inactivity timeout, and its descriptors are released", async () => {
    const baseline = openFds(pid);
    const socket = await connect(berth);
    socket.pause();
    socket.write(`GET /v2/${name}/blobs/${digest} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const received = collect(socket);
    socket.resume();
    const bytes = await received;
    assert.ok(bytes.length < blob.length, `the server cut the response (${bytes.length} bytes arrived)`);
    await waitFor(() => openFds(pid) <= baseline, "the server's descriptors back to the baseline");
  });

  test("a slow but steady reader gets every byte: inactivity bounds silence, not the length of a download", async () => {
    const socket = await connect(berth);
    socket.write(`GET /v2/${name}/blobs/${digest} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const chunks: Buffer[] = [];
    let thisTick = 0;
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      socket.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        thisTick += chunk.length;
        if (thisTick >= 4 * MiB) {
          socket.pause();
          thisTick = 0;
          setTimeout(() => socket.resume(), 250);
        }
      });
      socket.once("close", () => resolve());
      socket.once("error", reject);
    });
    const [response] = parseResponses(Buffer.concat(chunks));
    assert.ok(Date.now() - started > 1500, `took ${Date.now() - started} ms: longer than the 1 s timeout`);
    assert.equal(response?.status, 200);
    assert.ok(response?.body.equals(blob));
  });

  test("a client that disconnects mid-download leaves the server serving and its descriptors released", async () => {
    const baseline = openFds(pid);
    const socket = await connect(berth);
    socket.write(`GET /v2/${name}/blobs/${digest} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await new Promise<void>((resolve) => socket.once("data", () => resolve()));
    socket.destroy();
    await waitFor(() => openFds(pid) <= baseline, "the server's descriptors back to the baseline");
    const { response, bytes } = await client.get(`/v2/${name}/blobs/${digest}`, { Range: "bytes=0-9" });
    assert.equal(response.status, 206);
    assert.ok(bytes.equals(blob.subarray(0, 10)));
  });
});
