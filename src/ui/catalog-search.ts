import type { Registry } from "../registry/registry.js";

/** What one search answers: names in catalog order, and whether more match after the last. */
export interface SearchPage {
  names: string[];
  more: boolean;
}

/** How many names one catalog read asks for while the list is built. */
const LOAD_PAGE = 1000;

/**
 * Search by part of a repository name. The registry API has no search, and filtering needs every
 * name: the list is read once through the registry's own catalog and kept for `maxAgeMs`, so that
 * typing in the search box costs a scan of an array, not of storage. A list older than that is
 * read again by the next search; concurrent searches share one read. New repositories appear in
 * search results at most `maxAgeMs` late (the unfiltered catalog is always current), and so do
 * they in a catalog filtered by what the user may pull (token auth), which is read from this list.
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
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    await this.loading;
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
