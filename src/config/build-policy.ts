// policy: distribution's repository classes (src/policy/repository-class-policy.ts).
import type { Config } from "./config.js";
import { child, readSection, readStringList } from "./raw-values.js";
import type { RawMap } from "./raw-yaml.js";

export function buildPolicy(root: RawMap): Config["policy"] {
  const repository = readSection(child(readSection(child(root, "policy"), "policy"), "repository"), "policy.repository");
  return { repositoryClasses: readStringList(child(repository, "classes"), "policy.repository.classes") };
}
