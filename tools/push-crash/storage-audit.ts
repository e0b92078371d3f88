/**
 * The push crash campaign's audit of the storage itself, after each restart (tools/push-crash.ts):
 * no partial or wrong file may be where the registry would take it for content.
 *
 *   - every `blobs/<alg>/<xx>/<hex>/data` hashes to `<alg>:<hex>`;
 *   - every `link` in a repository holds a well-formed digest, the digest its path names (layers,
 *     revisions, tag index entries, referrers), whose data exists.
 *
 * Uploads in progress (`_uploads/`) are partial by nature and skipped. The filesystem driver's
 * hidden temporary entries (files of atomic writes, stand-ins of new directories, trees renamed
 * away for deletion: src/driver/temporary-names.ts) are hidden from the registry and counted;
 * once a maintenance pass has run, one last changed before its cutoff is a violation (the pass
 * must have removed it). Data files already hashed are hashed again only when they changed
 * (size, mtime, inode; an S3 ETag).
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";

/** A file of the registry tree, by its path under `docker/registry/v2/`. */
export interface StoredFile {
  path: string;
  /** Changes whenever the content may have: what lets the audit skip a data file it hashed. */
  version: string;
  /**
   * A hidden temporary entry (a file, or a directory listed as one entry, not descended into),
   * with when it last changed (the later of mtime and ctime, as the driver's sweep judges it).
   */
  temporary?: { changedMs: number };
}

/** The registry tree (`<root>/docker/registry/v2/`) of one storage driver. */
export interface StorageTree {
  files(): Promise<StoredFile[]>;
  read(path: string): Promise<Buffer>;
  /** The digest of a file's bytes, streamed. */
  hash(path: string, algorithm: string): Promise<string>;
}

export interface StorageCounts {
  dataFiles: number;
  /** Data files hashed in this audit (new or changed since the last). */
  dataHashed: number;
  links: number;
  /** Hidden temporary entries the kills left (files and directories, hidden from the registry). */
  tempFiles: number;
  /** Of those, the ones a maintenance pass should have removed (violations). */
  staleTempFiles: number;
  uploadFiles: number;
  violations: number;
}

/** src/driver/temporary-names.ts's pattern, for one path segment. */
const TEMPORARY_NAME = /^\..*\.tmp-[0-9a-f]{16}$/;
const DATA_PATH = /^blobs\/(sha256|sha512)\/([0-9a-f]{2})\/([0-9a-f]+)\/data$/;
const DIGEST = /^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/;
/** Links whose path names the digest they hold: `…/<alg>/<hex>/link`. */
const NAMED_LINK = /\/(?:_layers|_manifests\/revisions|_manifests\/tags\/[^/]+\/index|_referrers\/[^/]+\/[^/]+)\/(sha256|sha512)\/([0-9a-f]+)\/link$/;

/** The registry tree of a filesystem root. */
export function filesystemTree(root: string): StorageTree {
  const base = join(root, "docker", "registry", "v2");
  return {
    async files() {
      const found: StoredFile[] = [];
      async function visit(dir: string, relative: string): Promise<void> {
        let entries;
        try {
          entries = await readdir(dir, { withFileTypes: true });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
          throw err;
        }
        for (const entry of entries) {
          const path = relative === "" ? entry.name : `${relative}/${entry.name}`;
          if (TEMPORARY_NAME.test(entry.name)) {
            const info = await lstat(join(dir, entry.name)).catch(() => undefined);
            if (info) found.push({ path, version: "", temporary: { changedMs: Math.max(info.mtimeMs, info.ctimeMs) } });
          } else if (entry.isDirectory()) await visit(join(dir, entry.name), path);
          else {
            const info = await lstat(join(dir, entry.name));
            found.push({ path, version: `${info.size}:${info.mtimeMs}:${info.ino}` });
          }
        }
      }
      await visit(base, "");
      return found;
    },
    read: (path) => readFile(join(base, path)),
    hash: (path, algorithm) =>
      new Promise((resolve, reject) => {
        const hash = createHash(algorithm);
        createReadStream(join(base, path))
          .on("data", (chunk) => hash.update(chunk))
          .on("error", reject)
          .on("end", () => resolve(`${algorithm}:${hash.digest("hex")}`));
      }),
  };
}

/** The registry tree under an S3 driver's rootdirectory. Side objects (`~` in a name) are skipped. */
export function s3Tree(client: S3Client, bucket: string, rootdirectory: string): StorageTree {
  const prefix = `${rootdirectory.replace(/^\/+|\/+$/g, "")}/docker/registry/v2/`.replace(/^\//, "");
  const body = async (path: string): Promise<Buffer> => {
    const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: prefix + path }));
    return Buffer.from(await object.Body!.transformToByteArray());
  };
  return {
    async files() {
      const found: StoredFile[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        for (const object of page.Contents ?? []) {
          const path = object.Key!.slice(prefix.length);
          if (!path.includes("~")) found.push({ path, version: `${object.Size}:${object.ETag}` });
        }
        token = page.NextContinuationToken;
      } while (token !== undefined);
      return found;
    },
    read: body,
    async hash(path, algorithm) {
      return `${algorithm}:${createHash(algorithm).update(await body(path)).digest("hex")}`;
    },
  };
}

/** What earlier audits of the same storage already read, by path: data found sound, link contents. */
export interface StorageAuditMemory {
  /** Data path → the version that hashed right. */
  hashed: Map<string, string>;
  /** Link path → its version and what it held then. */
  links: Map<string, { version: string; content: string }>;
}

export function newStorageAuditMemory(): StorageAuditMemory {
  return { hashed: new Map(), links: new Map() };
}

/** Reads at once (an object store answers each read in tens of milliseconds). */
const CONCURRENCY = 8;

async function inPool<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/**
 * Audits the tree. Data and links unchanged since an earlier audit are not read again. With
 * `removedBefore` (epoch ms: a maintenance pass has removed what changed before it), a temporary
 * entry older than that is a violation.
 */
export async function auditStorage(tree: StorageTree, memory: StorageAuditMemory, problems: string[], round: number, removedBefore?: number): Promise<StorageCounts> {
  const counts: StorageCounts = { dataFiles: 0, dataHashed: 0, links: 0, tempFiles: 0, staleTempFiles: 0, uploadFiles: 0, violations: 0 };
  const violation = (line: string): void => {
    counts.violations++;
    if (problems.length < 40) problems.push(`round ${round}: storage: ${line}`);
  };
  const files = await tree.files();
  const data = new Set<string>();
  const toHash: Array<{ file: StoredFile; algorithm: string; digest: string }> = [];
  const links: StoredFile[] = [];
  for (const file of files) {
    if (file.temporary) {
      counts.tempFiles++;
      if (removedBefore !== undefined && file.temporary.changedMs < removedBefore) {
        counts.staleTempFiles++;
        violation(`${file.path} is a temporary entry from ${new Date(file.temporary.changedMs).toISOString()}, which the maintenance pass should have removed`);
      }
      continue;
    }
    if (file.path.startsWith("repositories/")) {
      if (file.path.includes("/_uploads/")) counts.uploadFiles++;
      else if (file.path.endsWith("/link")) links.push(file);
      continue;
    }
    if (!file.path.startsWith("blobs/")) continue;
    const match = DATA_PATH.exec(file.path);
    if (!match || !match[3]!.startsWith(match[2]!) || match[3]!.length !== (match[1] === "sha256" ? 64 : 128)) {
      violation(`${file.path} is no blob's data path`);
      continue;
    }
    const digest = `${match[1]}:${match[3]}`;
    counts.dataFiles++;
    data.add(digest);
    if (memory.hashed.get(file.path) !== file.version) toHash.push({ file, algorithm: match[1]!, digest });
  }
  await inPool(toHash, async ({ file, algorithm, digest }) => {
    counts.dataHashed++;
    const computed = await tree.hash(file.path, algorithm);
    if (computed === digest) memory.hashed.set(file.path, file.version);
    else violation(`${file.path} hashes to ${computed}`);
  });
  counts.links = links.length;
  await inPool(links, async (file) => {
    const known = memory.links.get(file.path);
    const content = known?.version === file.version ? known.content : (await tree.read(file.path)).toString("utf8");
    memory.links.set(file.path, { version: file.version, content });
    if (!DIGEST.test(content)) return void violation(`${file.path} holds ${JSON.stringify(content.slice(0, 80))}, not a digest`);
    const named = NAMED_LINK.exec(file.path);
    if (named && content !== `${named[1]}:${named[2]}`) violation(`${file.path} holds ${content}`);
    // Checked every time: the data a link names must still be there.
    if (!data.has(content)) violation(`${file.path} names ${content}, whose data is not stored`);
  });
  return counts;
}
