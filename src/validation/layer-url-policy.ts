import { RegistryError } from "../errcode/registry-error.js";
import type { ParsedManifest } from "../manifest/parse-manifest.js";
import type { ManifestCheck } from "../registry/manifest-check.js";
import { compileGoRegexpList, type TextMatcher } from "./go-regexp.js";

const DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/** Matches only the empty string: distribution's allow list when validation names no list. */
const NOTHING: TextMatcher = { test: (text) => text === "" };

/** The `validation` section as the policy needs it. */
export interface LayerUrlRules {
  /** validation.disabled (and not validation.enabled): only the URL syntax is checked. */
  enabled: boolean;
  /** Go regular expressions (validation.manifests.urls.allow / deny). */
  allow: readonly string[];
  deny: readonly string[];
}

/**
 * distribution's check of the `urls` of layers in a pushed manifest (validation.manifests.urls):
 * each must be an http or https URL without a fragment, match `allow` when there is an allow list
 * and not match `deny`. With validation on and neither list, distribution allows no URL at all, so
 * neither does berth: a layer with `urls` is refused unless the operator lists what is allowed (or
 * turns validation off). A Docker foreign layer must have URLs.
 *
 * distribution checks the URLs only of some layer media types (OCI tar and tar+gzip, their
 * non-distributable forms, Docker's foreign layer); berth checks every layer's, so that a zstd
 * non-distributable layer cannot carry a URL the lists refuse.
 */
export class LayerUrlPolicy implements ManifestCheck {
  readonly #allow: TextMatcher | undefined;
  readonly #deny: TextMatcher | undefined;

  /** Throws on a pattern that does not compile (the configuration was checked with the same code). */
  constructor(rules: LayerUrlRules) {
    if (!rules.enabled) return;
    if (rules.allow.length === 0 && rules.deny.length === 0) {
      this.#allow = NOTHING;
      return;
    }
    this.#allow = compileGoRegexpList(rules.allow);
    this.#deny = compileGoRegexpList(rules.deny);
  }

  /** MANIFEST_INVALID naming the layer and the URL refused, and why. */
  check(manifest: ParsedManifest): void {
    for (const layer of manifest.layers) {
      if (layer.mediaType === DOCKER_FOREIGN_LAYER && layer.urls.length === 0) {
        throw refused(layer.digest.toString(), undefined, "a foreign layer must have urls");
      }
      for (const url of layer.urls) {
        const problem = this.#problem(url);
        if (problem !== undefined) throw refused(layer.digest.toString(), url, problem);
      }
    }
  }

  #problem(url: string): string | undefined {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return "not a URL";
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return "not an http or https URL";
    if (parsed.hash !== "") return "a layer URL must not have a fragment";
    if (this.#allow !== undefined && !this.#allow.test(url)) return "not allowed by validation.manifests.urls.allow";
    if (this.#deny !== undefined && this.#deny.test(url)) return "refused by validation.manifests.urls.deny";
    return undefined;
  }
}

function refused(digest: string, url: string | undefined, reason: string): RegistryError {
  const detail: Record<string, string> = { digest, reason };
  if (url !== undefined) detail.url = url.slice(0, 500);
  return new RegistryError("MANIFEST_INVALID", `invalid URL on layer ${digest}: ${reason}`, detail);
}
