/**
 * Running real client programs (skopeo, podman) from tests.
 *
 * A missing program skips its tests on a developer's machine, and fails them in CI
 * (CI=true), where .ci/run installs every program the tests use: a green CI run must
 * never hide a test that did not run.
 */
import { spawn } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";

export interface ProgramCheck {
  name: string;
  /** Absolute path of the program, when found on PATH. */
  path: string | undefined;
  /** `false` when found; otherwise the reason, for `describe(…, { skip })` or `t.skip(reason)`. */
  skip: string | false;
}

/** Looks a program up on PATH like a shell would (first executable regular file). */
export function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

/**
 * Finds `name` on PATH. When it is missing: throws if CI=true (the test run fails), else
 * returns a skip marker whose `skip` reason tests pass to `describe`/`it` options or `t.skip`.
 */
export function requireProgram(name: string): ProgramCheck {
  const path = findOnPath(name);
  if (path !== undefined) return { name, path, skip: false };
  const reason = `${name} is not installed (not found on PATH)`;
  if (process.env.CI === "true") {
    throw new Error(`${reason}; CI=true, so this is a failure: .ci/run must install it`);
  }
  return { name, path: undefined, skip: reason };
}

export interface RunOptions {
  cwd?: string;
  /** Added to (not replacing) the test process's environment. */
  env?: Record<string, string>;
  /** Written to the program's standard input, then closed. Default: no input. */
  input?: string | Buffer;
  /** Milliseconds before the program is killed (SIGKILL). Default 5 minutes. */
  timeoutMs?: number;
}

export interface RunResult {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
  /** The command line, for messages: arguments are never passed through a shell. */
  commandLine: string;
}

export const DEFAULT_RUN_TIMEOUT_MS = 5 * 60 * 1000;

/** Runs a program (no shell: arguments are passed as they are) and collects its output. Never rejects on a non-zero exit. */
export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const started = Date.now();
  const commandLine = [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      shell: false,
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    if (options.input !== undefined) child.stdin!.end(options.input);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - started, commandLine });
    });
  });
}

/** Describes a finished run for an assertion message: command, exit, and the output's tail. */
export function describeRun(result: RunResult, tailChars = 4000): string {
  const tail = (text: string) => (text.length > tailChars ? `…${text.slice(-tailChars)}` : text);
  const exit = result.timedOut ? "timed out" : result.code !== null ? `exit ${result.code}` : `signal ${result.signal}`;
  return `${result.commandLine}\n→ ${exit} after ${result.ms} ms\n--- stdout ---\n${tail(result.stdout)}\n--- stderr ---\n${tail(result.stderr)}`;
}

/** Runs a program and throws (with its output) unless it exits 0. */
export async function runOk(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const result = await run(cmd, args, options);
  if (result.code !== 0) throw new Error(`command failed: ${describeRun(result)}`);
  return result;
}
