import { RegistryError } from "../errcode/registry-error.js";

/** An inclusive byte range within a blob. */
export interface ByteRange {
  start: number;
  end: number;
}

const SINGLE_RANGE = /^bytes=(\d{0,15})-(\d{0,15})$/;

/**
 * The one range a GET asks for, or undefined for the whole blob. RANGE_INVALID (416, with
 * `Content-Range: bytes *\/size`) for a range outside the blob, a malformed header, or several
 * ranges: serving the whole blob instead would hand a client bytes it did not ask for.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const match = SINGLE_RANGE.exec(header.trim());
  if (!match) throw unsatisfiable(size);
  const [, first = "", last = ""] = match;
  if (first === "" && last === "") throw unsatisfiable(size);
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) throw unsatisfiable(size);
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (start >= size || (last !== "" && Number(last) < start)) throw unsatisfiable(size);
  return { start, end };
}

function unsatisfiable(size: number): RegistryError {
  return new RegistryError("RANGE_INVALID", "requested range not satisfiable", { size }, { "Content-Range": `bytes */${size}` });
}
