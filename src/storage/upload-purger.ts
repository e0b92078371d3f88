import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import type { Logger } from "../log/logger.js";
import { REPOSITORIES_ROOT } from "./paths.js";

export interface PurgeResult {
  /** Upload directories removed (or, in a dry run, that would have been). */
  purged: string[];
  errors: number;
}

/**
 * Removes uploads started before `olderThan`, as distribution's upload purging does: every
 * `_uploads/<id>` under every repository, judged by its `startedat` file (or, when that is missing
 * or unreadable, by the directory's modification time, so half-created uploads are purged too).
 */
export async function purgeUploads(driver: StorageDriver, olderThan: Date, dryRun: boolean, log: Logger): Promise<PurgeResult> {
  const result: PurgeResult = { purged: [], errors: 0 };
  const uploadDirs: string[] = [];
  try {
    await driver.walk(REPOSITORIES_ROOT, (info) => {
      if (!info.isDir) return;
      const base = info.path.slice(info.path.lastIndexOf("/") + 1);
      if (base === "_uploads") {
        uploadDirs.push(info.path);
        return "skip";
      }
      if (base.startsWith("_")) return "skip";
    });
  } catch (err) {
    if (isPathNotFound(err)) return result;
    throw err;
  }
  for (const dir of uploadDirs) {
    let uploads: string[];
    try {
      uploads = await driver.list(dir);
    } catch (err) {
      if (isPathNotFound(err)) continue;
      throw err;
    }
    for (const upload of uploads) {
      try {
        if ((await startedAt(driver, upload)) >= olderThan) continue;
        result.purged.push(upload);
        if (!dryRun) await driver.delete(upload);
      } catch (err) {
        if (isPathNotFound(err)) continue;
        result.errors++;
        log.error({ err, upload }, "upload purge failed");
      }
    }
  }
  return result;
}

async function startedAt(driver: StorageDriver, upload: string): Promise<Date> {
  try {
    const parsed = new Date((await driver.getContent(`${upload}/startedat`)).toString("utf8").trim());
    if (!Number.isNaN(parsed.getTime())) return parsed;
  } catch (err) {
    if (!isPathNotFound(err)) throw err;
  }
  return (await driver.stat(upload)).modTime;
}
