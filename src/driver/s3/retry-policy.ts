/**
 * When an S3 request is sent again, and after how long. The same policy as the AWS SDK's
 * "standard" mode, which berth used before: at most 3 attempts, exponential backoff with full
 * jitter (100 ms base, 500 ms when S3 asks to slow down), for answers that say "try again" (5xx,
 * 429, SlowDown) and for requests that got no answer (connection refused, reset or cut before an
 * answer, a timeout).
 *
 * Every request the driver sends may be sent twice: bodies are buffers (never a stream half
 * consumed), GET/HEAD/PUT/DELETE are idempotent, CreateMultipartUpload at worst leaves an upload
 * that the writer's cleanup aborts, and CompleteMultipartUpload of a completed upload is answered
 * 200 again (AWS and radosgw). What is never replayed is a response already handed to a reader:
 * once a GetObject's body is streaming, a failure reaches the reader.
 */
import { isNetworkFailure, isThrottling, S3ResponseError } from "./s3-errors.js";

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Backoff base in milliseconds; the wait before attempt n+1 is random in [0, base·2^(n-1)). */
  baseDelayMs: number;
  /** Backoff base after a throttling answer. */
  throttledDelayMs: number;
  /** No wait is longer. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 100, throttledDelayMs: 500, maxDelayMs: 20_000 };

/** Whether a failed attempt may be made again. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof S3ResponseError) return err.status >= 500 || isThrottling(err) || err.code === "RequestTimeout";
  return isNetworkFailure(err);
}

/** The wait before the attempt after `attempt` (1-based) failed with `err`. */
export function backoffMs(policy: RetryPolicy, attempt: number, err: unknown): number {
  const base = isThrottling(err) ? policy.throttledDelayMs : policy.baseDelayMs;
  return Math.random() * Math.min(policy.maxDelayMs, base * 2 ** (attempt - 1));
}

/** `attempt` until it succeeds, fails in a way that is not retryable, or has failed `maxAttempts` times. */
export async function withRetries<T>(policy: RetryPolicy, attempt: (n: number) => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (n >= policy.maxAttempts || !isRetryable(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, backoffMs(policy, n, err)));
    }
  }
}
