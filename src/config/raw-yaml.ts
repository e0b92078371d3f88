/**
 * The document tree: YAML nodes reduced to what validation needs, remembering scalar source text
 * and which environment variable (if any) produced a node, so errors can point at it.
 *
 * Scalars are kept as text rather than typed by the YAML schema: distribution (Go, yaml.v2) turns
 * `secret: 0123` into the string "0123" and `enabled: yes` into true, which a YAML 1.2 loader would
 * read as the number 123 and the string "yes". The readers in raw-values.ts coerce each scalar to
 * the type its key expects, so file values and environment values behave the same.
 */
import { isAlias, isMap, isScalar, isSeq, parseDocument, type Document } from "yaml";
import { ConfigError } from "./config.js";

export type Raw = RawNull | RawScalar | RawMap | RawSeq;
interface RawBase {
  env?: string;
}
export interface RawNull extends RawBase {
  kind: "null";
}
export interface RawScalar extends RawBase {
  kind: "scalar";
  text: string;
  /** Unquoted and untagged: only these may mean null or (for env values) be trimmed. */
  plain: boolean;
}
export interface RawMap extends RawBase {
  kind: "map";
  entries: Map<string, Raw>;
}
export interface RawSeq extends RawBase {
  kind: "seq";
  items: Raw[];
}

export const NULL_WORDS = new Set(["", "~", "null", "Null", "NULL"]);

/** Bounds alias expansion: a few anchors can otherwise expand into billions of nodes. */
const MAX_NODES = 100_000;
const MAX_DEPTH = 64;

interface Converter {
  doc: Document;
  source: string;
  budget: number;
}

/** Parses a configuration file, whose top level must be a mapping (or empty). */
export function parseYaml(text: string, source: string, warnings: string[]): RawMap {
  const doc = parseYamlDocument(text.replace(/^\uFEFF/, ""));
  const first = doc.errors[0];
  if (first !== undefined) {
    throw new ConfigError("(file)", `${source}: ${yamlProblem(first.message, first.linePos?.[0])}`);
  }
  for (const w of doc.warnings) warnings.push(`${source}: ${yamlProblem(w.message, w.linePos?.[0])}`);
  const root = documentToRaw(doc, source);
  if (root.kind === "null") return { kind: "map", entries: new Map() };
  if (root.kind !== "map") {
    throw new ConfigError("(file)", `${source}: expected a mapping of configuration keys at the top level`);
  }
  return root;
}

/** Merge keys and duplicate-key errors as yaml.v2 has them; shared by files and env values. */
export function parseYamlDocument(text: string): Document {
  return parseDocument(text, { merge: true, uniqueKeys: true });
}

/** Converts a parsed document; source names the file or environment variable in errors. */
export function documentToRaw(doc: Document, source: string): Raw {
  return toRaw(doc.contents, { doc, source, budget: MAX_NODES }, 0);
}

function yamlProblem(message: string, pos: { line: number; col: number } | undefined): string {
  // The library appends " at line L, column C:" and a source excerpt; we report position once.
  const head = (message.split(" at line ")[0] ?? message).trim();
  return pos === undefined ? `syntax error: ${head}` : `syntax error at line ${pos.line}, column ${pos.col}: ${head}`;
}

function toRaw(node: unknown, cx: Converter, depth: number): Raw {
  cx.budget -= 1;
  if (cx.budget < 0 || depth > MAX_DEPTH) {
    throw new ConfigError("(file)", `${cx.source}: document too large or too deeply nested (check anchors and aliases)`);
  }
  if (node === null || node === undefined) return { kind: "null" };
  if (isAlias(node)) return toRaw(node.resolve(cx.doc), cx, depth + 1);
  if (isScalar(node)) {
    const plain = node.type === "PLAIN" && node.tag === undefined;
    const text = plain ? (node.source ?? String(node.value ?? "")) : String(node.value ?? "");
    if (plain && NULL_WORDS.has(text)) return { kind: "null" };
    return { kind: "scalar", text, plain };
  }
  if (isSeq(node)) {
    return { kind: "seq", items: node.items.map((item) => toRaw(item, cx, depth + 1)) };
  }
  if (isMap(node)) {
    const entries = new Map<string, Raw>();
    const merged: RawMap[] = [];
    for (const pair of node.items) {
      const key = pair.key;
      if (!isScalar(key)) {
        throw new ConfigError("(file)", `${cx.source}: only plain keys are supported, found a complex mapping key`);
      }
      if (typeof key.value === "symbol" || (key.type === "PLAIN" && key.source === "<<")) {
        merged.push(...mergeSources(toRaw(pair.value, cx, depth + 1), cx.source));
        continue;
      }
      const name = key.type === "PLAIN" ? (key.source ?? String(key.value)) : String(key.value);
      entries.set(name, toRaw(pair.value, cx, depth + 1));
    }
    // YAML merge semantics: explicit keys win, then earlier merge sources over later ones.
    for (const source of merged) {
      for (const [k, v] of source.entries) if (!entries.has(k)) entries.set(k, v);
    }
    return { kind: "map", entries };
  }
  throw new ConfigError("(file)", `${cx.source}: unsupported YAML node`);
}

function mergeSources(value: Raw, source: string): RawMap[] {
  const list = value.kind === "seq" ? value.items : [value];
  return list.map((item) => {
    if (item.kind !== "map") throw new ConfigError("(file)", `${source}: a << merge key needs a mapping or a list of mappings`);
    return item;
  });
}

export function emptyMap(env?: string): RawMap {
  return env === undefined ? { kind: "map", entries: new Map() } : { kind: "map", entries: new Map(), env };
}

export function isEmpty(node: Raw): boolean {
  return node.kind === "null" || (node.kind === "map" && node.entries.size === 0) || (node.kind === "seq" && node.items.length === 0);
}
