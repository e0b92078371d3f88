/** What the campaign tools (tools/*-crash.ts, tools/overload.ts) share as command-line programs. */
import { pathToFileURL } from "node:url";

/** A `--name` option that takes a positive integer; `fallback` when it is not given. */
export function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new Error(`--${name} takes a positive integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

/**
 * Runs `main` when `moduleURL` is the program node was started with (not when a test imports the
 * module): exits with its status, or 2 with the error when it throws.
 */
export function runIfMain(moduleURL: string, main: () => Promise<number>): void {
  if (process.argv[1] === undefined || moduleURL !== pathToFileURL(process.argv[1]).href) return;
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(2);
    },
  );
}
