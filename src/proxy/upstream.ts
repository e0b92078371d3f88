import type { UpstreamConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import { UpstreamClient, type UpstreamExchangeObserver } from "./upstream-client.js";

/**
 * One mirrored registry: its configuration, its client, which local names it serves and what
 * they are called upstream, and when each cached tag was last confirmed with it.
 */
export class Upstream {
  readonly client: UpstreamClient;
  /** `<repository>:<tag>` → epoch milliseconds of the last successful revalidation. */
  private readonly validated = new Map<string, number>();

  constructor(
    readonly config: UpstreamConfig,
    log: Logger,
    observer?: UpstreamExchangeObserver,
  ) {
    this.client = new UpstreamClient(config, log, observer);
  }

  get url(): string {
    return this.config.remoteURL;
  }

  /** True when `name` (a local repository name) is under this upstream's prefix. */
  serves(name: string): boolean {
    return this.config.prefix === "" || name.startsWith(`${this.config.prefix}/`);
  }

  /** The upstream's name for a local repository: the prefix dropped, Docker Hub's library/ added. */
  remoteName(name: string): string {
    const rest = this.config.prefix === "" ? name : name.slice(this.config.prefix.length + 1);
    return this.config.libraryPrefix && !rest.includes("/") ? `library/${rest}` : rest;
  }

  /** The local name for a request that named `name` in this upstream's namespace (containerd's ?ns=). */
  localName(name: string): string {
    return this.config.prefix === "" ? name : `${this.config.prefix}/${name}`;
  }

  markValidated(repository: string, tag: string): void {
    if (this.validated.size >= 100_000) this.validated.clear();
    this.validated.set(`${repository}:${tag}`, Date.now());
  }

  lastValidated(repository: string, tag: string): number | undefined {
    return this.validated.get(`${repository}:${tag}`);
  }

  close(): void {
    this.client.close();
  }
}
