import { type Dirent } from "node:fs";
import { readdir, rmdir, unlink } from "node:fs/promises";
import { join } from "node:path";

/** Entries of one directory removed at once by a recursive delete. */
const REMOVE_CONCURRENCY = 32;
/** Attempts at emptying a directory that concurrent writers keep adding to. */
const REMOVE_RETRIES = 5;

/**
 * rm -r that tolerates files appearing while it runs (a concurrent write into the tree being
 * deleted makes rmdir fail with ENOTEMPTY): it tries again, and the delete wins. A missing path is
 * not an error. One listing per directory (entries come with their types) instead of fs.rm's stat
 * of every entry: removing an upload directory after its blob was moved out costs three calls
 * instead of eight. Not atomic: a kill part way leaves part of the tree, which is why the driver
 * first renames a tree to a hidden name (FilesystemDriver.delete). Resolves to false when nothing
 * was there.
 */
export async function removeTree(full: string): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await removeEntry(full);
    } catch (err) {
      // A concurrent writer added an entry while the directory was emptied: go round again.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" || attempt >= REMOVE_RETRIES) throw err;
    }
  }
}

async function removeEntry(full: string): Promise<boolean> {
  let entries: Dirent[];
  try {
    entries = await readdir(full, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return false;
    if (code !== "ENOTDIR") throw err;
    await unlink(full).catch(ignoreNotFound);
    return true;
  }
  // A bounded number at a time: a repository's tree can hold many thousands of entries.
  for (let i = 0; i < entries.length; i += REMOVE_CONCURRENCY) {
    await Promise.all(
      entries.slice(i, i + REMOVE_CONCURRENCY).map((entry) => {
        const child = join(full, entry.name);
        return entry.isDirectory() ? removeEntry(child) : unlink(child).catch(ignoreNotFound);
      }),
    );
  }
  await rmdir(full).catch(ignoreNotFound);
  return true;
}

export function ignoreNotFound(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
}
