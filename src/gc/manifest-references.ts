import { Digest } from "../reference/digest.js";
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  DOCKER_SCHEMA1,
  DOCKER_SCHEMA1_SIGNED,
  OCI_INDEX,
  OCI_MANIFEST,
} from "../manifest/media-types.js";

/** What a stored manifest points to, as far as garbage collection cares. */
export interface ManifestReferences {
  /** Digests of the blobs it needs: config and every layer (foreign layers included). */
  blobs: string[];
  /** Digests of the manifests an index (or manifest list) names. */
  children: string[];
  /** The manifest this one refers to (`subject`), when it is a referrer. Never a dependency. */
  subject?: Digest;
}

/** The manifest's content cannot be read as a manifest: its references are unknown. */
export class UnreadableManifestError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "UnreadableManifestError";
  }
}

/** OCI artifact manifest (image-spec 1.1 release candidates): its files are under `blobs`. */
const OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json";

const KNOWN_MEDIA_TYPES = new Set([
  OCI_MANIFEST,
  OCI_INDEX,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_ARTIFACT_MANIFEST,
]);

/**
 * Every reference of a stored manifest, read leniently but never guessed: the collector must know
 * all of a manifest's references or none, so anything it cannot account for throws
 * UnreadableManifestError (and the caller refuses to sweep).
 *
 * Unlike `parseManifest` (which validates what clients push), this reads what storage holds,
 * whoever wrote it: Docker schema 1 (distribution 2.x could store it; its layers are
 * `fsLayers[].blobSum`), schema 2 and OCI manifests and indexes, and OCI artifact manifests.
 * Every layer counts, foreign ones too, as in distribution's `References()`.
 */
export function manifestReferences(bytes: Uint8Array): ManifestReferences {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  } catch {
    throw new UnreadableManifestError("content is not valid JSON");
  }
  if (!isObject(value)) throw new UnreadableManifestError("content is not a JSON object");
  const mediaType = value.mediaType;
  if (value.schemaVersion === 1) {
    if (mediaType !== undefined && mediaType !== DOCKER_SCHEMA1 && mediaType !== DOCKER_SCHEMA1_SIGNED) {
      throw new UnreadableManifestError(`schemaVersion 1 with media type ${String(mediaType)}`);
    }
    return { blobs: digestsOf(value.fsLayers, "fsLayers", "blobSum"), children: [] };
  }
  if (value.schemaVersion !== 2) throw new UnreadableManifestError(`unknown schemaVersion ${JSON.stringify(value.schemaVersion)}`);
  if (mediaType !== undefined && (typeof mediaType !== "string" || !KNOWN_MEDIA_TYPES.has(mediaType))) {
    throw new UnreadableManifestError(`unknown manifest media type ${JSON.stringify(mediaType)}`);
  }
  const blobs: string[] = [];
  if (value.config !== undefined) blobs.push(digestOf(value.config, "config"));
  blobs.push(...digestsOf(value.layers, "layers"));
  blobs.push(...digestsOf(value.blobs, "blobs"));
  const children = digestsOf(value.manifests, "manifests");
  if (value.config === undefined && value.layers === undefined && value.blobs === undefined && value.manifests === undefined) {
    throw new UnreadableManifestError("neither an image manifest nor an index (no config, layers or manifests)");
  }
  let subject: Digest | undefined;
  if (value.subject !== undefined) {
    subject = Digest.tryParse(digestOf(value.subject, "subject"));
  }
  return { blobs, children, subject };
}

function digestsOf(list: unknown, where: string, key = "digest"): string[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new UnreadableManifestError(`${where} is not an array`);
  return list.map((entry, i) => digestOf(entry, `${where}[${i}]`, key));
}

/** OCI's digest grammar: algorithm ":" encoded. Unsupported algorithms are still references. */
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

function digestOf(descriptor: unknown, where: string, key = "digest"): string {
  if (!isObject(descriptor)) throw new UnreadableManifestError(`${where} is not a descriptor`);
  const digest = descriptor[key];
  if (typeof digest !== "string" || !DIGEST_GRAMMAR.test(digest)) {
    throw new UnreadableManifestError(`${where}.${key} is not a digest`);
  }
  return digest;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
