import { randomBytes } from "node:crypto";
import { basename } from "node:path";

/**
 * The filesystem driver's hidden names: `.<name>.tmp-<16 hex>`, beside the entry they stand for.
 * An atomic write builds its file under one and renames it into place; a directory made for a
 * write is built under one with its first entry inside; a directory being deleted is renamed to
 * one before it is emptied. Listings never show them (isTemporaryName), so a kill in the middle of
 * any of these leaves nothing the registry sees, only a hidden leftover that
 * removeStaleTemporaries (stale-temporaries.ts) removes later.
 */
const TEMPORARY = /^\..*\.tmp-[0-9a-f]{16}$/s;

/**
 * Unique among processes sharing a root (a random part drawn once per process) and within this
 * one (a counter): one random draw per process instead of one per write, which showed up in
 * profiles of many small pushes (each draw also asks the kernel for the pid, for fork safety).
 */
const tempPrefix = randomBytes(4).toString("hex");
let tempCounter = 0;

/** A fresh hidden name for `target` (a full path or a name), to be created in its directory. */
export function temporaryName(target: string): string {
  // Truncated so that the temporary name stays within NAME_MAX (native/durable_file.c cuts the same).
  return `.${basename(target).slice(0, 200)}${temporarySuffix()}`;
}

/** The tail of a fresh hidden name: `.tmp-<16 hex>`. */
export function temporarySuffix(): string {
  tempCounter = (tempCounter + 1) % 0x1_0000_0000;
  return `.tmp-${tempPrefix}${tempCounter.toString(16).padStart(8, "0")}`;
}

/** Checked for every name a listing returns: the regular expression only runs for dot names. */
export function isTemporaryName(name: string): boolean {
  return name.startsWith(".") && TEMPORARY.test(name);
}
