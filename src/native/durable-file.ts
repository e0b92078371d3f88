import type { DurableFileOps } from "../driver/durable-file-ops.js";
import { loadAddon } from "./load-addon.js";

interface DurableFileAddon {
  /** syncDir "" means none (not durable); placeFrom and placeTo come together or not at all. */
  put(temp: string, target: string, data: Uint8Array, syncDir: string, ...place: [] | [string, string]): Promise<void>;
  move(source: string, dest: string, syncDir: string, ...place: [] | [string, string]): Promise<void>;
  syncDirectory(dir: string): Promise<void>;
  makeStandIn(dir: string, root: string, suffix: string): Promise<[string, string]>;
  /** Absent in builds before it (the driver then removes with node:fs). */
  removeTree?(path: string): Promise<boolean>;
  /** Absent in builds before it (the driver then makes the directories with node:fs). */
  putMakingDirectories?(temp: string, target: string, data: Uint8Array, root: string): Promise<void>;
  /** Absent in builds before it (uploads are then hashed on the event loop). */
  writeHashed?(fd: number, data: Uint8Array, sha256State: Buffer): Promise<void>;
  sha256StateSize?: number;
  /** True in builds that take placeFrom and placeTo and have makeStandIn; an older build is not used (node:fs is). */
  placement?: boolean;
}

const addon =
  process.platform === "linux"
    ? loadAddon<DurableFileAddon>(
        "durable_file",
        (candidate) => typeof candidate.put === "function" && typeof candidate.move === "function" && candidate.placement === true,
      )
    : undefined;

/** The durable file operations of native/durable_file.c, one threadpool job each; undefined when not built. */
export const nativeFileOps: DurableFileOps | undefined = addon && {
  put: (temp, target, data, syncDir, place) =>
    place ? addon.put(temp, target, data, syncDir ?? "", place.from, place.to) : addon.put(temp, target, data, syncDir ?? ""),
  move: (source, dest, syncDir, place) => (place ? addon.move(source, dest, syncDir ?? "", place.from, place.to) : addon.move(source, dest, syncDir ?? "")),
  syncDirectory: (dir) => addon.syncDirectory(dir),
  makeStandIn: async (dir, root, suffix) => {
    const [standIn, top] = await addon.makeStandIn(dir, root, suffix);
    return { standIn, top };
  },
  removeSmallTree: typeof addon.removeTree === "function" ? addon.removeTree.bind(addon) : undefined,
  putMakingDirectories: typeof addon.putMakingDirectories === "function" ? addon.putMakingDirectories.bind(addon) : undefined,
  writeHashed:
    typeof addon.writeHashed === "function"
      ? (fd, data, state) => (state.length === addon.sha256StateSize ? addon.writeHashed!(fd, data, state) : Promise.reject(new TypeError("not a SHA-256 state")))
      : undefined,
};
