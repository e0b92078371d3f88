/**
 * A webhook endpoint for the notification tests: a real HTTP server on loopback that records
 * every POST a registry's `notifications:` endpoint makes, and answers as a test tells it to
 * (accept, refuse with a status, hang, reset the connection, send a huge body, answer late).
 *
 * Each request is recorded once its body was read: method, path, headers (Node's lower-cased
 * object, and the raw name/value list, where a header sent twice appears twice), the raw body,
 * the parsed `events` array of the envelope (`[]` when the body is not a JSON envelope), and the
 * status answered (0 for "hang" and "reset", which answer nothing, and
 * for a delayed answer until it is sent; it stays 0 when the sender gave up first).
 * A delivery counts as accepted when answered 2xx or 3xx, the rule distribution's sender uses:
 * `events()` and `waitForEvents()` only see accepted deliveries, so a retried event is counted
 * once it finally got through, not once per attempt.
 *
 * `respondWith(mode)` applies to requests that arrive after the call; a request already being
 * answered keeps the mode it arrived under. `close()` destroys every socket, hung ones
 * included, and cancels pending delayed answers.
 *
 * `normalizeEvent` removes what legitimately differs between two registries or two runs of the
 * same operations, so their events can be compared with deepEqual:
 *   - `id` and `timestamp` (a fresh UUID and the clock),
 *   - `request.id`, `request.addr` (client port), `request.host` (registry port); `request.method`
 *     and `request.useragent` stay (tests send a fixed User-Agent),
 *   - `source` entirely (host name, port and instance id of the registry node),
 *   - in `target.url`, the scheme, host and port, replaced by `<registry>`.
 *
 * Only node built-ins.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface Delivery {
  method: string;
  /** path and query as requested, e.g. "/events" */
  path: string;
  headers: IncomingHttpHeaders;
  /** names and values as sent, alternating (Node's rawHeaders): a header sent twice appears twice */
  rawHeaders: string[];
  /** the raw request body, as UTF-8 text */
  body: string;
  /** `body.events` when the body parsed as a JSON object with an `events` array, else [] */
  events: unknown[];
  /** status answered; 0 when nothing was answered ("hang", "reset", a delayed answer not sent yet or never) */
  status: number;
}

export type ResponseMode =
  | "ok" // 200, empty body (the default)
  | { status: number } // this status, empty body
  | "hang" // never answer; the socket stays open until the sender gives up or close()
  | "reset" // destroy the socket without any answer
  | { hugeBody: number } // 200 with this many bytes of body, streamed with backpressure
  | { delayMs: number }; // 200 after this many milliseconds

export interface EventReceiver {
  /** "http://127.0.0.1:<port>/events" */
  url: string;
  /** every request received, in arrival order (recorded once its body was read) */
  readonly deliveries: readonly Delivery[];
  /** the events of accepted (2xx/3xx) deliveries, flattened in order */
  events(): Array<Record<string, unknown>>;
  /** how to answer the requests that arrive from now on */
  respondWith(mode: ResponseMode): void;
  /** resolves with `events()` once at least `count` accepted events arrived; rejects after `timeoutMs` listing what did */
  waitForEvents(count: number, timeoutMs?: number): Promise<Array<Record<string, unknown>>>;
  close(): Promise<void>;
}

/** An event without the values that differ between registries and runs (see the file comment). */
export function normalizeEvent(event: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(event);
  delete copy.id;
  delete copy.timestamp;
  delete copy.source;
  const request = copy.request;
  if (isRecord(request)) {
    delete request.id;
    delete request.addr;
    delete request.host;
  }
  const target = copy.target;
  if (isRecord(target) && typeof target.url === "string") {
    target.url = target.url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]+/i, "<registry>");
  }
  return copy;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseEvents(body: string): unknown[] {
  try {
    const parsed: unknown = JSON.parse(body);
    return isRecord(parsed) && Array.isArray(parsed.events) ? parsed.events : [];
  } catch {
    return [];
  }
}

function accepted(delivery: Delivery): boolean {
  return delivery.status >= 200 && delivery.status < 400;
}

/** One line per delivery, for failure messages: status, then action and target of each event. */
function describeDeliveries(deliveries: readonly Delivery[]): string {
  if (deliveries.length === 0) return "  (no request arrived)";
  return deliveries
    .map((delivery, index) => {
      const events = delivery.events.map((event) => {
        if (!isRecord(event)) return JSON.stringify(event);
        const target = isRecord(event.target) ? event.target : {};
        const what = [target.repository, target.tag !== undefined ? `tag=${String(target.tag)}` : undefined, target.digest, target.mediaType]
          .filter((part) => part !== undefined)
          .join(" ");
        return what === "" ? String(event.action) : `${String(event.action)} ${what}`;
      });
      const summary = events.length > 0 ? events.join("; ") : `unparsed body: ${delivery.body.slice(0, 200)}`;
      return `  #${index} ${delivery.method} ${delivery.path} → ${delivery.status}: ${summary}`;
    })
    .join("\n");
}

export interface EventReceiverOptions {
  /** Listen on this loopback port (e.g. the one of a receiver closed before, to bring it back); default a free one. */
  port?: number;
}

export function startEventReceiver(options: EventReceiverOptions = {}): Promise<EventReceiver> {
  const deliveries: Delivery[] = [];
  let mode: ResponseMode = "ok";
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  /** Called after each recorded delivery (waitForEvents re-checks its count). */
  const watchers = new Set<() => void>();
  let closing: Promise<void> | undefined;

  function acceptedEvents(): Array<Record<string, unknown>> {
    return deliveries.filter(accepted).flatMap((delivery) => delivery.events as Array<Record<string, unknown>>);
  }

  function notify(): void {
    for (const watcher of [...watchers]) watcher();
  }

  function record(delivery: Delivery): void {
    deliveries.push(delivery);
    notify();
  }

  async function streamBody(res: ServerResponse, size: number): Promise<void> {
    const chunk = Buffer.alloc(64 * 1024, "x");
    let left = size;
    while (left > 0 && !res.destroyed) {
      const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= part.length;
      if (!res.write(part)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.on("drain", done);
          res.on("close", done);
        });
      }
    }
    if (!res.destroyed) res.end();
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    // The mode a request arrived under is the one it is answered with.
    const current = mode;
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("error", () => {
      // the sender went away mid-body: nothing was delivered
    });
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const delivery: Delivery = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, rawHeaders: req.rawHeaders, body, events: parseEvents(body), status: 0 };
      if (current === "hang") return record(delivery); // the socket stays in `sockets`, for close() to end
      if (current === "reset") {
        record(delivery);
        try {
          req.socket.resetAndDestroy();
        } catch {
          req.socket.destroy();
        }
        return;
      }
      if (current === "ok") {
        delivery.status = 200;
        res.writeHead(200, { "Content-Length": "0" }).end();
        return record(delivery);
      }
      if ("status" in current) {
        delivery.status = current.status;
        res.writeHead(current.status, { "Content-Length": "0" }).end();
        return record(delivery);
      }
      if ("hugeBody" in current) {
        delivery.status = 200;
        res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": String(current.hugeBody) });
        record(delivery);
        void streamBody(res, current.hugeBody);
        return;
      }
      // Recorded at once with status 0; answered (and accepted) only if the sender still waits.
      record(delivery);
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (res.destroyed) return;
        delivery.status = 200;
        res.writeHead(200, { "Content-Length": "0" }).end();
        notify();
      }, current.delayMs);
      timers.add(timer);
    });
  }

  const server = createServer(handle);
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      resolve({
        url: `http://127.0.0.1:${port}/events`,
        get deliveries(): readonly Delivery[] {
          return deliveries;
        },
        events: acceptedEvents,
        respondWith(next: ResponseMode): void {
          mode = next;
        },
        waitForEvents(count: number, timeoutMs = 10_000): Promise<Array<Record<string, unknown>>> {
          return new Promise((done, fail) => {
            const check = (): boolean => {
              const events = acceptedEvents();
              if (events.length < count) return false;
              watchers.delete(check);
              clearTimeout(timer);
              done(events);
              return true;
            };
            const timer = setTimeout(() => {
              watchers.delete(check);
              const got = acceptedEvents().length;
              fail(new Error(`event receiver: ${got} of ${count} accepted events after ${timeoutMs} ms; deliveries:\n${describeDeliveries(deliveries)}`));
            }, timeoutMs);
            watchers.add(check);
            check();
          });
        },
        close(): Promise<void> {
          closing ??= new Promise<void>((done) => {
            server.close(() => done());
            for (const timer of timers) clearTimeout(timer);
            timers.clear();
            for (const socket of sockets) socket.destroy();
          });
          return closing;
        },
      });
    });
  });
}
