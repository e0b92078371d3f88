/** S3's limits on parts and batch deletes, and how a server-side copy is cut into parts within them. */

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** S3's smallest part, except the last one of an upload. */
export const MIN_PART_SIZE = 5 * MiB;
/** S3's largest part, and the largest object CopyObject accepts. */
export const MAX_PART_SIZE = 5 * GiB;
export const MAX_PARTS = 10_000;
/** DeleteObjects takes at most this many keys. */
export const DELETE_BATCH = 1000;

/**
 * Splits `size` bytes into [start, end) ranges of at least `chunk` bytes (the last one excepted
 * when `size` is smaller) and at most 5 GiB, in at most 10 000 ranges, of nearly equal sizes.
 */
export function splitRanges(size: number, chunk: number): Array<[number, number]> {
  let count = Math.max(1, Math.floor(size / chunk), Math.ceil(size / MAX_PART_SIZE));
  count = Math.min(count, MAX_PARTS);
  if (Math.ceil(size / count) > MAX_PART_SIZE) throw new Error(`s3: ${size} bytes do not fit in ${MAX_PARTS} parts`);
  const ranges: Array<[number, number]> = [];
  const base = Math.floor(size / count);
  let extra = size - base * count;
  let start = 0;
  for (let i = 0; i < count; i++) {
    const length = base + (extra > 0 ? 1 : 0);
    if (extra > 0) extra--;
    ranges.push([start, start + length]);
    start += length;
  }
  return ranges;
}
