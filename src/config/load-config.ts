/**
 * Reads distribution's config.yml format plus REGISTRY_* environment overrides into a validated
 * `Config`. Everything a running berth relies on is checked here, once, so that a bad
 * configuration stops start-up with a message naming the key instead of failing later.
 *
 * Scalars are interpreted per key rather than by the YAML schema: distribution (Go, yaml.v2) turns
 * `secret: 0123` into the string "0123" and `enabled: yes` into true, which a YAML 1.2 loader would
 * read as the number 123 and the string "yes". We keep each scalar's source text and coerce it to
 * the type the key expects, which also makes file values and environment values behave the same.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import path from "node:path";
import { isAlias, isMap, isScalar, isSeq, parseDocument, type Document } from "yaml";
import { ConfigError, TOKEN_SIGNING_ALGORITHMS, type Config, type RedisConfig, type S3Storage, type TokenSigningAlgorithm } from "./config.js";

/** Used when no configuration file is given: a single-node registry storing under ./data. */
export const DEFAULT_CONFIG_YAML = `# berth's built-in configuration, used when no configuration file is given.
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: ./data
  delete:
    enabled: false
  maintenance:
    uploadpurging:
      enabled: true
      age: 168h
      interval: 24h
      dryrun: false
  cache:
    blobdescriptor: inmemory
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
`;

/** What describeConfig prints instead of a secret. */
export const MASK = "********";

const DEFAULT_SOURCE = "(embedded default)";
const ENV_PREFIX = "REGISTRY_";
/** distribution reads the configuration file path from this variable; it is not a config key. */
const CONFIG_PATH_ENV = "REGISTRY_CONFIGURATION_PATH";
/** distribution's filesystem driver default, kept so a copied config.yml stores in the same place. */
const DISTRIBUTION_ROOT_DIRECTORY = "/var/lib/registry";
const DEFAULT_HTTP_ADDR = ":5000";
const DEFAULT_BLOB_DESCRIPTOR_SIZE = 10000;
const HOUR_MS = 3_600_000;

export async function loadConfig(options: {
  file?: string;
  env?: NodeJS.ProcessEnv;
}): Promise<{ config: Config; warnings: string[]; source: string }> {
  const env = options.env ?? process.env;
  const file = options.file ?? nonEmpty(env[CONFIG_PATH_ENV]);
  if (file === undefined) {
    return { ...parseConfig(DEFAULT_CONFIG_YAML, env, DEFAULT_SOURCE), source: DEFAULT_SOURCE };
  }
  const source = path.resolve(file);
  let text: string;
  try {
    text = await readFile(source, "utf8");
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError("(file)", `cannot read ${source}: ${reason}`);
  }
  return { ...parseConfig(text, env, source), source };
}

export function parseConfig(
  yamlText: string,
  env: NodeJS.ProcessEnv,
  source: string,
): { config: Config; warnings: string[] } {
  const warnings: string[] = [];
  const root = parseYaml(yamlText, source, warnings);
  normalizeShorthands(root);
  applyEnvironment(root, env, warnings);
  normalizeShorthands(root);
  checkKeys(root, ROOT_SPEC, "", warnings);
  return { config: buildConfig(root, warnings), warnings };
}

// ---------------------------------------------------------------------------------------------
// The document tree: YAML nodes reduced to what validation needs, remembering scalar source text
// and which environment variable (if any) produced a node, so errors can point at it.

type Raw = RawNull | RawScalar | RawMap | RawSeq;
interface RawBase {
  env?: string;
}
interface RawNull extends RawBase {
  kind: "null";
}
interface RawScalar extends RawBase {
  kind: "scalar";
  text: string;
  /** Unquoted and untagged: only these may mean null or (for env values) be trimmed. */
  plain: boolean;
}
interface RawMap extends RawBase {
  kind: "map";
  entries: Map<string, Raw>;
}
interface RawSeq extends RawBase {
  kind: "seq";
  items: Raw[];
}

const NULL_WORDS = new Set(["", "~", "null", "Null", "NULL"]);

/** Bounds alias expansion: a few anchors can otherwise expand into billions of nodes. */
const MAX_NODES = 100_000;
const MAX_DEPTH = 64;

interface Converter {
  doc: Document;
  source: string;
  budget: number;
}

function parseYaml(text: string, source: string, warnings: string[]): RawMap {
  const doc = parseDocument(text.replace(/^\uFEFF/, ""), { merge: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first !== undefined) {
    throw new ConfigError("(file)", `${source}: ${yamlProblem(first.message, first.linePos?.[0])}`);
  }
  for (const w of doc.warnings) warnings.push(`${source}: ${yamlProblem(w.message, w.linePos?.[0])}`);
  const root = toRaw(doc.contents, { doc, source, budget: MAX_NODES }, 0);
  if (root.kind === "null") return { kind: "map", entries: new Map() };
  if (root.kind !== "map") {
    throw new ConfigError("(file)", `${source}: expected a mapping of configuration keys at the top level`);
  }
  return root;
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

function emptyMap(env?: string): RawMap {
  return env === undefined ? { kind: "map", entries: new Map() } : { kind: "map", entries: new Map(), env };
}

function isEmpty(node: Raw): boolean {
  return node.kind === "null" || (node.kind === "map" && node.entries.size === 0) || (node.kind === "seq" && node.items.length === 0);
}

/**
 * distribution accepts `storage: inmemory` and `auth: silly` (a bare type name) as shorthand for a
 * section with no parameters; rewrite them so the rest of the code sees one shape.
 */
function normalizeShorthands(root: RawMap): void {
  for (const key of ["storage", "auth"]) {
    const node = root.entries.get(key);
    if (node?.kind === "scalar") {
      const section = emptyMap(node.env);
      section.entries.set(node.text, node.env === undefined ? { kind: "null" } : { kind: "null", env: node.env });
      root.entries.set(key, section);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The keys berth knows: distribution's names, and what berth does with each.

type Spec =
  | { kind: "value" }
  /** A map whose keys are the user's (log.fields, http.headers); envKey names an entry from env. */
  | { kind: "freemap"; envKey: (rest: string[]) => string }
  | { kind: "section"; keys: Readonly<Record<string, Spec>> }
  /** distribution feature berth lacks and whose absence changes nothing a client relies on. */
  | { kind: "ignored" }
  /** Security feature berth lacks: ignoring it would silently expose the registry. */
  | { kind: "refused"; problem: string; nameChild: boolean }
  | { kind: "unsupported-driver" };

const VALUE: Spec = { kind: "value" };
const IGNORED: Spec = { kind: "ignored" };
const UNSUPPORTED_DRIVER: Spec = { kind: "unsupported-driver" };
const section = (keys: Record<string, Spec>): Spec => ({ kind: "section", keys });

/** Keys under storage that configure the storage layer rather than naming a driver. */
const NON_DRIVER_STORAGE_KEYS = new Set(["delete", "redirect", "maintenance", "cache", "tag"]);
const SUPPORTED_DRIVERS = "berth supports filesystem, s3 and inmemory";
const SUPPORTED_AUTH = "berth supports htpasswd, token and silly";
const REDIS_TLS_FILES =
  "client certificates and private CAs for Redis are not supported yet; use redis.tls.enabled: true with a server certificate the system trusts";

const ROOT_SPEC: Spec = section({
  version: VALUE,
  loglevel: VALUE,
  log: section({
    level: VALUE,
    formatter: VALUE,
    fields: { kind: "freemap", envKey: (rest) => rest.join("_").toLowerCase() },
    accesslog: section({ disabled: VALUE }),
    hooks: IGNORED,
    reportcaller: IGNORED,
  }),
  storage: section({
    filesystem: section({ rootdirectory: VALUE, maxthreads: VALUE }),
    inmemory: section({}),
    s3: section({
      accesskey: VALUE,
      secretkey: VALUE,
      sessiontoken: VALUE,
      region: VALUE,
      regionendpoint: VALUE,
      bucket: VALUE,
      rootdirectory: VALUE,
      forcepathstyle: VALUE,
      encrypt: VALUE,
      keyid: VALUE,
      secure: VALUE,
      skipverify: VALUE,
      v4auth: VALUE,
      chunksize: VALUE,
      multipartcopychunksize: VALUE,
      multipartcopymaxconcurrency: VALUE,
      multipartcopythresholdsize: VALUE,
      storageclass: VALUE,
      objectacl: VALUE,
      useragent: IGNORED,
      usedualstack: IGNORED,
      accelerate: IGNORED,
      loglevel: IGNORED,
    }),
    azure: UNSUPPORTED_DRIVER,
    gcs: UNSUPPORTED_DRIVER,
    swift: UNSUPPORTED_DRIVER,
    oss: UNSUPPORTED_DRIVER,
    delete: section({ enabled: VALUE }),
    redirect: section({ disable: VALUE }),
    maintenance: section({
      uploadpurging: section({ enabled: VALUE, age: VALUE, interval: VALUE, dryrun: VALUE }),
      readonly: section({ enabled: VALUE }),
    }),
    // layerinfo is distribution's older name for blobdescriptor, still honoured there.
    cache: section({ blobdescriptor: VALUE, blobdescriptorsize: VALUE, layerinfo: VALUE }),
    tag: IGNORED,
  }),
  http: section({
    addr: VALUE,
    net: VALUE,
    host: VALUE,
    prefix: VALUE,
    secret: VALUE,
    relativeurls: VALUE,
    draintimeout: VALUE,
    timeout: section({ readheader: VALUE, idle: VALUE, inactivity: VALUE }),
    headers: { kind: "freemap", envKey: headerNameFromEnv },
    tls: section({
      certificate: VALUE,
      key: VALUE,
      clientcas: VALUE,
      minimumtls: VALUE,
      ciphersuites: VALUE,
      letsencrypt: {
        kind: "refused",
        problem: "Let's Encrypt is not supported; obtain the certificate outside berth and set http.tls.certificate and http.tls.key",
        nameChild: false,
      },
    }),
    debug: IGNORED,
    http2: section({ disabled: VALUE }),
    h2c: IGNORED,
  }),
  auth: section({
    htpasswd: section({ realm: VALUE, path: VALUE }),
    token: section({
      realm: VALUE,
      service: VALUE,
      issuer: VALUE,
      rootcertbundle: VALUE,
      jwks: VALUE,
      signingalgorithms: VALUE,
      autoredirect: VALUE,
      autoredirectpath: VALUE,
    }),
    silly: section({ realm: VALUE, service: VALUE }),
  }),
  notifications: IGNORED,
  redis: section({
    addr: VALUE,
    // distribution 3.x (go-redis): a list of addresses, and its names for the pool settings.
    addrs: VALUE,
    username: VALUE,
    password: VALUE,
    db: VALUE,
    dialtimeout: VALUE,
    readtimeout: VALUE,
    writetimeout: VALUE,
    pool: section({ maxidle: VALUE, maxactive: VALUE, idletimeout: VALUE }),
    maxidleconns: VALUE,
    poolsize: VALUE,
    connmaxidletime: VALUE,
    tls: section({
      enabled: VALUE,
      certificate: { kind: "refused", problem: REDIS_TLS_FILES, nameChild: false },
      key: { kind: "refused", problem: REDIS_TLS_FILES, nameChild: false },
      clientcas: { kind: "refused", problem: REDIS_TLS_FILES, nameChild: false },
    }),
  }),
  health: IGNORED,
  proxy: IGNORED,
  validation: IGNORED,
  compatibility: IGNORED,
  reporting: IGNORED,
  middleware: IGNORED,
  policy: IGNORED,
  catalog: IGNORED,
});

/** REGISTRY_HTTP_HEADERS_X_FRAME_OPTIONS → X-Frame-Options: env names cannot hold "-". */
function headerNameFromEnv(rest: string[]): string {
  return rest
    .flatMap((part) => part.split("-"))
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1).toLowerCase())
    .join("-");
}

function joinKey(parent: string, key: string): string {
  return parent === "" ? key : `${parent}.${key}`;
}

function fromEnv(node: Raw | undefined): string {
  return node?.env === undefined ? "" : ` (from environment variable ${node.env})`;
}

function fail(key: string, node: Raw | undefined, problem: string): ConfigError {
  return new ConfigError(key, problem + fromEnv(node));
}

/** Warns about unknown and ignored keys, refuses security sections and foreign storage drivers. */
function checkKeys(node: RawMap, spec: Spec, at: string, warnings: string[]): void {
  if (spec.kind !== "section") return;
  for (const [key, child] of node.entries) {
    const where = joinKey(at, key);
    const childSpec = spec.keys[key];
    if (childSpec === undefined) {
      // distribution treats any other key under storage as a driver name and fails to start.
      if (at === "storage") throw fail(where, child, `unknown storage driver; ${SUPPORTED_DRIVERS}`);
      // distribution fails to start on an access controller it does not know: so must we.
      if (at === "auth") throw fail(where, child, `unknown auth type; ${SUPPORTED_AUTH}`);
      warnings.push(`unknown key ${where}${fromEnv(child)}`);
      continue;
    }
    switch (childSpec.kind) {
      case "section":
        if (child.kind === "map") checkKeys(child, childSpec, where, warnings);
        break;
      case "ignored":
        if (!isEmpty(child)) warnings.push(`${where} is not supported by berth yet and is ignored${fromEnv(child)}`);
        break;
      case "refused":
        if (isEmpty(child)) break;
        if (childSpec.nameChild && child.kind === "map") {
          const [type, params] = child.entries.entries().next().value ?? [];
          throw fail(type === undefined ? where : joinKey(where, type), params ?? child, childSpec.problem);
        }
        throw fail(where, child, childSpec.problem);
      case "unsupported-driver":
        throw fail(where, child, `storage driver not supported yet; ${SUPPORTED_DRIVERS}`);
      case "value":
      case "freemap":
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Environment overrides, as distribution's configuration parser applies them.

function applyEnvironment(root: RawMap, env: NodeJS.ProcessEnv, warnings: string[]): void {
  // Lexical order applies REGISTRY_STORAGE (a driver switch) before REGISTRY_STORAGE_FILESYSTEM_*,
  // the order distribution uses.
  const names = Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX) && name !== CONFIG_PATH_ENV)
    .sort();
  for (const name of names) {
    const value = env[name];
    if (value === undefined) continue;
    const target = resolveEnvPath(name.slice(ENV_PREFIX.length).split("_"));
    if (target === undefined) {
      warnings.push(`environment variable ${name} matches no configuration key and is ignored`);
      continue;
    }
    if (target.length === 1 && target[0] === "version") {
      warnings.push(`environment variable ${name} cannot change version and is ignored`);
      continue;
    }
    const parsed = parseEnvValue(name, value);
    if (target.length === 1 && target[0] === "storage" && parsed.kind === "scalar") {
      switchStorageDriver(root, parsed.text, name);
      continue;
    }
    setAt(root, target, parsed, name);
  }
}

/** Maps env path segments onto configuration keys, or undefined when they name no known key. */
function resolveEnvPath(segments: string[]): string[] | undefined {
  if (segments.some((s) => s === "")) return undefined;
  const keys: string[] = [];
  let spec: Spec = ROOT_SPEC;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] ?? "";
    const rest = segments.slice(i);
    switch (spec.kind) {
      case "section": {
        const key = Object.keys(spec.keys).find((k) => k.toUpperCase() === segment.toUpperCase());
        const next = key === undefined ? undefined : spec.keys[key];
        if (key === undefined || next === undefined) return undefined;
        keys.push(key);
        spec = next;
        break;
      }
      case "freemap":
        return [...keys, spec.envKey(rest)];
      case "ignored":
      case "refused":
      case "unsupported-driver":
        // Contents are not interpreted, but must exist so the section is warned about or refused.
        return [...keys, ...rest.map((s) => s.toLowerCase())];
      case "value":
        return undefined;
    }
  }
  return keys;
}

/**
 * distribution unmarshals an env value as YAML into the key's type. We do the same for quoted
 * values and flow collections, and otherwise keep the text as a plain scalar: it is then coerced
 * like a file value ("true" → boolean for boolean keys, "12345" stays a string for http.secret),
 * while characters YAML would treat specially (#, @, ": ") survive in secrets. A value that only
 * looks like YAML ("[::1]:5000") stays text; a key wanting a mapping then reports it.
 */
function parseEnvValue(name: string, value: string): Raw {
  const trimmed = value.trim();
  const first = trimmed.charAt(0);
  if (first === "{" || first === "[" || first === '"' || first === "'") {
    const doc = parseDocument(trimmed, { merge: true, uniqueKeys: true });
    if (doc.errors.length === 0) return tagEnv(toRaw(doc.contents, { doc, source: name, budget: MAX_NODES }, 0), name);
  }
  if (NULL_WORDS.has(trimmed)) return { kind: "null", env: name };
  return { kind: "scalar", text: trimmed, plain: true, env: name };
}

function tagEnv(node: Raw, name: string): Raw {
  node.env = name;
  if (node.kind === "map") for (const child of node.entries.values()) tagEnv(child, name);
  if (node.kind === "seq") for (const child of node.items) tagEnv(child, name);
  return node;
}

function findKey(map: RawMap, key: string): string | undefined {
  if (map.entries.has(key)) return key;
  const upper = key.toUpperCase();
  for (const existing of map.entries.keys()) if (existing.toUpperCase() === upper) return existing;
  return undefined;
}

function setAt(root: RawMap, keys: string[], value: Raw, env: string): void {
  let map = root;
  for (let i = 0; i < keys.length - 1; i++) {
    const key = keys[i] ?? "";
    const existingKey = findKey(map, key);
    const existing = existingKey === undefined ? undefined : map.entries.get(existingKey);
    if (existing?.kind === "map") {
      map = existing;
      continue;
    }
    // Missing or not a mapping (null, or a type error in the file): the override replaces it.
    if (existingKey !== undefined) map.entries.delete(existingKey);
    const created = emptyMap(env);
    map.entries.set(key, created);
    map = created;
  }
  const last = keys[keys.length - 1] ?? "";
  const existingKey = findKey(map, last);
  if (existingKey !== undefined) map.entries.delete(existingKey);
  map.entries.set(last, value);
}

/**
 * REGISTRY_STORAGE=<driver> selects the driver, dropping the file's driver section. Unlike
 * distribution it keeps delete, cache, maintenance and redirect: erasing them as a side effect
 * of choosing a driver would silently change behaviour. Selecting the already configured driver
 * keeps its parameters.
 */
function switchStorageDriver(root: RawMap, driver: string, env: string): void {
  const name = driver.toLowerCase();
  const storageKey = findKey(root, "storage");
  const existing = storageKey === undefined ? undefined : root.entries.get(storageKey);
  const storage = existing?.kind === "map" ? existing : emptyMap(env);
  root.entries.set(storageKey ?? "storage", storage);
  for (const key of [...storage.entries.keys()]) {
    if (!NON_DRIVER_STORAGE_KEYS.has(key) && key !== name) storage.entries.delete(key);
  }
  if (!storage.entries.has(name)) storage.entries.set(name, emptyMap(env));
}

// ---------------------------------------------------------------------------------------------
// Typed readers. Absent and null values read as undefined so callers apply defaults.

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

function child(map: RawMap | undefined, key: string): Raw | undefined {
  return map?.entries.get(key);
}

function readSection(node: Raw | undefined, key: string): RawMap | undefined {
  if (node === undefined || node.kind === "null") return undefined;
  if (node.kind === "map") return node;
  throw fail(key, node, `expected a mapping, got ${describe(node)}`);
}

function readString(node: Raw | undefined, key: string): string | undefined {
  if (node === undefined || node.kind === "null") return undefined;
  if (node.kind === "scalar") return node.text;
  throw fail(key, node, `expected a string, got ${describe(node)}`);
}

// Go's yaml.v2 (YAML 1.1) booleans, so `enabled: yes` means what it meant to distribution.
const TRUE_WORDS = new Set(["true", "True", "TRUE", "yes", "Yes", "YES", "y", "Y", "on", "On", "ON"]);
const FALSE_WORDS = new Set(["false", "False", "FALSE", "no", "No", "NO", "n", "N", "off", "Off", "OFF"]);

function readBool(node: Raw | undefined, key: string): boolean | undefined {
  if (node === undefined || node.kind === "null") return undefined;
  if (node.kind === "scalar") {
    if (TRUE_WORDS.has(node.text)) return true;
    if (FALSE_WORDS.has(node.text)) return false;
  }
  throw fail(key, node, `expected a boolean, got ${describe(node)}`);
}

function readPositiveInt(node: Raw | undefined, key: string): number | undefined {
  if (node === undefined || node.kind === "null") return undefined;
  if (node.kind === "scalar" && /^\+?\d+$/.test(node.text)) {
    const n = Number(node.text);
    if (Number.isSafeInteger(n) && n > 0) return n;
  }
  throw fail(key, node, `expected a positive integer, got ${describe(node)}`);
}

function readEnum<T extends string>(node: Raw | undefined, key: string, allowed: readonly T[]): T | undefined {
  const text = readString(node, key);
  if (text === undefined) return undefined;
  const lower = text.toLowerCase();
  const found = allowed.find((a) => a === lower);
  if (found === undefined) throw fail(key, node, `expected one of ${allowed.join(", ")}, got ${JSON.stringify(text)}`);
  return found;
}

/** Milliseconds; rejects negative durations, which no berth setting can use. */
function readDuration(node: Raw | undefined, key: string): number | undefined {
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

// ---------------------------------------------------------------------------------------------
// Go durations (time.ParseDuration), the format distribution's config uses.

const UNIT_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  "\u00b5s": 1_000n, // µ MICRO SIGN
  "\u03bcs": 1_000n, // μ GREEK SMALL LETTER MU
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const MAX_DURATION_NS = (1n << 63n) - 1n;

/**
 * Parses a Go duration ("168h", "24h0m0s", "1h30m", "1.5h", "500ms", "0") into milliseconds.
 * Throws an Error saying what is wrong; the caller adds the key.
 */
export function parseGoDuration(text: string): number {
  let rest = text;
  let negative = false;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    negative = rest.startsWith("-");
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") throw new Error("empty duration");
  let totalNs = 0n;
  while (rest !== "") {
    const number = /^(\d*)(?:\.(\d*))?/.exec(rest);
    const whole = number?.[1] ?? "";
    const fraction = number?.[2];
    if (whole === "" && (fraction === undefined || fraction === "")) throw new Error(`expected a number at ${JSON.stringify(rest)}`);
    rest = rest.slice(number?.[0].length ?? 0);
    const unit = /^[^\d.]*/.exec(rest)?.[0] ?? "";
    if (unit === "") throw new Error(`missing unit after ${whole}${fraction === undefined ? "" : "." + fraction} (use ns, us, ms, s, m or h)`);
    const unitNs = UNIT_NS[unit];
    if (unitNs === undefined) throw new Error(`unknown unit ${JSON.stringify(unit)} (use ns, us, ms, s, m or h)`);
    rest = rest.slice(unit.length);
    let ns = BigInt(whole === "" ? "0" : whole) * unitNs;
    if (fraction !== undefined && fraction !== "") ns += (BigInt(fraction) * unitNs) / 10n ** BigInt(fraction.length);
    totalNs += ns;
    if (totalNs > MAX_DURATION_NS) throw new Error("duration too large");
  }
  const ms = Number(totalNs) / 1e6;
  return negative && ms !== 0 ? -ms : ms;
}

/** Formats milliseconds the way Go's time.Duration.String does ("168h0m0s", "1.5s", "500ms"). */
export function formatGoDuration(ms: number): string {
  let ns = BigInt(Math.round(ms * 1e6));
  const sign = ns < 0n ? "-" : "";
  if (ns < 0n) ns = -ns;
  if (ns === 0n) return "0s";
  if (ns < 1_000n) return `${sign}${ns}ns`;
  if (ns < 1_000_000n) return `${sign}${decimal(ns, 3)}\u00b5s`;
  if (ns < 1_000_000_000n) return `${sign}${decimal(ns, 6)}ms`;
  const hours = ns / 3_600_000_000_000n;
  const minutes = (ns / 60_000_000_000n) % 60n;
  const seconds = decimal(ns % 60_000_000_000n, 9);
  if (hours > 0n) return `${sign}${hours}h${minutes}m${seconds}s`;
  if (minutes > 0n) return `${sign}${minutes}m${seconds}s`;
  return `${sign}${seconds}s`;
}

function decimal(value: bigint, scaleDigits: number): string {
  const scale = 10n ** BigInt(scaleDigits);
  const frac = (value % scale).toString().padStart(scaleDigits, "0").replace(/0+$/, "");
  return frac === "" ? `${value / scale}` : `${value / scale}.${frac}`;
}

// ---------------------------------------------------------------------------------------------
// Listen address (http.addr), as Go's net.Listen("tcp", addr) accepts it.

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/**
 * Splits "host:port" / ":port" / "[v6]:port" into host (empty: all interfaces) and port.
 * Port 0 is accepted: it asks the OS for a free port, which tests use.
 */
export function parseListenAddress(addr: string): { host: string; port: number } {
  let host: string;
  let portText: string;
  if (addr.startsWith("[")) {
    const close = addr.indexOf("]");
    if (close < 0) throw new Error("missing ']' after IPv6 address");
    host = addr.slice(1, close);
    const after = addr.slice(close + 1);
    if (!after.startsWith(":")) throw new Error('missing port (expected "[host]:port")');
    portText = after.slice(1);
    const zoneless = host.replace(/%[\w.-]+$/, "");
    if (isIP(zoneless) !== 6) throw new Error(`${JSON.stringify(host)} is not an IPv6 address`);
  } else {
    const colon = addr.lastIndexOf(":");
    if (colon < 0) throw new Error('missing port (expected "host:port" or ":port")');
    host = addr.slice(0, colon);
    portText = addr.slice(colon + 1);
    if (host.includes(":")) throw new Error('too many colons (write IPv6 addresses as "[::1]:5000")');
    if (host !== "" && isIP(host) === 0 && !HOSTNAME.test(host)) throw new Error(`${JSON.stringify(host)} is not a valid host name or IP address`);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new Error(`${JSON.stringify(portText)} is not a port number (0-65535)`);
  }
  return { host, port: Number(portText) };
}

// ---------------------------------------------------------------------------------------------
// Building the Config.

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Node's setHeader rejects anything outside these (notably CR/LF), which would fail per request.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function buildConfig(root: RawMap, warnings: string[]): Config {
  const versionNode = child(root, "version");
  const version = readString(versionNode, "version");
  if (version === undefined) throw fail("version", versionNode, 'required; set "version: 0.1"');
  if (version !== "0.1") throw fail("version", versionNode, `unsupported version ${JSON.stringify(version)}; berth reads version 0.1`);

  const storage = buildStorage(root, warnings);
  return {
    version,
    log: buildLog(root, warnings),
    storage,
    http: { ...buildHttp(root), ...buildTls(root, warnings) },
    auth: buildAuth(root, warnings),
    redis: buildRedis(root, storage.cache.blobDescriptor === "redis", warnings),
  };
}

function buildLog(root: RawMap, warnings: string[]): Config["log"] {
  const LEVELS = ["error", "warn", "warning", "info", "debug"] as const;
  const log = readSection(child(root, "log"), "log");
  let level = readEnum(child(log, "level"), "log.level", LEVELS);
  // distribution still honours the deprecated top-level key when log.level is absent.
  const legacy = readEnum(child(root, "loglevel"), "loglevel", LEVELS);
  if (legacy !== undefined) {
    warnings.push(level === undefined ? "loglevel is deprecated; use log.level" : "loglevel is deprecated and overridden by log.level");
    level ??= legacy;
  }

  const fieldsNode = child(log, "fields");
  const fields: Record<string, string> = {};
  for (const [name, value] of readSection(fieldsNode, "log.fields")?.entries ?? []) {
    fields[name] = readString(value, `log.fields.${name}`) ?? "";
  }

  return {
    level: level === undefined ? "info" : level === "warning" ? "warn" : level,
    formatter: readEnum(child(log, "formatter"), "log.formatter", ["text", "json", "logstash"] as const) ?? "text",
    accessLogDisabled: readBool(child(readSection(child(log, "accesslog"), "log.accesslog"), "disabled"), "log.accesslog.disabled") ?? false,
    fields,
  };
}

function buildStorage(root: RawMap, warnings: string[]): Config["storage"] {
  const storageNode = child(root, "storage");
  const storage = readSection(storageNode, "storage");
  if (storage === undefined) throw fail("storage", storageNode, "no storage driver configured; add storage.filesystem, storage.s3 or storage.inmemory");
  const drivers = [...storage.entries.keys()].filter((k) => !NON_DRIVER_STORAGE_KEYS.has(k));
  if (drivers.length === 0) throw fail("storage", storageNode, "no storage driver configured; add storage.filesystem, storage.s3 or storage.inmemory");
  if (drivers.length > 1) {
    throw fail("storage", storageNode, `exactly one storage driver must be configured, found ${drivers.join(" and ")}`);
  }

  let driver: Config["storage"]["driver"];
  if (drivers[0] === "filesystem") {
    const fs = readSection(child(storage, "filesystem"), "storage.filesystem");
    const dir = readString(child(fs, "rootdirectory"), "storage.filesystem.rootdirectory");
    const maxThreads = readPositiveInt(child(fs, "maxthreads"), "storage.filesystem.maxthreads");
    if (maxThreads !== undefined) warnings.push("storage.filesystem.maxthreads is not supported by berth yet and is ignored");
    driver = { kind: "filesystem", rootDirectory: path.resolve(process.cwd(), dir === undefined || dir === "" ? DISTRIBUTION_ROOT_DIRECTORY : dir) };
  } else if (drivers[0] === "s3") {
    driver = buildS3(readSection(child(storage, "s3"), "storage.s3"), child(storage, "s3"), warnings);
  } else {
    readSection(child(storage, "inmemory"), "storage.inmemory");
    driver = { kind: "inmemory" };
  }

  const maintenance = readSection(child(storage, "maintenance"), "storage.maintenance");
  const purging = readSection(child(maintenance, "uploadpurging"), "storage.maintenance.uploadpurging");
  const P = "storage.maintenance.uploadpurging";
  const ageMs = readDuration(child(purging, "age"), `${P}.age`) ?? 168 * HOUR_MS;
  const intervalMs = readDuration(child(purging, "interval"), `${P}.interval`) ?? 24 * HOUR_MS;
  // Age 0 would delete uploads still in progress; interval 0 would purge in a busy loop.
  if (ageMs === 0) throw fail(`${P}.age`, child(purging, "age"), "must be greater than zero");
  if (intervalMs === 0) throw fail(`${P}.interval`, child(purging, "interval"), "must be greater than zero");

  const cache = readSection(child(storage, "cache"), "storage.cache");
  const cacheKey = child(cache, "blobdescriptor") !== undefined ? "blobdescriptor" : "layerinfo";
  const cacheNode = child(cache, cacheKey);
  const cacheType = readString(cacheNode, `storage.cache.${cacheKey}`);
  let blobDescriptor: "inmemory" | "redis" | undefined;
  if (cacheType === "inmemory" || cacheType === "redis") {
    // redis: its server is the top-level redis section, checked in buildRedis.
    blobDescriptor = cacheType;
  } else if (cacheType !== undefined && cacheType !== "") {
    // distribution logs and runs without a cache here; a cache never changes what clients see.
    warnings.push(`storage.cache.${cacheKey}: unknown cache type ${JSON.stringify(cacheType)}, caching disabled`);
  }

  return {
    driver,
    deleteEnabled: readBool(child(readSection(child(storage, "delete"), "storage.delete"), "enabled"), "storage.delete.enabled") ?? false,
    redirectDisabled: readBool(child(readSection(child(storage, "redirect"), "storage.redirect"), "disable"), "storage.redirect.disable") ?? false,
    uploadPurging: {
      enabled: readBool(child(purging, "enabled"), `${P}.enabled`) ?? true,
      ageMs,
      intervalMs,
      dryRun: readBool(child(purging, "dryrun"), `${P}.dryrun`) ?? false,
    },
    readOnly:
      readBool(
        child(readSection(child(maintenance, "readonly"), "storage.maintenance.readonly"), "enabled"),
        "storage.maintenance.readonly.enabled",
      ) ?? false,
    cache: {
      blobDescriptor,
      blobDescriptorSize: readPositiveInt(child(cache, "blobdescriptorsize"), "storage.cache.blobdescriptorsize") ?? DEFAULT_BLOB_DESCRIPTOR_SIZE,
    },
  };
}

const MiB = 1024 * 1024;
const S3_MIN_PART = 5 * MiB;
const S3_MAX_PART = 5 * 1024 * MiB;

/** storage.s3, with distribution's defaults and limits. */
function buildS3(s3: RawMap | undefined, node: Raw | undefined, warnings: string[]): S3Storage {
  const at = "storage.s3";
  const str = (key: string): string | undefined => nonEmpty(readString(child(s3, key), `${at}.${key}`));
  const bool = (key: string, fallback: boolean): boolean => readBool(child(s3, key), `${at}.${key}`) ?? fallback;
  const size = (key: string, fallback: number, min: number, max: number): number => {
    const value = readPositiveInt(child(s3, key), `${at}.${key}`) ?? fallback;
    if (value < min || value > max) throw fail(`${at}.${key}`, child(s3, key), `must be between ${min} and ${max} bytes, got ${value}`);
    return value;
  };
  const bucket = str("bucket");
  if (bucket === undefined) throw fail(`${at}.bucket`, child(s3, "bucket") ?? node, "required");
  const region = str("region");
  if (region === undefined) throw fail(`${at}.region`, child(s3, "region") ?? node, "required (any region name for an S3-compatible server)");
  const regionEndpoint = str("regionendpoint");
  if (regionEndpoint !== undefined && !/^(https?:\/\/)?[^\s/]+(\/[^\s]*)?$/.test(regionEndpoint)) {
    throw fail(`${at}.regionendpoint`, child(s3, "regionendpoint"), `expected a URL or host:port, got ${JSON.stringify(regionEndpoint)}`);
  }
  const accessKey = str("accesskey");
  const secretKey = str("secretkey");
  if ((accessKey === undefined) !== (secretKey === undefined)) {
    const missing = accessKey === undefined ? "accesskey" : "secretkey";
    throw fail(`${at}.${missing}`, node, "accesskey and secretkey go together (leave both out to use the AWS credential chain)");
  }
  if (readBool(child(s3, "v4auth"), `${at}.v4auth`) === false) warnings.push(`${at}.v4auth: false is ignored; berth always signs requests with AWS Signature Version 4`);
  return {
    kind: "s3",
    bucket,
    region,
    regionEndpoint,
    accessKey,
    secretKey,
    sessionToken: str("sessiontoken"),
    rootDirectory: str("rootdirectory") ?? "",
    forcePathStyle: bool("forcepathstyle", false),
    encrypt: bool("encrypt", false),
    keyId: str("keyid"),
    secure: bool("secure", true),
    skipVerify: bool("skipverify", false),
    chunkSize: size("chunksize", 10 * MiB, S3_MIN_PART, S3_MAX_PART),
    multipartCopyChunkSize: size("multipartcopychunksize", 32 * MiB, S3_MIN_PART, S3_MAX_PART),
    multipartCopyMaxConcurrency: size("multipartcopymaxconcurrency", 100, 1, 10_000),
    multipartCopyThresholdSize: size("multipartcopythresholdsize", 32 * MiB, 1, S3_MAX_PART),
    storageClass: str("storageclass") ?? "STANDARD",
    objectAcl: str("objectacl"),
  };
}

const DEFAULT_REDIS_DIAL_TIMEOUT_MS = 5_000;
const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 1_000;

/**
 * The top-level redis section. Its server is required (redis.addr) when the redis blob descriptor
 * cache is configured; a section nothing uses is checked all the same, and reported.
 */
function buildRedis(root: RawMap, used: boolean, warnings: string[]): RedisConfig | undefined {
  const at = "redis";
  const node = child(root, at);
  const redis = readSection(node, at);
  if (redis === undefined || redis.entries.size === 0) {
    if (used) throw fail(at, node, "required by storage.cache.blobdescriptor: redis; set redis.addr to the server's host:port");
    return undefined;
  }
  const nonNegativeInt = (key: string): number | undefined => {
    const valueNode = child(redis, key);
    const text = readString(valueNode, `${at}.${key}`);
    if (text === undefined || text === "") return undefined;
    if (!/^\+?\d{1,9}$/.test(text)) throw fail(`${at}.${key}`, valueNode, `expected a non-negative integer, got ${JSON.stringify(text)}`);
    return Number(text);
  };
  const pool = readSection(child(redis, "pool"), `${at}.pool`);
  const poolInt = (key: string, alias: string): number => {
    const valueNode = child(pool, key);
    const text = readString(valueNode, `${at}.pool.${key}`);
    if (text !== undefined && text !== "") {
      if (!/^\+?\d{1,9}$/.test(text)) throw fail(`${at}.pool.${key}`, valueNode, `expected a non-negative integer, got ${JSON.stringify(text)}`);
      return Number(text);
    }
    return nonNegativeInt(alias) ?? 0;
  };
  // 0 (or absent) means the default, as a zero timeout would mean "none" to distribution.
  const duration = (key: string, fallback: number): number => readDuration(child(redis, key), `${at}.${key}`) || fallback;

  const addrNode = child(redis, "addr");
  let addr = nonEmpty(readString(addrNode, `${at}.addr`));
  let addrSource = addrNode;
  const addrsNode = child(redis, "addrs");
  const addrs = readStringList(addrsNode, `${at}.addrs`);
  if (addr === undefined && addrs.length > 0) {
    if (addrs.length > 1) {
      throw fail(`${at}.addrs`, addrsNode, `berth connects to one Redis server (cluster and sentinel are not supported); got ${addrs.length} addresses`);
    }
    addr = addrs[0];
    addrSource = addrsNode;
  } else if (addr !== undefined && addrs.length > 0) {
    warnings.push(`${at}.addrs is ignored: ${at}.addr is set${fromEnv(addrsNode)}`);
  }
  let host = "";
  let port = 0;
  if (addr === undefined) {
    if (used) throw fail(`${at}.addr`, node, "required by storage.cache.blobdescriptor: redis: the server's host:port, such as localhost:6379");
  } else {
    const key = addrSource === addrsNode ? `${at}.addrs` : `${at}.addr`;
    try {
      ({ host, port } = parseListenAddress(addr));
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw fail(key, addrSource, `invalid Redis address ${JSON.stringify(addr)}: ${reason}`);
    }
    if (port === 0) throw fail(key, addrSource, `invalid Redis address ${JSON.stringify(addr)}: port 0`);
    if (host === "") host = "localhost";
  }
  if (!used) warnings.push(`${at} is configured but unused: only storage.cache.blobdescriptor: redis connects to it`);
  const tls = readSection(child(redis, "tls"), `${at}.tls`);
  return {
    addr,
    host,
    port,
    username: nonEmpty(readString(child(redis, "username"), `${at}.username`)),
    password: nonEmpty(readString(child(redis, "password"), `${at}.password`)),
    db: nonNegativeInt("db") ?? 0,
    dialTimeoutMs: duration("dialtimeout", DEFAULT_REDIS_DIAL_TIMEOUT_MS),
    readTimeoutMs: duration("readtimeout", DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
    writeTimeoutMs: duration("writetimeout", DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
    tls: readBool(child(tls, "enabled"), `${at}.tls.enabled`) ?? false,
    pool: {
      maxIdle: poolInt("maxidle", "maxidleconns"),
      maxActive: poolInt("maxactive", "poolsize"),
      idleTimeoutMs: readDuration(child(pool, "idletimeout"), `${at}.pool.idletimeout`) ?? readDuration(child(redis, "connmaxidletime"), `${at}.connmaxidletime`) ?? 0,
    },
  };
}

function describeRedis(redis: RedisConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (redis.addr !== undefined) out["addr"] = redis.addr;
  if (redis.username !== undefined) out["username"] = redis.username;
  if (redis.password !== undefined) out["password"] = MASK;
  Object.assign(out, {
    db: redis.db,
    dialtimeout: formatGoDuration(redis.dialTimeoutMs),
    readtimeout: formatGoDuration(redis.readTimeoutMs),
    writetimeout: formatGoDuration(redis.writeTimeoutMs),
    pool: { maxidle: redis.pool.maxIdle, maxactive: redis.pool.maxActive, idletimeout: formatGoDuration(redis.pool.idleTimeoutMs) },
    tls: { enabled: redis.tls },
  });
  return out;
}

function buildHttp(root: RawMap): Omit<Config["http"], "tls" | "http2Disabled"> {
  const http = readSection(child(root, "http"), "http");

  const netNode = child(http, "net");
  const net = readString(netNode, "http.net") ?? "tcp";
  if (net === "unix") throw fail("http.net", netNode, "unix sockets are not supported yet; use tcp");
  if (net !== "tcp" && net !== "") throw fail("http.net", netNode, `${JSON.stringify(net)} is not supported; use tcp`);

  const addrNode = child(http, "addr");
  const addr = readString(addrNode, "http.addr") ?? DEFAULT_HTTP_ADDR;
  let listen: { host: string; port: number };
  try {
    listen = parseListenAddress(addr);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw fail("http.addr", addrNode, `invalid listen address ${JSON.stringify(addr)}: ${reason}`);
  }

  const hostNode = child(http, "host");
  const hostText = readString(hostNode, "http.host");
  const host = hostText === undefined || hostText === "" ? undefined : parseBaseUrl(hostText, hostNode);

  const prefixNode = child(http, "prefix");
  const prefix = readString(prefixNode, "http.prefix") ?? "/";
  if (prefix !== "/" && prefix !== "") {
    throw fail("http.prefix", prefixNode, `only "/" is supported yet, got ${JSON.stringify(prefix)}`);
  }

  const configuredSecret = readString(child(http, "secret"), "http.secret");
  const secretGenerated = configuredSecret === undefined || configuredSecret === "";

  return {
    addr,
    listenHost: listen.host,
    listenPort: listen.port,
    host,
    prefix: "/",
    secret: secretGenerated ? randomBytes(32).toString("hex") : configuredSecret,
    secretGenerated,
    headers: readHeaders(child(http, "headers")),
    relativeUrls: readBool(child(http, "relativeurls"), "http.relativeurls") ?? false,
    drainTimeoutMs: readDuration(child(http, "draintimeout"), "http.draintimeout") ?? 0,
    timeouts: readTimeouts(child(http, "timeout")),
  };
}

/** Defaults for http.timeout.*: Node's keep-alive default, and generous bounds for slow links. */
export const DEFAULT_HTTP_TIMEOUTS: Config["http"]["timeouts"] = { readHeaderMs: 30_000, idleMs: 5_000, inactivityMs: 300_000 };

/** http.timeout (berth's, not distribution's): each a duration greater than zero. */
function readTimeouts(node: Raw | undefined): Config["http"]["timeouts"] {
  const section = readSection(node, "http.timeout");
  const read = (key: "readheader" | "idle" | "inactivity", fallback: number): number => {
    const valueNode = child(section, key);
    const value = readDuration(valueNode, `http.timeout.${key}`) ?? fallback;
    if (value <= 0) throw fail(`http.timeout.${key}`, valueNode, "must be greater than zero");
    return value;
  };
  return {
    readHeaderMs: read("readheader", DEFAULT_HTTP_TIMEOUTS.readHeaderMs),
    idleMs: read("idle", DEFAULT_HTTP_TIMEOUTS.idleMs),
    inactivityMs: read("inactivity", DEFAULT_HTTP_TIMEOUTS.inactivityMs),
  };
}

/** http.host becomes the origin Location headers are built on, so only scheme://host[:port]. */
function parseBaseUrl(text: string, node: Raw | undefined): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw fail("http.host", node, `expected an absolute URL such as "https://registry.example.com", got ${JSON.stringify(text)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw fail("http.host", node, `expected an http or https URL, got ${JSON.stringify(text)}`);
  }
  if (url.hostname === "") throw fail("http.host", node, `URL has no host: ${JSON.stringify(text)}`);
  if (url.username !== "" || url.password !== "") throw fail("http.host", node, "must not contain credentials");
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "") {
    throw fail("http.host", node, `must be scheme://host[:port] without path, query or fragment, got ${JSON.stringify(text)}`);
  }
  return url.origin;
}

function readHeaders(node: Raw | undefined): Record<string, string[]> {
  const headers: Record<string, string[]> = {};
  for (const [name, value] of readSection(node, "http.headers")?.entries ?? []) {
    const key = `http.headers.${name}`;
    if (!HEADER_NAME.test(name)) throw fail(key, value, "not a valid HTTP header name");
    let values: string[];
    if (value.kind === "seq") {
      values = value.items.map((item, i) => readString(item, `${key}[${i}]`) ?? "");
    } else {
      // A single string is unambiguous; distribution wants a list but nothing is gained by refusing.
      const single = readString(value, key);
      values = single === undefined ? [] : [single];
    }
    for (const v of values) {
      if (!HEADER_VALUE.test(v)) throw fail(key, value, `invalid header value ${JSON.stringify(v)}`);
    }
    headers[name] = values;
  }
  return headers;
}

// ---------------------------------------------------------------------------------------------
// TLS (http.tls, http.http2) and access control (auth). Files are only named here; the server
// reads them at start (src/cli/compose.ts), so `config check` works on another machine.

/** distribution's (Go's) TLS 1.2 cipher suite names → OpenSSL's. */
const TLS12_CIPHER_SUITES: Readonly<Record<string, string>> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
  TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
  TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
  TLS_RSA_WITH_AES_128_CBC_SHA: "AES128-SHA",
  TLS_RSA_WITH_AES_256_CBC_SHA: "AES256-SHA",
};
/** Go always enables every TLS 1.3 suite whatever the list says; naming one is accepted and changes nothing. */
const TLS13_CIPHER_SUITES = new Set(["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]);

function buildTls(root: RawMap, warnings: string[]): Pick<Config["http"], "tls" | "http2Disabled"> {
  const http = readSection(child(root, "http"), "http");
  const http2 = readSection(child(http, "http2"), "http.http2");
  const http2Disabled = readBool(child(http2, "disabled"), "http.http2.disabled") ?? false;
  const tlsNode = child(http, "tls");
  const tls = readSection(tlsNode, "http.tls");
  const K = "http.tls";
  const certificate = readString(child(tls, "certificate"), `${K}.certificate`) ?? "";
  const key = readString(child(tls, "key"), `${K}.key`) ?? "";
  const clientCAs = readStringList(child(tls, "clientcas"), `${K}.clientcas`);
  if (certificate === "") {
    // distribution serves plain HTTP when no certificate is set; anything that only makes sense
    // with TLS would then be silently dropped, so it is refused instead.
    if (key !== "") throw fail(`${K}.certificate`, child(tls, "key"), "required when http.tls.key is set");
    if (clientCAs.length > 0) throw fail(`${K}.certificate`, child(tls, "clientcas"), "required when http.tls.clientcas is set (client certificates need TLS)");
    return { tls: undefined, http2Disabled };
  }
  if (key === "") throw fail(`${K}.key`, child(tls, "key") ?? tlsNode, "required when http.tls.certificate is set");

  const versionNode = child(tls, "minimumtls");
  const versionText = (readString(versionNode, `${K}.minimumtls`) ?? "").toLowerCase();
  let minimumVersion: "TLSv1.2" | "TLSv1.3";
  if (versionText === "" || versionText === "tls1.2") minimumVersion = "TLSv1.2";
  else if (versionText === "tls1.3") minimumVersion = "TLSv1.3";
  else if (versionText === "tls1.0" || versionText === "tls1.1") {
    warnings.push(`${K}.minimumtls: ${versionText} is insecure and not offered; berth uses tls1.2${fromEnv(versionNode)}`);
    minimumVersion = "TLSv1.2";
  } else {
    throw fail(`${K}.minimumtls`, versionNode, `expected tls1.2 or tls1.3, got ${JSON.stringify(versionText)}`);
  }

  const suitesNode = child(tls, "ciphersuites");
  const cipherSuites: string[] = [];
  for (const name of readStringList(suitesNode, `${K}.ciphersuites`)) {
    const openssl = TLS12_CIPHER_SUITES[name];
    if (openssl !== undefined) cipherSuites.push(openssl);
    else if (!TLS13_CIPHER_SUITES.has(name)) {
      const reason = name.includes("3DES") ? "3DES suites are insecure and not supported" : "unknown cipher suite";
      throw fail(`${K}.ciphersuites`, suitesNode, `${reason}: ${JSON.stringify(name)}`);
    }
  }
  if (cipherSuites.length > 0 && minimumVersion === "TLSv1.3") {
    warnings.push(`${K}.ciphersuites is ignored with minimumtls tls1.3 (TLS 1.3 suites are not configurable)${fromEnv(suitesNode)}`);
    cipherSuites.length = 0;
  }
  return {
    tls: {
      certificate: absolute(certificate),
      key: absolute(key),
      clientCAs: clientCAs.map(absolute),
      minimumVersion,
      cipherSuites,
    },
    http2Disabled,
  };
}

function buildAuth(root: RawMap, warnings: string[]): Config["auth"] {
  const authNode = child(root, "auth");
  const auth = readSection(authNode, "auth");
  const types = [...(auth?.entries.keys() ?? [])];
  const type = types[0];
  if (type === undefined) return undefined;
  if (types.length > 1) throw fail("auth", authNode, `exactly one auth type must be configured, found ${types.join(" and ")}`);
  const at = `auth.${type}`;
  const params = readSection(child(auth, type), at);
  const optional = (key: string): string | undefined => {
    const value = readString(child(params, key), `${at}.${key}`);
    return value === undefined || value === "" ? undefined : value;
  };
  const required = (key: string, what: string): string => {
    const value = optional(key);
    if (value === undefined) throw fail(`${at}.${key}`, child(params, key) ?? child(auth, type), `required: ${what}`);
    return value;
  };
  switch (type) {
    case "htpasswd":
      return {
        kind: "htpasswd",
        realm: required("realm", "the realm named in the Basic challenge"),
        path: absolute(required("path", "the htpasswd file (htpasswd -B) to check passwords against")),
      };
    case "silly":
      return { kind: "silly", realm: required("realm", "the token realm named in the challenge"), service: required("service", "the service named in the challenge") };
    case "token": {
      const realm = required("realm", "the URL of the token service clients are sent to");
      const service = required("service", "this registry's name, which tokens must have as audience (aud)");
      const issuer = required("issuer", "the token issuer's name, which tokens must carry as iss");
      const rootCertBundle = optional("rootcertbundle");
      const jwks = optional("jwks");
      if (rootCertBundle === undefined && jwks === undefined) {
        throw fail(`${at}.rootcertbundle`, child(auth, type), "required: the certificates (or auth.token.jwks, the keys) that token signatures are checked with");
      }
      const algorithmsNode = child(params, "signingalgorithms");
      let signingAlgorithms: TokenSigningAlgorithm[] = [...TOKEN_SIGNING_ALGORITHMS];
      const listed = readStringList(algorithmsNode, `${at}.signingalgorithms`);
      if (listed.length > 0) {
        signingAlgorithms = [];
        for (const alg of listed) {
          const known = TOKEN_SIGNING_ALGORITHMS.find((a) => a === alg);
          if (known !== undefined) signingAlgorithms.push(known);
          else if (/^HS(256|384|512)$/.test(alg)) {
            warnings.push(`${at}.signingalgorithms: ${alg} needs a shared secret, which token auth never has; ignored${fromEnv(algorithmsNode)}`);
          } else {
            throw fail(`${at}.signingalgorithms`, algorithmsNode, `unsupported signing algorithm ${JSON.stringify(alg)}; use ${TOKEN_SIGNING_ALGORITHMS.join(", ")}`);
          }
        }
        if (signingAlgorithms.length === 0) throw fail(`${at}.signingalgorithms`, algorithmsNode, "no usable signing algorithm left");
      }
      const autoRedirect = readBool(child(params, "autoredirect"), `${at}.autoredirect`) ?? false;
      const autoRedirectPath = optional("autoredirectpath") ?? "/auth/token";
      if (!autoRedirectPath.startsWith("/")) throw fail(`${at}.autoredirectpath`, child(params, "autoredirectpath"), "must start with /");
      return {
        kind: "token",
        realm,
        service,
        issuer,
        rootCertBundle: rootCertBundle === undefined ? undefined : absolute(rootCertBundle),
        jwks: jwks === undefined ? undefined : absolute(jwks),
        signingAlgorithms,
        autoRedirect,
        autoRedirectPath,
      };
    }
    default:
      throw fail(at, child(auth, type), `unknown auth type; ${SUPPORTED_AUTH}`);
  }
}

/** A list of strings; a single string is a one-item list (as http.headers accepts). */
function readStringList(node: Raw | undefined, key: string): string[] {
  if (node === undefined || node.kind === "null") return [];
  if (node.kind === "seq") return node.items.map((item, i) => readString(item, `${key}[${i}]`) ?? "").filter((v) => v !== "");
  const single = readString(node, key);
  return single === undefined || single === "" ? [] : [single];
}

function absolute(file: string): string {
  return path.resolve(process.cwd(), file);
}

function describeTls(http: Config["http"]): Record<string, unknown> {
  const out: Record<string, unknown> = { http2: { disabled: http.http2Disabled } };
  const tls = http.tls;
  if (tls !== undefined) {
    out["tls"] = {
      certificate: tls.certificate,
      key: tls.key,
      clientcas: [...tls.clientCAs],
      minimumtls: tls.minimumVersion === "TLSv1.3" ? "tls1.3" : "tls1.2",
      ciphersuites: tls.cipherSuites.map((openssl) => Object.entries(TLS12_CIPHER_SUITES).find(([, v]) => v === openssl)?.[0] ?? openssl),
    };
  }
  return out;
}

function describeAuth(auth: Config["auth"]): Record<string, unknown> | undefined {
  switch (auth?.kind) {
    case undefined:
      return undefined;
    case "htpasswd":
      return { htpasswd: { realm: auth.realm, path: auth.path } };
    case "silly":
      return { silly: { realm: auth.realm, service: auth.service } };
    case "token": {
      const token: Record<string, unknown> = { realm: auth.realm, service: auth.service, issuer: auth.issuer };
      if (auth.rootCertBundle !== undefined) token["rootcertbundle"] = auth.rootCertBundle;
      if (auth.jwks !== undefined) token["jwks"] = auth.jwks;
      Object.assign(token, { signingalgorithms: [...auth.signingAlgorithms], autoredirect: auth.autoRedirect });
      if (auth.autoRedirect) token["autoredirectpath"] = auth.autoRedirectPath;
      return { token };
    }
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * The effective configuration under distribution's key names, secrets masked, for
 * `berth config check` to print as YAML or JSON.
 */
export function describeConfig(config: Config): Record<string, unknown> {
  const { log, storage, http } = config;
  const driver: Record<string, unknown> =
    storage.driver.kind === "filesystem"
      ? { filesystem: { rootdirectory: storage.driver.rootDirectory } }
      : storage.driver.kind === "s3"
        ? { s3: describeS3(storage.driver) }
        : { inmemory: {} };
  const cache: Record<string, unknown> = {};
  if (storage.cache.blobDescriptor !== undefined) {
    cache["blobdescriptor"] = storage.cache.blobDescriptor;
    cache["blobdescriptorsize"] = storage.cache.blobDescriptorSize;
  }
  const httpOut: Record<string, unknown> = { addr: http.addr, net: "tcp" };
  if (http.host !== undefined) httpOut["host"] = http.host;
  Object.assign(httpOut, {
    prefix: http.prefix,
    secret: MASK,
    headers: Object.fromEntries(Object.entries(http.headers).map(([k, v]) => [k, [...v]])),
    relativeurls: http.relativeUrls,
    draintimeout: formatGoDuration(http.drainTimeoutMs),
    timeout: {
      readheader: formatGoDuration(http.timeouts.readHeaderMs),
      idle: formatGoDuration(http.timeouts.idleMs),
      inactivity: formatGoDuration(http.timeouts.inactivityMs),
    },
  });
  return {
    version: config.version,
    log: {
      level: log.level,
      formatter: log.formatter,
      fields: { ...log.fields },
      accesslog: { disabled: log.accessLogDisabled },
    },
    storage: {
      ...driver,
      delete: { enabled: storage.deleteEnabled },
      redirect: { disable: storage.redirectDisabled },
      maintenance: {
        uploadpurging: {
          enabled: storage.uploadPurging.enabled,
          age: formatGoDuration(storage.uploadPurging.ageMs),
          interval: formatGoDuration(storage.uploadPurging.intervalMs),
          dryrun: storage.uploadPurging.dryRun,
        },
        readonly: { enabled: storage.readOnly },
      },
      cache,
    },
    http: { ...httpOut, ...describeTls(http) },
    ...(config.auth === undefined ? {} : { auth: describeAuth(config.auth) }),
    ...(config.redis === undefined ? {} : { redis: describeRedis(config.redis) }),
  };
}

function describeS3(s3: S3Storage): Record<string, unknown> {
  const out: Record<string, unknown> = { bucket: s3.bucket, region: s3.region };
  if (s3.regionEndpoint !== undefined) out["regionendpoint"] = s3.regionEndpoint;
  if (s3.accessKey !== undefined) Object.assign(out, { accesskey: s3.accessKey, secretkey: MASK });
  if (s3.sessionToken !== undefined) out["sessiontoken"] = MASK;
  Object.assign(out, {
    rootdirectory: s3.rootDirectory,
    forcepathstyle: s3.forcePathStyle,
    encrypt: s3.encrypt,
    ...(s3.keyId === undefined ? {} : { keyid: s3.keyId }),
    secure: s3.secure,
    skipverify: s3.skipVerify,
    chunksize: s3.chunkSize,
    multipartcopychunksize: s3.multipartCopyChunkSize,
    multipartcopymaxconcurrency: s3.multipartCopyMaxConcurrency,
    multipartcopythresholdsize: s3.multipartCopyThresholdSize,
    storageclass: s3.storageClass,
    ...(s3.objectAcl === undefined ? {} : { objectacl: s3.objectAcl }),
  });
  return out;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
