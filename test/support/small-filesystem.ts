/**
 * A small tmpfs mounted for a test, so that a real disk can fill up or turn read-only under berth.
 * Needs root (CI runs as root). Without it the tests that need one are skipped on a developer's
 * machine and fail under CI=true, like every missing external program (external-program.ts).
 */
import { mkdir, open, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { describeRun, findOnPath, run } from "./external-program.js";

/** `false` when a tmpfs can be mounted here; otherwise the reason to skip (throws under CI=true). */
export function tmpfsSkipReason(): string | false {
  const reason =
    process.getuid?.() !== 0 ? "mounting a tmpfs needs root" : findOnPath("mount") === undefined || findOnPath("umount") === undefined ? "mount/umount not found" : false;
  if (reason !== false && process.env.CI === "true") throw new Error(`${reason}; CI=true, so this is a failure`);
  return reason;
}

export interface SmallFilesystem {
  dir: string;
  /** `mount -o remount,<options>`: "ro", "rw", "size=64m"… */
  remount(options: string): Promise<void>;
  /**
   * Fills the free space with a file (written until ENOSPC) and returns its path; with `leave`,
   * that many bytes stay free (rounded to pages by tmpfs).
   */
  fill(leave?: number): Promise<string>;
  /** Free bytes, as statfs reports them. */
  free(): Promise<number>;
  /** Unmounts (lazily, should something still hold it) and removes the mount point. Idempotent. */
  unmount(): Promise<void>;
}

async function mountCommand(args: string[]): Promise<void> {
  const result = await run("mount", args, { timeoutMs: 30_000 });
  if (result.code !== 0) throw new Error(`mount failed: ${describeRun(result)}`);
}

export async function mountTmpfs(dir: string, options: { size: string; inodes?: number }): Promise<SmallFilesystem> {
  await mkdir(dir, { recursive: true });
  const opts = [`size=${options.size}`, "mode=0755", ...(options.inodes === undefined ? [] : [`nr_inodes=${options.inodes}`])];
  await mountCommand(["-t", "tmpfs", "-o", opts.join(","), "tmpfs", dir]);
  let fillers = 0;
  let mounted = true;
  const fs: SmallFilesystem = {
    dir,
    remount: (remountOptions) => mountCommand(["-o", `remount,${remountOptions}`, dir]),
    async fill(leave = 0) {
      const path = join(dir, `filler-${++fillers}`);
      const handle = await open(path, "w");
      const block = Buffer.alloc(64 * 1024, 0x5a);
      try {
        let target = Math.max(0, (await fs.free()) - leave);
        while (target > 0) {
          const n = Math.min(block.length, target);
          try {
            await handle.write(block, 0, n);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === "ENOSPC") break;
            throw err;
          }
          target -= n;
        }
      } finally {
        await handle.close();
      }
      return path;
    },
    async free() {
      const { statfs } = await import("node:fs/promises");
      const s = await statfs(dir);
      return s.bavail * s.bsize;
    },
    async unmount() {
      if (!mounted) return;
      mounted = false;
      const result = await run("umount", [dir], { timeoutMs: 30_000 });
      if (result.code !== 0) await run("umount", ["-l", dir], { timeoutMs: 30_000 });
      await rmdir(dir).catch(() => rm(dir, { recursive: true, force: true }).catch(() => undefined));
    },
  };
  return fs;
}
