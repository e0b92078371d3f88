import type { IndexValidation } from "../config/config.js";
import type { ParsedManifest } from "../manifest/parse-manifest.js";
import type { Digest } from "../reference/digest.js";

/**
 * validation.manifests.indexes, as distribution 3's manifest list handler applies it: which children
 * of a pushed index must already be in the repository. `all` (the default, and distribution 2.8's
 * only behaviour), `none`, or the children whose platform's architecture and os equal an entry of
 * `platformlist` (every child when that list is empty).
 */
export class IndexChildPolicy {
  constructor(private readonly config: IndexValidation) {}

  /** The children of `manifest` the repository must hold before it is accepted. */
  required(manifest: ParsedManifest): Digest[] {
    const { platforms, platformList } = this.config;
    if (platforms === "none") return [];
    if (platforms === "all" || platformList.length === 0) return manifest.manifests;
    return manifest.children.filter((c) => platformList.some((p) => p.architecture === c.architecture && p.os === c.os)).map((c) => c.digest);
  }
}
