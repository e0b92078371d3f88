import type { Readable } from "node:stream";
import type { AppendLog, DeleteOptions, FileInfo, FileWriter, MoveOptions, PutOptions, StatOptions, StorageDriver, Visitor, WalkOptions, WriterOptions } from "../driver/storage-driver.js";
import type { RedirectClient } from "../driver/storage-driver.js";

/** One timing series per action: the label children are looked up once, not per call. */
export interface ActionTimer {
  observe(seconds: number): void;
}

/** The actions distribution's base driver times (storage/driver/base/base.go), by the name it writes. */
export const TIMED_ACTIONS = ["GetContent", "PutContent", "Stat", "List", "Move", "Delete", "RedirectURL"] as const;
export type TimedAction = (typeof TIMED_ACTIONS)[number];

/** distribution's driver names where berth's differ (its S3 driver registers as "s3aws"). */
export function distributionDriverName(name: string): string {
  return name === "s3" ? "s3aws" : name;
}

/**
 * A StorageDriver that times what distribution's base driver times, into
 * `registry_storage_action_seconds{driver,action}`, and passes everything else through untouched:
 * readers and writers are the inner driver's own objects (so what marks them, such as a local
 * file range for sendfile, still applies), and `appendLog` and `removeTemporaries` exist exactly
 * when the inner driver has them. A failed action is timed too, as in distribution.
 */
export class MeteredDriver implements StorageDriver {
  readonly name: string;
  readonly remote?: boolean;
  readonly appendLog?: (path: string) => Promise<AppendLog>;
  readonly removeTemporaries?: (olderThan: Date) => Promise<number>;

  constructor(
    private readonly inner: StorageDriver,
    private readonly timers: Readonly<Record<TimedAction, ActionTimer>>,
  ) {
    this.name = inner.name;
    if (inner.remote !== undefined) this.remote = inner.remote;
    if (inner.appendLog !== undefined) this.appendLog = inner.appendLog.bind(inner);
    if (inner.removeTemporaries !== undefined) this.removeTemporaries = inner.removeTemporaries.bind(inner);
  }

  getContent(path: string): Promise<Buffer> {
    return timed(this.timers.GetContent, performance.now(), this.inner.getContent(path));
  }

  putContent(path: string, content: Uint8Array, options?: PutOptions): Promise<void> {
    return timed(this.timers.PutContent, performance.now(), this.inner.putContent(path, content, options));
  }

  reader(path: string, offset?: number, end?: number): Promise<Readable> {
    return this.inner.reader(path, offset, end);
  }

  writer(path: string, append: boolean, options?: WriterOptions): Promise<FileWriter> {
    return this.inner.writer(path, append, options);
  }

  stat(path: string, options?: StatOptions): Promise<FileInfo> {
    return timed(this.timers.Stat, performance.now(), this.inner.stat(path, options));
  }

  list(path: string): Promise<string[]> {
    return timed(this.timers.List, performance.now(), this.inner.list(path));
  }

  move(sourcePath: string, destPath: string, options?: MoveOptions): Promise<void> {
    return timed(this.timers.Move, performance.now(), this.inner.move(sourcePath, destPath, options));
  }

  delete(path: string, options?: DeleteOptions): Promise<void> {
    return timed(this.timers.Delete, performance.now(), this.inner.delete(path, options));
  }

  redirectURL(path: string, method: "GET" | "HEAD", client?: RedirectClient): Promise<string | undefined> {
    return timed(this.timers.RedirectURL, performance.now(), this.inner.redirectURL(path, method, client));
  }

  walk(path: string, visit: Visitor, options?: WalkOptions): Promise<void> {
    return this.inner.walk(path, visit, options);
  }
}

/**
 * `operation`, observing how long it took to settle since `started` (taken before it was called).
 * One `then` on the inner promise: no async wrapper, so timing adds a single promise per call.
 */
function timed<T>(timer: ActionTimer, started: number, operation: Promise<T>): Promise<T> {
  return operation.then(
    (value) => {
      timer.observe((performance.now() - started) / 1000);
      return value;
    },
    (err: unknown) => {
      timer.observe((performance.now() - started) / 1000);
      throw err;
    },
  );
}
