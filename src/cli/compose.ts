import { OPEN_ACCESS, type AccessController } from "../auth/access-controller.js";
import { HtpasswdAccessController } from "../auth/htpasswd.js";
import { SillyAccessController } from "../auth/silly.js";
import { loadTokenAccessController } from "../auth/token.js";
import type { Config } from "../config/config.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import { FilesystemDriver } from "../driver/filesystem-driver.js";
import { InMemoryDriver } from "../driver/inmemory-driver.js";
import { S3Driver } from "../driver/s3-driver.js";
import { InMemoryBlobDescriptorCache, NoBlobDescriptorCache } from "../cache/blob-descriptor-cache.js";
import type { Logger } from "../log/logger.js";
import { Registry } from "../registry/registry.js";
import type { ServerSettings } from "../server/request-context.js";
import { isWorker } from "./workers.js";

/** The composition root: configuration in, wired parts out. Nothing else chooses implementations. */
export function createDriver(config: Config): StorageDriver {
  const driver = config.storage.driver;
  switch (driver.kind) {
    case "filesystem":
      return new FilesystemDriver(driver.rootDirectory);
    case "inmemory":
      return new InMemoryDriver();
    case "s3":
      return new S3Driver({
        bucket: driver.bucket,
        region: driver.region,
        regionendpoint: driver.regionEndpoint,
        accesskey: driver.accessKey,
        secretkey: driver.secretKey,
        sessiontoken: driver.sessionToken,
        rootdirectory: driver.rootDirectory,
        forcepathstyle: driver.forcePathStyle,
        encrypt: driver.encrypt,
        keyid: driver.keyId,
        secure: driver.secure,
        skipverify: driver.skipVerify,
        chunksize: driver.chunkSize,
        multipartcopychunksize: driver.multipartCopyChunkSize,
        multipartcopymaxconcurrency: driver.multipartCopyMaxConcurrency,
        multipartcopythresholdsize: driver.multipartCopyThresholdSize,
        storageclass: driver.storageClass,
        objectacl: driver.objectAcl,
      });
  }
}

export function createRegistry(config: Config, driver: StorageDriver, log: Logger): Registry {
  const cache =
    config.storage.cache.blobDescriptor === "inmemory"
      ? new InMemoryBlobDescriptorCache(config.storage.cache.blobDescriptorSize, !isWorker())
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
    // On by default: blob GETs answer 307 to the driver's URL when it has one (S3: presigned).
    redirectsEnabled: !config.storage.redirectDisabled,
    headers: Object.entries(config.http.headers),
  };
}

export function describeStorage(config: Config): string {
  const driver = config.storage.driver;
  switch (driver.kind) {
    case "filesystem":
      return `filesystem ${driver.rootDirectory}`;
    case "inmemory":
      return "inmemory (lost at exit)";
    case "s3":
      return `s3 bucket ${driver.bucket} at ${driver.regionEndpoint ?? `AWS ${driver.region}`}${driver.rootDirectory ? `, root ${driver.rootDirectory}` : ""}`;
  }
}

/**
 * The access controller for the `auth` section, with its files read (htpasswd, root certificates,
 * JWKS): a missing or broken file is a ConfigError naming its key, before the server listens.
 */
export async function createAccessController(config: Config, log: Logger): Promise<AccessController> {
  const auth = config.auth;
  if (auth !== undefined && auth.kind !== "silly" && config.http.tls === undefined) {
    log.warn(`auth.${auth.kind} without http.tls: credentials travel in clear text unless a TLS-terminating proxy is in front`);
  }
  switch (auth?.kind) {
    case undefined:
      return OPEN_ACCESS;
    case "silly":
      log.warn("auth.silly accepts any Authorization header: it is for testing clients, it secures nothing");
      return new SillyAccessController(auth);
    case "htpasswd":
      return HtpasswdAccessController.open(auth, log);
    case "token":
      return loadTokenAccessController(auth, log);
  }
}
