/**
 * A disk that can lose power: an ext4 image on a loop device whose unsynced writes a "cut" drops,
 * as a machine losing power would. This kernel has no device-mapper (no dm-flakey or
 * dm-log-writes), so the cut works from what the loop device has been given:
 *
 *   - the filesystem is mounted with `commit=600`, so jbd2 commits a transaction only when an
 *     fsync (or sync) asks for it, never on its timer during a test;
 *   - the kernel's periodic writeback is off for the duration (vm.dirty_writeback_centisecs=0, a
 *     large vm.dirty_expire_centisecs; restored by close(), and at exit);
 *   - the image file behind the loop device then holds exactly what reached the "device": synced
 *     data and committed metadata. Dirty pages of the mounted filesystem are not in it.
 *
 * cut() (call it once the writers are dead): copies the image, unmounts and detaches the old one,
 * and mounts the copy at the same mountpoint. Mounting replays the journal, as booting after a
 * power loss does. Each cut also proves itself: a file written and fsynced at the start is there
 * afterwards, and a file written without fsync just before the cut is gone or empty; if not, the
 * cut reports it (`proven: false`), since a cut that drops nothing would prove nothing.
 *
 * Needs root, /dev/loop-control, losetup, mkfs.ext4 and mount. Other processes on the machine see
 * the writeback settings change while a disk exists.
 */
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, open, readFile, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findOnPath } from "./external-program.js";

const WRITEBACK = "/proc/sys/vm/dirty_writeback_centisecs";
const EXPIRE = "/proc/sys/vm/dirty_expire_centisecs";
const PROGRAMS = ["losetup", "mkfs.ext4", "mount", "umount", "cp"];

/**
 * `false` when power cuts can be simulated here; otherwise why not. Throws when CI=true, so that
 * a CI run never passes with the power-loss tests silently skipped.
 */
export function powerCutSkipReason(): string | false {
  let reason: string | undefined;
  if (process.getuid?.() !== 0) reason = "not running as root (losetup and mount need it)";
  else if (!existsSync("/dev/loop-control")) reason = "no loop devices (/dev/loop-control is missing)";
  else {
    const missing = PROGRAMS.filter((name) => findOnPath(name) === undefined);
    if (missing.length > 0) reason = `missing ${missing.join(", ")}`;
  }
  if (reason === undefined) return false;
  if (process.env.CI === "true") throw new Error(`cannot simulate a power cut: ${reason}; CI=true, so this is a failure`);
  return reason;
}

export interface CutReport {
  /** The synced canary survived and the unsynced one did not: the cut dropped unsynced writes. */
  proven: boolean;
  detail: string;
  durationMs: number;
}

export interface PowerCutDisk {
  /** Where the filesystem is mounted; the same path after every cut. */
  mountpoint: string;
  /** Drops what was not synced (see the module comment). The writers must be dead. */
  cut(): Promise<CutReport>;
  /** Unmounts, detaches, deletes the image and restores the writeback settings. Idempotent. */
  close(): Promise<void>;
}

function run(program: string, args: string[]): string {
  const result = spawnSync(program, args, { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${program} ${args.join(" ")} failed (${result.status}): ${result.stderr || result.error?.message}`);
  return result.stdout.trim();
}

/** The writeback settings before the first disk changed them; restored when the last one closes. */
let savedWriteback: { writeback: string; expire: string } | undefined;
let openDisks = 0;

function restoreWriteback(): void {
  if (savedWriteback === undefined) return;
  writeFileSync(WRITEBACK, savedWriteback.writeback);
  writeFileSync(EXPIRE, savedWriteback.expire);
  savedWriteback = undefined;
}

function holdWriteback(): void {
  openDisks++;
  if (savedWriteback !== undefined) return;
  savedWriteback = { writeback: readFileSync(WRITEBACK, "utf8").trim(), expire: readFileSync(EXPIRE, "utf8").trim() };
  // Even when the process dies without close(): these settings are the whole machine's.
  process.once("exit", restoreWriteback);
  writeFileSync(WRITEBACK, "0");
  writeFileSync(EXPIRE, String(100 * 3600 * 100));
}

function releaseWriteback(): void {
  openDisks--;
  if (openDisks === 0) restoreWriteback();
}

async function writeFile(path: string, content: Buffer, sync: boolean): Promise<void> {
  const handle = await open(path, "w");
  try {
    await handle.write(content);
    if (sync) await handle.sync();
  } finally {
    await handle.close();
  }
  if (sync) {
    const dir = await open(join(path, ".."), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** Creates an image of `sizeMiB`, formats it ext4 and mounts it with commit=600. */
export async function createPowerCutDisk(options: { sizeMiB?: number } = {}): Promise<PowerCutDisk> {
  const work = await mkdtemp(join(tmpdir(), "berth-power-"));
  const image = join(work, "disk.img");
  const mountpoint = join(work, "mnt");
  await mkdir(mountpoint);
  run("truncate", ["-s", `${options.sizeMiB ?? 512}M`, image]);
  // Inode tables and journal zeroed now: lazy initialisation would write (and journal) in the
  // background after each mount.
  run("mkfs.ext4", ["-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0", image]);
  let device: string | undefined;
  let cuts = 0;
  const canaries = join(mountpoint, "power-cut-canaries");
  const canary = Buffer.alloc(64 * 1024, 0x5a);
  /**
   * Mounts the image and writes the synced canary the next cut must keep: now, while nothing
   * else writes, since its fsync commits everything pending in the filesystem's journal.
   */
  const mountImage = async (): Promise<void> => {
    device = run("losetup", ["--find", "--show", image]);
    run("mount", ["-o", "commit=600", device, mountpoint]);
    await mkdir(canaries, { recursive: true });
    await writeFile(join(canaries, `synced-${cuts + 1}`), canary, true);
  };
  const unmountImage = (): void => {
    if (device === undefined) return;
    run("umount", [mountpoint]);
    run("losetup", ["--detach", device]);
    device = undefined;
  };
  holdWriteback();
  try {
    await mountImage();
  } catch (err) {
    releaseWriteback();
    await rm(work, { recursive: true, force: true });
    throw err;
  }
  let closed = false;
  return {
    mountpoint,
    async cut() {
      const started = Date.now();
      cuts++;
      const synced = join(canaries, `synced-${cuts}`);
      const unsynced = join(canaries, `unsynced-${cuts}`);
      await writeFile(unsynced, canary, false);
      // What reached the device: the image file itself, read through the page cache of the
      // filesystem it lives on (the loop device's writes are there, the mounted ext4's dirty pages are not).
      const copy = `${image}.cut`;
      run("cp", ["--sparse=always", image, copy]);
      unmountImage();
      await rename(copy, image);
      device = run("losetup", ["--find", "--show", image]);
      run("mount", ["-o", "commit=600", device, mountpoint]);
      const syncedAfter = await readFile(synced).catch(() => undefined);
      const unsyncedSize = await stat(unsynced).then((info) => info.size, () => undefined);
      const syncedOk = syncedAfter !== undefined && syncedAfter.equals(canary);
      const unsyncedGone = unsyncedSize === undefined || unsyncedSize === 0;
      await rm(canaries, { recursive: true, force: true });
      await mkdir(canaries);
      await writeFile(join(canaries, `synced-${cuts + 1}`), canary, true);
      return {
        proven: syncedOk && unsyncedGone,
        detail:
          `synced canary ${syncedAfter === undefined ? "missing" : syncedOk ? "intact" : `damaged (${syncedAfter.length} bytes)`}, ` +
          `unsynced canary ${unsyncedSize === undefined ? "missing" : `${unsyncedSize} bytes`}`,
        durationMs: Date.now() - started,
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        unmountImage();
      } finally {
        releaseWriteback();
        await rm(work, { recursive: true, force: true });
      }
    },
  };
}
