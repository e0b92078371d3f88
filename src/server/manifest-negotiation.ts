import { RegistryError } from "../errcode/registry-error.js";
import { Digest } from "../reference/digest.js";
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from "../manifest/media-types.js";
import type { Reference, Repository } from "../registry/repository.js";
import type { StoredManifest } from "../storage/manifest-store.js";

/** The manifest media types an Accept header names, as distribution reads it. */
export interface AcceptedManifests {
  ociManifest: boolean;
  ociIndex: boolean;
  dockerManifest: boolean;
  dockerList: boolean;
}

/**
 * What a manifest GET's Accept headers name: each value split on ",", parameters (q=) dropped, as
 * distribution's handler does (a q=0 still counts). undefined when the request takes any type: no
 * Accept at all, or a wildcard (`*\/*`, `application/*`). distribution treats those as naming no
 * manifest type; berth serves the manifest as stored (a deliberate difference, in
 * docs/configuration.md), which also keeps the common request free of this work.
 */
export function acceptedManifests(header: string | string[] | undefined): AcceptedManifests | undefined {
  if (header === undefined) return undefined;
  const accepted: AcceptedManifests = { ociManifest: false, ociIndex: false, dockerManifest: false, dockerList: false };
  for (const value of Array.isArray(header) ? header : [header]) {
    for (const item of value.split(",")) {
      const semicolon = item.indexOf(";");
      const mediaType = (semicolon < 0 ? item : item.slice(0, semicolon)).trim().toLowerCase();
      if (mediaType === "*/*" || mediaType === "application/*") return undefined;
      if (mediaType === OCI_MANIFEST) accepted.ociManifest = true;
      else if (mediaType === OCI_INDEX) accepted.ociIndex = true;
      else if (mediaType === DOCKER_MANIFEST) accepted.dockerManifest = true;
      else if (mediaType === DOCKER_MANIFEST_LIST) accepted.dockerList = true;
    }
  }
  return accepted;
}

/** distribution's default platform, served to a client that takes no manifest list. */
const DEFAULT_ARCHITECTURE = "amd64";
const DEFAULT_OS = "linux";

/**
 * The manifest to answer with, as distribution 3 chooses it: an OCI manifest or index the client
 * does not accept is 404 MANIFEST_UNKNOWN (with distribution's message); a Docker manifest list
 * fetched by tag by a client that does not accept lists is answered with its linux/amd64 image
 * (404 MANIFEST_UNKNOWN when it has none; 400 MANIFEST_INVALID when that image is a Docker
 * manifest the client does not accept either). Anything else is served as stored, a Docker
 * schema 2 manifest included (distribution 2.8 would rewrite it as schema 1, which berth does
 * not serve). One more read, of the child, only in the manifest-list case.
 */
export async function negotiateManifest(manifest: StoredManifest, accepted: AcceptedManifests, reference: Reference, repository: Repository): Promise<StoredManifest> {
  if (manifest.mediaType === OCI_MANIFEST && !accepted.ociManifest) {
    throw new RegistryError("MANIFEST_UNKNOWN", "OCI manifest found, but accept header does not support OCI manifests");
  }
  if (manifest.mediaType === OCI_INDEX && !accepted.ociIndex) {
    throw new RegistryError("MANIFEST_UNKNOWN", "OCI index found, but accept header does not support OCI indexes");
  }
  // By digest the answer must be the bytes of that digest: only a tag may be rewritten.
  if (manifest.mediaType !== DOCKER_MANIFEST_LIST || accepted.dockerList || !("tag" in reference)) return manifest;
  const child = defaultPlatformChild(manifest.content);
  // distribution answers with its code's bare message here.
  if (child === undefined) throw new RegistryError("MANIFEST_UNKNOWN", "manifest unknown", { reason: `manifest list has no ${DEFAULT_OS}/${DEFAULT_ARCHITECTURE} image` });
  const image = await repository.getManifest({ digest: child });
  if (image.mediaType === DOCKER_MANIFEST && !accepted.dockerManifest) throw new RegistryError("MANIFEST_INVALID", "Schema 2 manifest not supported by client");
  return image;
}

/** The digest of the list's first linux/amd64 entry; the list was validated when it was pushed. */
function defaultPlatformChild(content: Buffer): Digest | undefined {
  const list = JSON.parse(content.toString("utf8")) as { manifests?: Array<{ digest?: unknown; platform?: { architecture?: unknown; os?: unknown } }> };
  for (const entry of list.manifests ?? []) {
    if (entry.platform?.architecture === DEFAULT_ARCHITECTURE && entry.platform?.os === DEFAULT_OS && typeof entry.digest === "string") {
      return Digest.parse(entry.digest);
    }
  }
  return undefined;
}
