/**
 * Concurrent callers asking for the same key share one execution of the work: twenty clients
 * missing the same manifest cause one upstream request, not twenty.
 */
export class SingleFlight<T> {
  private readonly running = new Map<string, Promise<T>>();

  run(key: string, work: () => Promise<T>): Promise<T> {
    let shared = this.running.get(key);
    if (!shared) {
      shared = work().finally(() => this.running.delete(key));
      this.running.set(key, shared);
    }
    return shared;
  }
}
