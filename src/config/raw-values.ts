/**
 * Typed readers over the Raw tree. Absent and null values read as undefined so callers apply
 * defaults; a value of the wrong shape throws a ConfigError naming the key and, when an
 * environment variable set it, that variable.
 */
import path from "node:path";
import { ConfigError } from "./config.js";
import { parseGoDuration } from "./go-duration.js";
import type { Raw, RawMap } from "./raw-yaml.js";

export function fromEnv(node: Raw | undefined): string {
  return node?.env === undefined ? "" : ` (from environment variable ${node.env})`;
}

export function fail(key: string, node: Raw | undefined, problem: string): ConfigError {
  return new ConfigError(key, problem + fromEnv(node));
}

function describe(node: Raw): string {
  switch (node.kind) {
    case "scalar":
      return JSON.stringify(node.text);
    case "map":
      return "a mapping";
    case "seq":
      return "a list";
    case "null":
      return "nothing";
  }
}

export function child(map: RawMap | undefined, key: string): Raw | undefined {
  return map?.entries.get(key);
}

export function readSection(node: Raw | undefined, key: string): RawMap | undefined {
  if (node === undefined || node.kind === "null") return undefined;
  if (node.kind === "map") return node;
  throw fail(key, node, `expected a mapping, got ${describe(node)}`);
}

export function readString(node: Raw | undefined, key: string): string | undefined {
  if (node === undefined || node.kind === "null") return undefined;
  if (node.kind === "scalar") return node.text;
  throw fail(key, node, `expected a string, got ${describe(node)}`);
}


/** A string where empty means unset, as distribution treats most string keys. */
export function readOptionalString(node: Raw | undefined, key: string): string | undefined {
  const text = readString(node, key);
  return text === undefined || text === "" ? undefined : text;
}

/** A list of strings; a single string is a one-item list (as http.headers accepts). */
export function readStringList(node: Raw | undefined, key: string): string[] {
  if (node === undefined || node.kind === "null") return [];
  if (node.kind === "seq") return node.items.map((item, i) => readString(item, `${key}[${i}]`) ?? "").filter((v) => v !== "");
  const single = readOptionalString(node, key);
  return single === undefined ? [] : [single];
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Node's setHeader rejects anything outside these (notably CR/LF), which would fail per request.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Header name → values, as Go's http.Header reads from YAML: each value a list of strings, or a
 * single string as a one-item list. Names must be HTTP tokens, values printable on one line.
 * (http.headers has its own copy in build-http.ts, which quotes bad values back.)
 */
export function readHeaderMap(node: Raw | undefined, key: string): Record<string, string[]> {
  const headers: Record<string, string[]> = {};
  for (const [name, value] of readSection(node, key)?.entries ?? []) {
    const at = `${key}.${name}`;
    if (!HEADER_NAME.test(name)) throw fail(at, value, "not a valid HTTP header name");
    const single = value.kind === "seq" ? undefined : readString(value, at);
    const values = value.kind === "seq" ? value.items.map((item, i) => readString(item, `${at}[${i}]`) ?? "") : single === undefined ? [] : [single];
    // The value is not quoted back: header values are often credentials.
    if (!values.every((v) => HEADER_VALUE.test(v))) throw fail(at, value, "invalid header value: only tabs and printable characters, on one line");
    headers[name] = values;
  }
  return headers;
}

// Go's yaml.v2 (YAML 1.1) booleans, so `enabled: yes` means what it meant to distribution.
const TRUE_WORDS = new Set(["true", "True", "TRUE", "yes", "Yes", "YES", "y", "Y", "on", "On", "ON"]);
const FALSE_WORDS = new Set(["false", "False", "FALSE", "no", "No", "NO", "n", "N", "off", "Off", "OFF"]);

export function readBool(node: Raw | undefined, key: string): boolean | undefined {
  if (node === undefined || node.kind === "null") return undefined;
  if (node.kind === "scalar") {
    if (TRUE_WORDS.has(node.text)) return true;
    if (FALSE_WORDS.has(node.text)) return false;
  }
  throw fail(key, node, `expected a boolean, got ${describe(node)}`);
}

export function readPositiveInt(node: Raw | undefined, key: string): number | undefined {
  if (node === undefined || node.kind === "null") return undefined;
  if (node.kind === "scalar" && /^\+?\d+$/.test(node.text)) {
    const n = Number(node.text);
    if (Number.isSafeInteger(n) && n > 0) return n;
  }
  throw fail(key, node, `expected a positive integer, got ${describe(node)}`);
}

/** Up to nine digits, so the value is an exact int32; empty reads as undefined. */
export function readNonNegativeInt(node: Raw | undefined, key: string): number | undefined {
  const text = readOptionalString(node, key);
  if (text === undefined) return undefined;
  if (!/^\+?\d{1,9}$/.test(text)) throw fail(key, node, `expected a non-negative integer, got ${JSON.stringify(text)}`);
  return Number(text);
}

export function readEnum<T extends string>(node: Raw | undefined, key: string, allowed: readonly T[]): T | undefined {
  const text = readString(node, key);
  if (text === undefined) return undefined;
  const lower = text.toLowerCase();
  const found = allowed.find((a) => a === lower);
  if (found === undefined) throw fail(key, node, `expected one of ${allowed.join(", ")}, got ${JSON.stringify(text)}`);
  return found;
}

/** Milliseconds; rejects negative durations, which no berth setting can use. */
export function readDuration(node: Raw | undefined, key: string): number | undefined {
  const text = readString(node, key);
  if (text === undefined) return undefined;
  let ms: number;
  try {
    ms = parseGoDuration(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw fail(key, node, `expected a duration such as "168h", "1h30m" or "500ms", got ${JSON.stringify(text)}: ${reason}`);
  }
  if (ms < 0) throw fail(key, node, `must not be negative, got ${JSON.stringify(text)}`);
  return ms;
}

/** Files named in the configuration are relative to the working directory berth starts in. */
export function absolutePath(file: string): string {
  return path.resolve(process.cwd(), file);
}
