import type { ParsedManifest } from "../manifest/parse-manifest.js";

/**
 * A rule a pushed manifest must pass before anything of it is written (validation.manifests.urls:
 * src/validation/). Throws a RegistryError naming what is wrong; pure, no storage access, so it
 * costs a push nothing but CPU. Manifests the pull-through cache stores from its upstream are not
 * checked: they are the upstream's, not a client's.
 */
export interface ManifestCheck {
  check(manifest: ParsedManifest): void;
}
