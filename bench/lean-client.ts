/**
 * A lean HTTP/1.1 client on a raw TCP socket, for the benchmark's uploads, downloads and small
 * requests. One request at a time per connection, keep-alive, no pipelining.
 *
 * It parses no more than it must: the status line, header names and values (kept as strings in a
 * small map), and the body framing (Content-Length or chunked). Incoming bytes land in one
 * reusable buffer (net's `onread`), so a download that discards its body allocates nothing per
 * read. Upload bodies stream from a file through a few reusable buffers.
 */
import { open, type FileHandle } from "node:fs/promises";
import { connect, type Socket } from "node:net";

export interface FileBody {
  file: FileHandle;
  /** Byte offset in the file. */
  start: number;
  length: number;
}

export interface RequestOptions {
  method: string;
  /** Path plus query, e.g. /v2/foo/blobs/uploads/ */
  path: string;
  headers?: Record<string, string | number>;
  body?: Buffer | string | FileBody;
  /** Count the body's bytes but keep none of them. */
  discard?: boolean;
  /**
   * Send a Buffer body with `Transfer-Encoding: chunked` (in 1 MiB chunks) instead of a
   * Content-Length, as docker and skopeo stream a layer in one PATCH.
   */
  chunked?: boolean;
}

/** Chunk size of a `chunked` request body. */
const CHUNKED_BODY_CHUNK = 1 << 20;

export interface Response {
  status: number;
  /** Lower-cased header names; a repeated header keeps its last value. */
  headers: Map<string, string>;
  body: Buffer;
  /** Body bytes received (also when discarded). */
  bodyLength: number;
}

export class HttpError extends Error {
  constructor(
    message: string,
    readonly request: string,
    readonly response?: Response,
  ) {
    super(message);
  }
}

const CRLFCRLF = Buffer.from("\r\n\r\n", "latin1");
const UPLOAD_BUF = 1 << 20;
const UPLOAD_BUFS = 4;

const enum State {
  Head,
  Body,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailer,
  Closed,
}

interface Pending {
  method: string;
  discard: boolean;
  resolve(res: Response): void;
  reject(err: Error): void;
}

export interface ConnectOptions {
  /** Size of the reusable read buffer; larger means fewer reads for big downloads. */
  readBuffer?: number;
}

export class Conn {
  private socket: Socket;
  private state = State.Head;
  private head: Buffer | null = null;
  private remaining = 0;
  private chunkLine = "";
  private status = 0;
  private headers = new Map<string, string>();
  private parts: Buffer[] = [];
  private received = 0;
  private closeAfter = false;
  private pending: Pending | null = null;
  private closed = false;
  private error: Error | null = null;

  private constructor(
    readonly host: string,
    readonly port: number,
    private readonly opts: ConnectOptions,
  ) {
    this.socket = this.open();
  }

  static async connect(host: string, port: number, opts: ConnectOptions = {}): Promise<Conn> {
    const conn = new Conn(host, port, opts);
    await conn.ready();
    return conn;
  }

  private open(): Socket {
    this.closed = false;
    this.error = null;
    this.state = State.Head;
    const buffer = Buffer.allocUnsafe(this.opts.readBuffer ?? 64 * 1024);
    // Handlers ignore a socket that has been replaced by a reconnect.
    const socket: Socket = connect({
      host: this.host,
      port: this.port,
      noDelay: true,
      onread: {
        buffer,
        callback: (n: number, buf: Uint8Array) => {
          if (socket === this.socket) this.onData(buf as Buffer, n);
          return true;
        },
      },
    });
    socket.on("error", (err) => {
      if (socket === this.socket) this.fail(err);
    });
    socket.on("close", () => {
      if (socket !== this.socket) return;
      this.closed = true;
      if (this.pending && this.state === State.Body && this.remaining === -1) {
        this.complete(); // body delimited by close
      } else {
        this.fail(new Error("connection closed by server"));
      }
    });
    return socket;
  }

  private ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (!this.socket.connecting) return resolve();
      const onErr = (err: Error): void => reject(err);
      this.socket.once("error", onErr);
      this.socket.once("connect", () => {
        this.socket.off("error", onErr);
        resolve();
      });
    });
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.error = err;
    this.state = State.Closed;
    const p = this.pending;
    this.pending = null;
    p?.reject(err);
  }

  async request(opts: RequestOptions): Promise<Response> {
    if (this.pending) throw new Error("a request is already in flight on this connection");
    if (this.closed || this.error || this.closeAfter || this.socket.destroyed) {
      this.socket.destroy();
      this.closeAfter = false;
      this.socket = this.open();
      await this.ready();
    }
    const body = opts.body;
    const length =
      body === undefined ? 0 : typeof body === "string" ? Buffer.byteLength(body) : Buffer.isBuffer(body) ? body.length : body.length;
    let head = `${opts.method} ${opts.path} HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\n`;
    let hasLength = false;
    if (opts.headers) {
      for (const name in opts.headers) {
        head += `${name}: ${opts.headers[name]}\r\n`;
        if (name.toLowerCase() === "content-length") hasLength = true;
      }
    }
    const chunked = opts.chunked === true && Buffer.isBuffer(body);
    if (chunked) {
      head += "Transfer-Encoding: chunked\r\n";
    } else if (!hasLength && (body !== undefined || opts.method === "PUT" || opts.method === "POST" || opts.method === "PATCH")) {
      head += `Content-Length: ${length}\r\n`;
    }
    head += "\r\n";

    const response = new Promise<Response>((resolve, reject) => {
      this.pending = { method: opts.method, discard: opts.discard ?? false, resolve, reject };
    });
    this.state = State.Head;
    this.head = null;

    const describe = `${opts.method} ${opts.path}`;
    if (chunked) {
      // Chunk frames around slices of the caller's buffer: nothing is copied.
      const b = body as Buffer;
      this.socket.cork();
      this.socket.write(head);
      for (let off = 0; off < b.length; off += CHUNKED_BODY_CHUNK) {
        const slice = b.subarray(off, off + CHUNKED_BODY_CHUNK);
        this.socket.write(`${slice.length.toString(16)}\r\n`);
        this.socket.write(slice);
        this.socket.write("\r\n");
      }
      this.socket.write("0\r\n\r\n");
      this.socket.uncork();
    } else if (body === undefined || length === 0) {
      this.socket.write(head);
    } else if (typeof body === "string" || Buffer.isBuffer(body)) {
      const b = typeof body === "string" ? Buffer.from(body) : body;
      if (b.length <= 64 * 1024) {
        this.socket.write(Buffer.concat([Buffer.from(head, "latin1"), b]));
      } else {
        this.socket.cork();
        this.socket.write(head);
        this.socket.write(b);
        this.socket.uncork();
      }
    } else {
      this.socket.write(head);
      // The server may answer (an error) before the body is sent: the response wins.
      const sent = this.writeFile(body).catch((err: Error) => {
        if (this.pending) this.fail(err);
      });
      const res = await response.catch((err: Error) => {
        throw new HttpError(`${describe}: ${err.message}`, describe);
      });
      await sent;
      return res;
    }
    return response.catch((err: Error) => {
      throw new HttpError(`${describe}: ${err.message}`, describe);
    });
  }

  /** Streams a file range into the socket through a few reusable buffers. */
  private async writeFile(body: FileBody): Promise<void> {
    const bufs: Buffer[] = [];
    const inflight: (Promise<void> | undefined)[] = new Array(UPLOAD_BUFS);
    let pos = body.start;
    let left = body.length;
    let i = 0;
    while (left > 0) {
      if (this.error) throw this.error;
      if (!this.pending) return; // answered early
      const slot = i % UPLOAD_BUFS;
      await inflight[slot];
      const buf = (bufs[slot] ??= Buffer.allocUnsafe(UPLOAD_BUF));
      const want = Math.min(UPLOAD_BUF, left);
      const { bytesRead } = await body.file.read(buf, 0, want, pos);
      if (bytesRead === 0) throw new Error(`file ended early at ${pos}`);
      pos += bytesRead;
      left -= bytesRead;
      const chunk = bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
      inflight[slot] = new Promise<void>((resolve, reject) => {
        this.socket.write(chunk, (err) => (err ? reject(err) : resolve()));
      });
      i++;
    }
    await Promise.all(inflight);
  }

  private onData(buf: Buffer, n: number): void {
    let off = 0;
    while (off < n) {
      switch (this.state) {
        case State.Head: {
          const chunk = buf.subarray(off, n);
          const prev = this.head;
          const search = prev ? Buffer.concat([prev, chunk]) : chunk;
          const idx = search.indexOf(CRLFCRLF, prev ? Math.max(0, prev.length - 3) : 0);
          if (idx < 0) {
            if (search.length > 64 * 1024) return this.fail(new Error("response head too large"));
            this.head = Buffer.from(search); // copy: `buf` is reused
            return;
          }
          this.head = null;
          off += idx + 4 - (prev ? prev.length : 0);
          this.parseHead(search.toString("latin1", 0, idx));
          break;
        }
        case State.Body: {
          const avail = n - off;
          const take = this.remaining < 0 ? avail : Math.min(this.remaining, avail);
          if (!this.pending?.discard) this.parts.push(Buffer.from(buf.subarray(off, off + take)));
          this.received += take;
          off += take;
          if (this.remaining > 0) {
            this.remaining -= take;
            if (this.remaining === 0) this.complete();
          }
          break;
        }
        case State.ChunkSize: {
          const nl = buf.indexOf(10, off);
          const end = nl < 0 || nl >= n ? n : nl;
          this.chunkLine += buf.toString("latin1", off, end);
          off = end;
          if (end === n) break;
          off++; // the LF
          const size = parseInt(this.chunkLine.trim().split(";")[0] ?? "", 16);
          this.chunkLine = "";
          if (Number.isNaN(size)) return this.fail(new Error("bad chunk size"));
          if (size === 0) {
            this.state = State.Trailer;
          } else {
            this.remaining = size;
            this.state = State.ChunkData;
          }
          break;
        }
        case State.ChunkData: {
          const take = Math.min(this.remaining, n - off);
          if (!this.pending?.discard) this.parts.push(Buffer.from(buf.subarray(off, off + take)));
          this.received += take;
          off += take;
          this.remaining -= take;
          if (this.remaining === 0) {
            this.remaining = 2;
            this.state = State.ChunkDataEnd;
          }
          break;
        }
        case State.ChunkDataEnd: {
          const take = Math.min(this.remaining, n - off);
          off += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = State.ChunkSize;
          break;
        }
        case State.Trailer: {
          const nl = buf.indexOf(10, off);
          const end = nl < 0 || nl >= n ? n : nl;
          this.chunkLine += buf.toString("latin1", off, end);
          off = end;
          if (end === n) break;
          off++;
          const line = this.chunkLine.trim();
          this.chunkLine = "";
          if (line === "") this.complete();
          break;
        }
        case State.Closed:
          return;
      }
    }
  }

  private parseHead(text: string): void {
    const lines = text.split("\r\n");
    const statusLine = lines[0] ?? "";
    this.status = Number(statusLine.slice(9, 12));
    const headers = new Map<string, string>();
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(":");
      if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    this.headers = headers;
    this.parts = [];
    this.received = 0;
    this.closeAfter = (headers.get("connection") ?? "").toLowerCase() === "close";
    const method = this.pending?.method ?? "GET";
    if (this.status < 200 || this.status === 204 || this.status === 304) {
      if (this.status < 200) {
        this.state = State.Head; // interim response (100 Continue): wait for the real one
        return;
      }
      return this.complete();
    }
    if (method === "HEAD") return this.complete();
    if ((headers.get("transfer-encoding") ?? "").toLowerCase().includes("chunked")) {
      this.state = State.ChunkSize;
      this.chunkLine = "";
      return;
    }
    const cl = headers.get("content-length");
    if (cl !== undefined) {
      this.remaining = Number(cl);
      if (this.remaining === 0) return this.complete();
      this.state = State.Body;
      return;
    }
    this.remaining = -1; // until close
    this.closeAfter = true;
    this.state = State.Body;
  }

  private complete(): void {
    const p = this.pending;
    this.pending = null;
    this.state = State.Head;
    const res: Response = {
      status: this.status,
      headers: this.headers,
      body: this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts),
      bodyLength: this.received,
    };
    this.parts = [];
    p?.resolve(res);
  }
}

/** Fails with the request, status and body when the status is not the expected one. */
export function expectStatus(res: Response, expected: number | number[], what: string): Response {
  const ok = Array.isArray(expected) ? expected.includes(res.status) : res.status === expected;
  if (!ok) {
    const body = res.body.subarray(0, 500).toString("utf8");
    throw new HttpError(`${what}: expected ${String(expected)}, got ${res.status} ${body}`, what, res);
  }
  return res;
}

/** The path (and query) of a Location header, which may be absolute or relative. */
export function locationPath(res: Response, what: string): string {
  const loc = res.headers.get("location");
  if (!loc) throw new HttpError(`${what}: no Location header`, what, res);
  if (loc.startsWith("/")) return loc;
  const u = new URL(loc);
  return u.pathname + u.search;
}

/** Appends a query parameter to a path that may already have a query. */
export function withQuery(path: string, key: string, value: string): string {
  return `${path}${path.includes("?") ? "&" : "?"}${key}=${encodeURIComponent(value)}`;
}

export async function openFile(path: string): Promise<FileHandle> {
  return open(path, "r");
}
