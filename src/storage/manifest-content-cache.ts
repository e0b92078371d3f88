import type { Digest } from "../reference/digest.js";
import type { StoredManifest } from "./manifest-store.js";

/**
 * Manifest bytes by digest, bounded by total size. Safe to share across repositories and never
 * stale: a digest's content cannot change. Repository membership is not cached here.
 */
export class ManifestContentCache {
  private readonly entries = new Map<string, StoredManifest>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get(digest: Digest): StoredManifest | undefined {
    const key = digest.toString();
    const found = this.entries.get(key);
    if (found) {
      this.entries.delete(key);
      this.entries.set(key, found);
    }
    return found;
  }

  set(manifest: StoredManifest): void {
    if (manifest.content.length > this.maxBytes / 16) return;
    const key = manifest.digest.toString();
    const previous = this.entries.get(key);
    if (previous) {
      this.bytes -= previous.content.length;
      this.entries.delete(key);
    }
    this.entries.set(key, manifest);
    this.bytes += manifest.content.length;
    for (const [oldestKey, oldest] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldestKey);
      this.bytes -= oldest.content.length;
    }
  }
}
