// validation: distribution's checks of pushed manifests: the URLs of layers (validation.manifests.urls)
// and which children of an index must exist (validation.manifests.indexes, distribution 3).
import { compileGoRegexp } from "../validation/go-regexp.js";
import type { Config, IndexValidation } from "./config.js";
import { child, fail, readBool, readEnum, readSection, readString } from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

export function buildValidation(root: RawMap, warnings: string[]): Config["validation"] {
  const validation = readSection(child(root, "validation"), "validation");
  // distribution: the deprecated `enabled: true` wins; otherwise on unless `disabled: true`.
  const enabled = readBool(child(validation, "enabled"), "validation.enabled") === true || readBool(child(validation, "disabled"), "validation.disabled") !== true;
  if (child(validation, "enabled") !== undefined) warnings.push("validation.enabled is deprecated in distribution; use validation.disabled");
  const manifests = readSection(child(validation, "manifests"), "validation.manifests");
  const urls = readSection(child(manifests, "urls"), "validation.manifests.urls");
  return {
    enabled,
    allow: readPatterns(child(urls, "allow"), "validation.manifests.urls.allow"),
    deny: readPatterns(child(urls, "deny"), "validation.manifests.urls.deny"),
    indexes: readIndexes(readSection(child(manifests, "indexes"), "validation.manifests.indexes"), warnings),
  };
}

const KEY = "validation.manifests.indexes";

function readIndexes(indexes: RawMap | undefined, warnings: string[]): IndexValidation {
  const platforms = readEnum(child(indexes, "platforms"), `${KEY}.platforms`, ["all", "none", "list"] as const) ?? "all";
  const listNode = child(indexes, "platformlist");
  const platformList: IndexValidation["platformList"] = [];
  if (listNode !== undefined && listNode.kind !== "null") {
    if (listNode.kind !== "seq") throw fail(`${KEY}.platformlist`, listNode, "expected a list of platforms (architecture and os)");
    for (const [i, item] of listNode.items.entries()) {
      const at = `${KEY}.platformlist[${i}]`;
      const entry = readSection(item, at);
      const architecture = readString(child(entry, "architecture"), `${at}.architecture`) ?? "";
      const os = readString(child(entry, "os"), `${at}.os`) ?? "";
      if (architecture === "" && os === "") throw fail(at, item, "expected an architecture and an os");
      platformList.push({ architecture, os });
    }
  }
  if (platforms !== "list" && platformList.length > 0) warnings.push(`${KEY}.platformlist applies only with platforms: list; every child is ${platforms === "all" ? "required" : "left unchecked"}`);
  // distribution 3 logs the same warning for both: other tools may expect an index to be complete.
  if (platforms !== "all") warnings.push(`${KEY}.platforms: ${platforms}: indexes may be pushed with children the registry does not hold, which other tools may not expect`);
  return { platforms, platformList };
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
