import type { Registry } from "prom-client";
import { FastCounter, type CounterChild } from "./fast-metrics.js";

/** The label the repositories past the first N share. */
export const OTHER_REPOSITORIES = "other";

/** One direction (pushed or pulled): a series per named repository, and "other". */
class Direction {
  private readonly children = new Map<string, CounterChild>();
  private readonly other: CounterChild;

  constructor(private readonly metric: FastCounter) {
    this.other = metric.labels(OTHER_REPOSITORIES);
    this.other.inc(0);
  }

  add(repository: string, named: boolean, bytes: number): void {
    if (!named) return this.other.inc(bytes);
    let child = this.children.get(repository);
    if (child === undefined) this.children.set(repository, (child = this.metric.labels(repository)));
    child.inc(bytes);
  }
}

/**
 * Bytes pushed and pulled by repository, with bounded label cardinality
 * (http.debug.prometheus.repositories: N). The first N repositories that move bytes get a series
 * each and keep it for the life of the process; every other repository counts under
 * repository="other". A repository never moves from one series to another, so every series only
 * grows, as a counter must (a true top-N would have to move them, and make the counters jump).
 */
export class RepositoryBytes {
  private readonly named = new Set<string>();
  private readonly pushedBytes: Direction;
  private readonly pulledBytes: Direction;

  constructor(
    register: Registry,
    private readonly limit: number,
  ) {
    const help = (what: string): string => `Bytes of blobs and manifests ${what}, by repository (the first N repositories to move bytes; the others as "other").`;
    this.pushedBytes = new Direction(new FastCounter({ name: "berth_repository_pushed_bytes_total", help: help("pushed"), labelNames: ["repository"], registers: [register] }));
    this.pulledBytes = new Direction(new FastCounter({ name: "berth_repository_pulled_bytes_total", help: help("pulled"), labelNames: ["repository"], registers: [register] }));
  }

  pushed(repository: string, bytes: number): void {
    if (bytes > 0) this.pushedBytes.add(repository, this.isNamed(repository), bytes);
  }

  pulled(repository: string, bytes: number): void {
    if (bytes > 0) this.pulledBytes.add(repository, this.isNamed(repository), bytes);
  }

  private isNamed(repository: string): boolean {
    if (this.named.has(repository)) return true;
    if (this.named.size >= this.limit || repository === OTHER_REPOSITORIES || repository === "") return false;
    this.named.add(repository);
    return true;
  }
}
