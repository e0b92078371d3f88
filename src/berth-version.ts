import { readFileSync } from "node:fs";

let version: string | undefined;

/** berth's version, from its package.json (dist/src/ is two levels below it), read once. */
export function berthVersion(): string {
  if (version === undefined) {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
    version = typeof pkg.version === "string" ? pkg.version : "unknown";
  }
  return version;
}
