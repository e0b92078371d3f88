import type { Registry } from "../registry/registry.js";

/** What one search answers: names in catalog order, and whether more match after the last. */
export interface SearchPage {
  names: string[];
  more: boolean;
}

/**
 * How many names one catalog read asks for while the list is built. Each read walks the storage
 * tree from the name it starts after; at 10,000 repositories on the filesystem one read of 10,000
 * took 1.6–3.8 s on the loaded 2-core machine where ten reads of 1,000 took 0.6–1.2 s each.
 */
const LOAD_PAGE = 10_000;

/**
 * Search by part of a repository name. The registry API has no search, and filtering needs every
 * name: the list is read once through the registry's own catalog and kept for `maxAgeMs`, so that
 * typing in the search box costs a scan of an array, not of storage. A list older than that is
 * read again when a search asks for it, in the background: that search, and those during the
 * read, use the list they have (only the first search after start waits for a read); concurrent
 * searches share one read. So a new repository appears in search results once a read that began
 * after it was created has ended: `maxAgeMs` and one read late at most, while people search (the
 * unfiltered catalog is always current); so it does in a catalog filtered by what the user may
 * pull (token auth), which is read from this list.
 */
export class CatalogSearch {
  private names: string[] = [];
  private position = new Map<string, number>();
  private loadedAt = -Infinity;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly registry: Registry,
    private readonly maxAgeMs: number,
  ) {}

  /**
   * At most `limit` names containing `text` (case-insensitively; "" matches every name) after the
   * name `after`, of those `visible` accepts: a scan of the array with a predicate per name, about
   * a millisecond at 10,000 repositories.
   */
  async search(text: string, after: string | undefined, limit: number, visible: (name: string) => boolean = () => true): Promise<SearchPage> {
    await this.fresh();
    const needle = text.toLowerCase();
    // A name no longer listed (deleted since) restarts the search rather than failing it.
    const start = after === undefined ? 0 : (this.position.get(after) ?? -1) + 1;
    const names: string[] = [];
    for (let i = start; i < this.names.length; i++) {
      const name = this.names[i]!;
      if (!name.includes(needle) || !visible(name)) continue;
      if (names.length === limit) return { names, more: true };
      names.push(name);
    }
    return { names, more: false };
  }

  /**
   * Starts reading the list in the background when it is stale, so that a search typed after
   * the catalog page was shown finds it ready. A failed read is left for the search to report.
   */
  warm(): void {
    this.fresh().catch(() => undefined);
  }

  private async fresh(): Promise<void> {
    if (performance.now() - this.loadedAt < this.maxAgeMs) return;
    const hadList = this.loadedAt !== -Infinity;
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    if (!hadList) {
      await this.loading;
      return;
    }
    // A failed background read leaves the old list; the next search tries again.
    this.loading.catch(() => undefined);
  }

  private async load(): Promise<void> {
    const names: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.registry.catalog(after, LOAD_PAGE);
      names.push(...page.names);
      after = page.names.at(-1);
      if (!page.more || after === undefined) break;
    }
    this.names = names;
    this.position = new Map(names.map((name, i) => [name, i]));
    this.loadedAt = performance.now();
  }
}
