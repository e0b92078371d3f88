/**
 * A webhook receiver for the notification cases, run as a child process of the benchmark
 * (`node dist/bench/notify-receiver.js <delay ms> [port]`) so that it shares no event loop with the
 * benchmark's clients.
 *
 * It is a raw TCP server that parses no more HTTP/1.1 than it must: the header block, its
 * Content-Length, and the body, in which it counts events (occurrences of `"action":`, one per
 * event in distribution's envelope). Each request is answered `200` with an empty body, at once or
 * after `delay` ms (the slow receiver). Keep-alive, in order, as both registries send one request
 * at a time per connection.
 *
 * Over IPC it says `{ type: "listening", port }` once it listens, and answers `{ type: "stats" }`
 * with its counts.
 */
import { createServer, type Socket } from "node:net";

export interface ReceiverStats {
  type: "stats";
  requests: number;
  events: number;
  bytes: number;
  /** Requests it could not parse (chunked bodies, no Content-Length on a POST). */
  errors: number;
  connections: number;
  /** When the last request was answered, ms since the epoch (timeOrigin + now); 0 when none. */
  lastAt: number;
}

const CRLFCRLF = Buffer.from("\r\n\r\n", "latin1");
const ACTION = Buffer.from('"action":', "latin1");
const OK = Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "latin1");

const delayMs = Number(process.argv[2] ?? "0");
const stats: ReceiverStats = { type: "stats", requests: 0, events: 0, bytes: 0, errors: 0, connections: 0, lastAt: 0 };

function countEvents(body: Buffer): number {
  let n = 0;
  for (let i = body.indexOf(ACTION); i !== -1; i = body.indexOf(ACTION, i + ACTION.length)) n++;
  return n;
}

function serve(socket: Socket): void {
  stats.connections++;
  socket.setNoDelay(true);
  let buf: Buffer = Buffer.alloc(0);
  /** Body bytes still expected for the request being read; -1 while reading a header block. */
  let need = -1;
  let body: Buffer[] = [];
  /** Answers queue behind the slow one: requests arrive in order and are answered in order. */
  let answering: Promise<void> = Promise.resolve();
  const answer = (): void => {
    if (delayMs <= 0) {
      stats.requests++;
      stats.lastAt = performance.timeOrigin + performance.now();
      socket.write(OK);
      return;
    }
    answering = answering.then(
      () =>
        new Promise<void>((resolve) =>
          setTimeout(() => {
            stats.requests++;
            stats.lastAt = performance.timeOrigin + performance.now();
            if (!socket.destroyed) socket.write(OK);
            resolve();
          }, delayMs),
        ),
    );
  };
  socket.on("data", (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    for (;;) {
      if (need < 0) {
        const end = buf.indexOf(CRLFCRLF);
        if (end === -1) return;
        const head = buf.subarray(0, end).toString("latin1");
        buf = buf.subarray(end + 4);
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (/\r\ntransfer-encoding:/i.test(head) || (!m && head.startsWith("POST"))) {
          stats.errors++;
          socket.destroy();
          return;
        }
        need = m ? Number(m[1]) : 0;
        body = [];
      }
      const take = Math.min(need, buf.length);
      if (take > 0) {
        body.push(buf.subarray(0, take));
        buf = buf.subarray(take);
        need -= take;
      }
      if (need > 0) return;
      const whole = body.length === 1 ? body[0]! : Buffer.concat(body);
      stats.bytes += whole.length;
      stats.events += countEvents(whole);
      need = -1;
      answer();
    }
  });
  socket.on("error", () => undefined);
}

const server = createServer(serve);
server.listen(Number(process.argv[3] ?? "0"), "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  process.send?.({ type: "listening", port });
});

process.on("message", (msg: { type?: string }) => {
  if (msg?.type === "stats") process.send?.(stats);
});
process.on("disconnect", () => process.exit(0));
