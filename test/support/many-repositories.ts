/**
 * A storage root holding thousands of repositories, written directly in distribution's layout
 * (src/storage/paths.ts): one image pushed through the API to a seed repository, then its links
 * copied under every other name. Pushing 10,000 repositories through the API would take minutes
 * on these machines; the links are what the catalog and the tag listing read, exactly as a push
 * leaves them.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Digest } from "../../src/reference/digest.js";
import { layerLinkPath, manifestRevisionLinkPath, tagCurrentLinkPath, tagIndexEntryLinkPath } from "../../src/storage/paths.js";

/** `bulk/repo-00000` … in lexical (and catalog) order. */
export function bulkName(i: number): string {
  return `bulk/repo-${String(i).padStart(5, "0")}`;
}

/**
 * Links the image `manifest` (with its config and layer blobs already in `root`'s blob store)
 * as tag `tag` of repositories bulkName(0) … bulkName(count - 1).
 */
export async function linkManyRepositories(root: string, count: number, image: { manifest: string; blobs: string[] }, tag = "latest"): Promise<void> {
  const manifest = Digest.parse(image.manifest);
  const blobs = image.blobs.map((d) => Digest.parse(d));
  const write = async (path: string, digest: Digest): Promise<void> => {
    const file = join(root, path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, digest.toString());
  };
  const BATCH = 50;
  for (let start = 0; start < count; start += BATCH) {
    const batch: Promise<void>[] = [];
    for (let i = start; i < Math.min(count, start + BATCH); i++) {
      const name = bulkName(i);
      batch.push(
        (async () => {
          for (const blob of blobs) await write(layerLinkPath(name, blob), blob);
          await write(manifestRevisionLinkPath(name, manifest), manifest);
          await write(tagIndexEntryLinkPath(name, tag, manifest), manifest);
          await write(tagCurrentLinkPath(name, tag), manifest);
        })(),
      );
    }
    await Promise.all(batch);
  }
}
