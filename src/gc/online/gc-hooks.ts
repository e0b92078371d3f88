/**
 * Points where a test may pause online collection, on either side. Production passes none (every
 * call is then a resolved no-op); test/gc-online-interleavings.test.ts pauses at each to force an
 * interleaving.
 */
export type CollectorStep =
  | "marked"
  | "candidates-published"
  | "candidates-acked"
  | "doomed-published"
  | "doomed-acked"
  | "before-delete"
  | "done";

/** A vouching request after its rescue markers are stored, before it touches storage. */
export type RequestStep = "vouched";

export interface GcHooks {
  collector?(step: CollectorStep): Promise<void>;
  request?(step: RequestStep, operation: string, repository: string, digests: string[]): Promise<void>;
}
