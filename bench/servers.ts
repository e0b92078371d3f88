/**
 * Starts and stops the two registries under test — berth and CNCF distribution (Debian's
 * docker-registry) — with equivalent configuration, and reads their resource use from /proc.
 *
 * Each server gets a fresh temporary storage directory and a free loopback port; it is stopped by
 * PID (SIGTERM, then SIGKILL after a grace period) and its directory removed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Conn } from "./lean-client.js";

export type ServerKind = "berth" | "distribution";
export const SERVER_KINDS: readonly ServerKind[] = ["berth", "distribution"];

/** The compiled berth CLI (dist/src/cli/main.js); run.ts points it at a snapshot. */
export let BERTH_MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

export function setBerthMain(path: string): void {
  BERTH_MAIN = path;
}
export const DISTRIBUTION_BIN = process.env.BENCH_DISTRIBUTION_BIN ?? "/usr/bin/docker-registry";

const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64

export interface ProcCpu {
  /** utime + stime in seconds. */
  cpu: number;
  user: number;
  system: number;
}

export interface ProcMemory {
  /** Peak resident set size (VmHWM) in KiB. */
  hwmKiB: number;
  /** Current resident set size (VmRSS) in KiB. */
  rssKiB: number;
}

/** utime+stime of a process (all its threads) from /proc/<pid>/stat. */
export function readProcCpu(pid: number | "self"): ProcCpu {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  // The command name may hold spaces and parentheses: fields are counted after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  const user = Number(fields[11]) / CLK_TCK;
  const system = Number(fields[12]) / CLK_TCK;
  return { cpu: user + system, user, system };
}

/**
 * CPU seconds of this process's children that have exited and been waited for (cutime+cstime
 * of /proc/self/stat): the cost of a wrk or skopeo child, read as a delta around its run.
 */
export function readReapedChildrenCpu(): number {
  const stat = readFileSync("/proc/self/stat", "latin1");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / CLK_TCK;
}

/**
 * Busy CPU seconds of the whole machine (all CPUs: user, nice, system, irq, softirq, steal) from
 * /proc/stat. A delta minus the server's and the client's CPU is what everything else used.
 */
export function readMachineBusyCpu(): number {
  const line = readFileSync("/proc/stat", "latin1").split("\n", 1)[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return busy / CLK_TCK;
}

export function readProcMemory(pid: number | "self"): ProcMemory {
  const status = readFileSync(`/proc/${pid}/status`, "latin1");
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    return m ? Number(m[1]) : 0;
  };
  return { hwmKiB: field("VmHWM"), rssKiB: field("VmRSS") };
}

/** Resets VmHWM to the current RSS (Linux >= 4.0, writing 5 to clear_refs). */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** `pid` and its live descendants (a server may fork workers). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "latin1");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid);
      if (list) list.push(Number(entry));
      else children.set(ppid, [Number(entry)]);
    } catch {
      // exited meanwhile
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
}

/**
 * CPU of a process tree: utime+stime of each live process plus cutime+cstime of the root (its
 * reaped children). Memory: VmHWM and VmRSS summed over the tree (for one process, exact).
 */
export function readTreeCpu(pid: number): ProcCpu {
  const total: ProcCpu = { cpu: 0, user: 0, system: 0 };
  for (const p of processTree(pid)) {
    try {
      const c = readProcCpu(p);
      total.cpu += c.cpu;
      total.user += c.user;
      total.system += c.system;
    } catch {
      // exited meanwhile
    }
  }
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  total.cpu += (Number(fields[13]) + Number(fields[14])) / CLK_TCK;
  return total;
}

export function readTreeMemory(pid: number): ProcMemory {
  const total: ProcMemory = { hwmKiB: 0, rssKiB: 0 };
  for (const p of processTree(pid)) {
    try {
      const m = readProcMemory(p);
      total.hwmKiB += m.hwmKiB;
      total.rssKiB += m.rssKiB;
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export function configYaml(kind: ServerKind, rootDirectory: string, port: number, httpYaml = "", storageYaml?: string): string {
  // The same distribution configuration for both: filesystem storage (or `storageYaml`, the
  // lines under `storage:` in its place), delete enabled, the in-memory blob descriptor cache (as
  // in Debian's default config.yml), access log off, and a fixed http.secret so neither warns
  // about generating one.
  const level = kind === "berth" ? "warn" : "error";
  return [
    "version: 0.1",
    "log:",
    `  level: ${level}`,
    "  accesslog:",
    "    disabled: true",
    "storage:",
    ...(storageYaml === undefined ? ["  filesystem:", `    rootdirectory: ${rootDirectory}`] : storageYaml.split("\n").filter((line) => line.trim() !== "")),
    "  delete:",
    "    enabled: true",
    "  cache:",
    "    blobdescriptor: inmemory",
    "http:",
    `  addr: 127.0.0.1:${port}`,
    "  secret: berth-bench-secret",
    ...httpYaml.split("\n").filter((line) => line.trim() !== "").map((line) => `  ${line}`),
    "",
  ].join("\n");
}

export interface RunningServer {
  kind: ServerKind;
  pid: number;
  port: number;
  host: string;
  /** e.g. http://127.0.0.1:5000 */
  url: string;
  dir: string;
  logFile: string;
  /** CPU of the server's process tree (the server and any workers it forks). */
  cpu(): ProcCpu;
  /** Peak and current RSS summed over the server's process tree. */
  memory(): ProcMemory;
  resetPeak(): boolean;
  /** Tail of the server's stdout/stderr, for error reports. */
  logTail(): string;
  stop(): Promise<void>;
}

export interface StartOptions {
  tmpRoot: string;
  /** berth only: `serve --workers N` (N processes sharing the port). */
  berthWorkers?: number;
  readyTimeoutMs?: number;
  /** YAML appended to the generated config (top-level sections, e.g. `proxy:`), for both kinds. */
  extraYaml?: string;
  /** YAML lines added to the generated `http:` section (e.g. `debug:`), indented as its children. */
  httpYaml?: string;
  /** Lines under `storage:` in place of the filesystem driver (e.g. `  s3:` and its keys), indented as they go. */
  storageYaml?: string;
  /** Added to the server's environment. */
  env?: Record<string, string>;
}

export async function startServer(kind: ServerKind, opts: StartOptions): Promise<RunningServer> {
  const dir = await mkdtemp(join(opts.tmpRoot, `${kind}-`));
  const storage = join(dir, "storage");
  await mkdir(storage);
  const port = await freePort();
  const configFile = join(dir, "config.yml");
  const extra = opts.extraYaml ? (opts.extraYaml.endsWith("\n") ? opts.extraYaml : `${opts.extraYaml}\n`) : "";
  await writeFile(configFile, configYaml(kind, storage, port, opts.httpYaml, opts.storageYaml) + extra);
  const logFile = join(dir, "server.log");
  const log = createWriteStream(logFile);
  await new Promise((resolve) => log.once("open", resolve));

  const env = { ...process.env };
  // Keep REGISTRY_* variables of the caller's shell from changing either server's config.
  for (const key of Object.keys(env)) if (key.startsWith("REGISTRY_")) delete env[key];
  Object.assign(env, opts.env);
  const child: ChildProcess =
    kind === "berth"
      ? spawn(
          process.execPath,
          // The same V8 flag as berth's `bin` and `npm start` (see src/cli/main.ts), unless
          // BENCH_BERTH_NODE_FLAGS replaces it (profiling; empty for node's defaults).
          [...(process.env.BENCH_BERTH_NODE_FLAGS ?? "--max-semi-space-size=2").split(" ").filter(Boolean), BERTH_MAIN, "serve", ...(opts.berthWorkers ? ["--workers", String(opts.berthWorkers)] : []), configFile],
          { stdio: ["ignore", log, log], env },
        )
      : spawn(DISTRIBUTION_BIN, ["serve", configFile], { stdio: ["ignore", log, log], env });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${kind}: spawn failed`);
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      resolve();
    }),
  );

  const host = "127.0.0.1";
  const server: RunningServer = {
    kind,
    pid,
    port,
    host,
    url: `http://${host}:${port}`,
    dir,
    logFile,
    cpu: () => readTreeCpu(pid),
    memory: () => readTreeMemory(pid),
    resetPeak: () => processTree(pid).map(resetPeakRss).every(Boolean),
    logTail: () => {
      try {
        return readFileSync(logFile, "utf8").split("\n").slice(-30).join("\n");
      } catch {
        return "";
      }
    },
    stop: async () => {
      if (!exited) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => {
          if (!exited) child.kill("SIGKILL");
        }, 5000);
        await exitedPromise;
        clearTimeout(timer);
      }
      log.end();
      // The storage stays until the run's temporary root is removed at the end: ext4 scans past
      // recently deleted inodes when it allocates new ones (for a minute or more), so removing a
      // round's thousands of files here slowed whichever server ran next.
    },
  };

  // Ready once GET /v2/ answers 200.
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (exited) {
      const tail = server.logTail();
      await server.stop();
      throw new Error(`${kind} exited during start-up:\n${tail}`);
    }
    try {
      const conn = await Conn.connect(host, port);
      try {
        const res = await conn.request({ method: "GET", path: "/v2/" });
        if (res.status === 200) break;
      } finally {
        conn.close();
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      const tail = server.logTail();
      await server.stop();
      throw new Error(`${kind} did not become ready on port ${port}:\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return server;
}
