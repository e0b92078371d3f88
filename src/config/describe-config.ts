/**
 * The effective configuration under distribution's key names, secrets masked, for
 * `berth config check` to print as YAML or JSON.
 */
import { maskURLPassword } from "./build-notifications.js";
import { TLS12_CIPHER_SUITES } from "./build-tls.js";
import type { AzureStorage, Config, EndpointConfig, GcsStorage, StorageMiddlewareConfig, HealthConfig, NotificationsConfig, RedisConfig, S3Storage, UpstreamConfig } from "./config.js";
import { formatGoDuration } from "./go-duration.js";

/** What describeConfig prints instead of a secret. */
export const MASK = "********";
/** What describeConfig prints instead of each notification endpoint header's values. */
export const REDACTED_HEADER = "<redacted>";
/** What describeConfig prints for a notification endpoint's signing key, when one is set. */
export const SIGNING_KEY_SET = "<set>";

export function describeConfig(config: Config): Record<string, unknown> {
  const { log, storage, http } = config;
  const driver: Record<string, unknown> =
    storage.driver.kind === "filesystem"
      ? { filesystem: { rootdirectory: storage.driver.rootDirectory, ...(storage.driver.maxThreads === undefined ? {} : { maxthreads: storage.driver.maxThreads }) } }
      : storage.driver.kind === "s3"
        ? { s3: describeS3(storage.driver) }
        : storage.driver.kind === "azure"
          ? { azure: describeAzure(storage.driver) }
          : storage.driver.kind === "gcs"
            ? { gcs: describeGcs(storage.driver) }
            : { inmemory: {} };
  const cache: Record<string, unknown> = {};
  if (storage.cache.blobDescriptor !== undefined) {
    cache["blobdescriptor"] = storage.cache.blobDescriptor;
    cache["blobdescriptorsize"] = storage.cache.blobDescriptorSize;
  }
  const httpOut: Record<string, unknown> = { addr: http.addr, net: http.net };
  if (http.host !== undefined) httpOut["host"] = http.host;
  Object.assign(httpOut, {
    prefix: http.prefix,
    secret: MASK,
    headers: Object.fromEntries(Object.entries(http.headers).map(([k, v]) => [k, [...v]])),
    relativeurls: http.relativeUrls,
    draintimeout: formatGoDuration(http.drainTimeoutMs),
    timeout: {
      readheader: formatGoDuration(http.timeouts.readHeaderMs),
      idle: formatGoDuration(http.timeouts.idleMs),
      inactivity: formatGoDuration(http.timeouts.inactivityMs),
    },
  });
  if (http.debug.addr !== undefined) {
    const { enabled, path, repositories, gcDurations } = http.debug.prometheus;
    httpOut["debug"] = { addr: http.debug.addr, prometheus: { enabled, path, repositories, gcdurations: gcDurations } };
  }
  return {
    version: config.version,
    log: {
      level: log.level,
      formatter: log.formatter,
      fields: { ...log.fields },
      accesslog: { disabled: log.accessLogDisabled },
      reportcaller: log.reportCaller,
    },
    storage: {
      ...driver,
      delete: { enabled: storage.deleteEnabled },
      redirect: { disable: storage.redirectDisabled },
      maintenance: {
        uploadpurging: {
          enabled: storage.uploadPurging.enabled,
          age: formatGoDuration(storage.uploadPurging.ageMs),
          interval: formatGoDuration(storage.uploadPurging.intervalMs),
          dryrun: storage.uploadPurging.dryRun,
        },
        gc: {
          enabled: storage.gc.enabled,
          interval: formatGoDuration(storage.gc.intervalMs),
          dryrun: storage.gc.dryRun,
          deleteuntagged: storage.gc.deleteUntagged,
          graceperiod: formatGoDuration(storage.gc.graceMs),
          maxcpu: storage.gc.maxCpu,
        },
        readonly: { enabled: storage.readOnly },
      },
      cache,
      ...(storage.tagLookupConcurrency === 0 ? {} : { tag: { concurrencylimit: storage.tagLookupConcurrency } }),
    },
    http: { ...httpOut, ...describeTls(http) },
    ...(config.auth === undefined ? {} : { auth: describeAuth(config.auth) }),
    ...(config.redis === undefined ? {} : { redis: describeRedis(config.redis) }),
    ...(config.proxy === undefined ? {} : { proxy: { upstreams: config.proxy.upstreams.map(describeUpstream) } }),
    ...(config.notifications === undefined ? {} : { notifications: describeNotifications(config.notifications) }),
    ...(config.health === undefined ? {} : { health: describeHealth(config.health) }),
    ...(config.policy.repositoryClasses.length === 0 ? {} : { policy: { repository: { classes: [...config.policy.repositoryClasses] } } }),
    validation: {
      disabled: !config.validation.enabled,
      manifests: {
        urls: { allow: [...config.validation.allow], deny: [...config.validation.deny] },
        indexes: { platforms: config.validation.indexes.platforms, platformlist: config.validation.indexes.platformList.map((p) => ({ ...p })) },
      },
    },
    ...(config.middleware.storage.length === 0 ? {} : { middleware: { storage: config.middleware.storage.map(describeStorageMiddleware) } }),
    ...(config.catalog.maxEntries === undefined ? {} : { catalog: { maxentries: config.catalog.maxEntries } }),
    ui: { enabled: config.ui.enabled },
  };
}

/** The private key is a file name, not the key: shown as configured (absolute). */
function describeStorageMiddleware(entry: StorageMiddlewareConfig): Record<string, unknown> {
  if (entry.name === "redirect") return { name: "redirect", options: { baseurl: entry.baseURL } };
  const options: Record<string, unknown> = {
    baseurl: entry.baseURL,
    privatekey: entry.privateKey,
    keypairid: entry.keyPairId,
    duration: formatGoDuration(entry.durationMs),
    ipfilteredby: entry.ipFilteredBy,
  };
  if (entry.ipFilteredBy !== "none") Object.assign(options, { updatefrequency: formatGoDuration(entry.updateFrequencyMs), iprangesurl: entry.ipRangesURL });
  if (entry.ipFilteredBy === "awsregion") options["awsregion"] = entry.awsRegions.join(",");
  return { name: "cloudfront", options };
}

/** Header values of HTTP checks never appear (they are often credentials), nor a password in a URI. */
function describeHealth(health: HealthConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (health.storageDriver !== undefined) {
    out["storagedriver"] = { enabled: true, interval: formatGoDuration(health.storageDriver.intervalMs), threshold: health.storageDriver.threshold };
  }
  if (health.files.length > 0) {
    out["file"] = health.files.map((check) => ({ file: check.file, interval: formatGoDuration(check.intervalMs), threshold: check.threshold }));
  }
  if (health.http.length > 0) {
    out["http"] = health.http.map((check) => ({
      uri: maskURLPassword(check.uri),
      headers: Object.fromEntries(Object.keys(check.headers).map((name) => [name, REDACTED_HEADER])),
      statuscode: check.statusCode,
      timeout: formatGoDuration(check.timeoutMs),
      interval: formatGoDuration(check.intervalMs),
      threshold: check.threshold,
    }));
  }
  if (health.tcp.length > 0) {
    out["tcp"] = health.tcp.map((check) => ({
      addr: check.addr,
      timeout: formatGoDuration(check.timeoutMs),
      interval: formatGoDuration(check.intervalMs),
      threshold: check.threshold,
    }));
  }
  return out;
}

/** Every secret (account key, client secret, connection string) masked. */
function describeAzure(azure: AzureStorage): Record<string, unknown> {
  const credentials = azure.credentials;
  const out: Record<string, unknown> = { accountname: azure.accountName };
  if (credentials.type === "shared_key") out["accountkey"] = MASK;
  if (credentials.type === "connection_string") out["connectionstring"] = MASK;
  Object.assign(out, { container: azure.container, max_retries: azure.maxRetries, retry_delay: `${azure.retryDelayMs}ms` });
  if (credentials.type === "connection_string") return { ...out, rootdirectory: azure.rootDirectory };
  Object.assign(out, {
    realm: azure.realm,
    ...(azure.serviceUrl === undefined ? {} : { serviceurl: azure.serviceUrl }),
    rootdirectory: azure.rootDirectory,
  });
  switch (credentials.type) {
    case "shared_key":
      return { ...out, credentials: { type: "shared_key" } };
    case "client_secret":
      return {
        ...out,
        credentials: {
          type: credentials.type,
          tenantid: credentials.tenantId,
          clientid: credentials.clientId,
          secret: MASK,
          ...(credentials.authorityHost === undefined ? {} : { authorityhost: credentials.authorityHost }),
        },
      };
    case "default_credentials":
      return { ...out, credentials: { type: credentials.type, ...(credentials.authorityHost === undefined ? {} : { authorityhost: credentials.authorityHost }) } };
  }
}

function describeS3(s3: S3Storage): Record<string, unknown> {
  const out: Record<string, unknown> = { bucket: s3.bucket, region: s3.region };
  if (s3.regionEndpoint !== undefined) out["regionendpoint"] = s3.regionEndpoint;
  if (s3.accessKey !== undefined) Object.assign(out, { accesskey: s3.accessKey, secretkey: MASK });
  if (s3.sessionToken !== undefined) out["sessiontoken"] = MASK;
  Object.assign(out, {
    rootdirectory: s3.rootDirectory,
    forcepathstyle: s3.forcePathStyle,
    encrypt: s3.encrypt,
    ...(s3.keyId === undefined ? {} : { keyid: s3.keyId }),
    secure: s3.secure,
    skipverify: s3.skipVerify,
    chunksize: s3.chunkSize,
    multipartcopychunksize: s3.multipartCopyChunkSize,
    multipartcopymaxconcurrency: s3.multipartCopyMaxConcurrency,
    multipartcopythresholdsize: s3.multipartCopyThresholdSize,
    storageclass: s3.storageClass,
    ...(s3.objectAcl === undefined ? {} : { objectacl: s3.objectAcl }),
    ...(s3.userAgent === undefined ? {} : { useragent: s3.userAgent }),
    usedualstack: s3.useDualStack,
    accelerate: s3.accelerate,
    loglevel: s3.logLevel,
  });
  return out;
}

/** The key file's path is shown; an inline key only by its e-mail, the private key masked. */
function describeGcs(gcs: GcsStorage): Record<string, unknown> {
  const out: Record<string, unknown> = { bucket: gcs.bucket };
  if (gcs.keyFile !== undefined) out["keyfile"] = gcs.keyFile;
  else if (gcs.serviceAccount !== undefined) out["credentials"] = { type: "service_account", client_email: gcs.serviceAccount.client_email, private_key: MASK };
  Object.assign(out, { rootdirectory: gcs.rootDirectory, chunksize: gcs.chunkSize });
  if (gcs.apiEndpoint !== undefined) out["apiendpoint"] = gcs.apiEndpoint;
  if (gcs.userAgent !== undefined) out["useragent"] = gcs.userAgent;
  out["maxconcurrency"] = gcs.maxConcurrency;
  return out;
}

/** Every upstream in the list form, the shorthand's one included (its prefix is empty). */
function describeUpstream(upstream: UpstreamConfig): Record<string, unknown> {
  return {
    prefix: upstream.prefix,
    remoteurl: upstream.remoteURL,
    ...(upstream.username === undefined ? {} : { username: upstream.username, password: MASK }),
    ttl: formatGoDuration(upstream.ttlMs),
    namespaces: upstream.namespaces,
    libraryprefix: upstream.libraryPrefix,
    ...(upstream.maxStalenessMs === undefined ? {} : { maxstaleness: formatGoDuration(upstream.maxStalenessMs) }),
    ...(upstream.maxSizeBytes === undefined ? {} : { maxsize: upstream.maxSizeBytes }),
    connecttimeout: formatGoDuration(upstream.connectTimeoutMs),
    readtimeout: formatGoDuration(upstream.readTimeoutMs),
  };
}

/** Enabled endpoints only. Header values and the signing key never appear, nor a password in the URL. */
function describeNotifications(notifications: NotificationsConfig): Record<string, unknown> {
  return {
    events: { includereferences: notifications.includeReferences },
    endpoints: notifications.endpoints.map(describeEndpoint),
  };
}

function describeEndpoint(endpoint: EndpointConfig): Record<string, unknown> {
  return {
    name: endpoint.name,
    url: maskURLPassword(endpoint.url),
    headers: Object.fromEntries(Object.keys(endpoint.headers).map((name) => [name, REDACTED_HEADER])),
    timeout: formatGoDuration(endpoint.timeoutMs),
    threshold: endpoint.threshold,
    backoff: formatGoDuration(endpoint.backoffMs),
    ignore: { mediatypes: [...endpoint.ignoredMediaTypes], actions: [...endpoint.ignoredActions], headpulls: endpoint.ignoreHeadPulls },
    repositories: [...endpoint.repositories],
    format: endpoint.format,
    ...(endpoint.signingKey === undefined ? {} : { signingkey: SIGNING_KEY_SET }),
    maxevents: endpoint.maxEvents,
    maxbatch: endpoint.maxBatch,
    maxage: formatGoDuration(endpoint.maxAgeMs),
  };
}

function describeRedis(redis: RedisConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (redis.masterName !== undefined) {
    out["mastername"] = redis.masterName;
    out["addrs"] = redis.sentinels.map(({ host, port }) => `${host.includes(":") ? `[${host}]` : host}:${port}`);
  } else if (redis.cluster.length > 0) {
    out["addrs"] = redis.cluster.map(({ host, port }) => `${host.includes(":") ? `[${host}]` : host}:${port}`);
  } else if (redis.addr !== undefined) out["addr"] = redis.addr;
  if (redis.username !== undefined) out["username"] = redis.username;
  if (redis.password !== undefined) out["password"] = MASK;
  Object.assign(out, {
    db: redis.db,
    dialtimeout: formatGoDuration(redis.dialTimeoutMs),
    readtimeout: formatGoDuration(redis.readTimeoutMs),
    writetimeout: formatGoDuration(redis.writeTimeoutMs),
    pool: { maxidle: redis.pool.maxIdle, maxactive: redis.pool.maxActive, idletimeout: formatGoDuration(redis.pool.idleTimeoutMs) },
    tls: {
      enabled: redis.tls,
      ...(redis.tlsFiles.certificate === undefined ? {} : { certificate: redis.tlsFiles.certificate }),
      ...(redis.tlsFiles.key === undefined ? {} : { key: redis.tlsFiles.key }),
      ...(redis.tlsFiles.clientCAs.length === 0 ? {} : { [redis.tlsFiles.caKey]: redis.tlsFiles.clientCAs }),
    },
  });
  return out;
}

function describeTls(http: Config["http"]): Record<string, unknown> {
  const out: Record<string, unknown> = { http2: { disabled: http.http2Disabled }, h2c: { enabled: http.h2c } };
  const tls = http.tls;
  if (tls !== undefined) {
    const le = tls.letsEncrypt;
    out["tls"] = {
      ...(le === undefined
        ? { certificate: tls.certificate, key: tls.key }
        : { letsencrypt: { cachefile: le.cacheDirectory, ...(le.email === undefined ? {} : { email: le.email }), hosts: [...le.hosts], directoryurl: le.directoryURL } }),
      clientcas: [...tls.clientCAs],
      minimumtls: tls.minimumVersion === "TLSv1.3" ? "tls1.3" : "tls1.2",
      ciphersuites: tls.cipherSuites.map((openssl) => Object.entries(TLS12_CIPHER_SUITES).find(([, v]) => v === openssl)?.[0] ?? openssl),
    };
  }
  return out;
}

function describeAuth(auth: Config["auth"]): Record<string, unknown> | undefined {
  switch (auth?.kind) {
    case undefined:
      return undefined;
    case "htpasswd":
      return { htpasswd: { realm: auth.realm, path: auth.path } };
    case "silly":
      return { silly: { realm: auth.realm, service: auth.service } };
    case "token": {
      const token: Record<string, unknown> = { realm: auth.realm, service: auth.service, issuer: auth.issuer };
      if (auth.rootCertBundle !== undefined) token["rootcertbundle"] = auth.rootCertBundle;
      if (auth.jwks !== undefined) token["jwks"] = auth.jwks;
      Object.assign(token, { signingalgorithms: [...auth.signingAlgorithms], autoredirect: auth.autoRedirect });
      if (auth.autoRedirect) token["autoredirectpath"] = auth.autoRedirectPath;
      return { token };
    }
  }
}
