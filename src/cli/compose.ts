import { OPEN_ACCESS, type AccessController } from "../auth/access-controller.js";
import { SillyAccessController } from "../auth/silly.js";
import { ConfigError, type AzureStorage, type Config } from "../config/config.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import { FilesystemDriver } from "../driver/filesystem-driver.js";
import { InMemoryDriver } from "../driver/inmemory-driver.js";
import { InMemoryBlobDescriptorCache, NoBlobDescriptorCache, type BlobDescriptorCache } from "../cache/blob-descriptor-cache.js";
import type { RedisBlobDescriptorCache, RedisCommandObserver } from "../cache/redis-blob-descriptor-cache.js";
import type { S3LogSink } from "../driver/s3/s3-request-log.js";
import { createLogger, type Logger } from "../log/logger.js";
import type { PrometheusMetrics } from "../metrics/prometheus-metrics.js";
import type { Registry } from "../registry/registry.js";
import { StorageRegistry } from "../registry/storage-registry.js";
import type { DebugRoute } from "../server/debug-route.js";
import { PathPrefix } from "../server/path-prefix.js";
import type { ServerSettings } from "../server/request-context.js";
import type { Tracing } from "../tracing/tracing.js";
import { readTracingSettings } from "../tracing/tracing-settings.js";
import { isWorker } from "./workers.js";
import { IndexChildPolicy } from "../validation/index-child-policy.js";
import { LayerUrlPolicy } from "../validation/layer-url-policy.js";
import type { OnlineGcNode } from "../gc/online/online-gc-node.js";
import { DEFAULT_GC_TIMING, testTimingFromEnv, type GcTiming } from "../gc/online/timing.js";

/**
 * The composition root: configuration in, wired parts out. Nothing else chooses implementations.
 *
 * Parts that pull in large libraries (the AWS SDK, ioredis, jose, bcrypt) are imported only when
 * the configuration asks for them: a registry on the filesystem should not pay ~40 MiB of resident
 * memory for code it never runs.
 */
export async function createDriver(config: Config, log?: Logger): Promise<StorageDriver> {
  const driver = config.storage.driver;
  switch (driver.kind) {
    case "filesystem":
      return new FilesystemDriver(driver.rootDirectory);
    case "inmemory":
      return new InMemoryDriver();
    case "s3": {
      const { S3Driver } = await import("../driver/s3/s3-driver.js");
      const { S3RequestLog } = await import("../driver/s3/s3-request-log.js");
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
        useragent: driver.userAgent,
        usedualstack: driver.useDualStack,
        accelerate: driver.accelerate,
      }, { requestLog: driver.logLevel === "off" ? undefined : new S3RequestLog(driver.logLevel, s3LogSink(log ?? createLogger(config.log))) });
    }
    case "azure": {
      const { AzureDriver } = await import("../driver/azure/azure-driver.js");
      const azure = new AzureDriver({
        accountname: driver.accountName,
        container: driver.container,
        credentials: await azureDriverCredentials(driver),
        realm: driver.realm,
        serviceurl: driver.serviceUrl,
        rootdirectory: driver.rootDirectory,
        copyRetry: { maxRetries: driver.maxRetries, retryDelayMs: driver.retryDelayMs },
      });
      await refuseUnusableContainer(azure, driver);
      return azure;
    }
    case "gcs": {
      const { GcsDriver } = await import("../driver/gcs/gcs-driver.js");
      return new GcsDriver({
        bucket: driver.bucket,
        serviceAccount: driver.serviceAccount,
        rootDirectory: driver.rootDirectory,
        chunkSize: driver.chunkSize,
        apiEndpoint: driver.apiEndpoint,
        userAgent: driver.userAgent,
        maxConcurrency: driver.maxConcurrency,
      });
    }
  }
}

/** storage.azure's credentials as the driver takes them; @azure/identity is loaded only for a token credential. */
async function azureDriverCredentials(config: AzureStorage): Promise<import("../driver/azure/azure-driver.js").AzureDriverOptions["credentials"]> {
  const credentials = config.credentials;
  switch (credentials.type) {
    case "shared_key":
    case "connection_string":
      return credentials;
    case "client_secret":
    case "default_credentials": {
      const { entraCredential } = await import("../driver/azure/entra-credential.js");
      return { type: "token", credential: entraCredential(credentials) };
    }
  }
}

/** How long start-up waits for the Azure service's answer about the container. */
const AZURE_PROBE_MS = 10_000;

/**
 * A container that does not exist, or a key the service refuses, stops berth at start with the
 * key to fix, rather than answering every request with 500. An unreachable service does not: it
 * says nothing about the configuration, and the health checks report it.
 */
async function refuseUnusableContainer(azure: import("../driver/azure/azure-driver.js").AzureDriver, config: AzureStorage): Promise<void> {
  let problem: Awaited<ReturnType<typeof azure.containerProblem>>;
  const credentials = config.credentials;
  try {
    problem = await azure.containerProblem(AbortSignal.timeout(AZURE_PROBE_MS));
  } catch (err) {
    if (credentials.type !== "client_secret" && credentials.type !== "default_credentials") return;
    // No token: a configuration problem, said without the secret.
    const { describeCredentialFailure } = await import("../driver/azure/entra-credential.js");
    const failure = describeCredentialFailure(err);
    if (failure === undefined) return;
    if (credentials.type === "client_secret") {
      throw new ConfigError("storage.azure.credentials", `${failure} for client ${JSON.stringify(credentials.clientId)} of tenant ${JSON.stringify(credentials.tenantId)}: check clientid, tenantid and secret`);
    }
    throw new ConfigError("storage.azure.credentials", `default_credentials: ${failure}`);
  }
  const service = azure.options.serviceUrl;
  if (problem === "container-not-found") {
    throw new ConfigError("storage.azure.container", `container ${JSON.stringify(config.container)} does not exist at ${service}; create it first (berth does not create containers)`);
  }
  if (problem === "authentication-failed") {
    if (credentials.type === "shared_key") {
      throw new ConfigError("storage.azure.accountkey", `${service} refused the key of account ${JSON.stringify(config.accountName)} (AuthenticationFailed): check accountname and accountkey`);
    }
    if (credentials.type === "connection_string") {
      throw new ConfigError("storage.azure.connectionstring", `${service} refused the connection string's key or SAS (AuthenticationFailed)`);
    }
    throw new ConfigError("storage.azure.credentials", `${service} refused the token of ${credentials.type} (AuthenticationFailed): check that the identity has a Storage Blob Data role on account ${JSON.stringify(config.accountName)}`);
  }
}

/** S3 request lines at info, where distribution's SDK lines appear whatever the log level (s3-request-log.ts). */
function s3LogSink(log: Logger): S3LogSink {
  const s3 = log.child({ component: "s3" });
  return (fields, message) => s3.info(fields, message);
}

/**
 * The driver behind middleware.storage (redirect, cloudfront: src/middleware/), or the driver itself
 * when none is configured; nothing of the middleware is loaded then.
 */
export async function createStorageMiddleware(config: Config, driver: StorageDriver, log: Logger): Promise<{ driver: StorageDriver; close(): void }> {
  if (config.middleware.storage.length === 0) return { driver, close: () => {} };
  const { applyStorageMiddleware } = await import("../middleware/storage-middleware.js");
  return applyStorageMiddleware(driver, config.middleware.storage, log);
}

/** The registry's blob descriptor cache; a redis one connects when the registry is opened. */
export async function createBlobDescriptorCache(config: Config, log: Logger, tracing?: Tracing): Promise<BlobDescriptorCache> {
  switch (config.storage.cache.blobDescriptor) {
    case "inmemory":
      return new InMemoryBlobDescriptorCache(config.storage.cache.blobDescriptorSize, !isWorker());
    case "redis": {
      // The loader guarantees the section and its address when the cache is redis.
      const redis = config.redis!;
      const [{ RedisBlobDescriptorCache }, { loadRedisTlsOptions }] = await Promise.all([
        import("../cache/redis-blob-descriptor-cache.js"),
        import("../cache/redis-tls.js"),
      ]);
      return new RedisBlobDescriptorCache({
        host: redis.host,
        port: redis.port,
        ...(redis.masterName === undefined ? {} : { sentinel: { masterName: redis.masterName, sentinels: redis.sentinels } }),
        ...(redis.cluster.length === 0 ? {} : { cluster: redis.cluster }),
        username: redis.username,
        password: redis.password,
        db: redis.db,
        tls: loadRedisTlsOptions(redis),
        dialTimeoutMs: redis.dialTimeoutMs,
        commandTimeoutMs: Math.max(redis.readTimeoutMs, redis.writeTimeoutMs),
        log,
        ...(tracing === undefined ? {} : { observer: tracing.redisObserver({ host: redis.host, port: redis.port, db: redis.db }) satisfies RedisCommandObserver }),
      });
    }
    case undefined:
      return new NoBlobDescriptorCache();
  }
}

/**
 * After garbage-collect deleted blobs: a shared (Redis) blob descriptor cache still describes them,
 * and every registry using it would go on answering that they exist. Forgets every descriptor
 * there. Resolves to a line for the operator, or undefined when no shared cache is configured;
 * rejects when the cache could not be cleared.
 */
export async function forgetSharedBlobDescriptors(config: Config, log: Logger): Promise<string | undefined> {
  if (config.storage.cache.blobDescriptor !== "redis") return undefined;
  const cache = (await createBlobDescriptorCache(config, log)) as RedisBlobDescriptorCache;
  try {
    // Long enough for a few connection attempts: Redis may be restarting.
    const deleted = await cache.forgetAll(Math.max(3 * config.redis!.dialTimeoutMs, 2_000));
    return `cleared the Redis blob descriptor cache at ${config.redis!.addr} (${deleted} keys)`;
  } finally {
    await cache.close();
  }
}

/** Who this process is: its lease's node id, and the hostname:port events name as their source. */
export interface ProcessIdentity {
  nodeId: string;
  sourceAddr: string;
}

/**
 * OpenTelemetry tracing when the OTEL_* environment asks for it (src/tracing/tracing-settings.ts),
 * or undefined: then nothing of OpenTelemetry is loaded, and no wrapper or interceptor installed.
 * A value berth cannot honour is a ConfigError naming the variable.
 */
export async function createTracing(env: NodeJS.ProcessEnv, log: Logger): Promise<Tracing | undefined> {
  const settings = readTracingSettings(env);
  if (settings === undefined) return undefined;
  const { startTracing } = await import("../tracing/tracing.js");
  return startTracing(settings, log);
}

/**
 * The registry kept in storage, behind the pull-through cache when the `proxy` section asks for
 * one, recording events when `notifications` lists endpoints. With `tracing`, Redis and upstream
 * requests are traced.
 */
export async function createRegistry(
  config: Config,
  driver: StorageDriver,
  log: Logger,
  identity: ProcessIdentity,
  tracing?: Tracing,
  gc?: OnlineGcNode,
): Promise<Registry> {
  const cache = await createBlobDescriptorCache(config, log, tracing);
  const local = new StorageRegistry({
    driver,
    cache,
    log,
    deleteEnabled: config.storage.deleteEnabled,
    readOnly: config.storage.readOnly,
    manifestChecks: [new LayerUrlPolicy(config.validation)],
    indexChildren: new IndexChildPolicy(config.validation.indexes),
    ...(config.storage.tagLookupConcurrency > 0 ? { tagLookupConcurrency: config.storage.tagLookupConcurrency } : {}),
  });
  let registry: Registry = local;
  if (config.proxy !== undefined) {
    const { createMirror } = await import("../proxy/mirror.js");
    registry = createMirror(local, driver, config.proxy, config.storage.readOnly, log, tracing?.upstreamObserver);
  }
  // Under notifications: an operation the collection refuses records no event.
  if (gc !== undefined) registry = gc.wrap(registry, cache);
  if (config.policy.repositoryClasses.length > 0) {
    const { RepositoryClassPolicyRegistry } = await import("../policy/repository-class-policy.js");
    registry = new RepositoryClassPolicyRegistry(registry, new Set(config.policy.repositoryClasses));
  }
  if (config.notifications !== undefined) {
    const [{ Notifier }, { NotifyingRegistry }] = await Promise.all([import("../notifications/notifier.js"), import("../notifications/notifying-registry.js")]);
    const notifier = new Notifier({
      config: config.notifications,
      driver,
      nodeId: identity.nodeId,
      sourceAddr: identity.sourceAddr,
      log,
      drainMs: effectiveDrainMs(config),
    });
    registry = new NotifyingRegistry(registry, notifier);
  }
  return registry;
}

/** Prometheus metrics when http.debug.prometheus.enabled (with a debug listener); prom-client is loaded only then. */
export async function createMetrics(config: Config): Promise<PrometheusMetrics | undefined> {
  if (!config.http.debug.prometheus.enabled) return undefined;
  const { PrometheusMetrics } = await import("../metrics/prometheus-metrics.js");
  return new PrometheusMetrics(config.http.debug.prometheus, isWorker());
}

/** What the debug listener serves: health always, metrics when enabled; other capabilities add theirs here. */
export function createDebugRoutes(config: Config, healthRoutes: DebugRoute[], metrics: PrometheusMetrics | undefined): DebugRoute[] {
  const routes = [...healthRoutes];
  if (metrics !== undefined) routes.push(metrics.route(config.http.debug.prometheus.path));
  return routes;
}

/** http.draintimeout, or 10 s when it is not set: how long a stopping process finishes its work. */
export function effectiveDrainMs(config: Config): number {
  return config.http.drainTimeoutMs > 0 ? config.http.drainTimeoutMs : 10_000;
}

export function serverSettings(config: Config): ServerSettings {
  return {
    baseURL: config.http.host?.replace(/\/+$/, ""),
    relativeURLs: config.http.relativeUrls,
    prefix: new PathPrefix(config.http.prefix),
    // On by default: blob GETs answer 307 to the driver's URL when it has one (S3: presigned).
    redirectsEnabled: !config.storage.redirectDisabled,
    headers: Object.entries(config.http.headers),
    catalogMaxEntries: config.catalog.maxEntries,
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
    case "azure":
      return `azure container ${driver.container} at ${driver.credentials.type === "connection_string" ? "the connection string's endpoint" : (driver.serviceUrl ?? `https://${driver.accountName}.blob.${driver.realm}`)}${driver.rootDirectory ? `, root ${driver.rootDirectory}` : ""}`;
    case "gcs":
      return `gcs bucket ${driver.bucket}${driver.apiEndpoint === undefined ? "" : ` at ${driver.apiEndpoint}`}${driver.rootDirectory ? `, root ${driver.rootDirectory}` : ""}`;
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
    case "htpasswd": {
      const { HtpasswdAccessController } = await import("../auth/htpasswd.js");
      return HtpasswdAccessController.open(auth, log);
    }
    case "token": {
      const { loadTokenAccessController } = await import("../auth/token.js");
      return loadTokenAccessController(auth, log);
    }
  }
}

/**
 * Online collection on a serving node, or undefined where nothing could race a collector: the
 * inmemory driver (one process, nothing shared) and read-only registries (they write nothing).
 */
export async function createOnlineGc(
  config: Config,
  driver: StorageDriver,
  nodeId: string,
  log: Logger,
  test: { timing?: GcTiming; graceMs?: number; hooks?: import("../gc/online/gc-hooks.js").GcHooks } = {},
): Promise<OnlineGcNode | undefined> {
  if (config.storage.driver.kind === "inmemory" || config.storage.readOnly) {
    if (config.storage.gc.enabled) log.warn(`storage.maintenance.gc.enabled is ignored: the registry is ${config.storage.readOnly ? "read-only" : "in memory"}`);
    return undefined;
  }
  const { OnlineGcNode } = await import("../gc/online/online-gc-node.js");
  const fromEnv = testTimingFromEnv(process.env);
  return new OnlineGcNode({
    driver,
    nodeId,
    config: config.storage.gc,
    timing: test.timing ?? fromEnv?.timing ?? DEFAULT_GC_TIMING,
    graceMs: test.graceMs ?? fromEnv?.graceMs,
    intervalMs: fromEnv?.intervalMs,
    hooks: test.hooks,
    log,
  });
}

/**
 * The TLS certificates when they come from an ACME CA (http.tls.letsencrypt), registered and read
 * back from the cache directory; undefined when http.tls names certificate files (or there is no
 * TLS). BERTH_TEST_ACME_RENEW_BEFORE_MS (berth's tests only, not a configuration key) renews that
 * long before expiry instead of autocert's policy, so a test sees a renewal in seconds.
 */
export async function createCertificateProvider(config: Config, log: Logger): Promise<import("../acme/acme-certificates.js").AcmeCertificates | undefined> {
  const tls = config.http.tls;
  if (tls?.letsEncrypt === undefined) return undefined;
  const { AcmeCertificates } = await import("../acme/acme-certificates.js");
  const { loadBaseTlsOptions } = await import("../server/tls-server.js");
  const renewBefore = Number(process.env["BERTH_TEST_ACME_RENEW_BEFORE_MS"] ?? "");
  return AcmeCertificates.start({
    config: tls.letsEncrypt,
    baseOptions: loadBaseTlsOptions(tls),
    log,
    ...(Number.isFinite(renewBefore) && renewBefore > 0 ? { renewal: { renewBeforeMs: renewBefore } } : {}),
  });
}

/**
 * The built-in web UI (src/ui/) unless `ui.enabled: false`: the paths it answers, and the guard that
 * refuses writes other sites' pages send through a logged-in browser. Loaded only when on.
 */
export async function createWebUi(
  config: Config,
  registry: Registry,
  driver: StorageDriver,
  access: AccessController,
): Promise<import("../ui/create-web-ui.js").WebUiParts | undefined> {
  if (!config.ui.enabled) return undefined;
  const { createWebUi: create } = await import("../ui/create-web-ui.js");
  return create(config, registry, driver, access);
}
