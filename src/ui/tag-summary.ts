import { RegistryError } from "../errcode/registry-error.js";
import { Digest } from "../reference/digest.js";
import type { Repository } from "../registry/repository.js";
import { readBlobJSON } from "./blob-json.js";

/** What the repository page shows of one tag, beside its name. */
export interface TagSummary {
  tag: string;
  digest: string;
  mediaType: string;
  artifactType: string | undefined;
  /** "linux/amd64", "linux/arm64/v8", …; for an index, its children's (attestation entries left out). */
  platforms: string[];
  /** Compressed bytes: config and layers; for an index, the sum over the children found. */
  size: number | undefined;
  /** ISO 8601, when the storage tells when the tag last moved. */
  pushed: string | undefined;
}

type Json = Record<string, unknown>;

function record(value: unknown): Json | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** "os/architecture[/variant]" from an OCI platform object or an image config; undefined without both. */
export function platformOf(value: unknown): string | undefined {
  const platform = record(value);
  const os = text(platform?.os);
  const architecture = text(platform?.architecture);
  if (os === undefined || architecture === undefined) return undefined;
  const variant = text(platform?.variant);
  return [os, architecture, ...(variant ? [variant] : [])].join("/");
}

/** A stored manifest's JSON; stored manifests were validated when pushed, so this only fails on corruption. */
async function manifestJSON(repository: Repository, reference: { tag: string } | { digest: Digest }): Promise<{ digest: string; mediaType: string; body: Json }> {
  const stored = await repository.getManifest(reference);
  const body = record(JSON.parse(stored.content.toString("utf8")));
  if (body === undefined) throw new RegistryError("MANIFEST_INVALID", "the stored manifest is not a JSON object");
  return { digest: stored.digest.toString(), mediaType: stored.mediaType, body };
}

function descriptors(value: unknown): Json[] {
  return Array.isArray(value) ? value.map(record).filter((d): d is Json => d !== undefined) : [];
}

function sizeOf(entries: Json[]): number {
  return entries.reduce((sum, d) => sum + (typeof d.size === "number" ? d.size : 0), 0);
}

/** An image's config and layer bytes, and its platform from the config (when the config is JSON). */
async function imageFacts(repository: Repository, body: Json): Promise<{ size: number; platform: string | undefined }> {
  const config = record(body.config);
  const size = sizeOf([...(config ? [config] : []), ...descriptors(body.layers)]);
  const digest = text(config?.digest);
  if (digest === undefined) return { size, platform: undefined };
  try {
    return { size, platform: platformOf(await readBlobJSON(repository, Digest.parse(digest))) };
  } catch (err) {
    // A config that is missing or too large still leaves the rest of the summary worth showing.
    if (err instanceof RegistryError) return { size, platform: undefined };
    throw err;
  }
}

/** Buildx's attestation entries sit in an index under the platform "unknown/unknown". */
function isAttestationEntry(entry: Json): boolean {
  const annotations = record(entry.annotations);
  return text(annotations?.["vnd.docker.reference.type"]) === "attestation-manifest";
}

/** The summary of one tag, read through the repository (never storage). */
export async function summarizeTag(repository: Repository, tag: string, pushed: Date | undefined): Promise<TagSummary> {
  const manifest = await manifestJSON(repository, { tag });
  const base = { tag, digest: manifest.digest, mediaType: manifest.mediaType, artifactType: text(manifest.body.artifactType), pushed: pushed?.toISOString() };
  const children = descriptors(manifest.body.manifests);
  if (!Array.isArray(manifest.body.manifests)) {
    const facts = await imageFacts(repository, manifest.body);
    return { ...base, platforms: facts.platform === undefined ? [] : [facts.platform], size: facts.size };
  }
  const platforms = children.filter((c) => !isAttestationEntry(c)).map((c) => platformOf(c.platform)).filter((p): p is string => p !== undefined);
  let size = 0;
  for (const child of children) {
    const digest = text(child.digest);
    if (digest === undefined) continue;
    try {
      const body = (await manifestJSON(repository, { digest: Digest.parse(digest) })).body;
      size += sizeOf([...(record(body.config) ? [record(body.config)!] : []), ...descriptors(body.layers)]);
    } catch (err) {
      // A child not in this repository (an index may name manifests pushed elsewhere) adds nothing.
      if (!(err instanceof RegistryError)) throw err;
    }
  }
  return { ...base, platforms, size };
}
