/**
 * GetObject answers read straight off the socket, into buffers used again (ReadBufferPool).
 *
 * Node's HTTP client copies every chunk of a body into fresh memory; a pull through S3 moves every
 * byte of a blob that way, and the fresh memory (its page faults, zeroing and collection) cost more
 * CPU than the rest of the download. Here a GET is written to a kept-alive socket of this client's
 * own and the answer read with `onread` into a pool buffer: the head is parsed (response-head.ts),
 * and each read of the body is passed on as a view of that buffer, which its consumer gives back
 * by releasing the chunk once the bytes are in the kernel (send-owned-chunks.ts).
 *
 * On a plain TCP connection the body is also a SocketSource: a server can have the kernel move
 * its bytes to the client (splice) without reading them at all.
 *
 * Only answers whose body has a Content-Length are read here: every S3 server frames GetObject
 * that way. Any other answer fails with UnframedAnswerError and the transport sends its requests
 * with Node's client from then on.
 */
import type { IncomingHttpHeaders } from "node:http";
import { isIP, connect as netConnect, type Socket } from "node:net";
import { Readable } from "node:stream";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { plainSocketFd } from "../../native/sendfile-pump.js";
import { ReadBufferPool } from "../read-buffer-pool.js";
import type { SocketSource } from "../storage-driver.js";
import { MAX_HEAD_BYTES, parseResponseHead, type ResponseHead } from "./response-head.js";
import { S3ProtocolError, S3TimeoutError } from "./s3-errors.js";
import type { S3Endpoint } from "./s3-transport.js";

export interface ObjectBodyClientOptions {
  connectTimeoutMs: number;
  /** Inactivity on a connection with a request in flight after which it fails. */
  socketTimeoutMs: number;
  rejectUnauthorized: boolean;
  /** Connections kept open between requests; more may be open while requests are in flight. */
  maxIdle: number;
}

/** The answer's body is not delimited by a Content-Length: not read here (see the module comment). */
export class UnframedAnswerError extends Error {
  constructor(status: number) {
    super(`s3: an answer (HTTP ${status}) without a Content-Length`);
    this.name = "UnframedAnswerError";
  }
}

/** The most one socket read takes: reads of a download on loopback averaged about 120 KB. */
const READ_BUFFER_BYTES = 256 * 1024;
/**
 * A read of less is copied out and its buffer read into again, so that a chunk waiting in a
 * stream never holds more than eight times its own size.
 */
const COPY_BELOW_BYTES = 32 * 1024;
/** An idle connection is closed after this long (servers close theirs after 20–60 s). */
const IDLE_TIMEOUT_MS = 15_000;
const CRLFCRLF = Buffer.from("\r\n\r\n", "latin1");

/** The party a connection's bytes and failure go to while it has a request in flight. */
interface ConnectionUser {
  /** Bytes [start, end) of the current read buffer; false stops reading until the socket is resumed. */
  bytes(buffer: Buffer, start: number, end: number): boolean;
  /** The connection failed or closed before the user was done with it. */
  failed(err: Error): void;
}

class Connection {
  readonly socket: Socket;
  readonly socketTimeoutMs: number;
  user: ConnectionUser | undefined;
  /** The buffer the socket reads into next; undefined once lent with a chunk of it. */
  #current: Buffer | undefined;
  #error: Error | undefined;

  constructor(endpoint: S3Endpoint, options: ObjectBodyClientOptions, pool: ReadBufferPool, onClose: (connection: Connection) => void) {
    const onread = {
      buffer: (): Buffer => (this.#current ??= pool.take()),
      callback: (length: number, buffer: Buffer): boolean => {
        if (this.user !== undefined) return this.user.bytes(buffer, 0, length);
        // Bytes no request asked for: the connection cannot be trusted with the next one.
        this.socket.destroy();
        return false;
      },
    };
    this.socketTimeoutMs = options.socketTimeoutMs;
    const port = endpoint.port;
    const host = endpoint.hostname;
    this.socket =
      endpoint.protocol === "https:"
        ? // TLSSocket takes `onread` as net.Socket does (Node 20), though its typings leave it out.
          tlsConnect({ host, port, servername: isIP(host) === 0 ? host : undefined, rejectUnauthorized: options.rejectUnauthorized, onread } as ConnectionOptions)
        : netConnect({ host, port, onread });
    this.socket.setNoDelay(true);
    const connectTimer = setTimeout(() => this.socket.destroy(new S3TimeoutError(`s3: could not connect to ${endpoint.host} in ${options.connectTimeoutMs} ms`)), options.connectTimeoutMs);
    this.socket.once(endpoint.protocol === "https:" ? "secureConnect" : "connect", () => clearTimeout(connectTimer));
    this.socket.on("timeout", () => {
      this.socket.destroy(this.user === undefined ? undefined : new S3TimeoutError(`s3: no data from ${endpoint.host} for ${options.socketTimeoutMs} ms`));
    });
    this.socket.on("error", (err) => {
      this.#error ??= err;
    });
    this.socket.once("close", () => {
      clearTimeout(connectTimer);
      if (this.#current !== undefined) pool.giveBack(this.#current.buffer as ArrayBuffer);
      this.#current = undefined;
      const user = this.user;
      this.user = undefined;
      onClose(this);
      user?.failed(this.#error ?? Object.assign(new Error("s3: the connection closed before the answer was complete"), { code: "ECONNRESET" }));
    });
  }

  /** The buffer just read is lent out with a chunk of it: the next read goes to another. */
  lendCurrent(): void {
    this.#current = undefined;
  }

  /** Starts serving `user`: the socket timeout runs and keeps the process alive. */
  use(user: ConnectionUser): void {
    this.user = user;
    this.socket.ref();
    this.socket.setTimeout(this.socketTimeoutMs);
  }

  /** Waits for the next request: it closes after a while, and does not keep the process alive. */
  idle(): void {
    this.user = undefined;
    this.socket.setTimeout(IDLE_TIMEOUT_MS);
    this.socket.unref();
    // Reading, so that the server closing it is seen at once.
    this.socket.resume();
  }
}

export class ObjectBodyClient {
  readonly #endpoint: S3Endpoint;
  readonly #options: ObjectBodyClientOptions;
  readonly #pool: ReadBufferPool;
  readonly #idle: Connection[] = [];
  readonly #open = new Set<Connection>();

  constructor(endpoint: S3Endpoint, options: ObjectBodyClientOptions) {
    this.#endpoint = endpoint;
    this.#options = options;
    this.#pool = new ReadBufferPool(READ_BUFFER_BYTES, 16);
  }

  /**
   * Sends `GET <target>` with `headers` (their names in lower case, `host` among them) and
   * resolves with the answer once its head has arrived, whatever its status; its body is the
   * stream's bytes. Rejects when no answer came (the connection refused, cut or timed out, codes
   * as node:net gives them), and with UnframedAnswerError for an answer it does not read.
   */
  get(target: string, headers: Record<string, string>): Promise<ObjectBody> {
    let request = `GET ${target} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(headers)) {
      if (/[\r\n]/.test(value) || /[\r\n:]/.test(name)) throw new TypeError(`s3: the header ${JSON.stringify(name)} has a line break`);
      request += `${name}: ${value}\r\n`;
    }
    request += "\r\n";
    const connection = this.#idle.pop() ?? this.#connect();
    return new Promise((resolve, reject) => {
      connection.use(new HeadReader(this, connection, resolve, reject));
      connection.socket.write(request, "latin1");
    });
  }

  /** Closes every connection; answers being read fail. */
  destroy(): void {
    for (const connection of this.#open) connection.socket.destroy();
  }

  /** A request's answer was read whole: its connection serves the next one, or closes. */
  finished(connection: Connection, reusable: boolean): void {
    if (!reusable || this.#idle.length >= this.#options.maxIdle || connection.socket.destroyed) {
      connection.user = undefined;
      connection.socket.destroy();
      return;
    }
    connection.idle();
    this.#idle.push(connection);
  }

  #connect(): Connection {
    const connection = new Connection(this.#endpoint, this.#options, this.#pool, (closed) => {
      this.#open.delete(closed);
      const at = this.#idle.indexOf(closed);
      if (at !== -1) this.#idle.splice(at, 1);
    });
    this.#open.add(connection);
    return connection;
  }
}

/** Reads an answer's head, then hands the connection to the body. */
class HeadReader implements ConnectionUser {
  #head: Buffer | undefined;

  constructor(
    private readonly client: ObjectBodyClient,
    private readonly connection: Connection,
    private readonly resolve: (body: ObjectBody) => void,
    private readonly reject: (err: Error) => void,
  ) {}

  bytes(buffer: Buffer, start: number, end: number): boolean {
    // The head is almost always whole in the first read; when it is not, its parts are copied.
    const read = buffer.subarray(start, end);
    const seen = this.#head === undefined ? read : Buffer.concat([this.#head, read.subarray(0, MAX_HEAD_BYTES)]);
    const at = seen.indexOf(CRLFCRLF);
    if (at === -1) {
      if (seen.length >= MAX_HEAD_BYTES) return this.#fail(new S3ProtocolError(`s3: an answer's head is over ${MAX_HEAD_BYTES} bytes`));
      this.#head = Buffer.from(seen);
      return true;
    }
    let head: ResponseHead;
    try {
      head = parseResponseHead(seen.toString("latin1", 0, at));
    } catch (err) {
      return this.#fail(err as Error);
    }
    const bodyStart = start + at + 4 - (this.#head?.length ?? 0);
    this.#head = undefined;
    if (head.status >= 100 && head.status < 200) return bodyStart < end ? this.bytes(buffer, bodyStart, end) : true;
    if (head.contentLength === undefined) return this.#fail(new UnframedAnswerError(head.status));
    const body = new ObjectBody(head, this.client, this.connection);
    this.connection.user = body;
    this.resolve(body);
    return bodyStart < end || head.contentLength === 0 ? body.bytes(buffer, bodyStart, end) : true;
  }

  failed(err: Error): void {
    this.reject(err);
  }

  #fail(err: Error): boolean {
    this.connection.user = undefined;
    this.connection.socket.destroy();
    this.reject(err);
    return false;
  }
}

/**
 * An answer's body, as S3 sent it: a Readable whose chunks are views of pool buffers (or copies of
 * short reads). Its consumer may release each chunk once done with it (send-owned-chunks.ts).
 * Cut before its Content-Length, it fails with an error whose code is ECONNRESET (or ETIMEDOUT).
 */
export class ObjectBody extends Readable implements ConnectionUser, SocketSource {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  #remaining: number;
  /** Until the body is read whole. */
  #connection: Connection | undefined;
  readonly #client: ObjectBodyClient;
  readonly #keepAlive: boolean;
  /** The socket was given over (takeOver): this stream reads no more. */
  #takenOver = false;

  constructor(head: ResponseHead, client: ObjectBodyClient, connection: Connection) {
    super({ highWaterMark: READ_BUFFER_BYTES });
    this.statusCode = head.status;
    this.headers = head.headers;
    this.#remaining = head.contentLength!;
    this.#client = client;
    this.#connection = connection;
    this.#keepAlive = head.keepAlive;
  }

  bytes(buffer: Buffer, start: number, end: number): boolean {
    const connection = this.#connection!;
    const length = Math.min(end - start, this.#remaining);
    let more = true;
    if (length > 0) {
      let chunk: Buffer;
      if (length >= COPY_BELOW_BYTES) {
        chunk = buffer.subarray(start, start + length);
        connection.lendCurrent();
      } else {
        chunk = Buffer.allocUnsafe(length);
        buffer.copy(chunk, 0, start, start + length);
      }
      this.#remaining -= length;
      more = this.push(chunk);
    }
    if (this.#remaining > 0) return more;
    this.#connection = undefined;
    this.push(null);
    // Bytes past the body mean the server and this reader disagree on framing: not used again.
    this.#client.finished(connection, this.#keepAlive && start + length === end);
    return true;
  }

  failed(err: Error): void {
    this.#connection = undefined;
    this.destroy(err);
  }

  takeOver(): ReturnType<SocketSource["takeOver"]> {
    const connection = this.#connection;
    const fd = connection && plainSocketFd(connection.socket);
    if (connection === undefined || fd === undefined || this.#takenOver || this.readableFlowing === true || this.readableDidRead) return undefined;
    this.#takenOver = true;
    connection.socket.pause();
    // The socket's own inactivity timer would fire while the kernel moves the bytes: the mover
    // applies the limit instead.
    connection.socket.setTimeout(0);
    const buffered = this.readableLength > 0 ? (this.read() as Buffer) : null;
    return { buffered, fd, length: this.#remaining, stallMs: connection.socketTimeoutMs };
  }

  finish(moved: boolean): void {
    const connection = this.#connection;
    if (!this.#takenOver || connection === undefined) return;
    this.#connection = undefined;
    if (moved) {
      this.#remaining = 0;
      this.#client.finished(connection, this.#keepAlive);
    } else {
      connection.user = undefined;
      connection.socket.destroy();
    }
    this.destroy();
  }

  override _read(): void {
    if (!this.#takenOver) this.#connection?.socket.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const connection = this.#connection;
    this.#connection = undefined;
    if (connection !== undefined) {
      // Read only in part: the rest of it would arrive on the next request.
      connection.user = undefined;
      connection.socket.destroy();
    }
    callback(err);
  }
}
