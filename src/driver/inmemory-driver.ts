import { Readable } from "node:stream";
import {
  assertOffset,
  assertValidPath,
  PathNotFoundError,
  type FileInfo,
  type FileWriter,
  type StorageDriver,
  type WriterOptions,
  requireFile,
  segmentsBelow,
  type Visitor,
  type WalkOptions,
} from "./storage-driver.js";

const READ_CHUNK = 1024 * 1024;

interface FileNode {
  kind: "file";
  /** Never mutated once stored: readers keep slices of it while writers publish new buffers. */
  data: Buffer;
  modTime: Date;
}

interface DirNode {
  kind: "dir";
  children: Map<string, Node>;
  modTime: Date;
}

type Node = FileNode | DirNode;


/**
 * Keeps every object in process memory, in a tree of directories so that list and walk only touch
 * the nodes they report. For tests and ephemeral registries (`storage.inmemory`).
 */
export class InMemoryDriver implements StorageDriver {
  readonly name = "inmemory";
  readonly #root: DirNode = newDir();

  async getContent(path: string): Promise<Buffer> {
    assertValidPath(path);
    return Buffer.from(this.#file(path).data);
  }

  async putContent(path: string, content: Uint8Array): Promise<void> {
    assertValidPath(path);
    this.#store(path, Buffer.from(content));
  }

  async reader(path: string, offset = 0, end?: number): Promise<Readable> {
    assertValidPath(path);
    assertOffset(offset, end);
    const { data } = this.#file(path);
    const stop = Math.min(end ?? data.length, data.length);
    return Readable.from(slices(data, offset, stop), { objectMode: false });
  }

  async writer(path: string, append: boolean, options?: WriterOptions): Promise<FileWriter> {
    assertValidPath(path);
    if (options?.whileExists !== undefined) await requireFile(this, options.whileExists);
    const existing = this.#lookup(path);
    if (existing?.kind === "dir") throw new Error(`${this.name}: ${path} is a directory`);
    const initial = append && existing !== undefined ? existing.data : Buffer.alloc(0);
    // The path exists (and is truncated) from now on, as it does for a file opened on disk.
    if (!append || existing === undefined) this.#store(path, initial);
    return new InMemoryFileWriter(
      path,
      initial,
      (data) => this.#store(path, data),
      () => this.#removeFile(path),
    );
  }

  async stat(path: string): Promise<FileInfo> {
    assertValidPath(path);
    return fileInfo(path, this.#node(path));
  }

  async list(path: string): Promise<string[]> {
    assertValidPath(path);
    const prefix = childPrefix(path);
    return [...this.#dir(path).children.keys()].map((name) => prefix + name);
  }

  async move(sourcePath: string, destPath: string): Promise<void> {
    assertValidPath(sourcePath);
    assertValidPath(destPath);
    const node = this.#node(sourcePath);
    if (sourcePath === destPath) return;
    if (destPath.startsWith(`${sourcePath}/`)) {
      throw new Error(`${this.name}: cannot move ${sourcePath} into itself (${destPath})`);
    }
    const { parent: destParent, name: destName } = this.#makeParent(destPath);
    if (destParent.children.get(destName)?.kind === "dir") {
      throw new Error(`${this.name}: cannot move ${sourcePath} onto directory ${destPath}`);
    }
    this.#detach(sourcePath);
    attach(destParent, destName, node);
  }

  async delete(path: string): Promise<void> {
    assertValidPath(path);
    this.#node(path);
    if (path === "/") {
      this.#root.children.clear();
      return;
    }
    this.#detach(path);
  }

  async redirectURL(path: string, _method: "GET" | "HEAD"): Promise<string | undefined> {
    assertValidPath(path);
    return undefined;
  }

  async walk(path: string, visit: Visitor, options?: WalkOptions): Promise<void> {
    assertValidPath(path);
    const after = options?.startAfter === undefined ? [] : segmentsBelow(path, options.startAfter);
    await walkDirAfter(path, this.#dir(path), after, visit);
  }

  #lookup(path: string): Node | undefined {
    let node: Node = this.#root;
    for (const name of segments(path)) {
      if (node.kind !== "dir") return undefined;
      const child: Node | undefined = node.children.get(name);
      if (child === undefined) return undefined;
      node = child;
    }
    return node;
  }

  #node(path: string): Node {
    const node = this.#lookup(path);
    if (node === undefined) throw new PathNotFoundError(path, this.name);
    return node;
  }

  #file(path: string): FileNode {
    const node = this.#node(path);
    if (node.kind !== "file") throw new PathNotFoundError(path, this.name);
    return node;
  }

  #dir(path: string): DirNode {
    const node = this.#node(path);
    if (node.kind !== "dir") throw new PathNotFoundError(path, this.name);
    return node;
  }

  /** The directory that holds `path`, created as needed, and the last segment of `path`. */
  #makeParent(path: string): { parent: DirNode; name: string } {
    const names = segments(path);
    const name = names.pop();
    if (name === undefined) throw new Error(`${this.name}: the root is a directory`);
    let dir = this.#root;
    for (const segment of names) {
      const child = dir.children.get(segment);
      if (child?.kind === "file") throw new Error(`${this.name}: ${path}: ${segment} is a file`);
      dir = child ?? attach(dir, segment, newDir());
    }
    return { parent: dir, name };
  }

  #store(path: string, data: Buffer): void {
    const { parent, name } = this.#makeParent(path);
    if (parent.children.get(name)?.kind === "dir") throw new Error(`${this.name}: ${path} is a directory`);
    attach(parent, name, { kind: "file", data, modTime: new Date() });
  }

  #detach(path: string): void {
    const cut = path.lastIndexOf("/");
    const parent = this.#lookup(cut === 0 ? "/" : path.slice(0, cut));
    if (parent?.kind !== "dir") return;
    parent.children.delete(path.slice(cut + 1));
    parent.modTime = new Date();
  }

  #removeFile(path: string): void {
    if (this.#lookup(path)?.kind === "file") this.#detach(path);
  }
}

type WriterState = "open" | "closed" | "committed" | "cancelled";

/**
 * Gathers chunks and publishes them at the path on `close` or `commit`. Like stream.Writable, a
 * chunk is held by reference, so callers must not reuse its memory after `write`.
 */
class InMemoryFileWriter implements FileWriter {
  #chunks: Buffer[];
  #size: number;
  #state: WriterState = "open";

  constructor(
    private readonly path: string,
    initial: Buffer,
    private readonly publish: (data: Buffer) => void,
    private readonly discard: () => void,
  ) {
    this.#chunks = initial.length > 0 ? [initial] : [];
    this.#size = initial.length;
  }

  get size(): number {
    return this.#size;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#state !== "open") throw new Error(`writer is ${this.#state}: ${this.path}`);
    this.#chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.#size += chunk.byteLength;
  }

  async close(): Promise<void> {
    if (this.#state !== "open") return;
    this.#state = "closed";
    this.#publish();
  }

  async commit(): Promise<void> {
    if (this.#state === "committed") return;
    if (this.#state !== "open") throw new Error(`cannot commit a ${this.#state} writer: ${this.path}`);
    this.#state = "committed";
    this.#publish();
  }

  async cancel(): Promise<void> {
    if (this.#state === "cancelled") return;
    if (this.#state === "committed") throw new Error(`writer already committed: ${this.path}`);
    this.#state = "cancelled";
    this.#chunks = [];
    this.discard();
  }

  #publish(): void {
    const data = Buffer.concat(this.#chunks, this.#size);
    this.#chunks = [];
    this.publish(data);
  }
}

/**
 * The children of `dir` (and what is under them) that come after the path `after` names below it.
 * True when the visitor stopped the walk.
 */
async function walkDirAfter(path: string, dir: DirNode, after: string[], visit: Visitor): Promise<boolean> {
  const [first, ...rest] = after;
  if (first === undefined) return walkDir(path, dir, visit);
  const prefix = childPrefix(path);
  const node = dir.children.get(first);
  if (rest.length > 0 && node?.kind === "dir" && (await walkDirAfter(prefix + first, node, rest, visit))) return true;
  return walkDir(path, dir, visit, first);
}

/**
 * Walks the children of `dir` named after `after` (all when undefined), and what is under them.
 * True when the visitor stopped the walk.
 */
async function walkDir(path: string, dir: DirNode, visit: Visitor, after?: string): Promise<boolean> {
  const prefix = childPrefix(path);
  for (const name of [...dir.children.keys()].sort()) {
    if (after !== undefined && name <= after) continue;
    const node = dir.children.get(name);
    if (node === undefined) continue;
    const decision = await visit(fileInfo(prefix + name, node));
    if (decision === "stop") return true;
    // The visitor may have deleted the directory; a detached subtree is no longer under `path`.
    if (node.kind === "dir" && decision !== "skip" && dir.children.get(name) === node && (await walkDir(prefix + name, node, visit))) return true;
  }
  return false;
}

function* slices(data: Buffer, start: number, stop: number): Generator<Buffer> {
  for (let at = start; at < stop; at += READ_CHUNK) yield data.subarray(at, Math.min(at + READ_CHUNK, stop));
}

function attach<T extends Node>(dir: DirNode, name: string, node: T): T {
  dir.children.set(name, node);
  dir.modTime = new Date();
  return node;
}

function newDir(): DirNode {
  return { kind: "dir", children: new Map(), modTime: new Date() };
}

function fileInfo(path: string, node: Node): FileInfo {
  const size = node.kind === "file" ? node.data.length : 0;
  return { path, size, modTime: node.modTime, isDir: node.kind === "dir" };
}

function segments(path: string): string[] {
  return path === "/" ? [] : path.slice(1).split("/");
}

function childPrefix(path: string): string {
  return path === "/" ? "/" : `${path}/`;
}

