/**
 * Which repositories a request may pull, for listings that must show nobody more than that (the web
 * UI's catalog and search). The registry API has no such question: `/v2/_catalog` is all or
 * nothing on `registry:catalog:*`. Asking the access controller about every name one by one cannot
 * scale to a large registry (with token auth each question would be a trip to the token service),
 * so a controller answers once per request with a predicate over names.
 */
import type { Access, AccessController, AuthRequest } from "./access-controller.js";

/** A predicate over repository names, or "every" when the request may pull every repository. */
export type RepositoryFilter = "every" | ((name: string) => boolean);

export interface PullableRepositories {
  /**
   * What `req` may pull, or throws the RegistryError that `authorize` would (401 with a challenge
   * naming the catalog scope when the credentials are missing or allow nothing).
   */
  pullable(req: AuthRequest): Promise<RepositoryFilter>;
}

/** The catalog scope: what a request needs to list every name, as distribution's `/v2/_catalog`. */
export const CATALOG_ACCESS: readonly Access[] = [{ type: "registry", name: "catalog", action: "*" }];

/**
 * For controllers that do not authorize per repository (none, htpasswd, silly): whoever may list
 * the catalog may pull everything in it.
 */
export function catalogWide(access: AccessController): PullableRepositories {
  return {
    pullable: async (req) => {
      await access.authorize(req, CATALOG_ACCESS);
      return "every";
    },
  };
}

/** The controller's own answer when it has one (token auth), else catalogWide. */
export function pullableRepositoriesOf(access: AccessController): PullableRepositories {
  const own = access as AccessController & Partial<PullableRepositories>;
  return typeof own.pullable === "function" ? (own as PullableRepositories) : catalogWide(access);
}
