import cluster from "node:cluster";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { DebugRoute } from "../server/debug-route.js";

/**
 * Debug pages under `--workers N`: the primary owns the debug listener (workers share the API
 * port, but a debug page must answer for all of them), and asks every worker for the page over
 * the cluster channel. The worst status wins (one unhealthy worker makes /debug/health 503), and
 * the body names each worker's answer: {"worker 1": {...}, "worker 2": {...}}.
 */
const REQUEST = "berth:debug-request";
const RESPONSE = "berth:debug-response";
/** A worker that does not answer within this counts as 503 (it may be stuck or restarting). */
const WORKER_ANSWER_MS = 5_000;

interface DebugRequestMessage {
  type: typeof REQUEST;
  id: number;
  path: string;
  method: string;
}

interface DebugResponseMessage {
  type: typeof RESPONSE;
  id: number;
  status: number;
  contentType: string;
  body: string;
}

/** In a worker: answers the primary's requests for its debug pages from `routes`. */
export function answerDebugRequests(routes: readonly DebugRoute[]): void {
  const byPath = new Map(routes.map((route) => [route.path, route]));
  process.on("message", (message: unknown) => {
    if (!isRequest(message)) return;
    const reply = (status: number, contentType: string, body: string): void => {
      const response: DebugResponseMessage = { type: RESPONSE, id: message.id, status, contentType, body };
      process.send?.(response);
    };
    const route = byPath.get(message.path);
    if (route === undefined) return reply(404, "text/plain", "404 page not found\n");
    const captured = new CapturedResponse();
    Promise.resolve(route.handle({ method: "GET", url: message.path, headers: {} } as IncomingMessage, captured as unknown as ServerResponse))
      .then(() => reply(captured.statusCode, String(captured.getHeader("content-type") ?? ""), captured.body()))
      .catch((err: unknown) => reply(500, "text/plain", `${err instanceof Error ? err.message : String(err)}\n`));
  });
}

/** In the primary: the debug listener's handler for every path it does not serve itself. */
export function forwardToWorkers(): DebugRoute["handle"] {
  let nextId = 0;
  const waiting = new Map<number, (message: DebugResponseMessage) => void>();
  cluster.on("message", (_worker, message: unknown) => {
    if (isResponse(message)) waiting.get(message.id)?.(message);
  });
  return async (req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    const workers = Object.entries(cluster.workers ?? {}).filter(([, worker]) => worker?.isConnected());
    const answers = await Promise.all(
      workers.map(([index, worker]) => {
        const id = nextId++;
        return new Promise<[string, DebugResponseMessage]>((resolve) => {
          const timer = setTimeout(() => settle({ type: RESPONSE, id, status: 503, contentType: "text/plain", body: "the worker did not answer" }), WORKER_ANSWER_MS);
          function settle(message: DebugResponseMessage): void {
            clearTimeout(timer);
            waiting.delete(id);
            resolve([`worker ${index}`, message]);
          }
          waiting.set(id, settle);
          const request: DebugRequestMessage = { type: REQUEST, id, path, method: req.method ?? "GET" };
          worker!.send(request);
        });
      }),
    );
    if (answers.length === 0) return send(res, req, 503, { error: "no worker is running" });
    if (answers.every(([, answer]) => answer.status === 404)) return send(res, req, 404, { error: "404 page not found" });
    const status = Math.max(...answers.map(([, answer]) => answer.status));
    send(res, req, status, Object.fromEntries(answers.map(([name, answer]) => [name, decodeBody(answer)])));
  };
}

function send(res: ServerResponse, req: IncomingMessage, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(body), "Cache-Control": "no-store" });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** A JSON page as its value, anything else as its text. */
function decodeBody(answer: DebugResponseMessage): unknown {
  if (answer.contentType.startsWith("application/json")) {
    try {
      return JSON.parse(answer.body) as unknown;
    } catch {
      // shown as text below
    }
  }
  return answer.body;
}

function isRequest(message: unknown): message is DebugRequestMessage {
  const m = message as Partial<DebugRequestMessage> | null;
  return typeof m === "object" && m !== null && m.type === REQUEST && typeof m.id === "number" && typeof m.path === "string";
}

function isResponse(message: unknown): message is DebugResponseMessage {
  const m = message as Partial<DebugResponseMessage> | null;
  return typeof m === "object" && m !== null && m.type === RESPONSE && typeof m.id === "number" && typeof m.status === "number" && typeof m.body === "string";
}

/**
 * What a debug route writes, kept in memory to be sent to the primary. A DebugRoute answering
 * under `--workers` may use only this much of ServerResponse: statusCode, setHeader, getHeader,
 * writeHead, write, end, headersSent.
 */
class CapturedResponse {
  statusCode = 200;
  headersSent = false;
  private readonly headers = new Map<string, string>();
  private readonly chunks: Buffer[] = [];

  setHeader(name: string, value: string | number | readonly string[]): this {
    this.headers.set(name.toLowerCase(), Array.isArray(value) ? value.join(", ") : String(value));
    return this;
  }

  getHeader(name: string): string | undefined {
    return this.headers.get(name.toLowerCase());
  }

  writeHead(status: number, headers?: Record<string, string | number | readonly string[]>): this {
    this.statusCode = status;
    for (const [name, value] of Object.entries(headers ?? {})) this.setHeader(name, value);
    this.headersSent = true;
    return this;
  }

  write(chunk: string | Uint8Array): boolean {
    this.headersSent = true;
    this.chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk));
    return true;
  }

  end(chunk?: string | Uint8Array): this {
    if (chunk !== undefined) this.write(chunk);
    this.headersSent = true;
    return this;
  }

  body(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}
