/**
 * The page cache an upload case starts from. Measured on 2026-12-04: with 5 GB of earlier runs'
 * files cached, berth's chunked upload of 1 GiB ran at 283-291 MB/s and spent 3.8-3.9 s of CPU,
 * three quarters of it in the kernel under write(2) (distribution: 202-290 MB/s); right after
 * dropping the cache, 763-786 MB/s and 1.6 s (distribution 345-369). Each case's figure then
 * depended on what ran before it, not on the registry.
 */
import { spawnSync } from "node:child_process";
import { open, writeFile } from "node:fs/promises";

export type PageCacheState = "dropped" | "synced";

const READ_BYTES = 1024 * 1024;

/**
 * Syncs, drops the page cache (`/proc/sys/vm/drop_caches`, root only; otherwise only synced) and
 * reads `warm` back in, so the timed part reads its input from memory and writes into an otherwise
 * empty cache.
 */
export async function settlePageCache(warm: string[]): Promise<PageCacheState> {
  spawnSync("sync");
  try {
    await writeFile("/proc/sys/vm/drop_caches", "3");
  } catch {
    return "synced";
  }
  const buffer = Buffer.allocUnsafe(READ_BYTES);
  for (const path of warm) {
    const file = await open(path, "r");
    try {
      while ((await file.read(buffer, 0, READ_BYTES, null)).bytesRead > 0);
    } finally {
      await file.close();
    }
  }
  return "dropped";
}
