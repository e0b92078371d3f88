/**
 * A small HTTP reverse proxy for the pull-through cache tests, placed between berth and the
 * registry it caches from (Debian's docker-registry or another berth). It records every request
 * (so a test can check how often berth really went upstream) and answers with faults on demand
 * (so a test can check what berth does when its upstream is slow, down, rate-limited or lying).
 *
 * Forwarding is transparent: method, path, query, headers (Host rewritten to the target's) and the
 * request body go upstream as sent, the upstream's status, headers and body come back unchanged.
 * Bodies are streamed; only the "corrupt" fault buffers one (test blobs are small). Hop-by-hop
 * headers (Connection and the headers it names, Keep-Alive, TE, Upgrade, Expect) are the one
 * exception, as for any HTTP proxy: each side keeps its own connection semantics.
 *
 * Each forwarded request gets a fresh upstream connection: a pooled socket the upstream closed
 * while idle would otherwise turn into an occasional 502 that a test would misread as a fault.
 *
 * Only node built-ins; no process to install or stop. `close()` destroys every socket it holds,
 * on both sides, hung ones included.
 */
import { createServer, request as httpRequest, type ClientRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { pipeline } from "node:stream";

export interface ProxiedRequest {
  method: string;
  /** path without query, e.g. "/v2/library/alpine/manifests/latest" */
  path: string;
  /** raw query string without "?", "" when none */
  query: string;
  /** status the proxy answered (from upstream or from a fault); 0 for reset/hang */
  status: number;
  /** the Authorization header the client sent, if any */
  authorization: string | undefined;
}

export type Fault =
  | { kind: "status"; status: number; headers?: Record<string, string>; body?: string } // answer this instead of forwarding (429, 503, 500…)
  | { kind: "reset" } // destroy the client socket without any response
  | { kind: "hang" } // never answer (socket kept open until the client or close() ends it)
  | { kind: "delay"; ms: number } // forward normally but only after ms
  | { kind: "slow"; bytesPerSecond: number } // forward, but throttle the response body to this rate
  | { kind: "truncate"; afterBytes: number } // forward status+headers (incl. original Content-Length), send only the first afterBytes body bytes, then destroy the socket
  | { kind: "corrupt" } // forward, but flip the bits of one byte in the middle of the body (same length, same headers)
  | { kind: "replace"; status: number; headers: Record<string, string>; body: Buffer } // answer this exact response
  | { kind: "redirect"; location: string; status?: number }; // answer 307 (or status) with Location, no forwarding

export interface FaultRule {
  /** matches any method when absent */
  method?: string;
  /** tested against the path (no query); matches any path when absent */
  path?: RegExp;
  /** how many matching requests it applies to; forever when absent */
  times?: number;
  fault: Fault;
}

export interface UpstreamProxy {
  /** "http://127.0.0.1:<port>" */
  url: string;
  /** "127.0.0.1:<port>" */
  hostPort: string;
  /** every request in arrival order (faulted ones included) */
  readonly requests: readonly ProxiedRequest[];
  /** number of requests with this method (and path matching, when given) */
  count(method: string, path?: RegExp): number;
  /** forget recorded requests */
  resetCounts(): void;
  /** rules are tried in the order added; the first matching rule with times left applies */
  inject(rule: FaultRule): void;
  clearFaults(): void;
  /** when false, every request gets a socket reset (simulates the upstream being down); default true */
  setUp(up: boolean): void;
  close(): Promise<void>;
}

/** What happens to the upstream's response body on its way back to the client. */
type BodyMode =
  | { kind: "pass" }
  | { kind: "slow"; bytesPerSecond: number }
  | { kind: "truncate"; afterBytes: number }
  | { kind: "corrupt" };

/** A rule plus how many more requests it may apply to (Infinity when `times` was absent). */
interface ActiveRule {
  rule: FaultRule;
  remaining: number;
}

/** Per-connection headers (RFC 9110 §7.6.1) that a proxy must not pass on. Transfer-Encoding is
 * kept: Node then frames the forwarded body the same way (chunked in, chunked out). Expect is
 * dropped because Node's server already answered the client's "100 Continue". */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "upgrade", "expect"]);

/** A RegExp with the g or y flag keeps `lastIndex` between calls: start each test from 0. */
function matches(pattern: RegExp, path: string): boolean {
  pattern.lastIndex = 0;
  return pattern.test(path);
}

/**
 * `rawHeaders` (name, value, name, value…: duplicates and spelling kept) without the hop-by-hop
 * ones, nor those the Connection header names; `host`, when given, replaces the Host header.
 */
function endToEndHeaders(raw: readonly string[], host?: string): string[] {
  const drop = new Set(HOP_BY_HOP);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== "connection") continue;
    for (const token of raw[i + 1]!.split(",")) drop.add(token.trim().toLowerCase());
  }
  const out: string[] = [];
  if (host !== undefined) out.push("Host", host);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (drop.has(name) || (host !== undefined && name === "host")) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

function hasHeader(headers: Record<string, string>, name: string): boolean {
  return Object.keys(headers).some((key) => key.toLowerCase() === name);
}

/** Resolves on the next "drain", or when the response is closed (a write would never drain then). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** `target` is the upstream base URL, e.g. "http://127.0.0.1:5001". Listens on 127.0.0.1, a free port. */
export function startUpstreamProxy(target: string): Promise<UpstreamProxy> {
  const upstream = new URL(target);
  if (upstream.protocol !== "http:") throw new Error(`upstream proxy: only http targets are supported, not ${target}`);
  // URL keeps IPv6 brackets in `hostname`; http.request wants the bare address.
  const upstreamHost = upstream.hostname.replace(/^\[(.*)\]$/, "$1");
  const upstreamPort = upstream.port === "" ? 80 : Number(upstream.port);
  const upstreamHostHeader = upstream.host;

  const records: ProxiedRequest[] = [];
  let rules: ActiveRule[] = [];
  let up = true;
  let closing: Promise<void> | undefined;
  const clientSockets = new Set<Socket>();
  const upstreamRequests = new Set<ClientRequest>();
  // Timers of delayed and throttled answers: cleared by close() so none outlives the proxy.
  const timers = new Set<NodeJS.Timeout>();

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, Math.max(0, ms));
      timers.add(timer);
    });
  }

  /** The first matching rule with times left, consuming one of its times. */
  function takeFault(method: string, path: string): Fault | undefined {
    for (const active of rules) {
      if (active.remaining <= 0) continue;
      if (active.rule.method !== undefined && active.rule.method.toUpperCase() !== method) continue;
      if (active.rule.path !== undefined && !matches(active.rule.path, path)) continue;
      active.remaining -= 1;
      return active.rule.fault;
    }
    return undefined;
  }

  /** A TCP RST rather than a FIN: what a crashed or unplugged upstream looks like to the client. */
  function resetSocket(req: IncomingMessage): void {
    const socket = req.socket;
    if (socket.destroyed) return;
    try {
      socket.resetAndDestroy();
    } catch {
      socket.destroy();
    }
  }

  /** Answers a complete response the proxy made up (fault or 502), counting it. */
  function answer(req: IncomingMessage, res: ServerResponse, record: ProxiedRequest, status: number, headers: Record<string, string>, body: Buffer): void {
    // The request body is not going anywhere: read it off so the connection can be reused.
    req.resume();
    const all = { ...headers };
    if (!hasHeader(all, "content-length")) all["Content-Length"] = String(body.length);
    record.status = status;
    res.writeHead(status, all);
    // A HEAD answer carries the headers a GET would, never the body.
    res.end(req.method === "HEAD" ? undefined : body);
  }

  function badGateway(req: IncomingMessage, res: ServerResponse, record: ProxiedRequest, err: Error): void {
    const code = (err as NodeJS.ErrnoException).code ?? err.message;
    const body = Buffer.from(JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: `upstream proxy: ${target} unreachable (${code})` }] }));
    answer(req, res, record, 502, { "Content-Type": "application/json" }, body);
  }

  function forward(req: IncomingMessage, res: ServerResponse, record: ProxiedRequest, mode: BodyMode): void {
    if (res.destroyed) return; // the client left during a delay
    const upstreamReq = httpRequest({
      host: upstreamHost,
      port: upstreamPort,
      method: req.method,
      path: req.url,
      headers: endToEndHeaders(req.rawHeaders, upstreamHostHeader),
      agent: false,
    });
    upstreamRequests.add(upstreamReq);
    upstreamReq.on("close", () => upstreamRequests.delete(upstreamReq));
    let responded = false;
    upstreamReq.on("error", (err) => {
      // Before a response: the upstream is unreachable or hung up. After one, the error also
      // reaches the response stream, whose handling (below) cuts the client off.
      if (!responded && !res.headersSent && !res.destroyed) badGateway(req, res, record, err);
    });
    // The client went away (or a fault cut it off) before the answer was complete.
    res.on("close", () => {
      if (!res.writableFinished) upstreamReq.destroy();
    });
    req.pipe(upstreamReq);
    upstreamReq.on("response", (upstreamRes) => {
      responded = true;
      const status = upstreamRes.statusCode ?? 502;
      const headers = endToEndHeaders(upstreamRes.rawHeaders);
      const sendHead = (): void => {
        record.status = status;
        res.writeHead(status, upstreamRes.statusMessage, headers);
      };
      switch (mode.kind) {
        case "pass":
          sendHead();
          pipeline(upstreamRes, res, () => {
            // pipeline destroyed both sides on error; a cut-off answer is all the client can learn.
          });
          return;
        case "slow":
          sendHead();
          void throttle(upstreamRes, res, mode.bytesPerSecond);
          return;
        case "truncate":
          sendHead();
          void truncate(upstreamRes, res, mode.afterBytes);
          return;
        case "corrupt":
          void corrupt(req, upstreamRes, res, record, status, headers);
          return;
      }
    });
  }

  /** Sends the body in slices, each only once the time `bytesPerSecond` allows for it has passed. */
  async function throttle(source: IncomingMessage, res: ServerResponse, bytesPerSecond: number): Promise<void> {
    // Slices of 1/20 s keep the pace smooth (and every timer short).
    const slice = Math.max(1, Math.floor(bytesPerSecond / 20));
    const start = Date.now();
    let sent = 0;
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        for (let offset = 0; offset < chunk.length; offset += slice) {
          const part = chunk.subarray(offset, offset + slice);
          await sleep(start + ((sent + part.length) * 1000) / bytesPerSecond - Date.now());
          if (res.destroyed) return;
          sent += part.length;
          if (!res.write(part)) await drained(res);
        }
      }
      res.end();
    } catch {
      res.destroy();
    }
  }

  async function truncate(source: IncomingMessage, res: ServerResponse, afterBytes: number): Promise<void> {
    let sent = 0;
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        const room = afterBytes - sent;
        if (chunk.length > room) {
          if (room > 0) res.write(chunk.subarray(0, room));
          else res.flushHeaders();
          source.destroy();
          // Let what was written reach the client, then close: it sees the connection end
          // before Content-Length (or the final chunk) was reached.
          res.socket?.destroySoon();
          return;
        }
        sent += chunk.length;
        if (!res.write(chunk)) await drained(res);
      }
      res.end(); // the whole body was within afterBytes
    } catch {
      res.destroy();
    }
  }

  async function corrupt(req: IncomingMessage, source: IncomingMessage, res: ServerResponse, record: ProxiedRequest, status: number, headers: string[]): Promise<void> {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) chunks.push(chunk);
    } catch (err) {
      if (!res.headersSent && !res.destroyed) badGateway(req, res, record, err as Error);
      return;
    }
    const body = Buffer.concat(chunks);
    if (body.length > 0) {
      const middle = Math.floor(body.length / 2);
      body[middle] = body[middle]! ^ 0xff;
    }
    if (res.destroyed) return;
    record.status = status;
    res.writeHead(status, source.statusMessage, headers);
    res.end(body);
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? "GET";
    const url = req.url ?? "/";
    const queryAt = url.indexOf("?");
    const record: ProxiedRequest = {
      method,
      path: queryAt === -1 ? url : url.slice(0, queryAt),
      query: queryAt === -1 ? "" : url.slice(queryAt + 1),
      status: 0,
      authorization: req.headers.authorization,
    };
    records.push(record);

    if (!up) return resetSocket(req);
    const fault = takeFault(method, record.path);
    if (fault === undefined) return forward(req, res, record, { kind: "pass" });
    switch (fault.kind) {
      case "status": {
        const headers = { ...fault.headers };
        if (fault.body !== undefined && !hasHeader(headers, "content-type")) headers["Content-Type"] = "application/json";
        return answer(req, res, record, fault.status, headers, Buffer.from(fault.body ?? ""));
      }
      case "reset":
        return resetSocket(req);
      case "hang":
        return; // the socket stays in clientSockets, for close() to end
      case "delay":
        void sleep(fault.ms).then(() => forward(req, res, record, { kind: "pass" }));
        return;
      case "slow":
        return forward(req, res, record, { kind: "slow", bytesPerSecond: fault.bytesPerSecond });
      case "truncate":
        return forward(req, res, record, { kind: "truncate", afterBytes: fault.afterBytes });
      case "corrupt":
        return forward(req, res, record, { kind: "corrupt" });
      case "replace":
        return answer(req, res, record, fault.status, fault.headers, fault.body);
      case "redirect":
        return answer(req, res, record, fault.status ?? 307, { Location: fault.location }, Buffer.alloc(0));
    }
  }

  const server = createServer(handle);
  server.on("connection", (socket: Socket) => {
    clientSockets.add(socket);
    socket.on("close", () => clientSockets.delete(socket));
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      const hostPort = `127.0.0.1:${port}`;
      resolve({
        url: `http://${hostPort}`,
        hostPort,
        get requests(): readonly ProxiedRequest[] {
          return records;
        },
        count(method: string, path?: RegExp): number {
          const wanted = method.toUpperCase();
          return records.filter((record) => record.method === wanted && (path === undefined || matches(path, record.path))).length;
        },
        resetCounts(): void {
          records.length = 0;
        },
        inject(rule: FaultRule): void {
          rules.push({ rule, remaining: rule.times ?? Infinity });
        },
        clearFaults(): void {
          rules = [];
        },
        setUp(value: boolean): void {
          up = value;
        },
        close(): Promise<void> {
          closing ??= new Promise<void>((done) => {
            server.close(() => done());
            for (const timer of timers) clearTimeout(timer);
            timers.clear();
            for (const socket of clientSockets) socket.destroy();
            for (const upstreamReq of upstreamRequests) upstreamReq.destroy();
          });
          return closing;
        },
      });
    });
  });
}
