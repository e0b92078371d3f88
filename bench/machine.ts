import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, release } from "node:os";
import { fileURLToPath } from "node:url";
import { DISTRIBUTION_BIN } from "./servers.js";

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memTotalMiB: number;
  kernel: string;
  node: string;
  distribution: string;
  wrk: string;
  skopeo: string;
  berthCommit: string;
}

function tryRun(cmd: string, args: string[], cwd?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], cwd }).split("\n")[0]!.trim();
  } catch (err) {
    // wrk -v exits 1 after printing its version
    const out = (err as { stdout?: string }).stdout;
    return out ? out.split("\n")[0]!.trim() : "unavailable";
  }
}

export function machineInfo(): MachineInfo {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const repo = fileURLToPath(new URL("../..", import.meta.url));
  const commit = tryRun("git", ["rev-parse", "--short", "HEAD"], repo);
  const dirty = tryRun("git", ["status", "--porcelain", "--", "src"], repo);
  return {
    nproc: availableParallelism(),
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown",
    memTotalMiB: Math.round(Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0) / 1024),
    kernel: release(),
    node: process.version,
    distribution: tryRun(DISTRIBUTION_BIN, ["--version"]),
    wrk: tryRun("wrk", ["-v"]),
    skopeo: tryRun("skopeo", ["--version"]),
    berthCommit: commit + (dirty && dirty !== "unavailable" ? " (src/ modified)" : ""),
  };
}

export function describeMachine(m: MachineInfo): string {
  return [
    `machine: ${m.nproc} CPUs (${m.cpuModel}), ${(m.memTotalMiB / 1024).toFixed(1)} GiB RAM, Linux ${m.kernel}`,
    `node ${m.node}; ${m.distribution}; ${m.wrk}; ${m.skopeo}; berth ${m.berthCommit}`,
  ].join("\n");
}
