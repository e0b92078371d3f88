import type { Digest } from "../reference/digest.js";

/**
 * The storage layout, drawn once. Every key berth reads or writes is built here, and
 * test/paths.test.ts pins each kind to a literal string, so the on-disk format cannot drift.
 * It is distribution's layout exactly, so either registry can serve a tree the other wrote:
 *
 *   /docker/registry/v2/
 *     blobs/<alg>/<hex[0:2]>/<hex>/data                              the bytes, once per digest
 *     repositories/<name>/
 *       _layers/<alg>/<hex>/link                                     "<alg>:<hex>": blob visible here
 *       _manifests/revisions/<alg>/<hex>/link                        a manifest of this repository
 *       _manifests/tags/<tag>/current/link                           what the tag points to now
 *       _manifests/tags/<tag>/index/<alg>/<hex>/link                 everything it ever pointed to
 *       _uploads/<id>/data                                           bytes received so far
 *       _uploads/<id>/startedat                                      RFC 3339 start time
 *       _uploads/<id>/hashstates/<alg>/<offset>                      hash state after <offset> bytes
 *       _referrers/<alg>/<subject hex>/<alg>/<hex>/link              berth only: manifests whose
 *                                                                    subject is the digest
 *       _referrers/_indexed/<alg>/<hex>                              berth only: revision <hex> is
 *                                                                    covered by the index above
 *
 * distribution skips every directory under a repository whose name starts with "_" and that it
 * does not know, so `_referrers` is invisible to it; berth re-checks each entry against
 * `_manifests/revisions` when it reads, so entries that distribution left stale are ignored.
 * Revisions without an `_indexed` marker (pushed through distribution) are indexed when found.
 */
export const ROOT = "/docker/registry/v2";
export const BLOBS_ROOT = `${ROOT}/blobs`;
export const REPOSITORIES_ROOT = `${ROOT}/repositories`;

export function blobDataPath(digest: Digest): string {
  return `${BLOBS_ROOT}/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}/data`;
}

export function blobDirPath(digest: Digest): string {
  return `${BLOBS_ROOT}/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}`;
}

export function repositoryPath(name: string): string {
  return `${REPOSITORIES_ROOT}/${name}`;
}

export function layerLinkPath(name: string, digest: Digest): string {
  return `${repositoryPath(name)}/_layers/${digest.algorithm}/${digest.hex}/link`;
}

export function layersRootPath(name: string): string {
  return `${repositoryPath(name)}/_layers`;
}

export function manifestsRootPath(name: string): string {
  return `${repositoryPath(name)}/_manifests`;
}

export function manifestRevisionsPath(name: string): string {
  return `${manifestsRootPath(name)}/revisions`;
}

export function manifestRevisionLinkPath(name: string, digest: Digest): string {
  return `${manifestRevisionsPath(name)}/${digest.algorithm}/${digest.hex}/link`;
}

export function tagsRootPath(name: string): string {
  return `${manifestsRootPath(name)}/tags`;
}

export function tagPath(name: string, tag: string): string {
  return `${tagsRootPath(name)}/${tag}`;
}

export function tagCurrentLinkPath(name: string, tag: string): string {
  return `${tagPath(name, tag)}/current/link`;
}

export function tagIndexPath(name: string, tag: string): string {
  return `${tagPath(name, tag)}/index`;
}

export function tagIndexEntryLinkPath(name: string, tag: string, digest: Digest): string {
  return `${tagIndexPath(name, tag)}/${digest.algorithm}/${digest.hex}/link`;
}

export function uploadsRootPath(name: string): string {
  return `${repositoryPath(name)}/_uploads`;
}

export function uploadPath(name: string, id: string): string {
  return `${uploadsRootPath(name)}/${id}`;
}

export function uploadDataPath(name: string, id: string): string {
  return `${uploadPath(name, id)}/data`;
}

export function uploadStartedAtPath(name: string, id: string): string {
  return `${uploadPath(name, id)}/startedat`;
}

export function uploadHashStatesPath(name: string, id: string, algorithm: string): string {
  return `${uploadPath(name, id)}/hashstates/${algorithm}`;
}

export function uploadHashStatePath(name: string, id: string, algorithm: string, offset: number): string {
  return `${uploadPath(name, id)}/hashstates/${algorithm}/${offset}`;
}

export function referrersPath(name: string, subject: Digest): string {
  return `${repositoryPath(name)}/_referrers/${subject.algorithm}/${subject.hex}`;
}

export function referrerLinkPath(name: string, subject: Digest, referrer: Digest): string {
  return `${referrersPath(name, subject)}/${referrer.algorithm}/${referrer.hex}/link`;
}

/** Markers of the revisions the referrers index covers (one empty file per revision, by algorithm). */
export function referrersIndexedPath(name: string, algorithm: string): string {
  return `${repositoryPath(name)}/_referrers/_indexed/${algorithm}`;
}

export function referrersIndexedMarkerPath(name: string, revision: Digest): string {
  return `${referrersIndexedPath(name, revision.algorithm)}/${revision.hex}`;
}

/**
 * When a mirrored repository last served a manifest or blob (the pull-through cache's expiry
 * bookkeeping). Under "_proxy", a directory distribution never reads.
 */
export function proxyPullRecordsPath(name: string, kind: "manifests" | "blobs"): string {
  return `${repositoryPath(name)}/_proxy/pulled/${kind}`;
}

export function proxyPullRecordPath(name: string, kind: "manifests" | "blobs", digest: Digest): string {
  return `${proxyPullRecordsPath(name, kind)}/${digest.algorithm}/${digest.hex}`;
}
