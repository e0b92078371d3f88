// storage: the driver, deletion, redirects, upload purging, read-only mode and the blob descriptor cache.
import { buildAzure } from "./build-azure.js";
import { buildGcs } from "./build-gcs.js";
import { buildS3 } from "./build-s3.js";
import { NON_DRIVER_STORAGE_KEYS } from "./config-schema.js";
import { DEFAULT_GC_MAX_CPU, GC_MIN_GRACE_MS, type Config, type OnlineGcConfig } from "./config.js";
import { formatGoDuration } from "./go-duration.js";
import { absolutePath, child, fail, readBool, readDuration, readNonNegativeInt, readOptionalString, readPositiveInt, readSection, readString } from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

/** distribution's filesystem driver default, kept so a copied config.yml stores in the same place. */
const DISTRIBUTION_ROOT_DIRECTORY = "/var/lib/registry";
const DEFAULT_BLOB_DESCRIPTOR_SIZE = 10000;
const HOUR_MS = 3_600_000;
const NO_DRIVER = "no storage driver configured; add storage.filesystem, storage.s3, storage.azure, storage.gcs or storage.inmemory";

export function buildStorage(root: RawMap, warnings: string[]): Config["storage"] {
  const storageNode = child(root, "storage");
  const storage = readSection(storageNode, "storage");
  if (storage === undefined) throw fail("storage", storageNode, NO_DRIVER);
  const drivers = [...storage.entries.keys()].filter((k) => !NON_DRIVER_STORAGE_KEYS.has(k));
  if (drivers.length === 0) throw fail("storage", storageNode, NO_DRIVER);
  if (drivers.length > 1) {
    throw fail("storage", storageNode, `exactly one storage driver must be configured, found ${drivers.join(" and ")}`);
  }

  let driver: Config["storage"]["driver"];
  if (drivers[0] === "filesystem") {
    const fs = readSection(child(storage, "filesystem"), "storage.filesystem");
    const dir = readString(child(fs, "rootdirectory"), "storage.filesystem.rootdirectory");
    // distribution caps its concurrent blocking file operations at maxthreads, at least 25. berth's
    // run on libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE says otherwise): any value
    // distribution accepts is already met. Checked so that a wrong value is still named.
    const maxThreads = readPositiveInt(child(fs, "maxthreads"), "storage.filesystem.maxthreads");
    const pool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    if (maxThreads !== undefined && Number.isFinite(pool) && pool > Math.max(maxThreads, 25)) {
      warnings.push(`storage.filesystem.maxthreads: ${maxThreads}, but UV_THREADPOOL_SIZE=${pool} lets up to ${pool} file operations run at once`);
    }
    driver = {
      kind: "filesystem",
      rootDirectory: absolutePath(dir === undefined || dir === "" ? DISTRIBUTION_ROOT_DIRECTORY : dir),
      ...(maxThreads === undefined ? {} : { maxThreads }),
    };
  } else if (drivers[0] === "s3") {
    driver = buildS3(readSection(child(storage, "s3"), "storage.s3"), child(storage, "s3"), warnings);
  } else if (drivers[0] === "azure") {
    driver = buildAzure(readSection(child(storage, "azure"), "storage.azure"), child(storage, "azure"), warnings);
  } else if (drivers[0] === "gcs") {
    driver = buildGcs(readSection(child(storage, "gcs"), "storage.gcs"), child(storage, "gcs"), warnings);
  } else {
    readSection(child(storage, "inmemory"), "storage.inmemory");
    driver = { kind: "inmemory" };
  }

  const maintenance = readSection(child(storage, "maintenance"), "storage.maintenance");
  const purging = readSection(child(maintenance, "uploadpurging"), "storage.maintenance.uploadpurging");
  const P = "storage.maintenance.uploadpurging";
  const ageMs = readDuration(child(purging, "age"), `${P}.age`) ?? 168 * HOUR_MS;
  const intervalMs = readDuration(child(purging, "interval"), `${P}.interval`) ?? 24 * HOUR_MS;
  // Age 0 would delete uploads still in progress; interval 0 would purge in a busy loop.
  if (ageMs === 0) throw fail(`${P}.age`, child(purging, "age"), "must be greater than zero");
  if (intervalMs === 0) throw fail(`${P}.interval`, child(purging, "interval"), "must be greater than zero");

  const cache = readSection(child(storage, "cache"), "storage.cache");
  const cacheKey = child(cache, "blobdescriptor") !== undefined ? "blobdescriptor" : "layerinfo";
  const cacheNode = child(cache, cacheKey);
  const cacheType = readString(cacheNode, `storage.cache.${cacheKey}`);
  let blobDescriptor: "inmemory" | "redis" | undefined;
  if (cacheType === "inmemory" || cacheType === "redis") {
    // redis: its server is the top-level redis section, checked in buildRedis.
    blobDescriptor = cacheType;
  } else if (cacheType !== undefined && cacheType !== "") {
    // distribution logs and runs without a cache here; a cache never changes what clients see.
    warnings.push(`storage.cache.${cacheKey}: unknown cache type ${JSON.stringify(cacheType)}, caching disabled`);
  }

  return {
    driver,
    deleteEnabled: readBool(child(readSection(child(storage, "delete"), "storage.delete"), "enabled"), "storage.delete.enabled") ?? false,
    redirectDisabled: readBool(child(readSection(child(storage, "redirect"), "storage.redirect"), "disable"), "storage.redirect.disable") ?? false,
    uploadPurging: {
      enabled: readBool(child(purging, "enabled"), `${P}.enabled`) ?? true,
      ageMs,
      intervalMs,
      dryRun: readBool(child(purging, "dryrun"), `${P}.dryrun`) ?? false,
    },
    gc: buildOnlineGc(readSection(child(maintenance, "gc"), "storage.maintenance.gc")),
    tagLookupConcurrency:
      readNonNegativeInt(child(readSection(child(storage, "tag"), "storage.tag"), "concurrencylimit"), "storage.tag.concurrencylimit") ?? 0,
    readOnly:
      readBool(
        child(readSection(child(maintenance, "readonly"), "storage.maintenance.readonly"), "enabled"),
        "storage.maintenance.readonly.enabled",
      ) ?? false,
    cache: {
      blobDescriptor,
      blobDescriptorSize: readPositiveInt(child(cache, "blobdescriptorsize"), "storage.cache.blobdescriptorsize") ?? DEFAULT_BLOB_DESCRIPTOR_SIZE,
    },
  };
}

function buildOnlineGc(gc: RawMap | undefined): OnlineGcConfig {
  const P = "storage.maintenance.gc";
  const intervalMs = readDuration(child(gc, "interval"), `${P}.interval`) ?? 24 * HOUR_MS;
  const graceMs = readDuration(child(gc, "graceperiod"), `${P}.graceperiod`) ?? HOUR_MS;
  // Back to back collections would keep every node polling fast and S3 busy for nothing.
  if (intervalMs < 60_000) throw fail(`${P}.interval`, child(gc, "interval"), "must be at least 1m");
  if (graceMs < GC_MIN_GRACE_MS) {
    throw fail(
      `${P}.graceperiod`,
      child(gc, "graceperiod"),
      `must be at least ${formatGoDuration(GC_MIN_GRACE_MS)}: a layer pushed a moment before its manifest must not be collected in between`,
    );
  }
  return {
    enabled: readBool(child(gc, "enabled"), `${P}.enabled`) ?? false,
    intervalMs,
    dryRun: readBool(child(gc, "dryrun"), `${P}.dryrun`) ?? false,
    deleteUntagged: readBool(child(gc, "deleteuntagged"), `${P}.deleteuntagged`) ?? false,
    graceMs,
    maxCpu: readCpuShare(child(gc, "maxcpu"), `${P}.maxcpu`) ?? DEFAULT_GC_MAX_CPU,
  };
}

export const CPU_SHARE_EXPECTED = "a share of one core above 0 and at most 1 (0.25 is a quarter of a core)";

/** A share of one core written as a decimal number in (0, 1]; undefined for anything else. */
export function parseCpuShare(text: string): number | undefined {
  const share = /^\+?(\d+(\.\d*)?|\.\d+)$/.test(text) ? Number(text) : NaN;
  return share > 0 && share <= 1 ? share : undefined;
}

function readCpuShare(node: Raw | undefined, key: string): number | undefined {
  const text = readOptionalString(node, key);
  if (text === undefined) return undefined;
  const share = parseCpuShare(text);
  if (share === undefined) throw fail(key, node, `expected ${CPU_SHARE_EXPECTED}, got ${JSON.stringify(text)}`);
  return share;
}
