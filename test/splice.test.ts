/**
 * Blob downloads from S3 moved by the kernel (splice through the native pump): the pump on its
 * own between loopback sockets (exact lengths, what follows left in the source, ends, stalls,
 * cancellation, many at once), then berth on Ceph with redirects off — bytes, ranges, keep-alive
 * after a moved body, clients that go away mid-body, and a process that hashes on first read.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { sendfilePump, type SendfilePump } from "../src/native/sendfile-pump.js";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { cephSkipReason, s3DriverConfig, startCephS3, type CephS3 } from "./support/ceph-s3.js";
import { collect, connect, fdOf, openFds, parseResponses, socketPair, threadNames } from "./support/raw-sockets.js";
import { RegistryClient, randomBlob, uniqueName } from "./support/registry-client.js";

const pump = sendfilePump();
const required = process.env.CI === "true";
const skip = !pump && !required && "native sendfile addon not built (npm install builds it)";
const MiB = 1024 * 1024;

/**
 * Bytes berth's main thread has read from descriptors (its `rchar`) since this was called, as a
 * function: a body moved by the pump is never read there.
 */
function mainThreadReads(berth: BerthProcess): () => number {
  const pid = berth.child.pid!;
  const rchar = (): number => Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${pid}/io`, "utf8"))![1]);
  const start = rchar();
  return () => rchar() - start;
}

/** Writes `bytes` to `socket`, resolving once the kernel has them. */
function send(socket: Socket, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.write(bytes, (err) => (err ? reject(err) : resolve())));
}

describe("splice pump", { skip }, () => {
  let p: SendfilePump;
  before(() => {
    assert.ok(pump, "CI requires the native sendfile addon");
    p = pump;
  });

  test("moves exactly `length` bytes, and what follows stays in the source for its reader", async () => {
    // The source is read by the pump only: Node must not read it meanwhile.
    const from = await socketPair({ paused: true });
    const to = await socketPair();
    const body = randomBytes(9 * MiB + 3);
    const received = collect(to.receiver);
    void send(from.receiver, Buffer.concat([body, Buffer.from("NEXT ANSWER")]));
    await p.splice(fdOf(to.sender), fdOf(from.sender), body.length, 0).done;
    to.sender.end();
    assert.ok((await received).equals(body));
    const rest = await new Promise<Buffer>((resolve) => {
      from.sender.once("data", resolve);
      from.sender.resume();
    });
    assert.equal(rest.toString(), "NEXT ANSWER");
    from.close();
    to.close();
  });

  test("eight at once, each larger than a turn's slice, each gets its own bytes", async () => {
    const runs = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const from = await socketPair({ paused: true });
        const to = await socketPair();
        const body = Buffer.alloc(12 * MiB, i + 1);
        body.writeUInt32BE(i, 1000);
        return { from, to, body, received: collect(to.receiver) };
      }),
    );
    const transfers = runs.map(({ from, to, body }) => {
      void send(from.receiver, body);
      return p.splice(fdOf(to.sender), fdOf(from.sender), body.length, 0).done.then(() => to.sender.end());
    });
    await Promise.all(transfers);
    for (const { from, to, body, received } of runs) {
      assert.ok((await received).equals(body));
      from.close();
      to.close();
    }
  });

  test("a source that ends first fails with ECONNRESET after moving what it sent", async () => {
    const from = await socketPair({ paused: true });
    const to = await socketPair();
    const received = collect(to.receiver);
    from.receiver.end(Buffer.alloc(1000, 1));
    await assert.rejects(p.splice(fdOf(to.sender), fdOf(from.sender), 5000, 0).done, (err: NodeJS.ErrnoException) => err.code === "ECONNRESET");
    to.sender.end();
    assert.equal((await received).length, 1000);
    from.close();
    to.close();
  });

  test("a source that sends nothing fails with ETIMEDOUT after stallMs", async () => {
    const from = await socketPair({ paused: true });
    const to = await socketPair();
    const started = Date.now();
    await assert.rejects(p.splice(fdOf(to.sender), fdOf(from.sender), 5000, 300).done, (err: NodeJS.ErrnoException) => err.code === "ETIMEDOUT");
    assert.ok(Date.now() - started >= 300);
    from.close();
    to.close();
  });

  test("a destination that goes away fails with EPIPE or ECONNRESET; cancel with ECANCELED; no descriptor is left", async () => {
    const before = openFds(process.pid);
    const from = await socketPair({ paused: true });
    const to = await socketPair();
    to.receiver.once("data", () => to.receiver.destroy());
    void send(from.receiver, Buffer.alloc(32 * MiB));
    await assert.rejects(p.splice(fdOf(to.sender), fdOf(from.sender), 32 * MiB, 0).done, (err: NodeJS.ErrnoException) => err.code === "EPIPE" || err.code === "ECONNRESET");
    const again = await socketPair({ paused: true });
    const to2 = await socketPair();
    const transfer = p.splice(fdOf(to2.sender), fdOf(again.sender), 1000, 0);
    setTimeout(() => transfer.cancel(), 50);
    await assert.rejects(transfer.done, (err: NodeJS.ErrnoException) => err.code === "ECANCELED");
    for (const pair of [from, to, again, to2]) pair.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(openFds(process.pid), before, "the pump closed its duplicates and its pipes");
  });
});

describe("blob downloads from S3 moved by the kernel", { skip: skip || cephSkipReason() }, () => {
  let ceph: CephS3;
  let berth: BerthProcess;
  let client: RegistryClient;
  const rootdirectory = `/splice-${randomBytes(4).toString("hex")}`;
  const name = uniqueName("splice");
  const blob = randomBlob(20 * MiB + 7);
  let digest: string;
  const config = (): string => testConfig({ driver: s3DriverConfig(ceph, rootdirectory), storage: "  redirect:\n    disable: true" });

  before(async () => {
    ceph = await startCephS3();
    berth = await startBerth({ configYaml: config() });
    client = new RegistryClient(berth.url);
    digest = await client.pushBlob(name, blob, { chunkSize: 8 * MiB });
  });

  after(async () => {
    await berth?.stop();
    await ceph?.stop();
  });

  test("a blob arrives intact, whole and in ranges, and JavaScript never reads its bytes", async () => {
    const read = mainThreadReads(berth);
    const { response, bytes } = await client.get(`/v2/${name}/blobs/${digest}`);
    assert.equal(response.status, 200);
    assert.ok(bytes.equals(blob));
    assert.ok(read() < blob.length / 4, `berth's main thread read ${read()} bytes for a ${blob.length}-byte blob`);
    assert.ok(threadNames(berth.child.pid!).includes("berth-sendfile"));
    const range = await client.get(`/v2/${name}/blobs/${digest}`, { Range: "bytes=1000-5000999" });
    assert.equal(range.response.status, 206);
    assert.ok(range.bytes.equals(blob.subarray(1000, 5001000)));
  });

  test("pipelined requests after a moved body are answered in order on the same connection", async () => {
    const socket = await connect(berth);
    const received = collect(socket);
    socket.write(
      `GET /v2/${name}/blobs/${digest} HTTP/1.1\r\nHost: x\r\n\r\n` +
        `GET /v2/${name}/blobs/${digest} HTTP/1.1\r\nHost: x\r\nRange: bytes=7-1048582\r\n\r\n` +
        `GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    const [whole, range, base] = parseResponses(await received);
    assert.equal(whole?.status, 200);
    assert.ok(whole?.body.equals(blob));
    assert.equal(range?.status, 206);
    assert.ok(range?.body.equals(blob.subarray(7, 1048583)));
    assert.equal(base?.status, 200);
  });

  test("clients that go away mid-body leave no bytes behind for the next download", async () => {
    for (let i = 0; i < 4; i++) {
      const socket = await connect(berth);
      socket.on("error", () => undefined);
      socket.write(`GET /v2/${name}/blobs/${digest} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await new Promise<void>((resolve) => socket.once("data", () => resolve()));
      socket.destroy();
      const { response, bytes } = await client.get(`/v2/${name}/blobs/${digest}`);
      assert.equal(response.status, 200);
      assert.ok(bytes.equals(blob), `download ${i} after a client went away`);
    }
  });

  test("another process, which has not hashed the blob, checks it on its first download and moves it after", async () => {
    const other = await startBerth({ configYaml: config() });
    try {
      const fresh = new RegistryClient(other.url);
      for (const hashed of [true, false]) {
        const read = mainThreadReads(other);
        const { response, bytes } = await fresh.get(`/v2/${name}/blobs/${digest}`);
        assert.equal(response.status, 200);
        assert.ok(bytes.equals(blob));
        if (hashed) assert.ok(read() >= blob.length, `read ${read()} bytes to hash a ${blob.length}-byte blob`);
        else assert.ok(read() < blob.length / 4, `read ${read()} bytes of a blob already hashed`);
      }
    } finally {
      await other.stop();
    }
  });
});
