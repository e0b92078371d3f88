import { lstat, readdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { ignoreNotFound, removeTree } from "./remove-tree.js";
import { isTemporaryName } from "./temporary-names.js";

/**
 * Removes the hidden leftovers of interrupted operations under `root` (temporary-names.ts): files
 * of atomic writes, stand-ins of new directories, trees renamed away for deletion. Only those last
 * changed (mtime or ctime, which a rename sets) before `olderThan`: a younger one may belong to an
 * operation still under way in this or another process sharing the root. Removing one under way
 * anyway is safe (its rename fails with ENOENT and the driver writes again, or the delete it
 * belonged to finds nothing left to remove), so the age only saves work, not data.
 *
 * One readdir per directory of the whole tree, and an lstat per hidden entry only: the cost of a
 * garbage collector's walk, which is why it runs with the upload purge (once per
 * storage.maintenance.uploadpurging.interval) and in `berth garbage-collect`, not at every start.
 * Entries that vanish meanwhile are skipped. Resolves to the number of entries removed.
 */
export async function removeStaleTemporaries(root: string, olderThan: Date): Promise<number> {
  const cutoff = olderThan.getTime();
  let removed = 0;
  const visit = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return;
      throw err;
    }
    for (const entry of entries) {
      const full = join(dir, entry.name);
      if (!isTemporaryName(entry.name)) {
        if (entry.isDirectory()) await visit(full);
        continue;
      }
      const info = await lstat(full).catch((err: unknown) => void ignoreNotFound(err));
      if (!info || Math.max(info.mtimeMs, info.ctimeMs) >= cutoff) continue;
      if (info.isDirectory()) await removeTree(full);
      else await unlink(full).catch(ignoreNotFound);
      removed++;
    }
  };
  await visit(root);
  return removed;
}
