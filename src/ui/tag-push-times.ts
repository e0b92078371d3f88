import type { StorageDriver } from "../driver/storage-driver.js";
import { PathNotFoundError } from "../driver/storage-driver.js";
import { tagCurrentLinkPath } from "../storage/paths.js";

/**
 * When a tag last moved: the modification time of its `current` link, which every push of the tag
 * rewrites (in distribution's layout too). The registry API has no such field. Undefined when the
 * link is gone (the tag was deleted meanwhile) or the driver cannot tell.
 */
export async function tagPushTime(driver: StorageDriver, repository: string, tag: string): Promise<Date | undefined> {
  try {
    const info = await driver.stat(tagCurrentLinkPath(repository, tag));
    return Number.isFinite(info.modTime.getTime()) && info.modTime.getTime() > 0 ? info.modTime : undefined;
  } catch (err) {
    if (err instanceof PathNotFoundError) return undefined;
    throw err;
  }
}
