/**
 * Waiting for a server-side copy (Copy Blob) that the service did not finish at once, as
 * distribution 3's Azure driver waits: the copy's status is read up to `maxRetries` times, the
 * n-th wait `retryDelay` × n, then the copy is aborted and the move fails. With `maxRetries` -1 a
 * pending copy is aborted at once; distribution then reports the move done, berth reports it failed
 * (the destination holds nothing).
 */
export interface CopyRetry {
  maxRetries: number;
  retryDelayMs: number;
}

export type CopyStatus = "pending" | "success" | "aborted" | "failed";

export interface PendingCopy {
  /** The copy's status and, when it failed, the service's description. */
  status(): Promise<{ status: CopyStatus | undefined; description?: string }>;
  abort(): Promise<void>;
}

export async function settleCopy(copy: PendingCopy, retry: CopyRetry, what: string, sleep = defaultSleep): Promise<void> {
  if (retry.maxRetries < 0) {
    await copy.abort();
    throw new Error(`azure: copy ${what} did not finish at once and max_retries is -1: aborted`);
  }
  for (let attempt = 1; ; attempt++) {
    const { status, description } = await copy.status();
    if (status === "success" || status === undefined) return;
    if (status === "aborted" || status === "failed") throw new Error(`azure: copy ${what} ${status}${description ? `: ${description}` : ""}`);
    if (attempt >= retry.maxRetries) {
      await copy.abort();
      throw new Error(`azure: copy ${what} still pending after ${attempt} checks (max_retries ${retry.maxRetries}): aborted`);
    }
    await sleep(retry.retryDelayMs * attempt);
  }
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
