import type { Readable } from "node:stream";
import { SpanStatusCode, context, trace, type Attributes, type Span, type Tracer } from "@opentelemetry/api";
import {
  isPathNotFound,
  type AppendLog,
  type CommitOptions,
  type DeleteOptions,
  type FileInfo,
  type FileWriter,
  type MoveOptions,
  type PutOptions,
  type StatOptions,
  type StorageDriver,
  type WriterOptions,
  type Visitor,
  type WalkOptions,
} from "../driver/storage-driver.js";
import {
  ATTR_STORAGE_APPEND,
  ATTR_STORAGE_CONTENT_LENGTH,
  ATTR_STORAGE_DEST_PATH,
  ATTR_STORAGE_DRIVER_NAME,
  ATTR_STORAGE_NOT_FOUND,
  ATTR_STORAGE_OFFSET,
  ATTR_STORAGE_PATH,
  ATTR_STORAGE_SIZE,
  ATTR_STORAGE_SOURCE_PATH,
  ATTR_STORAGE_WRITER_OUTCOME,
} from "./attributes.js";
import type { RedirectClient } from "../driver/storage-driver.js";

/**
 * A storage driver that records a span for each call of the driver it wraps, a child of whatever
 * span is active (the request's), named as distribution 3 names them (GetContent, Reader, …).
 * Calls made with no span active (the lease's heartbeat, upload purging, notification delivery)
 * record nothing: a trace of one storage call every few seconds would bury the requests.
 *
 * It changes nothing else: results, errors and streams are the inner driver's own objects (a
 * reader's stream is returned as it is, so what the server learns from it, such as the local file
 * behind it for sendfile, still holds), and optional capabilities (`appendLog`, `removeTemporaries`) exist on the
 * wrapper exactly when the inner driver has them. Spans of streams and writers last as long as
 * they do: a Reader span ends when its stream closes, a Writer span when the writer is committed,
 * cancelled or closed. No span sees a byte.
 */
export class TracedDriver implements StorageDriver {
  readonly name: string;
  declare readonly remote?: boolean;
  // Declared, not a field: a field would be an own property even when undefined, and
  // `"appendLog" in driver` would then be true for a driver without it.
  declare readonly appendLog?: (path: string) => Promise<AppendLog>;
  declare readonly removeTemporaries?: (olderThan: Date) => Promise<number>;

  constructor(
    private readonly inner: StorageDriver,
    private readonly tracer: Tracer,
  ) {
    this.name = inner.name;
    if (inner.remote !== undefined) this.remote = inner.remote;
    if (inner.appendLog !== undefined) this.appendLog = (path) => this.openAppendLog(path);
    // A maintenance pass over the whole tree: not a span (nothing a request waits on).
    if (inner.removeTemporaries !== undefined) this.removeTemporaries = inner.removeTemporaries.bind(inner);
  }

  getContent(path: string): Promise<Buffer> {
    return this.call("GetContent", this.pathAttributes(path), () => this.inner.getContent(path));
  }

  putContent(path: string, content: Uint8Array, options?: PutOptions): Promise<void> {
    const attributes = this.pathAttributes(path);
    attributes[ATTR_STORAGE_CONTENT_LENGTH] = content.length;
    return this.call("PutContent", attributes, () => this.inner.putContent(path, content, options));
  }

  async reader(path: string, offset?: number, end?: number): Promise<Readable> {
    if (trace.getSpan(context.active()) === undefined) return this.inner.reader(path, offset, end);
    const attributes = this.pathAttributes(path);
    attributes[ATTR_STORAGE_OFFSET] = offset ?? 0;
    const span = this.tracer.startSpan("Reader", { attributes });
    let stream: Readable;
    try {
      stream = await this.inner.reader(path, offset, end);
    } catch (err) {
      failed(span, err);
      span.end();
      throw err;
    }
    // 'close' comes after the end, an error, or a destroy (a client gone, or a sendfile done with
    // the file): one listener, and none on 'data', so the stream's flow is untouched.
    stream.once("close", () => {
      if (stream.errored) failed(span, stream.errored);
      span.end();
    });
    return stream;
  }

  async writer(path: string, append: boolean, options?: WriterOptions): Promise<FileWriter> {
    if (trace.getSpan(context.active()) === undefined) return this.inner.writer(path, append, options);
    const attributes = this.pathAttributes(path);
    attributes[ATTR_STORAGE_APPEND] = append;
    const span = this.tracer.startSpan("Writer", { attributes });
    try {
      return new TracedFileWriter(await this.inner.writer(path, append, options), span);
    } catch (err) {
      failed(span, err);
      span.end();
      throw err;
    }
  }

  stat(path: string, options?: StatOptions): Promise<FileInfo> {
    return this.call("Stat", this.pathAttributes(path), () => this.inner.stat(path, options));
  }

  list(path: string): Promise<string[]> {
    return this.call("List", this.pathAttributes(path), () => this.inner.list(path));
  }

  move(sourcePath: string, destPath: string, options?: MoveOptions): Promise<void> {
    const attributes: Attributes = {
      [ATTR_STORAGE_DRIVER_NAME]: this.name,
      [ATTR_STORAGE_SOURCE_PATH]: sourcePath,
      [ATTR_STORAGE_DEST_PATH]: destPath,
    };
    return this.call("Move", attributes, () => this.inner.move(sourcePath, destPath, options));
  }

  delete(path: string, options?: DeleteOptions): Promise<void> {
    return this.call("Delete", this.pathAttributes(path), () => this.inner.delete(path, options));
  }

  redirectURL(path: string, method: "GET" | "HEAD", client?: RedirectClient): Promise<string | undefined> {
    return this.call("RedirectURL", this.pathAttributes(path), () => this.inner.redirectURL(path, method, client));
  }

  walk(path: string, visit: Visitor, options?: WalkOptions): Promise<void> {
    // What `visit` does on storage (a garbage collection's reads) nests under the Walk span.
    return this.call("Walk", this.pathAttributes(path), (span) =>
      span === undefined
        ? this.inner.walk(path, visit, options)
        : context.with(trace.setSpan(context.active(), span), () => this.inner.walk(path, visit, options)),
    );
  }

  private async openAppendLog(path: string): Promise<AppendLog> {
    // An append log outlives the call that opened it: its appends are traced whenever a span is active.
    const log = await this.call("AppendLog", this.pathAttributes(path), () => this.inner.appendLog!(path));
    return new TracedAppendLog(log, path, this);
  }

  /** Runs `run` inside a span of its own; the span fails with it, except for a path not found. */
  async call<T>(operation: string, attributes: Attributes, run: (span?: Span) => Promise<T>): Promise<T> {
    if (trace.getSpan(context.active()) === undefined) return run();
    const span = this.tracer.startSpan(operation, { attributes });
    try {
      return await run(span);
    } catch (err) {
      failed(span, err);
      throw err;
    } finally {
      span.end();
    }
  }

  pathAttributes(path: string): Attributes {
    return { [ATTR_STORAGE_DRIVER_NAME]: this.name, [ATTR_STORAGE_PATH]: path };
  }
}

/** The inner writer, ending its Writer span when it is committed, cancelled or closed (whichever is first). */
class TracedFileWriter implements FileWriter {
  private ended = false;

  constructor(
    private readonly inner: FileWriter,
    private readonly span: Span,
  ) {}

  get size(): number {
    return this.inner.size;
  }

  get copiesChunks(): boolean | undefined {
    return this.inner.copiesChunks;
  }

  hashWhileWriting(sha256State: Buffer): boolean {
    return this.inner.hashWhileWriting?.(sha256State) === true;
  }

  write(chunk: Uint8Array): Promise<void> {
    return this.inner.write(chunk);
  }

  close(): Promise<void> {
    return this.finish("close", this.inner.close());
  }

  commit(options?: CommitOptions): Promise<void> {
    return this.finish("commit", this.inner.commit(options));
  }

  /** The span ends once the content is committed, or the attempt failed; `false` leaves it to commit(). */
  async commitAt(path: string): Promise<boolean> {
    if (this.inner.commitAt === undefined) return false;
    let placed: boolean;
    try {
      placed = await this.inner.commitAt(path);
    } catch (err) {
      await this.finish("commit", Promise.reject(err));
      throw err;
    }
    if (placed) await this.finish("commit", Promise.resolve());
    return placed;
  }

  cancel(): Promise<void> {
    return this.finish("cancel", this.inner.cancel());
  }

  private async finish(outcome: string, done: Promise<void>): Promise<void> {
    try {
      await done;
    } catch (err) {
      if (!this.ended) failed(this.span, err);
      throw err;
    } finally {
      if (!this.ended) {
        this.ended = true;
        this.span.setAttribute(ATTR_STORAGE_WRITER_OUTCOME, outcome);
        this.span.setAttribute(ATTR_STORAGE_SIZE, this.inner.size);
        this.span.end();
      }
    }
  }
}

/** The inner append log, with a span per append and truncate. */
class TracedAppendLog implements AppendLog {
  constructor(
    private readonly inner: AppendLog,
    private readonly path: string,
    private readonly driver: TracedDriver,
  ) {}

  get size(): number {
    return this.inner.size;
  }

  append(data: Uint8Array, sync: boolean): Promise<void> {
    const attributes = this.driver.pathAttributes(this.path);
    attributes[ATTR_STORAGE_CONTENT_LENGTH] = data.length;
    return this.driver.call("AppendLog.Append", attributes, () => this.inner.append(data, sync));
  }

  truncate(size: number): Promise<void> {
    return this.driver.call("AppendLog.Truncate", this.driver.pathAttributes(this.path), () => this.inner.truncate(size));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

function failed(span: Span, err: unknown): void {
  if (isPathNotFound(err)) {
    span.setAttribute(ATTR_STORAGE_NOT_FOUND, true);
    return;
  }
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  span.setAttribute("error.type", err instanceof Error ? err.name : typeof err);
}
