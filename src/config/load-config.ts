/**
 * Reads distribution's config.yml format plus REGISTRY_* environment overrides into a validated
 * `Config`. Everything a running berth relies on is checked here, once, so that a bad
 * configuration stops start-up with a message naming the key instead of failing later.
 *
 * The steps live in their own modules: raw-yaml.ts (the document tree), environment-overrides.ts,
 * config-schema.ts (known, ignored and refused keys), build-*.ts (one per section, on the readers
 * in raw-values.ts) and describe-config.ts (the effective configuration, secrets masked).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { buildConfig } from "./build-config.js";
import { checkKeys, ROOT_SPEC } from "./config-schema.js";
import { ConfigError, type Config } from "./config.js";
import { applyEnvironment, CONFIG_PATH_ENV } from "./environment-overrides.js";
import { emptyMap, parseYaml, type RawMap } from "./raw-yaml.js";

// The module's public surface before the split; importers keep using this path.
export { DEFAULT_HTTP_TIMEOUTS } from "./build-http.js";
export { describeConfig, MASK } from "./describe-config.js";
export { formatGoDuration, parseGoDuration } from "./go-duration.js";
export { parseListenAddress } from "./listen-address.js";

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

const DEFAULT_SOURCE = "(embedded default)";

export async function loadConfig(options: {
  file?: string;
  env?: NodeJS.ProcessEnv;
}): Promise<{ config: Config; warnings: string[]; source: string }> {
  const env = options.env ?? process.env;
  const file = options.file ?? (env[CONFIG_PATH_ENV] || undefined);
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
