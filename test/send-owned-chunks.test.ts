/**
 * sendOwnedChunks over a real socket: a stream whose chunks are its own (an object store's body) is
 * sent whole, each chunk freed once the socket took it; other streams, and HTTP/2, are left to the
 * caller's pipe; a client that goes away part way ends the transfer with the stream destroyed.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough, Readable } from "node:stream";
import { describe, it } from "node:test";
import { markOwnedChunks } from "../src/driver/storage-driver.js";
import { canReleaseChunks } from "../src/native/release-buffer.js";
import { sendOwnedChunks } from "../src/server/send-owned-chunks.js";

const skip = !canReleaseChunks && process.env.CI !== "true" && "native release_buffer addon not built (npm install builds it)";
const KiB = 1024;

/** A server answering each request with `respond`, on a free loopback port. */
async function serve(respond: (req: IncomingMessage, res: ServerResponse) => Promise<void>): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => void respond(req, res).catch(() => res.destroy()));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

function fetchBody(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (part: Buffer) => parts.push(part));
      res.on("end", () => resolve(Buffer.concat(parts)));
      res.on("error", reject);
    }).on("error", reject);
  });
}

/** Chunks of their own memory (each its whole ArrayBuffer), as a socket read gives them. */
function ownChunks(count: number, size: number): Buffer[] {
  return Array.from({ length: count }, () => {
    const chunk = Buffer.allocUnsafeSlow(size);
    randomBytes(size).copy(chunk);
    return chunk;
  });
}

describe("sendOwnedChunks", { skip }, () => {
  it("sends a stream of owned chunks whole and frees each chunk once sent", async () => {
    const chunks = ownChunks(64, 64 * KiB);
    const digest = createHash("sha256").update(Buffer.concat(chunks)).digest("hex");
    let outcome: Promise<boolean> | undefined;
    const { url, server } = await serve(async (_req, res) => {
      res.writeHead(200, { "Content-Length": 64 * 64 * KiB });
      outcome = sendOwnedChunks(res, markOwnedChunks(Readable.from(chunks, { objectMode: false })));
      await outcome;
    });
    try {
      const body = await fetchBody(url);
      assert.equal(createHash("sha256").update(body).digest("hex"), digest);
      assert.equal(await outcome, true);
      assert.deepEqual(chunks.map((chunk, i) => [i, chunk.length]).filter(([, length]) => length !== 0), [], "every chunk's memory was freed");
    } finally {
      server.close();
    }
  });

  it("leaves a stream whose chunks are not its own to the caller, and touches nothing", async () => {
    const chunks = ownChunks(4, 16 * KiB);
    let taken: boolean | undefined;
    const { url, server } = await serve(async (_req, res) => {
      res.writeHead(200, { "Content-Length": 4 * 16 * KiB });
      const stream = Readable.from(chunks, { objectMode: false });
      taken = await sendOwnedChunks(res, stream);
      stream.pipe(res);
    });
    try {
      assert.equal((await fetchBody(url)).length, 4 * 16 * KiB);
      assert.equal(taken, false);
      assert.deepEqual(chunks.map((chunk) => chunk.length), [16 * KiB, 16 * KiB, 16 * KiB, 16 * KiB]);
    } finally {
      server.close();
    }
  });

  it("a client that goes away part way: rejects, and the stream is destroyed", async () => {
    const source = new PassThrough();
    markOwnedChunks(source);
    let failure: unknown;
    let sent = 0;
    const { url, server } = await serve(async (_req, res) => {
      res.writeHead(200, { "Content-Length": 1024 * 1024 * KiB });
      // Far more than the socket buffers hold, written as fast as the response takes it.
      const feed = (): void => {
        while (sent < 64 * 1024 && source.write(Buffer.allocUnsafeSlow(64 * KiB))) sent++;
      };
      source.on("drain", feed);
      feed();
      try {
        await sendOwnedChunks(res, source);
      } catch (err) {
        failure = err;
      }
    });
    try {
      await new Promise<void>((resolve, reject) => {
        get(url, (res) => {
          res.once("data", () => {
            res.destroy();
            resolve();
          });
        }).on("error", reject);
      });
      for (let i = 0; i < 100 && failure === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok(failure instanceof Error, "the transfer rejected");
      assert.equal(source.destroyed, true, "the stream was destroyed");
    } finally {
      server.close();
    }
  });
});
