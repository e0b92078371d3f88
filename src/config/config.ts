import type { S3LogLevel } from "../driver/s3/s3-request-log.js";
/**
 * The validated, typed configuration berth runs on. Built from distribution's config.yml keys plus
 * REGISTRY_* environment overrides by `loadConfig` (load-config.ts); every field here is already
 * checked, so the rest of berth never re-validates configuration.
 */
export interface Config {
  version: string;
  log: {
    level: "error" | "warn" | "info" | "debug";
    formatter: "text" | "json" | "logstash";
    accessLogDisabled: boolean;
    fields: Record<string, string>;
    /** log.reportcaller: lines name the function and file that logged them. */
    reportCaller: boolean;
  };
  storage: {
    driver: FilesystemStorage | InMemoryStorage | S3Storage | AzureStorage | GcsStorage;
    deleteEnabled: boolean;
    redirectDisabled: boolean;
    uploadPurging: {
      enabled: boolean;
      /** Milliseconds. Uploads older than this are removed. */
      ageMs: number;
      /** Milliseconds between purges. */
      intervalMs: number;
      dryRun: boolean;
    };
    /** Online garbage collection (berth's storage.maintenance.gc; src/gc/online/). */
    gc: OnlineGcConfig;
    readOnly: boolean;
    /** storage.tag.concurrencylimit: tag links read at once to find a deleted manifest's tags; 0 keeps distribution's default (CPUs). */
    tagLookupConcurrency: number;
    cache: { blobDescriptor: "inmemory" | "redis" | undefined; blobDescriptorSize: number };
  };
  http: {
    /** host:port or :port as distribution writes it; with net unix, the socket file's path. */
    addr: string;
    /** http.net: a TCP port, or a Unix socket at `addr`. */
    net: "tcp" | "unix";
    /** Parsed from addr. Empty host means all interfaces. */
    listenHost: string;
    listenPort: number;
    /** Base URL used to build absolute Location headers; undefined means derive from the request. */
    host: string | undefined;
    /**
     * http.prefix: where the API, the web UI and the main port's /debug/ routes are served, "/"
     * or "/<path>/" (normalised); every URL berth generates carries it.
     */
    prefix: string;
    /** http.h2c.enabled: HTTP/2 with prior knowledge beside HTTP/1.1 on the plain (non-TLS) listener. */
    h2c: boolean;
    /** HMAC key for upload state tokens. Random per process when not configured (single node only). */
    secret: string;
    secretGenerated: boolean;
    headers: Record<string, string[]>;
    relativeUrls: boolean;
    drainTimeoutMs: number;
    /** Connection timeouts, milliseconds (http.timeout.*, a berth extension). */
    timeouts: HttpTimeouts;
    /** HTTPS (http.tls); undefined serves plain HTTP. */
    tls: TlsConfig | undefined;
    /** http.http2.disabled: over TLS, offer HTTP/1.1 only. */
    http2Disabled: boolean;
    /** http.debug: the debug listener (metrics, health) beside the API's. */
    debug: DebugConfig;
  };
  /** The `auth` section's access controller; undefined is an open registry. */
  auth: AuthConfig | undefined;
  /** The `redis` section (the redis blob descriptor cache's server); undefined when absent. */
  redis: RedisConfig | undefined;
  /** The `proxy` section: the pull-through cache's upstreams; undefined for an ordinary registry. */
  proxy: ProxyConfig | undefined;
  /** The `notifications` section: webhook endpoints for registry events; undefined when none is enabled. */
  notifications: NotificationsConfig | undefined;
  /** The `health` section's checks; undefined when it configures none (nothing polls, nothing drains). */
  health: HealthConfig | undefined;
  /** policy.repository.classes: the manifest classes pushes may have; empty for any. */
  policy: { repositoryClasses: string[] };
  /** validation: the rules for URLs of layers in pushed manifests (src/validation/). */
  validation: {
    /** On unless validation.disabled: then only the URL syntax is checked. */
    enabled: boolean;
    /** Go regular expressions, each checked to compile. */
    allow: string[];
    deny: string[];
    /** validation.manifests.indexes (distribution 3): which children of a pushed index must be in the repository. */
    indexes: IndexValidation;
  };
  /** middleware.storage: wrappers of the driver's redirect URLs, innermost first. */
  middleware: { storage: StorageMiddlewareConfig[] };
  catalog: {
    /**
     * catalog.maxentries: a larger `n` on /v2/_catalog is refused (PAGINATION_NUMBER_INVALID) and a
     * page without `n` holds at most this many; undefined keeps distribution 2.8's unbounded `n`.
     */
    maxEntries: number | undefined;
  };
  /** The built-in web interface (ui.enabled, a berth extension; src/ui/). */
  ui: { enabled: boolean };
}

/** One entry of middleware.storage (src/middleware/). */
export type StorageMiddlewareConfig = RedirectMiddlewareConfig | CloudFrontMiddlewareConfig;

/** distribution's `redirect`: blob downloads go to baseURL + the storage path. */
export interface RedirectMiddlewareConfig {
  name: "redirect";
  /** Absolute, with a scheme and a host, no query or fragment. */
  baseURL: string;
}

/** distribution's `cloudfront`: blob downloads go to signed CloudFront URLs for the S3 key. */
export interface CloudFrontMiddlewareConfig {
  name: "cloudfront";
  /** http(s), ending with "/". */
  baseURL: string;
  /** Absolute path of the PEM RSA private key; read when the server starts. */
  privateKey: string;
  keyPairId: string;
  /** How long a signed URL is valid. */
  durationMs: number;
  /** Which clients get the storage's own URL instead: none, any AWS address, AWS addresses of `awsRegions`. */
  ipFilteredBy: "none" | "aws" | "awsregion";
  /** Lower-case; non-empty only with awsregion. */
  awsRegions: string[];
  updateFrequencyMs: number;
  ipRangesURL: string;
}

/**
 * health: distribution's periodic checks. A check is down after `threshold` consecutive failures
 * (1 when unset) and up again at its first success. Durations in milliseconds, all positive.
 */
export interface HealthConfig {
  /** health.storagedriver, when enabled: stat "/" on the storage driver. */
  storageDriver: { intervalMs: number; threshold: number } | undefined;
  files: FileCheckConfig[];
  http: HttpCheckConfig[];
  tcp: TcpCheckConfig[];
}

/** Down while the file exists (an operator takes a node out of service by creating it). */
export interface FileCheckConfig {
  /** As configured: the check's name on /debug/health, as distribution names it. */
  file: string;
  /** Absolute. */
  path: string;
  intervalMs: number;
  threshold: number;
}

/** A HEAD request that must answer `statusCode`. */
export interface HttpCheckConfig {
  /** As configured: the check's name. */
  uri: string;
  /** The URI's host, resolved at start so a typo fails there rather than as a down check. */
  hostname: string;
  /** Values are secrets (Authorization): never logged or shown. */
  headers: Record<string, string[]>;
  statusCode: number;
  timeoutMs: number;
  intervalMs: number;
  threshold: number;
}

/** A TCP connection that must open. */
export interface TcpCheckConfig {
  /** As configured: the check's name. */
  addr: string;
  host: string;
  port: number;
  timeoutMs: number;
  intervalMs: number;
  threshold: number;
}

/** http.debug. */
export interface DebugConfig {
  /** http.debug.addr as configured; undefined: no debug listener. */
  addr: string | undefined;
  /** Parsed from addr (empty host: all interfaces). */
  listenHost: string;
  listenPort: number;
  prometheus: {
    /** Metrics are collected and served; only true with a debug listener. */
    enabled: boolean;
    /** The page's path on the debug listener (default /metrics). */
    path: string;
    /** berth: repositories given their own label in the per-repository byte counters (top N); 0 for none. */
    repositories: number;
    /** berth: nodejs_gc_duration_seconds, off by default (Node's GC observer costs ~10% of manifest-GET throughput). */
    gcDurations: boolean;
  };
}

/** notifications: distribution's endpoints and `events.includereferences`, plus berth's keys. */
export interface NotificationsConfig {
  /** Enabled endpoints only (`disabled: true` ones are dropped at load), names unique. */
  endpoints: EndpointConfig[];
  /** notifications.events.includereferences: manifest events list the descriptors they refer to. */
  includeReferences: boolean;
}

export type EventAction = "push" | "pull" | "mount" | "delete";

/** How an endpoint's envelopes are written. */
export type EventFormat =
  /** distribution 2.x: application/vnd.docker.distribution.events.v1+json (the default). */
  | "v1"
  /** distribution 3.x: application/vnd.docker.distribution.events.v2+json (OCI descriptor field order). */
  | "v2"
  /** CloudEvents 1.0, one event per request in structured mode (application/cloudevents+json). */
  | "cloudevents";

export interface EndpointConfig {
  /** Unique among the endpoints: names the endpoint's queue in storage, its logs and its status. */
  name: string;
  /** http: or https: URL. */
  url: string;
  /** Extra request headers; values are secrets (never logged or shown). */
  headers: Record<string, string[]>;
  /** One delivery attempt, connect to last response byte. Default 1 s. */
  timeoutMs: number;
  /** Consecutive failures after which each retry waits `backoffMs`. Default 10. */
  threshold: number;
  /** Default 1 s. */
  backoffMs: number;
  /** Events whose target media type is one of these are not sent (ignoredmediatypes + ignore.mediatypes). */
  ignoredMediaTypes: string[];
  /** ignore.actions. */
  ignoredActions: EventAction[];
  /** berth: only events of repositories matching one of these globs (`*` within a path component, `**` across); empty: all. */
  repositories: string[];
  /** berth: no pull events for HEAD requests (clients probing whether a blob or manifest exists). */
  ignoreHeadPulls: boolean;
  format: EventFormat;
  /** berth: HMAC-SHA256 key; each request carries `X-Berth-Signature-256: sha256=<hex>` of its body. */
  signingKey: string | undefined;
  /** berth: most events kept for this endpoint; past it the oldest are dropped. Default 100,000. */
  maxEvents: number;
  /**
   * berth: most events in one request once 10 wait for this endpoint or they arrive at 100 a second
   * (distribution's envelope holds "one or more events"). Default 100; 1 sends one per request.
   */
  maxBatch: number;
  /** berth: events older than this are dropped undelivered. Default 7 days. */
  maxAgeMs: number;
}

/**
 * proxy: distribution's keys (remoteurl, username, password, ttl) as the shorthand for one
 * upstream serving every name, plus berth's `upstreams` list, each serving a repository prefix.
 */
export interface ProxyConfig {
  /** Longest prefix first, so the first whose prefix matches a name is the one that serves it. */
  upstreams: UpstreamConfig[];
}

export interface UpstreamConfig {
  /** Repository names under `<prefix>/` are mirrored from this upstream; "" serves every name. */
  prefix: string;
  /** Base URL without a trailing slash, "https://registry-1.docker.io". */
  remoteURL: string;
  username: string | undefined;
  password: string | undefined;
  /** Milliseconds since the last pull after which cached content is removed; 0 keeps it forever. */
  ttlMs: number;
  /** containerd's `?ns=` values this upstream answers (registry hosts, "docker.io"). */
  namespaces: string[];
  /** One-component names reach the upstream as `library/<name>` (Docker Hub's official images). */
  libraryPrefix: boolean;
  /**
   * How long after the last successful revalidation a tag may still be served from the cache
   * while the upstream fails; undefined: as long as it is cached.
   */
  maxStalenessMs: number | undefined;
  /** Bytes of blobs kept for this upstream; the least recently pulled go first when over it. */
  maxSizeBytes: number | undefined;
  /** Establishing a connection (and TLS) with the upstream. */
  connectTimeoutMs: number;
  /** Waiting for response headers, or for the next bytes of a body. */
  readTimeoutMs: number;
}

/**
 * redis: distribution 2.8's keys (addr, password, db, dialtimeout, readtimeout, writetimeout,
 * pool.*, tls.enabled) plus 3.x's (go-redis UniversalOptions): username, addrs (with mastername:
 * Sentinel; several without: Cluster), and tls.certificate, key, clientcas. Durations in milliseconds.
 */
export interface RedisConfig {
  /** host:port as configured, or the sentinels' or cluster nodes' joined by commas; undefined only when no cache uses Redis. */
  addr: string | undefined;
  /** The server (or, with masterName, the first sentinel). */
  host: string;
  port: number;
  /** Sentinel's name for the master set (redis.mastername); undefined: addr is the server itself. */
  masterName: string | undefined;
  /** With masterName: every sentinel, in the configured order (redis.addrs). */
  sentinels: Array<{ host: string; port: number }>;
  /** Redis Cluster (several redis.addrs, no masterName): the nodes asked for the slot map; else empty. */
  cluster: Array<{ host: string; port: number }>;
  username: string | undefined;
  password: string | undefined;
  db: number;
  dialTimeoutMs: number;
  readTimeoutMs: number;
  writeTimeoutMs: number;
  /** TLS on: tls.enabled, or implied by any of the files below (as go-redis does once given a TLS config). */
  tls: boolean;
  /** Absolute paths, read when berth starts (src/cache/redis-tls.ts). */
  tlsFiles: RedisTlsFiles;
  /** Accepted for distribution's configs; berth multiplexes one connection, so they bound nothing. */
  pool: { maxIdle: number; maxActive: number; idleTimeoutMs: number };
}

/** redis.tls.certificate and key (a client certificate) and clientcas (CAs the server's certificate must chain to). */
export interface RedisTlsFiles {
  certificate: string | undefined;
  key: string | undefined;
  /** The CAs the server's certificate must chain to, from `rootcas` or `clientcas` (named by `caKey`). */
  clientCAs: string[];
  caKey: "rootcas" | "clientcas";
}

/** http.tls. Paths are absolute; the files are read when the server starts. */
export interface TlsConfig {
  /** "" when the certificates come from letsEncrypt. */
  certificate: string;
  /** "" when the certificates come from letsEncrypt. */
  key: string;
  /** http.tls.letsencrypt: certificates from an ACME CA instead of certificate and key (src/acme/). */
  letsEncrypt?: LetsEncryptConfig;
  /** CA bundles client certificates must chain to (mutual TLS); empty: no client certificates. */
  clientCAs: string[];
  minimumVersion: "TLSv1.2" | "TLSv1.3";
  /** OpenSSL names of the TLS 1.2 suites offered (from distribution's Go names); empty: the default list. */
  cipherSuites: string[];
}

/** http.tls.letsencrypt, distribution 3's keys. */
export interface LetsEncryptConfig {
  /** cachefile: a directory in Go autocert's layout (absolute path). */
  cacheDirectory: string;
  /** email: the account's contact, if any. */
  email: string | undefined;
  /** hosts: the only server names certificates are ordered for (lower case, ASCII). */
  hosts: string[];
  /** directoryurl: the CA's ACME directory (default Let's Encrypt production). */
  directoryURL: string;
}

export type AuthConfig = HtpasswdAuthConfig | TokenAuthConfig | SillyAuthConfig;

export interface HtpasswdAuthConfig {
  kind: "htpasswd";
  realm: string;
  /** Absolute path of the htpasswd file. */
  path: string;
}

export interface TokenAuthConfig {
  kind: "token";
  realm: string;
  service: string;
  issuer: string;
  /** Absolute paths; at least one of the two is set. */
  rootCertBundle: string | undefined;
  jwks: string | undefined;
  /** JWS algorithms tokens may be signed with. */
  signingAlgorithms: TokenSigningAlgorithm[];
  autoRedirect: boolean;
  autoRedirectPath: string;
}

export interface SillyAuthConfig {
  kind: "silly";
  realm: string;
  service: string;
}

/** How long the server waits on a client before closing its connection. All greater than zero. */
export interface HttpTimeouts {
  /** From the first byte of a request until its last header line (slowloris). */
  readHeaderMs: number;
  /** A kept-alive connection waiting for its next request. */
  idleMs: number;
  /** No byte moving either way while a request is in progress (a stalled upload or download). */
  inactivityMs: number;
}

export interface FilesystemStorage {
  kind: "filesystem";
  rootDirectory: string;
  /** storage.filesystem.maxthreads when set: met by libuv's thread pool (build-storage.ts). */
  maxThreads?: number;
}

export interface InMemoryStorage {
  kind: "inmemory";
}

/** storage.s3: distribution's keys, defaults applied. Sizes in bytes. */
export interface S3Storage {
  kind: "s3";
  bucket: string;
  region: string;
  /** Endpoint of an S3-compatible server; the AWS endpoint of `region` when undefined. */
  regionEndpoint: string | undefined;
  /** undefined: credentials from the AWS SDK's default chain (environment, profile, instance role). */
  accessKey: string | undefined;
  secretKey: string | undefined;
  sessionToken: string | undefined;
  /** Key prefix, as distribution: "/registry" stores under "registry/docker/registry/v2/…". */
  rootDirectory: string;
  forcePathStyle: boolean;
  encrypt: boolean;
  keyId: string | undefined;
  secure: boolean;
  skipVerify: boolean;
  chunkSize: number;
  multipartCopyChunkSize: number;
  multipartCopyMaxConcurrency: number;
  multipartCopyThresholdSize: number;
  /** "NONE" sends no storage class. */
  storageClass: string;
  objectAcl: string | undefined;
  /** Appended to berth's User-Agent on S3 requests. */
  userAgent: string | undefined;
  useDualStack: boolean;
  accelerate: boolean;
  /** "off", or which S3 request lines to log (src/driver/s3/s3-request-log.ts). */
  logLevel: S3LogLevel;
}

/** storage.azure: distribution's keys, defaults applied. */
/**
 * storage.azure's credentials. shared_key signs with the account key; client_secret and
 * default_credentials (distribution 3's Azure AD types) get tokens from Entra ID (authorityHost:
 * berth's key for a sovereign cloud or another token service); connectionstring carries an
 * endpoint and a key or SAS of its own.
 */
export type AzureCredentialsConfig =
  | { type: "shared_key"; accountKey: string }
  | { type: "client_secret"; tenantId: string; clientId: string; secret: string; authorityHost: string | undefined }
  | { type: "default_credentials"; authorityHost: string | undefined }
  | { type: "connection_string"; connectionString: string };

export interface AzureStorage {
  kind: "azure";
  accountName: string;
  /** How requests are signed: credentials.type, or a connection string. */
  credentials: AzureCredentialsConfig;
  container: string;
  realm: string;
  /** The blob service's URL; `https://<accountName>.blob.<realm>` when undefined. */
  serviceUrl: string | undefined;
  /** Name prefix, as distribution: "/registry" stores under "registry/docker/registry/v2/…". */
  rootDirectory: string;
  /** max_retries: checks of a pending server-side copy before it is aborted; -1 aborts it at once. */
  maxRetries: number;
  /** retry_delay in ms: the n-th wait for a pending copy is n times this. */
  retryDelayMs: number;
}

/** A Google service account key, as in its JSON key file: what signs redirect URLs and authenticates. */
export interface GcsServiceAccount {
  client_email: string;
  private_key: string;
  /** The other fields of the key (project_id, private_key_id, token_uri…), passed to the SDK as they are. */
  [field: string]: string;
}

/** storage.gcs: distribution's keys, defaults applied. Sizes in bytes. */
export interface GcsStorage {
  kind: "gcs";
  bucket: string;
  /** The key file named by `keyfile`, or the inline `credentials`; undefined: Application Default Credentials. */
  serviceAccount: GcsServiceAccount | undefined;
  /** Where the service account came from, for `berth config check`. */
  keyFile: string | undefined;
  /** Object name prefix, as distribution: "/registry" stores under "registry/docker/registry/v2/…". */
  rootDirectory: string;
  /** Bytes sent to a resumable upload session at a time: a positive multiple of 256 KiB. */
  chunkSize: number;
  /** The JSON API's base URL (an emulator); undefined: Google's. Requests to it carry no credentials. */
  apiEndpoint: string | undefined;
  /** Put before the SDK's User-Agent (distribution 3's `useragent`). */
  userAgent: string | undefined;
  /** Requests to GCS at once, at least 25 (distribution 3's `maxconcurrency`, default 50). */
  maxConcurrency: number;
}

/** Asymmetric JWS algorithms token auth verifies with public keys; HMAC (HS*) never applies there. */
export const TOKEN_SIGNING_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;
export type TokenSigningAlgorithm = (typeof TOKEN_SIGNING_ALGORITHMS)[number];

/** A configuration problem, naming the key. Start-up prints it and exits with status 1. */
export class ConfigError extends Error {
  constructor(readonly key: string, problem: string) {
    super(`configuration: ${key}: ${problem}`);
    this.name = "ConfigError";
  }
}

/** storage.maintenance.gc: collections this registry runs while it serves (docs/garbage-collection.md). */
export interface OnlineGcConfig {
  /** Whether this node runs collections on a schedule. Every writable node takes part in one either way. */
  enabled: boolean;
  /** Milliseconds between the end of one scheduled collection and the start of the next. */
  intervalMs: number;
  dryRun: boolean;
  deleteUntagged: boolean;
  /** Milliseconds: nothing written more recently than this is a candidate. At least GC_MIN_GRACE_MS. */
  graceMs: number;
  /** The share of one core a collection's scan and deletes may take, in (0, 1]; 1 is unpaced. */
  maxCpu: number;
}

/**
 * A quarter of a core: on two cores a collection then takes about an eighth of the machine from
 * the requests (docs/garbage-collection.md, "Pace"), and a dry run over 1,000 repositories on the
 * filesystem takes seconds.
 */
export const DEFAULT_GC_MAX_CPU = 0.25;

/** A blob pushed but not yet named by a manifest must survive the push: pushes take minutes, not seconds. */
export const GC_MIN_GRACE_MS = 10 * 60_000;

/**
 * validation.manifests.indexes: `all` children of a pushed index must already be in the repository
 * (distribution's default, and 2.8's only behaviour), `none`, or those whose platform is in `platformList`
 * (`list`; every child when the list is empty, as in distribution).
 */
export interface IndexValidation {
  platforms: "all" | "none" | "list";
  platformList: Array<{ architecture: string; os: string }>;
}
