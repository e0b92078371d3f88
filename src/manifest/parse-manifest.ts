import { RegistryError } from "../errcode/registry-error.js";
import { Digest } from "../reference/digest.js";
import {
  DOCKER_SCHEMA1,
  DOCKER_SCHEMA1_SIGNED,
  NON_DISTRIBUTABLE_LAYERS,
  OCI_INDEX,
  OCI_MANIFEST,
  kindOf,
  type ManifestKind,
} from "./media-types.js";

/** The spec's suggested limit, and distribution's: larger manifests are refused, pushed or fetched. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** A content descriptor as the OCI image spec defines it, validated. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** A layer, with the URLs a client may fetch it from instead of the registry (non-distributable layers). */
export interface LayerDescriptor {
  mediaType: string;
  digest: Digest;
  /** The descriptor's `urls`; empty when it has none. */
  urls: string[];
}

/** A child of an index, with the platform it names (validation.manifests.indexes picks children by it). */
export interface IndexChild {
  digest: Digest;
  /** The descriptor's platform.architecture and platform.os; "" where absent. */
  architecture: string;
  os: string;
}

/** What the registry needs to know of a manifest; the bytes themselves are kept as pushed. */
export interface ParsedManifest {
  mediaType: string;
  kind: ManifestKind;
  /** Blobs the repository must hold: config and distributable layers. */
  blobs: Digest[];
  /** Manifests the repository must hold: the children of an index. */
  manifests: Digest[];
  /** The children of an index with their platforms (empty for an image manifest). */
  children: IndexChild[];
  /** An image manifest's layers with the `urls` they name (empty for an index). */
  layers: LayerDescriptor[];
  subject?: Descriptor;
  /** For the referrers API: artifactType, or the config's media type for an image manifest. */
  artifactType?: string;
  annotations?: Record<string, string>;
}

/**
 * Parses manifest bytes. `contentType` is the request's Content-Type (undefined when reading back
 * from storage). MANIFEST_INVALID for anything that is not a schema 2 / OCI manifest or index;
 * schema 1 is refused with a message that says so.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined): ParsedManifest {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  } catch {
    throw invalid("manifest is not valid JSON");
  }
  if (!isObject(value)) throw invalid("manifest is not a JSON object");
  const declared = optionalString(value, "mediaType");
  const requested = contentType ? contentType.split(";")[0]!.trim().toLowerCase() : undefined;
  if (value.schemaVersion === 1 || requested === DOCKER_SCHEMA1 || requested === DOCKER_SCHEMA1_SIGNED) {
    throw invalid("Docker schema 1 manifests are not supported; push with a current client (schema 2 or OCI)");
  }
  if (value.schemaVersion !== 2) throw invalid("schemaVersion must be 2");
  if (declared !== undefined && requested !== undefined && requested !== "" && declared !== requested && !isGenericJson(requested)) {
    throw invalid(`mediaType ${declared} does not match Content-Type ${requested}`);
  }
  const mediaType = declared ?? (requested && !isGenericJson(requested) ? requested : inferMediaType(value));
  const kind = kindOf(mediaType);
  if (!kind) throw invalid(`unsupported manifest media type ${mediaType}`);

  const subject = value.subject === undefined ? undefined : descriptor(value.subject, "subject");
  const annotations = stringMap(value.annotations, "annotations");
  const artifactType = optionalString(value, "artifactType");

  if (kind === "index") {
    if (!Array.isArray(value.manifests)) throw invalid("index has no manifests array");
    const children = value.manifests.map((entry, i) => descriptor(entry, `manifests[${i}]`));
    const withPlatforms = children.map((d, i) => ({ digest: d.digest, ...platformOf((value.manifests as unknown[])[i]) }));
    return { mediaType, kind, blobs: [], manifests: children.map((d) => d.digest), children: withPlatforms, layers: [], subject, artifactType, annotations };
  }
  if (value.config === undefined) throw invalid("manifest has no config");
  const config = descriptor(value.config, "config");
  if (!Array.isArray(value.layers)) throw invalid("manifest has no layers array");
  const layers = value.layers.map((entry, i) => descriptor(entry, `layers[${i}]`));
  const blobs = [config.digest];
  const withURLs: LayerDescriptor[] = [];
  for (const [i, layer] of layers.entries()) {
    const urls = layerURLs((value.layers[i] as Record<string, unknown>).urls, `layers[${i}].urls`);
    withURLs.push({ mediaType: layer.mediaType, digest: layer.digest, urls });
    // Foreign layers live elsewhere (their urls); the registry need not hold them.
    if (NON_DISTRIBUTABLE_LAYERS.has(layer.mediaType) && urls.length > 0) continue;
    blobs.push(layer.digest);
  }
  return {
    mediaType,
    kind,
    blobs,
    manifests: [],
    children: [],
    layers: withURLs,
    subject,
    artifactType: artifactType ?? config.mediaType,
    annotations,
  };
}

function layerURLs(value: unknown, where: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((url) => typeof url !== "string")) throw invalid(`${where} must be a list of strings`);
  return value as string[];
}

function inferMediaType(value: Record<string, unknown>): string {
  if (Array.isArray(value.manifests)) return OCI_INDEX;
  if (value.config !== undefined) return OCI_MANIFEST;
  throw invalid("manifest has no mediaType and is neither an image manifest nor an index");
}

function isGenericJson(contentType: string): boolean {
  return contentType === "application/json" || contentType === "application/octet-stream";
}

function descriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw invalid(`${where} is not a descriptor`);
  const mediaType = value.mediaType;
  if (typeof mediaType !== "string" || mediaType === "") throw invalid(`${where}.mediaType is missing`);
  if (typeof value.digest !== "string") throw invalid(`${where}.digest is missing`);
  const digest = Digest.tryParse(value.digest);
  if (!digest) throw invalid(`${where}.digest is not a valid digest`);
  const size = value.size;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) throw invalid(`${where}.size is not a non-negative integer`);
  const artifactType = optionalString(value, "artifactType");
  const annotations = stringMap(value.annotations, `${where}.annotations`);
  return { mediaType, digest, size, artifactType, annotations };
}

/** An index entry's platform as distribution's Go structs read it: a field that is not a string reads as "". */
function platformOf(entry: unknown): { architecture: string; os: string } {
  const platform = isObject(entry) ? entry.platform : undefined;
  if (!isObject(platform)) return { architecture: "", os: "" };
  const text = (v: unknown): string => (typeof v === "string" ? v : "");
  return { architecture: text(platform.architecture), os: text(platform.os) };
}

function stringMap(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value) || Object.values(value).some((v) => typeof v !== "string")) {
    throw invalid(`${where} must map strings to strings`);
  }
  return value as Record<string, string>;
}

function optionalString(value: Record<string, unknown>, key: string): string | undefined {
  const field = value[key];
  if (field === undefined) return undefined;
  if (typeof field !== "string") throw invalid(`${key} must be a string`);
  return field;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function invalid(message: string): RegistryError {
  return new RegistryError("MANIFEST_INVALID", message, { reason: message });
}
