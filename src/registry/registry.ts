import type { IncomingMessage } from "node:http";
import type { RegistryStats } from "./registry-stats.js";
import type { Repository } from "./repository.js";
import type { CatalogPage } from "../storage/repository-catalog.js";

export type { CatalogPage };

/** Who made a request, for decorators that record what each request did (notifications). */
export interface RequestOrigin {
  req: IncomingMessage;
  /** The authenticated user, when the access controller named one. */
  user: string | undefined;
  /** The absolute (or, with http.relativeurls, relative) URL of a registry path such as /v2/… */
  urlFor(path: string): string;
}

/** A repository name as a request addresses it, after any mirror namespace was applied. */
export interface ResolvedName {
  name: string;
  /** The namespace (upstream registry host) that served the request, for the OCI-Namespace header. */
  namespace?: string;
}

/**
 * The registry the HTTP server serves: repositories by name and the catalog of names. The one
 * kept in storage is StorageRegistry; the pull-through cache wraps it (src/proxy/).
 */
export interface Registry {
  /** NAME_INVALID for a name outside the spec's grammar. The repository need not exist yet. */
  repository(name: string): Repository;
  /**
   * The repository a request means. `namespace` is containerd's `?ns=<host>`, the registry the
   * client asked a mirror for; a registry that mirrors nothing ignores it.
   */
  resolveName(name: string, namespace: string | undefined): ResolvedName;
  /**
   * The registry as one request sees it. Decorators that record who did what bind the request
   * here; a registry that records nothing returns itself.
   */
  forRequest(origin: RequestOrigin): Registry;
  /** At most `limit` repository names after `after`, in catalog order (see catalogPage). */
  catalog(after: string | undefined, limit: number): Promise<CatalogPage>;
  /** Problems by component, for GET /debug/health; empty when all is well. */
  /**
   * What background components report about themselves, by component, for GET /debug/status
   * (notifications: each endpoint's queue and delivery counts). Never a credential.
   */
  diagnostics(): Record<string, unknown>;
  /** Counters of the cache, notifications and proxy, for metrics (read at scrape time). */
  stats(): RegistryStats;
  /** Problems by component, for GET /debug/health; empty when all is well. */
  health(): Promise<Record<string, string>>;
  /** Starts background work, once the server listens. */
  open(): void;
  /** Stops background work and closes connections, at shutdown. */
  close(): Promise<void>;
}
