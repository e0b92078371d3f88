/**
 * A FAULT-INJECTING StorageDriver wrapper, for tests only: it passes every call to a real driver
 * except those a rule picks, which fail with an errno-shaped error (EIO by default, as Node's fs
 * reports it: `code`, `errno`, `syscall`). Rules pick by operation and path pattern, may let the
 * first N matching calls through, and may fail a bounded number of times.
 *
 * Operations: the driver's methods by name, plus the stages inside a writer and a reader:
 * "writer.write", "writer.close", "writer.commit" (the writer's bytes reaching storage) and
 * "reader.data" (a reader's stream failing after it has delivered `afterBytes` bytes).
 *
 * Used in-process: `serve(config, [], log, { wrapDriver: (d) => new FaultyDriver(d) })`.
 */
import { Readable, Transform } from "node:stream";
import type {
  AppendLog,
  CommitOptions,
  DeleteOptions,
  FileInfo,
  FileWriter,
  MoveOptions,
  PutOptions,
  StatOptions,
  StorageDriver,
  WriterOptions,
  Visitor,
  WalkOptions,
} from "../../src/driver/storage-driver.js";
import type { RedirectClient } from "../../src/driver/storage-driver.js";

export type FaultOperation =
  | "getContent"
  | "putContent"
  | "reader"
  | "reader.data"
  | "writer"
  | "writer.write"
  | "writer.close"
  | "writer.commit"
  | "stat"
  | "list"
  | "move"
  | "delete"
  | "walk"
  | "redirectURL";

export interface FaultRule {
  /** The operations the rule applies to. */
  ops: FaultOperation[];
  /** Paths it applies to (for move, the destination); every path when absent. */
  path?: RegExp;
  /** Matching calls let through before the first failure. Default 0. */
  after?: number;
  /** Failures before the rule stops firing. Default: no end (until removed). */
  times?: number;
  /** The error thrown; default EIO for the operation's syscall. */
  error?: (op: FaultOperation, path: string) => Error;
  /** For "reader.data": bytes delivered before the stream fails. Default 0. */
  afterBytes?: number;
}

/** A rule in force; `fired` counts its failures. */
export interface Fault {
  readonly rule: FaultRule;
  readonly fired: number;
  /** Calls that matched it (let through or failed). */
  readonly matched: number;
  remove(): void;
}

const SYSCALLS: Record<FaultOperation, string> = {
  getContent: "read",
  putContent: "write",
  reader: "open",
  "reader.data": "read",
  writer: "open",
  "writer.write": "write",
  "writer.close": "close",
  "writer.commit": "fsync",
  stat: "stat",
  list: "scandir",
  move: "rename",
  delete: "unlink",
  walk: "scandir",
  redirectURL: "open",
};

/** An error shaped as node:fs reports a failed syscall. */
export function errnoError(code: string, errno: number, syscall: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}, ${syscall}`), { code, errno, syscall });
}

export const eio = (op: FaultOperation): Error => errnoError("EIO", -5, SYSCALLS[op], "i/o error");
export const enospc = (op: FaultOperation): Error => errnoError("ENOSPC", -28, SYSCALLS[op], "no space left on device");

class ActiveFault implements Fault {
  fired = 0;
  matched = 0;
  constructor(
    readonly rule: FaultRule,
    private readonly owner: FaultyDriver,
  ) {}
  remove(): void {
    this.owner.remove(this);
  }
}

export class FaultyDriver implements StorageDriver {
  readonly #faults: ActiveFault[] = [];

  constructor(readonly inner: StorageDriver) {}

  get name(): string {
    return this.inner.name;
  }

  /** Adds a rule; it applies to calls made from now on. */
  inject(rule: FaultRule): Fault {
    const fault = new ActiveFault(rule, this);
    this.#faults.push(fault);
    return fault;
  }

  remove(fault: Fault): void {
    const index = this.#faults.indexOf(fault as ActiveFault);
    if (index >= 0) this.#faults.splice(index, 1);
  }

  /** Removes every rule: the fault ends. */
  clear(): void {
    this.#faults.length = 0;
  }

  /** The failure a call of `op` on `path` meets, if a rule fires for it. */
  check(op: FaultOperation, path: string): Error | undefined {
    for (const fault of this.#faults) {
      const { rule } = fault;
      if (!rule.ops.includes(op) || (rule.path !== undefined && !rule.path.test(path))) continue;
      fault.matched++;
      if (fault.matched <= (rule.after ?? 0)) continue;
      if (rule.times !== undefined && fault.fired >= rule.times) continue;
      fault.fired++;
      return (rule.error ?? eio)(op, path);
    }
    return undefined;
  }

  #fail(op: FaultOperation, path: string): void {
    const err = this.check(op, path);
    if (err) throw err;
  }

  async getContent(path: string): Promise<Buffer> {
    this.#fail("getContent", path);
    return this.inner.getContent(path);
  }

  async putContent(path: string, content: Uint8Array, options?: PutOptions): Promise<void> {
    this.#fail("putContent", path);
    return this.inner.putContent(path, content, options);
  }

  async reader(path: string, offset?: number, end?: number): Promise<Readable> {
    this.#fail("reader", path);
    const stream = await this.inner.reader(path, offset, end);
    const rule = this.#faults.find((f) => f.rule.ops.includes("reader.data") && (f.rule.path === undefined || f.rule.path.test(path)));
    if (rule === undefined) return stream;
    const err = this.check("reader.data", path);
    if (err === undefined) return stream;
    // Delivers `afterBytes`, then fails the way a read(2) returning EIO fails a file stream.
    let left = rule.rule.afterBytes ?? 0;
    const cut = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        if (chunk.length <= left) {
          left -= chunk.length;
          callback(null, chunk);
          return;
        }
        if (left > 0) this.push(chunk.subarray(0, left));
        left = 0;
        callback(err);
      },
    });
    stream.on("error", (e) => cut.destroy(e));
    cut.on("close", () => stream.destroy());
    return stream.pipe(cut);
  }

  async writer(path: string, append: boolean, options?: WriterOptions): Promise<FileWriter> {
    this.#fail("writer", path);
    return new FaultyWriter(await this.inner.writer(path, append, options), path, this);
  }

  async stat(path: string, options?: StatOptions): Promise<FileInfo> {
    this.#fail("stat", path);
    return this.inner.stat(path, options);
  }

  async list(path: string): Promise<string[]> {
    this.#fail("list", path);
    return this.inner.list(path);
  }

  async move(sourcePath: string, destPath: string, options?: MoveOptions): Promise<void> {
    this.#fail("move", destPath);
    return this.inner.move(sourcePath, destPath, options);
  }

  async delete(path: string, options?: DeleteOptions): Promise<void> {
    this.#fail("delete", path);
    return this.inner.delete(path, options);
  }

  async redirectURL(path: string, method: "GET" | "HEAD", client?: RedirectClient): Promise<string | undefined> {
    this.#fail("redirectURL", path);
    return this.inner.redirectURL(path, method, client);
  }

  async walk(path: string, visit: Visitor, options?: WalkOptions): Promise<void> {
    this.#fail("walk", path);
    return this.inner.walk(path, visit, options);
  }

  get appendLog(): ((path: string) => Promise<AppendLog>) | undefined {
    const inner = this.inner;
    return inner.appendLog === undefined ? undefined : (path) => inner.appendLog!(path);
  }

  get removeTemporaries(): ((olderThan: Date) => Promise<number>) | undefined {
    const inner = this.inner;
    return inner.removeTemporaries === undefined ? undefined : (olderThan) => inner.removeTemporaries!(olderThan);
  }
}

/** A writer whose write, close and commit may fail before reaching the real one. */
class FaultyWriter implements FileWriter {
  constructor(
    private readonly inner: FileWriter,
    private readonly path: string,
    private readonly driver: FaultyDriver,
  ) {}

  get size(): number {
    return this.inner.size;
  }

  get copiesChunks(): boolean | undefined {
    return this.inner.copiesChunks;
  }

  async write(chunk: Uint8Array): Promise<void> {
    const err = this.driver.check("writer.write", this.path);
    if (err) throw err;
    return this.inner.write(chunk);
  }

  async close(): Promise<void> {
    const err = this.driver.check("writer.close", this.path);
    // What was written is left as a crash would leave it: the real writer is closed regardless.
    await this.inner.close();
    if (err) throw err;
  }

  async commit(options?: CommitOptions): Promise<void> {
    const err = this.driver.check("writer.commit", this.path);
    if (err) {
      await this.inner.close();
      throw err;
    }
    return this.inner.commit(options);
  }

  cancel(): Promise<void> {
    return this.inner.cancel();
  }
}
