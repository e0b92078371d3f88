/**
 * Checks a registry's storage, through any driver, for anything half-written that a client could
 * see: a blob `data` whose bytes do not hash to its path, a link naming another digest or a blob
 * that is not stored, a tag whose current manifest the repository does not have. Uploads in
 * progress (`_uploads`) are not looked at: nothing there is visible.
 */
import { createHash } from "node:crypto";
import { isPathNotFound, type StorageDriver } from "../../src/driver/storage-driver.js";

const ROOT = "/docker/registry/v2";
const BLOB_DATA = /^\/docker\/registry\/v2\/blobs\/(sha256|sha512)\/([0-9a-f]{2})\/([0-9a-f]+)\/data$/;
const DIGEST_LINK = /^\/docker\/registry\/v2\/repositories\/(.+?)\/(_layers|_manifests\/revisions|_manifests\/tags\/[^/]+\/index)\/(sha256|sha512)\/([0-9a-f]+)\/link$/;
const CURRENT_LINK = /^\/docker\/registry\/v2\/repositories\/(.+?)\/_manifests\/tags\/([^/]+)\/current\/link$/;
const DIGEST = /^(sha256|sha512):([0-9a-f]+)$/;

export interface AuditResult {
  problems: string[];
  blobs: number;
  links: number;
}

/** Walks the tree and returns every problem found (empty when the storage is sound). */
export async function auditStorage(driver: StorageDriver): Promise<AuditResult> {
  const problems: string[] = [];
  const files: string[] = [];
  try {
    await driver.walk(ROOT, (info) => {
      if (!info.isDir) files.push(info.path);
    });
  } catch (err) {
    if (isPathNotFound(err)) return { problems, blobs: 0, links: 0 };
    throw err;
  }
  const stored = new Set<string>();
  let blobs = 0;
  for (const path of files) {
    const blob = BLOB_DATA.exec(path);
    if (!blob) continue;
    blobs++;
    const [, alg, prefix, hex] = blob as unknown as [string, string, string, string];
    if (!hex.startsWith(prefix)) problems.push(`${path}: in the wrong fan-out directory`);
    const hash = createHash(alg);
    for await (const chunk of await driver.reader(path)) hash.update(chunk as Buffer);
    const computed = hash.digest("hex");
    if (computed !== hex) problems.push(`${path}: bytes hash to ${alg}:${computed}`);
    else stored.add(`${alg}:${hex}`);
  }
  const revisions = new Set(files.map((f) => DIGEST_LINK.exec(f)).filter((m) => m?.[2] === "_manifests/revisions").map((m) => `${m![1]}@${m![3]}:${m![4]}`));
  let links = 0;
  for (const path of files) {
    const link = DIGEST_LINK.exec(path);
    const current = CURRENT_LINK.exec(path);
    if (!link && !current) continue;
    links++;
    const content = (await driver.getContent(path)).toString("utf8").trim();
    if (!DIGEST.test(content)) {
      problems.push(`${path}: content ${JSON.stringify(content.slice(0, 100))} is not a digest`);
      continue;
    }
    if (link && content !== `${link[3]}:${link[4]}`) problems.push(`${path}: names ${content}`);
    if (!stored.has(content)) problems.push(`${path}: ${content} is not stored (or its bytes are wrong)`);
    if (current && !revisions.has(`${current[1]}@${content}`)) problems.push(`${path}: ${content} is not a revision of ${current[1]}`);
  }
  return { problems, blobs, links };
}
