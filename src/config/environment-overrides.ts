// Environment overrides (REGISTRY_*), as distribution's configuration parser applies them.
import { NON_DRIVER_STORAGE_KEYS, ROOT_SPEC, type Spec } from "./config-schema.js";
import { documentToRaw, emptyMap, NULL_WORDS, parseYamlDocument, type Raw, type RawMap } from "./raw-yaml.js";

const ENV_PREFIX = "REGISTRY_";
/** distribution reads the configuration file path from this variable; it is not a config key. */
export const CONFIG_PATH_ENV = "REGISTRY_CONFIGURATION_PATH";

export function applyEnvironment(root: RawMap, env: NodeJS.ProcessEnv, warnings: string[]): void {
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
 * looks like YAML ("[::1]:5000") stays text; a key wanting a mapping then reports it. A block
 * sequence ("- name: a\n  url: …", as REGISTRY_NOTIFICATIONS_ENDPOINTS is often written in a
 * compose or Kubernetes file) is YAML too: distribution could not read it as a string either.
 */
function parseEnvValue(name: string, value: string): Raw {
  const trimmed = value.trim();
  const first = trimmed.charAt(0);
  if (first === "{" || first === "[" || first === '"' || first === "'" || /^-\s/.test(trimmed)) {
    const doc = parseYamlDocument(trimmed);
    if (doc.errors.length === 0) return tagEnv(documentToRaw(doc, name), name);
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
