import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import { Digest, isAlgorithm } from "../reference/digest.js";

/**
 * The digests named by a `<root>/<algorithm>/<hex>` directory, in no particular order; none when
 * `root` does not exist. Names that are not digests of a supported algorithm are skipped.
 */
export async function listDigests(driver: StorageDriver, root: string): Promise<Digest[]> {
  let algorithms: string[];
  try {
    algorithms = await driver.list(root);
  } catch (err) {
    if (isPathNotFound(err)) return [];
    throw err;
  }
  const found: Digest[] = [];
  for (const algorithmPath of algorithms) {
    const algorithm = algorithmPath.slice(algorithmPath.lastIndexOf("/") + 1);
    if (!isAlgorithm(algorithm)) continue;
    let entries: string[];
    try {
      entries = await driver.list(algorithmPath);
    } catch (err) {
      if (isPathNotFound(err)) continue;
      throw err;
    }
    for (const entry of entries) {
      const digest = Digest.tryParse(`${algorithm}:${entry.slice(entry.lastIndexOf("/") + 1)}`);
      if (digest) found.push(digest);
    }
  }
  return found;
}
