/**
 * At most `limit` operations at once; the rest wait their turn, first come first served. What
 * distribution's storage driver regulator (base.NewRegulator) does for its GCS driver's
 * `maxconcurrency`.
 */
export class ConcurrencyGate {
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(readonly limit: number) {}

  async run<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#running >= this.limit) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#running++;
    try {
      return await operation();
    } finally {
      // The slot passes straight to the next in line, so a newcomer cannot take it first.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
