/**
 * Raw loopback sockets for the tests of the native pump (sendfile and splice) and of what the
 * server sends behind Node's back: socket pairs, descriptors, responses split by hand, the
 * process's threads and open descriptors.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import type { BerthProcess } from "./berth-process.js";

/**
 * A connected loopback pair: `sender` is the side the pump writes to (or, `paused`, reads from:
 * Node then does not read it until resumed).
 */
export async function socketPair(options: { paused?: boolean } = {}): Promise<{ sender: Socket; receiver: Socket; close(): void }> {
  const server = createServer({ pauseOnConnect: options.paused === true });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  const receiver = createConnection(port, "127.0.0.1");
  const sender = await accepted;
  server.close();
  // Tests make peers fail on purpose (resets, destroyed sockets); what they assert is the transfer's outcome.
  sender.on("error", () => undefined);
  receiver.on("error", () => undefined);
  return {
    sender,
    receiver,
    close() {
      sender.destroy();
      receiver.destroy();
    },
  };
}

export function fdOf(socket: Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

/** Everything the socket receives until the peer ends or the socket closes. */
export function collect(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => socket.once("close", () => resolve(Buffer.concat(chunks))));
}

export function threadNames(pid: number | "self"): string[] {
  return readdirSync(`/proc/${pid}/task`).map((task) => {
    try {
      return readFileSync(`/proc/${pid}/task/${task}/comm`, "utf8").trim();
    } catch {
      return "";
    }
  });
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Sends raw bytes on a fresh connection; the caller reads. */
export async function connect(berth: BerthProcess): Promise<Socket> {
  const { hostname, port } = new URL(berth.url);
  const socket = createConnection(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  return socket;
}

/** Splits a received HTTP/1.1 stream of Content-Length responses into status, headers and body. */
export function parseResponses(raw: Buffer): Array<{ status: number; headers: Map<string, string>; body: Buffer }> {
  const responses = [];
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf("\r\n\r\n", at);
    assert.ok(end > 0, "a complete header block");
    const lines = raw.subarray(at, end).toString("latin1").split("\r\n");
    const status = Number(lines[0]!.split(" ")[1]);
    const headers = new Map(lines.slice(1).map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]));
    const length = Number(headers.get("content-length") ?? 0);
    responses.push({ status, headers, body: raw.subarray(end + 4, end + 4 + length) });
    at = end + 4 + length;
  }
  return responses;
}
