/**
 * SIGKILL for a berth process started by berth-process.ts, and with `serve --workers N` for its
 * whole process tree: what a crash of the machine's registry looks like to its storage.
 */
import { readFile, readdir } from "node:fs/promises";
import type { BerthProcess } from "./berth-process.js";

/** Process ids whose parent is `pid` (Linux /proc). */
export async function childrenOf(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid …: comm may hold spaces and parentheses, so parse after the last ")".
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/** The process is gone and reaped: a zombie still has its /proc entry. */
async function reaped(pid: number): Promise<boolean> {
  try {
    await readFile(`/proc/${pid}/stat`, "utf8");
    return false;
  } catch {
    return true;
  }
}

/**
 * SIGKILL to the berth process, and with workers to each worker first: the primary, still alive,
 * reaps them (killed after it, they would be reparented, perhaps to an init that never reaps, and
 * a zombie's pid still looks alive to the dead-process rule). The primary dies before its restart
 * timer (1 s) fires.
 */
export async function killBerth(berth: BerthProcess, workers: number): Promise<void> {
  const pid = berth.child.pid!;
  if (workers > 1) {
    const children = await childrenOf(pid);
    for (const child of children) {
      try {
        process.kill(child, "SIGKILL");
      } catch {
        // gone already
      }
    }
    for (let i = 0; i < 100 && !(await Promise.all(children.map(reaped))).every(Boolean); i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  await berth.stop("SIGKILL");
}
