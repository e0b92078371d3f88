/**
 * Runs `task` on every item with at most `limit` running at once, and returns the results in the
 * items' order. The first failure rejects (tasks already started finish on their own).
 */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Reads at once against storage: enough to hide an object store's latency, few enough to be polite. */
export const STORAGE_CONCURRENCY = 8;
