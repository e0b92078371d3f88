/**
 * A Cloud Storage emulator for the GCS driver's tests: firebase-tools' storage emulator (pure
 * Node), started by tools/gcs-emulator-main.ts on a free loopback port with a temporary directory of its
 * own, and stopped by PID.
 *
 * firebase-tools is not a devDependency: it is ~270 MB in ~700 packages that every `npm ci` would
 * install (and CI would pay for) whether or not the GCS tests run. It is installed on first use,
 * at a pinned version, into a cache directory (BERTH_TEST_CACHE, default ~/.cache/berth-test), and
 * reused from there. An install that fails skips the tests on a developer's machine and fails them
 * in CI (CI=true), like a missing external program.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { GcsServiceAccount } from "../../src/config/config.js";
import { freePort } from "./distribution-process.js";
import { describeRun, run } from "./external-program.js";

export const FIREBASE_TOOLS_VERSION = "15.34.2";
// In tools/: the test runner runs every .js under dist/test as a test file.
const MAIN = fileURLToPath(new URL("../../tools/gcs-emulator-main.js", import.meta.url));

function cacheDir(): string {
  return process.env["BERTH_TEST_CACHE"] ?? join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "berth-test");
}

function installedAt(prefix: string): string | undefined {
  const dir = join(prefix, "node_modules", "firebase-tools");
  try {
    const version = (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version?: unknown }).version;
    return version === FIREBASE_TOOLS_VERSION && existsSync(join(dir, "lib", "emulator", "storage", "index.js")) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** The firebase-tools package directory, installing it into the cache first when it is not there. */
export async function firebaseTools(): Promise<string> {
  const prefix = join(cacheDir(), `firebase-tools-${FIREBASE_TOOLS_VERSION}`);
  const found = installedAt(prefix);
  if (found !== undefined) return found;
  await mkdir(prefix, { recursive: true });
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const result = await run(npm, ["install", "--prefix", prefix, "--no-save", "--no-audit", "--no-fund", "--ignore-scripts", `firebase-tools@${FIREBASE_TOOLS_VERSION}`], {
    timeoutMs: 20 * 60 * 1000,
  });
  const dir = installedAt(prefix);
  if (result.code !== 0 || dir === undefined) throw new Error(`cannot install firebase-tools ${FIREBASE_TOOLS_VERSION}: ${describeRun(result)}`);
  return dir;
}

/** A service account key made up for the tests: it signs redirect URLs; the emulator checks no credentials. */
export function testServiceAccount(): GcsServiceAccount {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    type: "service_account",
    project_id: "demo-berth",
    private_key_id: "berth-test",
    private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    client_email: "berth-test@demo-berth.iam.gserviceaccount.com",
    token_uri: "http://127.0.0.1:9/token",
  };
}

export interface GcsEmulator {
  /** The JSON API's base URL, for storage.gcs.apiendpoint. */
  readonly endpoint: string;
  readonly bucket: string;
  pid(): number | undefined;
  log(): string;
  stop(): Promise<void>;
}

export async function startGcsEmulator(): Promise<GcsEmulator> {
  const tools = await firebaseTools();
  const dir = await mkdtemp(join(tmpdir(), "berth-gcs-"));
  const port = await freePort();
  let output = "";
  const child: ChildProcess = spawn(process.execPath, [MAIN, tools, String(port)], {
    env: { ...process.env, TMPDIR: dir, HOME: dir },
    // Standard input stays open while this process lives: the emulator exits when it closes.
    stdio: ["pipe", "pipe", "pipe"],
    // Its own process group, so stop() ends it and anything it started.
    detached: true,
  });
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // already gone
      }
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntilServing(endpoint, () => child.exitCode !== null, () => output);
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, bucket: "berth-test", pid: () => child.pid, log: () => output, stop };
}

/** Polls the bucket list until the emulator answers (it takes a second or two to load). */
async function waitUntilServing(endpoint: string, exited: () => boolean, log: () => string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (exited()) throw new Error(`the GCS emulator exited:\n${log()}`);
    try {
      const response = await fetch(`${endpoint}/b`);
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the GCS emulator did not answer at ${endpoint}:\n${log()}`);
}
