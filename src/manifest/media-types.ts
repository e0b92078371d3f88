export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json";
export const DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/** Layers that registries need not hold ("foreign" / non-distributable): pushed with `urls`. */
export const NON_DISTRIBUTABLE_LAYERS = new Set([
  "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
]);

export type ManifestKind = "image" | "index";

export function kindOf(mediaType: string): ManifestKind | undefined {
  if (mediaType === OCI_MANIFEST || mediaType === DOCKER_MANIFEST) return "image";
  if (mediaType === OCI_INDEX || mediaType === DOCKER_MANIFEST_LIST) return "index";
  return undefined;
}
