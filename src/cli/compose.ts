import type { Config } from "../config/config.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import { FilesystemDriver } from "../driver/filesystem-driver.js";
import { InMemoryDriver } from "../driver/inmemory-driver.js";
import { InMemoryBlobDescriptorCache, NoBlobDescriptorCache } from "../cache/blob-descriptor-cache.js";
import type { Logger } from "../log/logger.js";
import { Registry } from "../registry/registry.js";
import type { ServerSettings } from "../server/request-context.js";

/** The composition root: configuration in, wired parts out. Nothing else chooses implementations. */
export function createDriver(config: Config): StorageDriver {
  const driver = config.storage.driver;
  return driver.kind === "filesystem" ? new FilesystemDriver(driver.rootDirectory) : new InMemoryDriver();
}

export function createRegistry(config: Config, driver: StorageDriver, log: Logger): Registry {
  const cache =
    config.storage.cache.blobDescriptor === "inmemory"
      ? new InMemoryBlobDescriptorCache(config.storage.cache.blobDescriptorSize)
      : new NoBlobDescriptorCache();
  return new Registry({
    driver,
    cache,
    log,
    deleteEnabled: config.storage.deleteEnabled,
    readOnly: config.storage.readOnly,
  });
}

export function serverSettings(config: Config): ServerSettings {
  return {
    baseURL: config.http.host?.replace(/\/+$/, ""),
    relativeURLs: config.http.relativeUrls,
    // No driver berth has today offers URLs; the switch is here so S3 changes nothing above it.
    redirectsEnabled: !config.storage.redirectDisabled,
    headers: Object.entries(config.http.headers),
  };
}

export function describeStorage(config: Config): string {
  const driver = config.storage.driver;
  return driver.kind === "filesystem" ? `filesystem ${driver.rootDirectory}` : "inmemory (lost at exit)";
}
