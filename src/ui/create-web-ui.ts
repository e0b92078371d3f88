import type { AccessController } from "../auth/access-controller.js";
import { pullableRepositoriesOf } from "../auth/pullable-repositories.js";
import type { Config } from "../config/config.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import type { Registry } from "../registry/registry.js";
import type { PathMount } from "../server/path-mount.js";
import { PathPrefix } from "../server/path-prefix.js";
import type { RequestInterceptor } from "../server/request-interceptor.js";
import type { IncomingMessage, ServerResponse } from "node:http";
import { CrossSiteGuard } from "./cross-site-guard.js";
import { isUiPath, uiRoute } from "./ui-paths.js";

/** How long a search reuses the list of names it read (src/ui/catalog-search.ts). */
const SEARCH_LIST_MAX_AGE_MS = 10_000;

/** The UI's parts for the server: its paths, and the guard that keeps other sites from writing. */
export interface WebUiParts {
  mount: PathMount;
  interceptor: RequestInterceptor;
}

export async function createWebUi(config: Config, registry: Registry, driver: StorageDriver, access: AccessController): Promise<WebUiParts> {
  return { mount: new DeferredWebUi(() => assembleWebUi(config, registry, driver, access)), interceptor: new CrossSiteGuard() };
}

/**
 * The UI, loaded on the first request for one of its paths: a registry no browser visits pays
 * nothing for it (the compressed assets and the JSON view's modules: about 3 MiB of resident
 * memory, measured at start). A load that fails is tried again by the next request.
 */
class DeferredWebUi implements PathMount {
  #loading: Promise<PathMount> | undefined;

  constructor(private readonly load: () => Promise<PathMount>) {}

  owns(path: string): boolean {
    return isUiPath(path);
  }

  route(path: string): string {
    return uiRoute(path);
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    this.#loading ??= this.load().catch((err: unknown) => {
      this.#loading = undefined;
      throw err;
    });
    await (await this.#loading).handle(req, res, path, query);
  }
}

async function assembleWebUi(config: Config, registry: Registry, driver: StorageDriver, access: AccessController): Promise<PathMount> {
  const [{ loadStaticAssets }, { WebUi }, { CatalogSearch }] = await Promise.all([import("./static-assets.js"), import("./web-ui.js"), import("./catalog-search.js")]);
  const settings = { auth: config.auth?.kind ?? "none", deleteEnabled: config.storage.deleteEnabled, readOnly: config.storage.readOnly } as const;
  const search = new CatalogSearch(registry, SEARCH_LIST_MAX_AGE_MS);
  // With token auth the catalog page itself is filtered from the search's list of names: reading
  // it from the first request for the page, not from the catalog request that follows, gains the
  // time the browser takes to get the script and a token.
  if (config.auth?.kind === "token") search.warm();
  return new WebUi(
    await loadStaticAssets(settings),
    {
      registry,
      driver,
      access,
      pullable: pullableRepositoriesOf(access),
      search,
      settings,
    },
    config.auth?.kind === "token" ? config.auth.realm : undefined,
    // The page finds the API from its own address (ui.js), so only the redirects need the prefix.
    new PathPrefix(config.http.prefix).apply("/ui/"),
  );
}
