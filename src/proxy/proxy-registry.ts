import type { Logger } from "../log/logger.js";
import type { CatalogPage, Registry, RequestOrigin, ResolvedName } from "../registry/registry.js";
import type { RegistryStats } from "../registry/registry-stats.js";
import type { Repository } from "../registry/repository.js";
import type { StorageRegistry } from "../registry/storage-registry.js";
import { ProxyRepository, type ProxyShared } from "./proxy-repository.js";
import type { Upstream } from "./upstream.js";

/** Background work that runs beside the mirror (expiry), started and stopped with it. */
export interface ProxyMaintenance {
  start(): void;
  stop(): Promise<void>;
}

/**
 * A registry that mirrors upstream registries: names under an upstream's prefix are served by a
 * ProxyRepository over the local repository of the same name; every other name is an ordinary
 * local repository. The catalog lists what is stored, cached and pushed alike.
 */
export class ProxyRegistry implements Registry {
  constructor(
    private readonly local: StorageRegistry,
    /** Longest prefix first. */
    private readonly upstreams: Upstream[],
    private readonly shared: ProxyShared,
    private readonly maintenance: ProxyMaintenance,
    private readonly log: Logger,
  ) {}

  repository(name: string): Repository {
    const local = this.local.repository(name);
    const upstream = this.upstreamFor(name);
    return upstream ? new ProxyRepository(local, upstream, this.shared) : local;
  }

  /** The upstream that serves a local name, if any. */
  upstreamFor(name: string): Upstream | undefined {
    return this.upstreams.find((upstream) => upstream.serves(name));
  }

  /**
   * containerd's mirror convention: `?ns=docker.io` asks for `library/alpine` of docker.io, which
   * is the local name under the prefix of the upstream answering that namespace. A namespace no
   * upstream answers leaves the name as it is.
   */
  resolveName(name: string, namespace: string | undefined): ResolvedName {
    if (namespace === undefined || namespace === "") return { name };
    const wanted = namespace.toLowerCase();
    const upstream = this.upstreams.find((u) => u.config.namespaces.includes(wanted));
    return upstream ? { name: upstream.localName(name), namespace: wanted } : { name };
  }

  diagnostics(): Record<string, unknown> {
    return this.local.diagnostics();
  }

  stats(): RegistryStats {
    return { ...this.local.stats(), proxy: this.shared.stats.snapshot() };
  }

  /** Records nothing per request. */
  forRequest(_origin: RequestOrigin): Registry {
    return this;
  }

  catalog(after: string | undefined, limit: number): Promise<CatalogPage> {
    return this.local.catalog(after, limit);
  }

  /** The upstreams are not part of health: a mirror whose upstream is down still serves its cache. */
  health(): Promise<Record<string, string>> {
    return this.local.health();
  }

  open(): void {
    this.local.open();
    this.maintenance.start();
    for (const upstream of this.upstreams) {
      this.log.info({ prefix: upstream.config.prefix === "" ? "(every name)" : `${upstream.config.prefix}/`, upstream: upstream.url, namespaces: upstream.config.namespaces }, "mirroring");
    }
  }

  async close(): Promise<void> {
    await this.maintenance.stop();
    for (const upstream of this.upstreams) upstream.close();
    this.shared.fills.close();
    await this.local.close();
  }
}
