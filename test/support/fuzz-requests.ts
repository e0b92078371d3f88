/**
 * Hostile HTTP for the hardening and fuzz tests: a seeded PRNG, raw-socket exchanges (bytes exactly
 * as written, including what no HTTP client would send) with a small response parser, checks that
 * an answer leaks nothing internal, and a generator of randomized requests: valid registry requests
 * with one or a few fields broken (method, path segment, digest, header, Content-Range, body
 * length, query parameter, manifest JSON field).
 */
import { createHmac } from "node:crypto";
import { connect } from "node:net";

// --- seeded randomness

/** A small, fast, seedable PRNG (mulberry32): the same seed gives the same cases. */
export class Random {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }

  /** Printable ASCII (no CR/LF), as a header value or query text may hold. */
  printable(n: number): string {
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCharCode(0x20 + this.int(0x5f));
    return s;
  }
}

/** BERTH_FUZZ_SEED when set (decimal), else a fresh seed. */
export function fuzzSeed(): number {
  const fromEnv = process.env.BERTH_FUZZ_SEED;
  if (fromEnv !== undefined && fromEnv !== "") {
    const seed = Number(fromEnv);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`BERTH_FUZZ_SEED must be an integer in [0, 2^32): ${fromEnv}`);
    return seed;
  }
  return Math.floor(Math.random() * 0x100000000);
}

// --- raw exchanges

export interface RawResponse {
  status: number;
  statusText: string;
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
}

export interface Exchange {
  /** Final (non-1xx) responses in the order they arrived. */
  responses: RawResponse[];
  /** The server closed the connection (rather than the timeout cutting it). */
  closedByServer: boolean;
  timedOut: boolean;
  /** Milliseconds from connect to close. */
  ms: number;
  /** Everything the server sent, as latin1. */
  raw: string;
  /** The socket's first error (EPIPE, ECONNRESET: the server refused what was still being sent). */
  error?: string;
}

export interface ExchangeOptions {
  /** Give up (and destroy the socket) after this long. Default 10 s. */
  timeoutMs?: number;
  /** Half-close the connection after writing (the client has nothing more to send). */
  end?: boolean;
  /** Which requests were HEAD, in order: their responses have no body. */
  head?: boolean[];
  /** Stop (destroy) once this many final responses arrived. */
  responses?: number;
}

/**
 * Connects, writes `parts` (Buffers, or pauses in milliseconds between them), and collects what the
 * server answers until it closes, `responses` answers arrived, or the timeout passed.
 */
export function exchange(url: string, parts: Array<Buffer | string | number>, options: ExchangeOptions = {}): Promise<Exchange> {
  const { hostname, port } = new URL(url);
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let timedOut = false;
    let closedByUs = false;
    let settled = false;
    let error: string | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      closedByUs = true;
      socket.destroy();
    }, timeoutMs);
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const data = Buffer.concat(chunks);
      resolve({ responses: parseResponses(data, options.head ?? []), closedByServer: !closedByUs, timedOut, ms: Date.now() - started, raw: data.toString("latin1"), ...(error === undefined ? {} : { error }) });
    };
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      if (options.responses !== undefined && parseResponses(Buffer.concat(chunks), options.head ?? []).length >= options.responses) {
        closedByUs = true;
        socket.destroy();
      }
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
    });
    socket.on("close", finish);
    socket.on("connect", () => {
      void (async () => {
        for (const part of parts) {
          if (socket.destroyed) return;
          if (typeof part === "number") await new Promise((r) => setTimeout(r, part));
          else await new Promise<void>((r) => socket.write(part, () => r()));
        }
        if (options.end && !socket.destroyed) socket.end();
      })().catch(() => undefined);
    });
  });
}

/** Parses as many complete HTTP/1.1 responses as `data` holds (Content-Length or chunked bodies). */
export function parseResponses(data: Buffer, head: boolean[]): RawResponse[] {
  const responses: RawResponse[] = [];
  let offset = 0;
  let requestIndex = 0;
  while (offset < data.length) {
    const end = data.indexOf("\r\n\r\n", offset, "latin1");
    if (end === -1) break;
    const lines = data.subarray(offset, end).toString("latin1").split("\r\n");
    const statusMatch = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0] ?? "");
    if (!statusMatch) break;
    const status = Number(statusMatch[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    let bodyStart = end + 4;
    if (status >= 100 && status < 200) {
      offset = bodyStart;
      continue;
    }
    let body: Buffer = Buffer.alloc(0);
    const noBody = head[requestIndex] === true || status === 204 || status === 304;
    if (!noBody) {
      if (headers["transfer-encoding"]?.toLowerCase().includes("chunked")) {
        const parts: Buffer[] = [];
        let complete = false;
        while (bodyStart < data.length) {
          const lineEnd = data.indexOf("\r\n", bodyStart, "latin1");
          if (lineEnd === -1) break;
          const size = parseInt(data.subarray(bodyStart, lineEnd).toString("latin1"), 16);
          if (Number.isNaN(size)) break;
          if (size === 0) {
            const trailerEnd = data.indexOf("\r\n", lineEnd + 2, "latin1");
            if (trailerEnd === -1) break;
            bodyStart = trailerEnd + 2;
            complete = true;
            break;
          }
          if (lineEnd + 2 + size + 2 > data.length) break;
          parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
          bodyStart = lineEnd + 2 + size + 2;
        }
        if (!complete) break;
        body = Buffer.concat(parts);
      } else if (headers["content-length"] !== undefined) {
        const length = Number(headers["content-length"]);
        if (bodyStart + length > data.length) break;
        body = data.subarray(bodyStart, bodyStart + length);
        bodyStart += length;
      } else {
        // Read to the end of the connection.
        body = data.subarray(bodyStart);
        bodyStart = data.length;
      }
    }
    responses.push({ status, statusText: statusMatch[2] ?? "", headers, body });
    offset = bodyStart;
    requestIndex += 1;
  }
  return responses;
}

/** One request's bytes: request line, headers (in order, written as given) and body. */
export function httpRequest(method: string, target: string, headers: Array<[string, string]>, body?: Buffer): Buffer {
  const head = `${method} ${target} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`;
  return body ? Buffer.concat([Buffer.from(head, "latin1"), body]) : Buffer.from(head, "latin1");
}

// --- what an answer may contain

/**
 * Text that betrays internals: storage paths, stack frames, Node error codes and class names. The
 * requests the tests send never contain these, so an answer that echoes input stays clean.
 */
export function leaks(text: string, extra: string[] = []): string[] {
  const patterns: Array<[string, RegExp]> = [
    ["a /tmp path", /\/tmp\//],
    ["a /work path", /\/work\//],
    ["a compiled module path", /dist\/(src|test)\//],
    ["a JavaScript file position", /\.[cm]?js:\d+/],
    ["a stack frame", /\bat (?:async )?[\w$.<>]+ \(|\n\s+at /],
    ["a Node internal", /node:internal|node:fs|node:stream/],
    ["an error class", /\b(?:Type|Range|Reference|Syntax|System)Error\b|\bError: /],
    ["an errno code", /\bE(?:NOENT|ACCES|ISDIR|NOTDIR|EXIST|MFILE|PERM|NOTEMPTY|INVAL|BADF|PIPE|CONNRESET)\b/],
    ["berth-test temporary directory", /berth-test-/],
  ];
  const found = patterns.filter(([, re]) => re.test(text)).map(([what]) => what);
  for (const s of extra) if (s !== "" && text.includes(s)) found.push(JSON.stringify(s));
  return found;
}

/** The spec's error body: `{"errors":[{"code":string,"message":string,…}]}`. undefined if it is one. */
export function errorBodyProblem(body: Buffer, contentType: string | undefined): string | undefined {
  if (!/^application\/json\b/.test(contentType ?? "")) return `error Content-Type is ${JSON.stringify(contentType)}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return `error body is not JSON: ${JSON.stringify(body.toString("latin1").slice(0, 200))}`;
  }
  const errors = (parsed as { errors?: unknown }).errors;
  if (!Array.isArray(errors) || errors.length === 0) return "error body has no errors array";
  for (const entry of errors) {
    const e = entry as { code?: unknown; message?: unknown };
    if (typeof e.code !== "string" || typeof e.message !== "string") return `malformed error entry ${JSON.stringify(entry)}`;
  }
  return undefined;
}

// --- upload state tokens, as berth signs them

/** berth's `_state`: base64url(JSON [name, id, startedAt]) "." base64url(HMAC-SHA256(secret, payload)). */
export function signUploadState(secret: string, name: string, id: string, startedAt: number): string {
  return signUploadPayload(secret, [name, id, startedAt]);
}

/** A token over any JSON value, correctly signed: what only a holder of the secret could make. */
export function signUploadPayload(secret: string, value: unknown): string {
  const payload = Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${payload}.${createHmac("sha256", secret).update(payload).digest("base64url")}`;
}

// --- the request generator

/** What the fuzzer knows of the registry it attacks: content it pushed, an upload it holds open. */
export interface FuzzTarget {
  name: string;
  otherName: string;
  tag: string;
  manifest: Buffer;
  manifestDigest: string;
  manifestType: string;
  configDigest: string;
  layer: Buffer;
  layerDigest: string;
  /** Path and query of an upload in progress in `name` (with its `_state`). */
  uploadPath: string;
  uploadId: string;
  uploadState: string;
  /** A file name that must never appear outside the storage root. */
  escapee: string;
}

export interface FuzzCase {
  /** What was sent, for the failure message. */
  description: string;
  parts: Array<Buffer | number>;
  head: boolean;
  /**
   * The bytes are not well-formed HTTP/1.1 (or ask for something Node's parser handles itself):
   * Node may answer 400/431/417 without a registry error body, or close the connection.
   */
  malformed: boolean;
  /** The client stops before sending the whole body, or sends junk behind it: no answer is owed. */
  abandoned: boolean;
  /**
   * The request reached the registry but the connection may end before its handler does (the body
   * was cut short, or junk behind it made Node's parser close the connection): the handler may
   * still be running when the next case starts.
   */
  lingering: boolean;
}

const METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"] as const;
/** Methods llhttp knows that the registry does not route. */
const OTHER_METHODS = ["OPTIONS", "TRACE", "PROPFIND", "MKCOL", "COPY", "MOVE", "LOCK", "PURGE", "SEARCH", "REPORT"];
/** Not HTTP/1.1 methods at all, or handled by Node itself. */
const BROKEN_METHODS = ["get", "FOO", "G ET", "CONNECT", "", "PRI"];

function segmentMutations(t: FuzzTarget): string[] {
  const up = "../".repeat(12);
  return [
    "..",
    ".",
    "%2e%2e",
    "%2E%2E",
    "%252e%252e",
    "..%2f..%2f..%2f..%2f..%2f..%2f" + t.escapee,
    "..%2F..%2F..%2F..%2F..%2F..%2F..%2F..%2F" + t.escapee,
    "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f" + t.escapee,
    "%252e%252e%252f%252e%252e%252f" + t.escapee,
    encodeURIComponent(up + t.escapee),
    "%2F" + t.escapee,
    "%2f%2f" + t.escapee,
    "%00",
    "a%00b",
    t.escapee + "%00.txt",
    "%5c..%5c..%5c" + t.escapee,
    "..%5c..%5c" + t.escapee,
    "_uploads",
    "_manifests",
    "_layers",
    "_referrers",
    "blobs",
    "manifests",
    "uploads",
    "%",
    "%zz",
    "%c0%ae%c0%ae",
    "%ff%fe",
    "%C3%A9t%C3%A9",
    "%E2%80%AE",
    "a".repeat(300),
    "A",
    "UPPER",
    "-x",
    "x-",
    "x___y",
    "x..y",
    "~",
    "%20",
    "+",
    "a;b",
    "a,b",
    "@",
    "sha256:" + "0".repeat(64),
    "",
  ];
}

/** Bytes that cannot appear in a request target without breaking the HTTP syntax. */
const RAW_PATH_BREAKERS = [" ", "\t", "\x00", "\x7f", "é", "\r", "\n", "\\", "\x01", '"', "<", "{", "|", "^", "`"];

function mutateDigest(random: Random, digest: string, t: FuzzTarget): string {
  const hex = digest.slice(digest.indexOf(":") + 1);
  const choices: Array<() => string> = [
    () => {
      const i = random.int(digest.length);
      return digest.slice(0, i) + random.pick(["G", "z", "-", "_", ".", "/", "%2f", "%00", ":", "A", "F", "é", " "]) + digest.slice(i + 1);
    },
    () => digest.toUpperCase(),
    () => digest.slice(0, random.int(digest.length)),
    () => digest + random.pick(["0", "00", "a", "/", "/data", "%2f..%2f..", "?", "#"]),
    () => `sha384:${hex}`,
    () => `sha512:${hex}`,
    () => `md5:${hex.slice(0, 32)}`,
    () => `SHA256:${hex}`,
    () => hex,
    () => `sha256:${"../".repeat(8)}${t.escapee}`,
    () => `sha256%3a${hex}`,
    () => `sha256:${hex.slice(0, 2)}%2f${hex}`,
    () => `sha256+b64:${hex}`,
    () => ":" + hex,
    () => "sha256:",
    () => `sha256:${"0".repeat(64)}`,
    () => `sha512:${"f".repeat(128)}`,
  ];
  return random.pick(choices)();
}

function mutateNumber(random: Random): string {
  return random.pick([
    "-1",
    "-0",
    "0",
    "1",
    "1.5",
    "1e3",
    "0x10",
    "abc",
    "",
    " 5",
    "5 ",
    "99999999999999999999",
    "999999999999999",
    "9007199254740993",
    "Infinity",
    "NaN",
    "+5",
    "10000",
    "10001",
    String(random.int(100000)),
  ]);
}

function mutateRange(random: Random): string {
  return random.pick([
    "bytes=0-",
    "bytes=0-0",
    "bytes=-0",
    "bytes=-1",
    "bytes=5-1",
    "bytes=1-5",
    "bytes=0-99999999999999999999",
    "bytes=99999999999999999999-",
    "bytes=abc",
    "bytes=",
    "bytes=-",
    "bytes=0-1,2-3",
    "bytes=-5,-3",
    "items=0-5",
    "bytes 0-5",
    "0-5",
    "bytes=00000000000000000000000000001-2",
    "bytes=1-1-1",
    "bytes=\t0-5",
    `bytes=${random.int(200)}-${random.int(200)}`,
    `bytes=-${random.int(200)}`,
  ]);
}

function mutateContentRange(random: Random, length: number): string {
  return random.pick([
    `0-${length - 1}`,
    `bytes 0-${length - 1}/*`,
    `bytes=0-${length - 1}`,
    `bytes 0-${length - 1}/${length}`,
    `1-${length}`,
    `${length}-0`,
    "0-99999999999999999999",
    "-1-5",
    "abc",
    "",
    "0-",
    "-5",
    "bytes */100",
    `0-${length - 1}/abc`,
    `${random.int(1000)}-${random.int(1000)}`,
    "9007199254740990-9007199254740999",
    "999999999999999-999999999999999",
  ]);
}

function asObject(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function mutateManifest(random: Random, manifest: Buffer, t: FuzzTarget): Buffer {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(manifest.toString("utf8")) as Record<string, unknown>;
  } catch {
    return manifest;
  }
  const descriptorMutations: Array<(d: Record<string, unknown>) => unknown> = [
    () => null,
    () => ({}),
    () => "sha256:" + "0".repeat(64),
    (d) => ({ ...d, digest: mutateDigest(random, String(d.digest), t) }),
    (d) => ({ ...d, size: random.pick([-1, 1.5, "12", null, 1e300, Number.MAX_SAFE_INTEGER + 2, 0]) }),
    (d) => ({ ...d, mediaType: random.pick([null, 5, "", "text/plain", "a".repeat(1000), "application/vnd.oci.image.layer.v1.tar"]) }),
    (d) => ({ ...d, urls: random.pick([["http://example.invalid/x"], "x", [5], []]) }),
    (d) => ({ ...d, annotations: random.pick([{ a: 5 }, "x", [], { ["__proto__"]: "x" }, null]) }),
    (d) => {
      const { digest: _digest, ...rest } = d;
      return rest;
    },
  ];
  const mutations: Array<() => void> = [
    () => (value.schemaVersion = random.pick([1, 3, "2", null, 2.5, -2, undefined])),
    () => (value.mediaType = random.pick(["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.v1+json", "x", 7, null])),
    () => (value.config = random.pick(descriptorMutations)(asObject(value.config))),
    () => {
      const layers = Array.isArray(value.layers) ? (value.layers as unknown[]) : [];
      const i = random.int(Math.max(1, layers.length));
      layers[i] = random.pick(descriptorMutations)(asObject(layers[i])) as Record<string, unknown>;
      value.layers = layers;
    },
    () => (value.layers = random.pick([null, {}, "x", [], [null], [[]]])),
    () => (value.layers = Array.from({ length: 200 + random.int(800) }, () => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: t.layerDigest, size: t.layer.length }))),
    () => (value.manifests = [{ mediaType: t.manifestType, digest: random.pick([t.manifestDigest, t.layerDigest, "x"]), size: t.manifest.length }]),
    () => (value.subject = random.pick([{ mediaType: t.manifestType, digest: t.manifestDigest, size: t.manifest.length }, "x", {}, null, { digest: "sha256:zz" }])),
    () => (value.artifactType = random.pick([5, "", "application/x.fuzz", null])),
    () => (value.annotations = random.pick<unknown>([{ a: "b" }, { a: 1 }, [], "x", { ["constructor"]: "x" }])),
    () => Object.defineProperty(value, "__proto__", { value: { polluted: true }, enumerable: true, configurable: true, writable: true }),
    () => delete value[random.pick(["schemaVersion", "mediaType", "config", "layers"])],
  ];
  const count = 1 + random.int(2);
  for (let i = 0; i < count; i++) random.pick(mutations)();
  const text = JSON.stringify(value);
  // Sometimes break the text itself rather than a field.
  if (random.chance(0.15)) {
    return Buffer.from(
      random.pick([
        () => text.slice(0, random.int(text.length)),
        () => "\ufeff" + text,
        () => text + "garbage",
        () => "[".repeat(5000) + "]".repeat(5000),
        () => `{"a":${"[".repeat(3000)}${"]".repeat(3000)}}`,
        () => text.replace(/"/, "'"),
        () => '{"schemaVersion":2,"schemaVersion":1}',
        () => "null",
        () => "1e999999",
        () => '"\\ud800"',
      ])(),
    );
  }
  return Buffer.from(text);
}

interface Draft {
  method: string;
  segments: string[];
  query: Array<[string, string]>;
  headers: Array<[string, string]>;
  body?: Buffer;
  what: string;
}

function baseDraft(random: Random, t: FuzzTarget): Draft {
  const nameSegments = (name: string): string[] => name.split("/");
  const name = random.chance(0.8) ? t.name : t.otherName;
  const templates: Array<() => Draft> = [
    () => ({ what: "base", method: "GET", segments: ["v2", ""], query: [], headers: [] }),
    () => ({ what: "catalog", method: "GET", segments: ["v2", "_catalog"], query: [["n", "2"], ["last", "a"]], headers: [] }),
    () => ({ what: "tags", method: "GET", segments: ["v2", ...nameSegments(name), "tags", "list"], query: [["n", "1"]], headers: [] }),
    () => ({
      what: "get manifest",
      method: random.pick(["GET", "HEAD"]),
      segments: ["v2", ...nameSegments(name), "manifests", random.pick([t.tag, t.manifestDigest])],
      query: [],
      headers: [["Accept", t.manifestType], ...(random.chance(0.3) ? [["If-None-Match", `"${t.manifestDigest}"`] as [string, string]] : [])],
    }),
    () => ({
      what: "put manifest",
      method: "PUT",
      segments: ["v2", ...nameSegments(name), "manifests", random.pick([t.tag, `fuzz-${random.int(20)}`, t.manifestDigest])],
      query: random.chance(0.2) ? [["tag", `q${random.int(5)}`]] : [],
      headers: [["Content-Type", t.manifestType]],
      body: t.manifest,
    }),
    () => ({ what: "delete manifest", method: "DELETE", segments: ["v2", ...nameSegments(name), "manifests", random.pick([`fuzz-${random.int(20)}`, t.manifestDigest])], query: [], headers: [] }),
    () => ({
      what: "get blob",
      method: random.pick(["GET", "HEAD"]),
      segments: ["v2", ...nameSegments(name), "blobs", random.pick([t.layerDigest, t.configDigest])],
      query: [],
      headers: random.chance(0.5) ? [["Range", mutateRange(random)]] : [],
    }),
    () => ({ what: "delete blob", method: "DELETE", segments: ["v2", ...nameSegments(t.otherName), "blobs", t.layerDigest], query: [], headers: [] }),
    () => ({ what: "start upload", method: "POST", segments: ["v2", ...nameSegments(name), "blobs", "uploads", ""], query: [], headers: [] }),
    () => ({
      what: "monolithic upload",
      method: "POST",
      segments: ["v2", ...nameSegments(name), "blobs", "uploads", ""],
      query: [["digest", t.layerDigest]],
      headers: [["Content-Type", "application/octet-stream"]],
      body: t.layer,
    }),
    () => ({
      what: "mount",
      method: "POST",
      segments: ["v2", ...nameSegments(t.otherName), "blobs", "uploads", ""],
      query: [["mount", t.layerDigest], ["from", t.name]],
      headers: [],
    }),
    () => ({
      what: "patch upload",
      method: "PATCH",
      segments: ["v2", ...nameSegments(t.name), "blobs", "uploads", t.uploadId],
      query: [["_state", t.uploadState]],
      headers: [["Content-Type", "application/octet-stream"], ...(random.chance(0.5) ? [["Content-Range", mutateContentRange(random, 16)] as [string, string]] : [])],
      body: random.bytes(16),
    }),
    () => ({
      what: "complete upload",
      method: "PUT",
      segments: ["v2", ...nameSegments(t.name), "blobs", "uploads", t.uploadId],
      query: [["_state", t.uploadState], ["digest", t.layerDigest]],
      headers: [],
      body: random.chance(0.5) ? random.bytes(8) : undefined,
    }),
    () => ({ what: "upload status", method: random.pick(["GET", "DELETE"]), segments: ["v2", ...nameSegments(t.name), "blobs", "uploads", t.uploadId], query: [["_state", t.uploadState]], headers: [] }),
    () => ({
      what: "referrers",
      method: "GET",
      segments: ["v2", ...nameSegments(name), "referrers", t.manifestDigest],
      query: random.chance(0.5) ? [["artifactType", "application/x.fuzz"]] : [],
      headers: [],
    }),
  ];
  return random.pick(templates)();
}

/**
 * One randomized case: a valid request, then 0–3 mutations, each breaking one field. About one in
 * ten cases leaves HTTP itself (raw bytes in the path, conflicting framing, oversized headers).
 */
export function generateCase(random: Random, t: FuzzTarget, index: number): FuzzCase {
  const draft = baseDraft(random, t);
  const notes: string[] = [];
  let malformed = false;
  let abandoned = false;
  let rawPathInjection: string | undefined;
  type Framing = "normal" | "shorter" | "longer" | "chunked" | "both" | "te-other" | "huge-headers";
  let framing = "normal" as Framing;

  const mutations: Array<() => void> = [
    // method
    () => {
      const roll = random.next();
      draft.method = roll < 0.6 ? random.pick(METHODS) : roll < 0.85 ? random.pick(OTHER_METHODS) : random.pick(BROKEN_METHODS);
      if (BROKEN_METHODS.includes(draft.method)) malformed = true;
      notes.push(`method ${JSON.stringify(draft.method)}`);
    },
    // a path segment
    () => {
      const i = 1 + random.int(Math.max(1, draft.segments.length - 1));
      const value = random.pick(segmentMutations(t));
      draft.segments[i] = value;
      notes.push(`segment ${i} = ${JSON.stringify(value)}`);
    },
    // insert or drop segments
    () => {
      if (random.chance(0.5)) {
        const i = 1 + random.int(draft.segments.length);
        draft.segments.splice(i, 0, random.pick(segmentMutations(t)));
      } else if (draft.segments.length > 2) {
        draft.segments.splice(1 + random.int(draft.segments.length - 1), 1);
      }
      notes.push("segments reshaped");
    },
    // digest characters, wherever a digest is
    () => {
      const i = draft.segments.findIndex((s) => /^sha(256|512):/.test(s));
      if (i !== -1) {
        draft.segments[i] = mutateDigest(random, draft.segments[i]!, t);
        notes.push(`path digest ${JSON.stringify(draft.segments[i])}`);
        return;
      }
      const q = draft.query.find(([k]) => k === "digest" || k === "mount");
      if (q) {
        q[1] = mutateDigest(random, q[1], t);
        notes.push(`query ${q[0]} ${JSON.stringify(q[1])}`);
      } else {
        draft.query.push(["digest", mutateDigest(random, t.layerDigest, t)]);
        notes.push("added digest query");
      }
    },
    // header values
    () => {
      const header = random.pick([
        ["Content-Type", random.pick(["", "application/json", "text/plain", "application/vnd.oci.image.index.v1+json", "a/b; charset=x", random.printable(40), "application/vnd.docker.distribution.manifest.v1+prettyjws"])],
        ["Range", mutateRange(random)],
        ["Content-Range", mutateContentRange(random, draft.body?.length ?? 0)],
        ["If-None-Match", random.pick(["*", '""', `"${t.manifestDigest}"`, random.printable(30)])],
        ["Accept", random.pick(["*/*", "", random.printable(60), "application/vnd.oci.image.index.v1+json;q=0"])],
        ["X-Forwarded-Host", random.pick(["evil.example", "", random.printable(20), "a:99999", "[::1]"])],
        ["X-Forwarded-Proto", random.pick(["https", "javascript", "", random.printable(8)])],
        ["Authorization", random.pick(["Basic Zm9vOmJhcg==", "Bearer x.y.z", "Basic", random.printable(50)])],
        ["Host", random.pick(["", "a b", "evil.example:1", random.printable(30)])],
        ["Expect", "100-continue"],
        ["Cookie", random.printable(100)],
        ["Docker-Content-Digest", mutateDigest(random, t.layerDigest, t)],
        ["OCI-Subject", random.printable(30)],
        ["Content-Encoding", random.pick(["gzip", "br", "identity", "x"])],
        ["X-Obs-Text", "\u00e9\u00ff\u0080"],
      ] as Array<[string, string]>);
      const existing = draft.headers.find(([k]) => k.toLowerCase() === header[0].toLowerCase());
      if (existing) existing[1] = header[1];
      else draft.headers.push(header);
      notes.push(`header ${header[0]}: ${JSON.stringify(header[1])}`);
    },
    // body length
    () => {
      const roll = random.next();
      if (roll < 0.25) draft.body = Buffer.alloc(0);
      else if (roll < 0.5) draft.body = (draft.body ?? Buffer.alloc(0)).subarray(0, random.int(Math.max(1, draft.body?.length ?? 1)));
      else if (roll < 0.7) draft.body = Buffer.concat([draft.body ?? Buffer.alloc(0), random.bytes(1 + random.int(64))]);
      else if (roll < 0.8) draft.body = random.bytes(64 * 1024 + random.int(256 * 1024));
      else draft.body = undefined;
      notes.push(`body ${draft.body === undefined ? "none" : `${draft.body.length} bytes`}`);
    },
    // framing: what Content-Length says versus what is sent
    () => {
      framing = random.pick(["shorter", "longer", "chunked", "both", "te-other", "huge-headers"] as const);
      if (framing === "longer") abandoned = true;
      if (draft.body === undefined || draft.body.length === 0) draft.body = random.bytes(32);
      notes.push(`framing ${framing}`);
    },
    // query parameters
    () => {
      const param = random.pick([
        ["n", mutateNumber(random)],
        ["last", random.pick(["", "../../..", "\u00e9", "zzzz", "a".repeat(500), "%00", t.escapee])],
        ["digest", mutateDigest(random, t.layerDigest, t)],
        ["mount", mutateDigest(random, t.layerDigest, t)],
        ["from", random.pick(["../../../../" + t.escapee, "..", "/" + t.escapee, "%2e%2e", "%00", "a\\b", t.otherName, t.name.toUpperCase(), "_uploads", ""])],
        ["_state", random.pick(["", "x", ".", t.uploadState + "x", t.uploadState.slice(0, -1), t.uploadState.replace(/^./, "A"), "../../" + t.escapee, t.uploadState.split(".")[0]!])],
        ["tag", random.pick(["../" + t.escapee, "", "a".repeat(129), "-x", "ok", "%00"])],
        ["artifactType", random.pick(["", "x", random.printable(40)])],
      ] as Array<[string, string]>);
      if (random.chance(0.5)) {
        const existing = draft.query.find(([k]) => k === param[0]);
        if (existing) existing[1] = param[1];
        else draft.query.push(param);
      } else draft.query.push(param);
      notes.push(`query ${param[0]}=${JSON.stringify(param[1])}`);
    },
    // the manifest JSON
    () => {
      draft.body = mutateManifest(random, draft.body && draft.body.length > 0 && draft.body[0] === 0x7b ? draft.body : t.manifest, t);
      if (draft.method !== "PUT" || !draft.segments.includes("manifests")) {
        draft.method = "PUT";
        draft.segments = ["v2", ...t.name.split("/"), "manifests", random.pick([t.tag, `fuzz-${random.int(20)}`])];
        draft.headers = [["Content-Type", random.chance(0.8) ? t.manifestType : "application/vnd.oci.image.index.v1+json"]];
      }
      notes.push(`manifest ${JSON.stringify(draft.body.toString("utf8").slice(0, 120))}`);
    },
    // raw bytes in the request target
    () => {
      rawPathInjection = random.pick(RAW_PATH_BREAKERS);
      malformed = true;
      notes.push(`raw ${JSON.stringify(rawPathInjection)} in the path`);
    },
  ];
  const count = random.chance(0.1) ? 0 : 1 + random.int(3);
  for (let i = 0; i < count; i++) random.pick(mutations)();

  let path = "/" + draft.segments.join("/");
  if (rawPathInjection !== undefined) {
    const at = 1 + random.int(path.length);
    path = path.slice(0, at) + rawPathInjection + path.slice(at);
  }
  const query = draft.query.map(([k, v]) => (random.chance(0.1) ? `${k}=${v}` : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)).join("&");
  // A raw query value is sent as written; only printable ASCII (minus '#' and space) stays inside HTTP.
  if (/[^\x21-\x7e]|#/.test(query)) malformed = true;
  const target = query === "" ? path : `${path}?${query}`;
  // Whatever put them there, raw spaces, controls and non-ASCII bytes are outside HTTP's target grammar.
  if (/[^\x21-\x7e]/.test(target)) malformed = true;

  // One Host: a mutated one replaces the default.
  const headers: Array<[string, string]> = draft.headers.some(([k]) => k.toLowerCase() === "host") ? [...draft.headers] : [["Host", "127.0.0.1"], ...draft.headers];
  const host = headers.find(([k]) => k.toLowerCase() === "host")!;
  // An empty or spaced Host is for Node to judge; anything outside the host grammar may be refused.
  if (!/^[A-Za-z0-9.:\[\]-]+$/.test(host[1])) malformed = true;
  if (headers.some(([, v]) => /[^\t\x20-\x7e\x80-\xff]/.test(v))) malformed = true;
  if (BROKEN_METHODS.includes(draft.method) || draft.method === "CONNECT") malformed = true;
  headers.push(["Connection", "close"]);

  // A later mutation may have dropped the body the framing needs.
  if (framing !== "normal" && framing !== "huge-headers" && (draft.body === undefined || draft.body.length === 0)) draft.body = random.bytes(32);
  const body = draft.body;
  const parts: Array<Buffer | number> = [];
  switch (framing) {
    case "normal":
      if (body !== undefined) headers.push(["Content-Length", String(body.length)]);
      parts.push(httpRequest(draft.method, target, headers, body));
      break;
    case "shorter": {
      // Content-Length smaller than the body: the rest reads as the next request, which is junk.
      const declared = random.int(body!.length);
      headers.push(["Content-Length", String(declared)]);
      parts.push(httpRequest(draft.method, target, headers, body));
      abandoned = true;
      break;
    }
    case "longer": {
      const declared = body!.length + 1 + random.int(1_000_000);
      headers.push(["Content-Length", String(declared)]);
      parts.push(httpRequest(draft.method, target, headers, body));
      break;
    }
    case "chunked": {
      headers.push(["Transfer-Encoding", "chunked"]);
      const chunks: Buffer[] = [];
      for (let off = 0; off < body!.length; ) {
        const size = 1 + random.int(Math.max(1, body!.length - off));
        chunks.push(Buffer.from(`${size.toString(16)}\r\n`), body!.subarray(off, off + size), Buffer.from("\r\n"));
        off += size;
      }
      chunks.push(Buffer.from("0\r\n\r\n"));
      parts.push(httpRequest(draft.method, target, headers), Buffer.concat(chunks));
      break;
    }
    case "both":
      headers.push(["Content-Length", String(body!.length)], ["Transfer-Encoding", "chunked"]);
      parts.push(httpRequest(draft.method, target, headers, body));
      malformed = true;
      break;
    case "te-other":
      headers.push(["Transfer-Encoding", random.pick(["gzip", "identity", "chunked, gzip", "x"])]);
      parts.push(httpRequest(draft.method, target, headers, body));
      malformed = true;
      break;
    case "huge-headers":
      headers.push(["X-Huge", "h".repeat(17 * 1024 + random.int(8 * 1024))]);
      if (body !== undefined) headers.push(["Content-Length", String(body.length)]);
      parts.push(httpRequest(draft.method, target, headers, body));
      malformed = true;
      break;
  }
  const description = `#${index} ${draft.what}: ${draft.method} ${target.length > 300 ? target.slice(0, 300) + "…" : target}${notes.length ? ` [${notes.join("; ")}]` : ""}`;
  return { description, parts, head: draft.method === "HEAD", malformed, abandoned, lingering: abandoned && !malformed };
}
