/**
 * Whether the filesystem driver can write its root directory: the directory itself, or (when it
 * does not exist yet, and the driver would create it) the nearest ancestor that exists. Writing
 * is the first thing a writable registry does (its lease), so a root it cannot write stops the
 * start; checking it here names the key and the reason, and lets `berth config check` say so too.
 */
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import path from "node:path";
import { ConfigError } from "../config/config.js";

const KEY = "storage.filesystem.rootdirectory";

/** Resolves when `root` is, or can be created as, a directory berth may write; else a ConfigError. */
export async function checkFilesystemRoot(root: string): Promise<void> {
  const target = path.resolve(root);
  let dir = target;
  for (;;) {
    let isDirectory: boolean;
    try {
      isDirectory = (await stat(dir)).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Missing (or under a file, which the next step up finds): the driver would create it.
      if (code === "ENOENT" || code === "ENOTDIR") {
        const parent = path.dirname(dir);
        if (parent === dir) throw new ConfigError(KEY, `${target} cannot be created: no existing directory above it`);
        dir = parent;
        continue;
      }
      throw new ConfigError(KEY, `cannot check ${dir}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!isDirectory) {
      throw new ConfigError(KEY, dir === target ? `${target} is not a directory` : `${target} cannot be created: ${dir} is not a directory`);
    }
    break;
  }
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    const what = dir === target ? `${target} is not writable` : `${target} cannot be created: ${dir} is not writable`;
    throw new ConfigError(KEY, `${what}${code === "EROFS" ? " (read-only file system)" : code === "" ? "" : ` (${code})`}`);
  }
}
