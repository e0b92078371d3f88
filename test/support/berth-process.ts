import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The compiled CLI, as a user runs it. */
export const BERTH_CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

export interface BerthProcess {
  /** "http://127.0.0.1:<port>" ("https://…" when the configuration has http.tls) */
  url: string;
  /** "127.0.0.1:<port>", for clients that want host:port (skopeo, podman). */
  hostPort: string;
  /** The storage root (filesystem driver), or undefined for inmemory. */
  root: string | undefined;
  child: ChildProcess;
  /** Everything the process wrote to stderr (its log) so far. */
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  /** YAML written to a temporary config file. `{{root}}` is replaced by a fresh storage directory. */
  configYaml?: string;
  /** Reuse an existing storage root instead of a fresh one. */
  root?: string;
  env?: Record<string, string>;
  /** Extra arguments for `berth serve` (before the configuration file), e.g. ["--workers", "2"]. */
  args?: string[];
  /** Remove the storage root on stop (default true unless `root` was given). */
  cleanup?: boolean;
  /** The CLI to run (default: this checkout's compiled one), e.g. an installed package's. */
  cli?: string;
  /** Run as this user and group (the test runs as root); the config file is made readable to them. */
  uid?: number;
  gid?: number;
}

/** The parts of a test configuration that differ between tests; everything else is shared. */
export interface TestConfigParts {
  /** The lines under `log:` (default: level info, access log off). */
  log?: string;
  /** The storage driver's lines under `storage:` (default: filesystem at `{{root}}`). */
  driver?: string;
  /** `storage.delete.enabled` (default true; false leaves the key out, as distribution's default). */
  deleteEnabled?: boolean;
  /** More lines under `storage:`, after filesystem and delete. */
  storage?: string;
  /** `http.secret` (default "test-secret"). */
  secret?: string;
  /** More lines under `http:`, after addr and secret. */
  http?: string;
  /** Top-level sections after `http:` (auth, redis, …). */
  sections?: string;
}

/** A berth configuration for tests: filesystem storage at `{{root}}` unless told, a free loopback port. */
export function testConfig(parts: TestConfigParts = {}): string {
  const lines = [
    "version: 0.1",
    "log:",
    parts.log ?? "  level: info\n  accesslog:\n    disabled: true",
    "storage:",
    parts.driver ?? "  filesystem:\n    rootdirectory: {{root}}",
    ...(parts.deleteEnabled === false ? [] : ["  delete:", "    enabled: true"]),
    ...(parts.storage ? [parts.storage] : []),
    "http:",
    "  addr: 127.0.0.1:0",
    `  secret: ${parts.secret ?? "test-secret"}`,
    ...(parts.http ? [parts.http] : []),
    ...(parts.sections ? [parts.sections] : []),
  ];
  return `${lines.join("\n")}\n`;
}

/** Log lines for tests that read berth's log as JSON. */
export const JSON_TEST_LOG = "  level: info\n  formatter: json\n  accesslog:\n    disabled: true";

export const DEFAULT_TEST_CONFIG = testConfig();

/**
 * Starts `berth serve` in a child process on a free loopback port and resolves when it listens.
 * Stops it by PID on `stop()`.
 */
export async function startBerth(options: StartOptions = {}): Promise<BerthProcess> {
  const work = await mkdtemp(join(tmpdir(), "berth-test-"));
  const root = options.root ?? join(work, "data");
  const configPath = join(work, "config.yml");
  await writeFile(configPath, (options.configYaml ?? DEFAULT_TEST_CONFIG).replaceAll("{{root}}", root));
  if (options.uid !== undefined) await chmod(work, 0o755);
  const child = spawn(process.execPath, [options.cli ?? BERTH_CLI, "serve", ...(options.args ?? []), configPath], {
    env: { ...process.env, ...options.env },
    uid: options.uid,
    gid: options.gid,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const match = /listening on (https?:\/\/[^\s,"]+)/.exec(output);
      if (match) {
        clearInterval(timer);
        resolve(match[1]!.replace("[::]", "127.0.0.1").replace("0.0.0.0", "127.0.0.1"));
      }
    }, 20);
    child.once("exit", (code) => {
      clearInterval(timer);
      reject(new Error(`berth exited with ${code} before listening:\n${output}`));
    });
  });
  const cleanup = options.cleanup ?? options.root === undefined;
  return {
    url,
    hostPort: url.replace(/^https?:\/\//, ""),
    root: root,
    child,
    log: () => output,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      let code: number | null = child.exitCode;
      if (code === null && child.signalCode === null) {
        code = await new Promise<number | null>((resolve) => {
          child.once("exit", (c) => resolve(c));
          child.kill(signal);
        });
      }
      // `work` holds the config, and the storage root unless one was given.
      await rm(cleanup || options.root !== undefined ? work : configPath, { recursive: true, force: true });
      return code;
    },
  };
}
