import type { DurableFileOps } from "../driver/durable-file-ops.js";
import { loadAddon } from "./load-addon.js";

interface DurableFileAddon {
  /** syncDir "" means none (not durable). */
  put(temp: string, target: string, data: Uint8Array, syncDir: string): Promise<void>;
  move(source: string, dest: string, syncDir: string): Promise<void>;
  syncDirectory(dir: string): Promise<void>;
}

const addon =
  process.platform === "linux"
    ? loadAddon<DurableFileAddon>("durable_file", (candidate) => typeof candidate.put === "function" && typeof candidate.move === "function")
    : undefined;

/** The durable file operations of native/durable_file.c, one threadpool job each; undefined when not built. */
export const nativeFileOps: DurableFileOps | undefined = addon && {
  put: (temp, target, data, syncDir) => addon.put(temp, target, data, syncDir ?? ""),
  move: (source, dest, syncDir) => addon.move(source, dest, syncDir ?? ""),
  syncDirectory: (dir) => addon.syncDirectory(dir),
};
