import { loadAddon } from "./load-addon.js";

interface CachedReadAddon {
  read(path: string, max: number): Buffer | null | undefined;
}

const addon = process.platform === "linux" ? loadAddon<CachedReadAddon>("cached_read", (candidate) => typeof candidate.read === "function") : undefined;

/**
 * native/cached_read.c: a file's content read on the calling thread, only when the kernel can
 * answer from its caches (no disk or network wait); undefined when it cannot, or when the file is
 * larger than `max` (read it through node:fs then); null when the path is not a regular file.
 * Errors (ENOENT, ENOTDIR, EACCES) are thrown as node:fs throws them. Undefined when not built.
 */
export const readCachedFile: ((path: string, max: number) => Buffer | null | undefined) | undefined = addon && ((path, max) => addon.read(path, max));
