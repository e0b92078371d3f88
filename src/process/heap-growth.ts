import { setFlagsFromString } from "node:v8";

/**
 * How far V8 lets the old generation grow past what survived the last full collection before it
 * marks the whole heap again, as `--heap-growing-percent` (V8's own choice is up to 300%).
 *
 * - 100% by default. Under a flood of small requests V8's own choice left 30 MiB of dead request
 *   objects (promoted by the small young generation, see src/cli/main.ts); at 100% berth's heap
 *   stays near 20 MiB at the same requests per second (docs/benchmarks.md).
 * - 400% on object storage. There every byte a client pulls or pushes arrives as fresh memory from
 *   a socket read, which V8 counts towards that growth: at 100% it marked the whole heap every few
 *   MiB moved, two fifths of berth's CPU in a pull through S3 (1.5 ms per MB, against 0.85 at
 *   400%; docs/benchmarks.md, 2026-12-05). The memory checks through S3 stay under their bound;
 *   a flood of small requests peaks higher (99 against 74 MiB in manifest-get-c16).
 *
 * A `--heap-growing-percent` given to node wins over both.
 */
export function setHeapGrowth(objectStorage: boolean): void {
  if (process.execArgv.some((arg) => arg.startsWith("--heap-growing-percent"))) return;
  setFlagsFromString(`--heap-growing-percent=${objectStorage ? 400 : 100}`);
}
