import type { AccessController } from "../auth/access-controller.js";
import type { Config } from "../config/config.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import type { Registry } from "../registry/registry.js";
import type { PathMount } from "../server/path-mount.js";
import type { RequestInterceptor } from "../server/request-interceptor.js";
import { CatalogSearch } from "./catalog-search.js";
import { CrossSiteGuard } from "./cross-site-guard.js";
import { loadStaticAssets } from "./static-assets.js";
import { WebUi } from "./web-ui.js";

/** How long a search reuses the list of names it read (src/ui/catalog-search.ts). */
const SEARCH_LIST_MAX_AGE_MS = 10_000;

/** The UI's parts for the server: its paths, and the guard that keeps other sites from writing. */
export interface WebUiParts {
  mount: PathMount;
  interceptor: RequestInterceptor;
}

export async function createWebUi(config: Config, registry: Registry, driver: StorageDriver, access: AccessController): Promise<WebUiParts> {
  const assets = await loadStaticAssets();
  const mount = new WebUi(
    assets,
    {
      registry,
      driver,
      access,
      search: new CatalogSearch(registry, SEARCH_LIST_MAX_AGE_MS),
      settings: { auth: config.auth?.kind ?? "none", deleteEnabled: config.storage.deleteEnabled, readOnly: config.storage.readOnly },
    },
    config.auth?.kind === "token" ? config.auth.realm : undefined,
  );
  return { mount, interceptor: new CrossSiteGuard() };
}
