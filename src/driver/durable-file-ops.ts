import { mkdir, open, rename, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { basename, dirname, join, relative, sep } from "node:path";

/**
 * The filesystem driver's durable file operations. Two implementations with the same syscalls and
 * guarantees: `nodeFileOps` chains node:fs calls (each one a round trip through libuv's
 * threadpool), and the native addon (src/native/durable-file.ts) runs each operation as one
 * threadpool job, which many small pushes need (a dozen link files per image, eight round trips
 * each).
 */
export interface DurableFileOps {
  /**
   * Writes `data` into `temp` (created exclusively: it must not exist) and renames it onto
   * `target`. With `syncDir`, the file is fsynced before the rename and `syncDir` after it. The
   * temporary file is removed when a step before its rename fails. With `place`, `place.from` is
   * renamed onto `place.to` after the file's rename and before `syncDir`'s sync; its failure is
   * that rename's error, naming `place.from`.
   */
  put(temp: string, target: string, data: Uint8Array, syncDir: string | undefined, place?: Placement): Promise<void>;
  /**
   * Renames `source` to `dest`, then `place.from` onto `place.to` when given, then fsyncs `syncDir`
   * when given. A failed rename's ENOENT names `source`, or, from the native addon, which looks in
   * the same job, `dest` when the source is there (its directory is what is missing).
   */
  move(source: string, dest: string, syncDir: string | undefined, place?: Placement): Promise<void>;
  /** Makes a directory's entries (a rename, a new file) survive a crash. A directory that is gone counts as synced. */
  syncDirectory(dir: string): Promise<void>;
  /**
   * Makes the hidden stand-in of the missing directory `dir`: `.<name><suffix>` beside its highest
   * missing ancestor (`top`, at most `root`), found by climbing while the parent is missing
   * (ENOENT, ENOTDIR), and the levels between `top` and `dir` inside it. Other mkdir errors
   * (EROFS, ENOSPC, EACCES) are thrown as they are. See src/driver/new-directory.ts.
   */
  makeStandIn(dir: string, root: string, suffix: string): Promise<StandIn>;
  /**
   * rm -r of a small tree (an upload's directory) in one job, where a listing, an unlink per file
   * and an rmdir per directory are a job each. Not atomic, not synced; an entry removed meanwhile is
   * no error; ENOTEMPTY when a concurrent writer added one (the caller tries again, as
   * removeTree does). Resolves to false when nothing was there. It holds a threadpool thread
   * until done: not for a repository's tree. Only the native addon has it.
   */
  removeSmallTree?(path: string): Promise<boolean>;
  /**
   * `put` without any sync, which first makes the missing directories of `temp` (never above
   * `root`) when its open says ENOENT, in the same job, then opens again. A mkdir's own error is
   * thrown as it is (EROFS, ENOSPC, EACCES), naming that directory; ENOENT means `root` is missing
   * or a concurrent delete won. For writes that need not survive a crash whole, where mkdir -p and
   * a write in sequence is fine (see makeDirectory in new-directory.ts). Only the native addon has it.
   */
  putMakingDirectories?(temp: string, target: string, data: Uint8Array, root: string): Promise<void>;
  /**
   * Writes all of `data` at the descriptor (opened to append), then hashes it into `sha256State`
   * (OpenSSL's SHA256_CTX, src/hash/resumable-sha256.ts) in the same threadpool job, so an upload's
   * bytes are hashed off the event loop. The state takes the bytes only once all are written.
   * Only the native addon has it.
   */
  writeHashed?(fd: number, data: Uint8Array, sha256State: Buffer): Promise<void>;
}

/** A new directory's stand-in, and the missing ancestor it stands for. */
export interface StandIn {
  standIn: string;
  top: string;
}

/** A new directory's hidden stand-in and the name it takes (src/driver/new-directory.ts). */
export interface Placement {
  from: string;
  to: string;
}

export const nodeFileOps: DurableFileOps = {
  async put(temp, target, data, syncDir, place) {
    // Opened exclusively: when the open fails there is nothing to remove.
    const handle = await open(temp, "wx");
    try {
      await writeAndClose(handle, data, syncDir !== undefined);
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    if (place) await rename(place.from, place.to);
    if (syncDir !== undefined) await nodeFileOps.syncDirectory(syncDir);
  },

  async move(source, dest, syncDir, place) {
    await rename(source, dest);
    if (place) await rename(place.from, place.to);
    if (syncDir !== undefined) await nodeFileOps.syncDirectory(syncDir);
  },

  async makeStandIn(dir, root, suffix) {
    let top = dir;
    let standIn: string;
    for (;;) {
      // Cut so that the name stays within NAME_MAX, as temporaryName cuts it.
      standIn = join(dirname(top), `.${basename(top).slice(0, 200)}${suffix}`);
      try {
        await mkdir(standIn);
        break;
      } catch (err) {
        if (!isMissingParent(err) || top === root) throw err;
        top = dirname(top);
      }
    }
    const below = relative(top, dir);
    if (below !== "") await makeLevels(standIn, below);
    return { standIn, top };
  },

  async syncDirectory(dir) {
    let handle: FileHandle;
    try {
      handle = await open(dir, "r");
    } catch (err) {
      // A concurrent delete removed the directory after our write: what it held is meant to be gone.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

async function writeAndClose(handle: FileHandle, content: Uint8Array, durable: boolean): Promise<void> {
  try {
    await handle.writeFile(content);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The levels below a stand-in, in one recursive mkdir. Node's recursive mkdir reports ENOENT
 * whatever stopped it (it stats the parent after a failure), and the stand-in exists, so on ENOENT
 * the levels are made one at a time for the real error (EROFS, ENOSPC, EACCES), or ENOENT when a
 * concurrent sweep removed the stand-in.
 */
async function makeLevels(standIn: string, below: string): Promise<void> {
  try {
    await mkdir(join(standIn, below), { recursive: true });
    return;
  } catch (err) {
    if (!isMissingParent(err)) throw err;
  }
  let level = standIn;
  for (const segment of below.split(sep)) {
    level = join(level, segment);
    await mkdir(level).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    });
  }
}

function isMissingParent(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
