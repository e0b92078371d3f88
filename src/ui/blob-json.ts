import { RegistryError } from "../errcode/registry-error.js";
import type { Digest } from "../reference/digest.js";
import type { Repository } from "../registry/repository.js";

/** The largest image config the UI reads: configs are a few KiB; history-heavy ones rarely pass 100 KiB. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * A small JSON blob of a repository (an image config), parsed. BLOB_UNKNOWN when the repository
 * lacks it; SIZE_INVALID past `limit` bytes, which are never read; undefined when the bytes are
 * not JSON (a config may be any artifact's blob). Read as a stream and stopped at the limit.
 */
export async function readBlobJSON(repository: Repository, digest: Digest, limit = MAX_CONFIG_BYTES): Promise<unknown> {
  const descriptor = await repository.statBlob(digest);
  if (descriptor.size > limit) throw new RegistryError("SIZE_INVALID", `the blob is larger than the ${limit} bytes the UI reads`, { size: descriptor.size, limit });
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of await repository.openBlob(digest, 0, descriptor.size)) {
    const bytes = chunk as Buffer;
    total += bytes.length;
    if (total > limit) throw new RegistryError("SIZE_INVALID", undefined, { limit });
    chunks.push(bytes);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
}
