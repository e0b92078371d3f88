// validation: distribution's checks of the URLs in pushed manifests (validation.manifests.urls).
import { compileGoRegexp } from "../validation/go-regexp.js";
import type { Config } from "./config.js";
import { child, fail, readBool, readSection } from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

export function buildValidation(root: RawMap, warnings: string[]): Config["validation"] {
  const validation = readSection(child(root, "validation"), "validation");
  // distribution: the deprecated `enabled: true` wins; otherwise on unless `disabled: true`.
  const enabled = readBool(child(validation, "enabled"), "validation.enabled") === true || readBool(child(validation, "disabled"), "validation.disabled") !== true;
  if (child(validation, "enabled") !== undefined) warnings.push("validation.enabled is deprecated in distribution; use validation.disabled");
  const urls = readSection(child(readSection(child(validation, "manifests"), "validation.manifests"), "urls"), "validation.manifests.urls");
  return {
    enabled,
    allow: readPatterns(child(urls, "allow"), "validation.manifests.urls.allow"),
    deny: readPatterns(child(urls, "deny"), "validation.manifests.urls.deny"),
  };
}

/** A list of Go regular expressions, each compiled here so that a bad one stops start-up. */
function readPatterns(node: Raw | undefined, key: string): string[] {
  if (node === undefined || node.kind === "null") return [];
  if (node.kind !== "seq") throw fail(key, node, "expected a list of regular expressions");
  return node.items.map((item, i) => {
    const at = `${key}[${i}]`;
    if (item.kind !== "scalar") throw fail(at, item, "expected a regular expression");
    try {
      compileGoRegexp(item.text);
    } catch (err) {
      throw fail(at, item, `${JSON.stringify(item.text)} is not a regular expression berth can run: ${err instanceof Error ? err.message : String(err)}`);
    }
    return item.text;
  });
}
