import { RegistryError } from "../errcode/registry-error.js";

/** Above this, `n` is lowered: the client gets a Link to the next page, as the spec allows. */
export const MAX_PAGE_SIZE = 10_000;

export interface Page {
  items: string[];
  /** Query for the next page when there is one (`n=…&last=…`). */
  next: string | undefined;
}

/**
 * One page of a sorted list after `last`, at most `n` entries. PAGINATION_NUMBER_INVALID when `n`
 * is not a non-negative integer. Without `n` the whole rest of the list is one page (the spec's
 * tag listing; callers pass a default for the catalog).
 */
export function paginate(sorted: string[], query: URLSearchParams, defaultSize: number | undefined): Page {
  const n = pageSize(query) ?? defaultSize;
  const last = query.get("last");
  const from = last === null || last === "" ? 0 : firstAfter(sorted, last);
  const rest = sorted.length - from;
  const size = n === undefined ? rest : Math.min(n, rest);
  const items = sorted.slice(from, from + size);
  const lastItem = items[items.length - 1];
  const more = from + size < sorted.length && lastItem !== undefined;
  return { items, next: more ? nextPageQuery(size, lastItem) : undefined };
}

/**
 * The page size a query asks for (`n`), at most MAX_PAGE_SIZE; undefined when it asks for none.
 * PAGINATION_NUMBER_INVALID when `n` is not a non-negative integer.
 */
export function pageSize(query: URLSearchParams): number | undefined {
  const rawN = query.get("n");
  if (rawN === null || rawN === "") return undefined;
  if (!/^\d{1,15}$/.test(rawN)) throw new RegistryError("PAGINATION_NUMBER_INVALID", undefined, { n: rawN.slice(0, 50) });
  return Math.min(Number(rawN), MAX_PAGE_SIZE);
}

/** The query of the page after one that ended with `last`. */
export function nextPageQuery(size: number, last: string): string {
  return `n=${size}&last=${encodeURIComponent(last)}`;
}

/** Index of the first entry greater than `last` (binary search: the list is sorted). */
function firstAfter(sorted: string[], last: string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (sorted[mid]! <= last) low = mid + 1;
    else high = mid;
  }
  return low;
}
