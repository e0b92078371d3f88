// catalog: distribution 3's catalog.maxentries, the most names one /v2/_catalog page may ask for.
import type { Config } from "./config.js";
import { child, readPositiveInt, readSection } from "./raw-values.js";
import type { RawMap } from "./raw-yaml.js";

export function buildCatalog(root: RawMap): Config["catalog"] {
  const catalog = readSection(child(root, "catalog"), "catalog");
  return { maxEntries: readPositiveInt(child(catalog, "maxentries"), "catalog.maxentries") };
}
