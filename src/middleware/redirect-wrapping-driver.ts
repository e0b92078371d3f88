import type { Readable } from "node:stream";
import type {
  AppendLog,
  DeleteOptions,
  FileInfo,
  FileWriter,
  MoveOptions,
  PutOptions,
  RedirectClient,
  StatOptions,
  StorageDriver,
  Visitor,
  WalkOptions,
  WriterOptions,
} from "../driver/storage-driver.js";

/**
 * A driver that is its inner driver except for the URL it gives clients: what distribution's
 * storage middleware is (an embedded StorageDriver with RedirectURL overridden). Everything else
 * passes through untouched, including the inner driver's own readers and writers and the optional
 * `appendLog` and `removeTemporaries`, present exactly when the inner driver has them.
 */
export abstract class RedirectWrappingDriver implements StorageDriver {
  readonly name: string;
  readonly remote?: boolean;
  readonly appendLog?: (path: string) => Promise<AppendLog>;
  readonly removeTemporaries?: (olderThan: Date) => Promise<number>;

  constructor(protected readonly inner: StorageDriver) {
    this.name = inner.name;
    if (inner.remote !== undefined) this.remote = inner.remote;
    if (inner.appendLog !== undefined) this.appendLog = inner.appendLog.bind(inner);
    if (inner.removeTemporaries !== undefined) this.removeTemporaries = inner.removeTemporaries.bind(inner);
  }

  abstract redirectURL(path: string, method: "GET" | "HEAD", client?: RedirectClient): Promise<string | undefined>;

  getContent(path: string): Promise<Buffer> {
    return this.inner.getContent(path);
  }

  putContent(path: string, content: Uint8Array, options?: PutOptions): Promise<void> {
    return this.inner.putContent(path, content, options);
  }

  reader(path: string, offset?: number, end?: number): Promise<Readable> {
    return this.inner.reader(path, offset, end);
  }

  writer(path: string, append: boolean, options?: WriterOptions): Promise<FileWriter> {
    return this.inner.writer(path, append, options);
  }

  stat(path: string, options?: StatOptions): Promise<FileInfo> {
    return this.inner.stat(path, options);
  }

  list(path: string): Promise<string[]> {
    return this.inner.list(path);
  }

  move(sourcePath: string, destPath: string, options?: MoveOptions): Promise<void> {
    return this.inner.move(sourcePath, destPath, options);
  }

  delete(path: string, options?: DeleteOptions): Promise<void> {
    return this.inner.delete(path, options);
  }

  walk(path: string, visit: Visitor, options?: WalkOptions): Promise<void> {
    return this.inner.walk(path, visit, options);
  }
}
