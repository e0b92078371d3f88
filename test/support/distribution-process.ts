/**
 * Runs the real CNCF distribution registry (Debian's `docker-registry`, distribution 2.8) on a
 * given storage root, for tests that check berth and distribution read and write the same tree.
 *
 * `startDistribution` picks a free loopback port, writes a config (filesystem storage at `root`,
 * deletes enabled, a fixed http.secret, log level warn, upload purging off so nothing in the tree
 * changes behind a test's back), starts `docker-registry serve` and resolves once `GET /v2/`
 * answers. `stop()` ends that process by its PID.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireProgram, run, type ProgramCheck, type RunResult } from "./external-program.js";

export const DISTRIBUTION_PROGRAM = "docker-registry";

/** The http.secret the helper configures; a test may mint distribution's `_state` tokens with it. */
export const DISTRIBUTION_SECRET = "berth-compat-secret";

/** Finds `docker-registry`: skips the caller's tests when missing, fails them when CI=true. */
export function requireDistribution(): ProgramCheck {
  return requireProgram(DISTRIBUTION_PROGRAM);
}

export interface DistributionProcess {
  /** "http://127.0.0.1:<port>" */
  url: string;
  /** "127.0.0.1:<port>", for skopeo. */
  hostPort: string;
  root: string;
  configPath: string;
  child: ChildProcess;
  /** Everything the process wrote so far (distribution logs to stderr). */
  log(): string;
  stop(): Promise<number | null>;
}

export interface DistributionOptions {
  /** The storage root (filesystem driver `rootdirectory`); it need not exist yet. */
  root: string;
  /** Extra YAML appended at the top level of the generated config (e.g. `compatibility:`). */
  extraYaml?: string;
  /** Milliseconds to wait for `/v2/` to answer. Default 20 s. */
  startTimeoutMs?: number;
  /** REGISTRY_* overrides for keys inside the generated sections (e.g. REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR). */
  env?: Record<string, string>;
  /** The storage driver's lines under `storage:` in place of the filesystem at `root` (e.g. s3DriverConfig). */
  driver?: string;
  /** The path that answers 200 once it serves (default "/v2/"; "<prefix>v2/" with http.prefix). */
  readyPath?: string;
}

/** The config the helper writes: the same one `garbage-collect` is run with. */
export function distributionConfig(root: string, addr: string, extraYaml = "", driver?: string): string {
  return `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
${driver ?? `  filesystem:\n    rootdirectory: ${JSON.stringify(root)}`}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ${addr}
  secret: ${DISTRIBUTION_SECRET}
${extraYaml}`;
}

/** A port that was free a moment ago (bound on 127.0.0.1 and released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startDistribution(options: DistributionOptions): Promise<DistributionProcess> {
  const program = requireDistribution();
  if (!program.path) throw new Error(`cannot start distribution: ${program.skip}`);
  let lastError: unknown;
  // The port is free when picked but another process may take it before distribution binds it.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(program.path, options);
    } catch (err) {
      lastError = err;
      if (!String(err).includes("address already in use")) throw err;
    }
  }
  throw lastError;
}

async function startOnce(programPath: string, options: DistributionOptions): Promise<DistributionProcess> {
  const work = await mkdtemp(join(tmpdir(), "berth-distribution-"));
  const configPath = join(work, "config.yml");
  const port = await freePort();
  const hostPort = `127.0.0.1:${port}`;
  const url = `http://${hostPort}`;
  await writeFile(configPath, distributionConfig(options.root, hostPort, options.extraYaml, options.driver));
  // Distribution reads REGISTRY_* from the environment: none from the test runner may leak in.
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("REGISTRY_"))), ...options.env };
  const child = spawn(programPath, ["serve", configPath], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  let exited = false;
  const exitedPromise = new Promise<number | null>((resolve) => child.once("exit", (code) => ((exited = true), resolve(code))));

  const stop = async (): Promise<number | null> => {
    if (!exited && child.pid !== undefined) {
      const killer = setTimeout(() => {
        if (!exited) process.kill(child.pid!, "SIGKILL");
      }, 5000);
      process.kill(child.pid, "SIGTERM");
      const code = await exitedPromise;
      clearTimeout(killer);
      await rm(work, { recursive: true, force: true });
      return code;
    }
    await rm(work, { recursive: true, force: true });
    return child.exitCode;
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
  for (;;) {
    if (exited) {
      await rm(work, { recursive: true, force: true });
      throw new Error(`docker-registry exited before answering on ${url}:\n${output}`);
    }
    try {
      const response = await fetch(`${url}${options.readyPath ?? "/v2/"}`, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not answer on ${url} within the timeout:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url, hostPort, root: options.root, configPath, child, log: () => output, stop };
}

export interface GarbageCollectOptions {
  root: string;
  deleteUntagged?: boolean;
  dryRun?: boolean;
}

/** Runs `docker-registry garbage-collect` on `root` (no server may be running on it). */
export async function distributionGarbageCollect(options: GarbageCollectOptions): Promise<RunResult> {
  const program = requireDistribution();
  if (!program.path) throw new Error(`cannot run distribution: ${program.skip}`);
  const work = await mkdtemp(join(tmpdir(), "berth-distribution-gc-"));
  try {
    const configPath = join(work, "config.yml");
    await writeFile(configPath, distributionConfig(options.root, "127.0.0.1:0"));
    const args = ["garbage-collect", configPath];
    if (options.deleteUntagged) args.push("--delete-untagged");
    if (options.dryRun) args.push("--dry-run");
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("REGISTRY_")));
    return await run(program.path, args, { env: env as Record<string, string> });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * distribution 2.8's upload `_state` token: padded base64url(HMAC-SHA256(secret, json) ‖ json), with the
 * JSON `{"Name","UUID","Offset","StartedAt"}`. Any distribution node sharing the http.secret
 * accepts it; a test mints one to continue on distribution an upload that berth started (as a
 * distribution node would when the load balancer sends it the next chunk).
 */
export function distributionUploadState(state: { name: string; uuid: string; offset: number; startedAt: Date }, secret = DISTRIBUTION_SECRET): string {
  const message = Buffer.from(
    JSON.stringify({ Name: state.name, UUID: state.uuid, Offset: state.offset, StartedAt: state.startedAt.toISOString() }),
  );
  const mac = createHmac("sha256", secret).update(message).digest();
  // Go's base64.URLEncoding pads with "=", and refuses unpadded input.
  const unpadded = Buffer.concat([mac, message]).toString("base64url");
  return unpadded + "=".repeat((4 - (unpadded.length % 4)) % 4);
}

/** Decodes a distribution `_state` token (without checking its MAC). */
export function decodeDistributionUploadState(token: string): { Name: string; UUID: string; Offset: number; StartedAt: string } {
  const bytes = Buffer.from(token, "base64url");
  return JSON.parse(bytes.subarray(32).toString("utf8")) as { Name: string; UUID: string; Offset: number; StartedAt: string };
}
