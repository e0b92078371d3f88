/**
 * The keys berth knows: distribution's names, and what berth does with each. checkKeys warns
 * about keys berth ignores and refuses those whose absence would change what clients see.
 */
import { fail, fromEnv } from "./raw-values.js";
import { isEmpty, type RawMap } from "./raw-yaml.js";

export type Spec =
  | { kind: "value" }
  /** A map whose keys are the user's (log.fields, http.headers); envKey names an entry from env. */
  | { kind: "freemap"; envKey: (rest: string[]) => string }
  | { kind: "section"; keys: Readonly<Record<string, Spec>> }
  /** distribution feature berth lacks and whose absence changes nothing a client relies on. */
  | { kind: "ignored" }
  /** Security feature berth lacks: ignoring it would silently expose the registry. */
  | { kind: "refused"; problem: string; nameChild: boolean }
  | { kind: "unsupported-driver" };

const VALUE: Spec = { kind: "value" };
const IGNORED: Spec = { kind: "ignored" };
const UNSUPPORTED_DRIVER: Spec = { kind: "unsupported-driver" };
const section = (keys: Record<string, Spec>): Spec => ({ kind: "section", keys });

/** The keys of one upstream: distribution's four, then berth's (src/config/build-proxy.ts). */
const UPSTREAM_KEYS: Record<string, Spec> = {
  remoteurl: VALUE,
  username: VALUE,
  password: VALUE,
  ttl: VALUE,
  prefix: VALUE,
  namespaces: VALUE,
  libraryprefix: VALUE,
  maxstaleness: VALUE,
  maxsize: VALUE,
  connecttimeout: VALUE,
  readtimeout: VALUE,
};
/** One entry of proxy.upstreams. */
export const UPSTREAM_SPEC: Spec = section(UPSTREAM_KEYS);

/**
 * One entry of notifications.endpoints: distribution's keys (name, disabled, url, headers, timeout,
 * threshold, backoff, ignoredmediatypes, ignore.mediatypes, ignore.actions), then berth's
 * (src/config/build-notifications.ts).
 */
export const ENDPOINT_SPEC: Spec = section({
  name: VALUE,
  disabled: VALUE,
  url: VALUE,
  headers: VALUE,
  timeout: VALUE,
  threshold: VALUE,
  backoff: VALUE,
  ignoredmediatypes: VALUE,
  ignore: section({ mediatypes: VALUE, actions: VALUE, headpulls: VALUE }),
  repositories: VALUE,
  format: VALUE,
  signingkey: VALUE,
  maxevents: VALUE,
  maxbatch: VALUE,
  maxage: VALUE,
});

/** Keys under storage that configure the storage layer rather than naming a driver. */
export const NON_DRIVER_STORAGE_KEYS = new Set(["delete", "redirect", "maintenance", "cache", "tag"]);
export const SUPPORTED_DRIVERS = "berth supports filesystem, s3, azure, gcs and inmemory";
export const SUPPORTED_AUTH = "berth supports htpasswd, token and silly";

export const ROOT_SPEC: Spec = section({
  version: VALUE,
  loglevel: VALUE,
  log: section({
    level: VALUE,
    formatter: VALUE,
    fields: { kind: "freemap", envKey: (rest) => rest.join("_").toLowerCase() },
    accesslog: section({ disabled: VALUE }),
    hooks: IGNORED,
    reportcaller: VALUE,
  }),
  storage: section({
    filesystem: section({ rootdirectory: VALUE, maxthreads: VALUE }),
    inmemory: section({}),
    s3: section({
      accesskey: VALUE,
      secretkey: VALUE,
      sessiontoken: VALUE,
      region: VALUE,
      regionendpoint: VALUE,
      bucket: VALUE,
      rootdirectory: VALUE,
      forcepathstyle: VALUE,
      encrypt: VALUE,
      keyid: VALUE,
      secure: VALUE,
      skipverify: VALUE,
      v4auth: VALUE,
      chunksize: VALUE,
      multipartcopychunksize: VALUE,
      multipartcopymaxconcurrency: VALUE,
      multipartcopythresholdsize: VALUE,
      storageclass: VALUE,
      objectacl: VALUE,
      useragent: VALUE,
      usedualstack: VALUE,
      accelerate: VALUE,
      loglevel: VALUE,
    }),
    azure: section({
      accountname: VALUE,
      accountkey: VALUE,
      container: VALUE,
      realm: VALUE,
      rootdirectory: VALUE,
      serviceurl: VALUE,
      connectionstring: VALUE,
      credentials: section({ type: VALUE, clientid: VALUE, tenantid: VALUE, secret: VALUE, authorityhost: VALUE }),
      max_retries: VALUE,
      retry_delay: VALUE,
      // The same, as distribution 3's release candidates named them.
      copy_status_poll_max_retry: VALUE,
      copy_status_poll_delay: VALUE,
    }),
    gcs: section({
      bucket: VALUE,
      keyfile: VALUE,
      // A service account key inline: its fields have underscores (private_key), so from the
      // environment REGISTRY_STORAGE_GCS_CREDENTIALS_PRIVATE_KEY names the field private_key.
      credentials: { kind: "freemap", envKey: (rest) => rest.join("_").toLowerCase() },
      rootdirectory: VALUE,
      chunksize: VALUE,
      apiendpoint: VALUE,
      useragent: VALUE,
      maxconcurrency: VALUE,
    }),
    // distribution 3 removed both drivers; each service speaks S3.
    swift: {
      kind: "refused",
      problem: "distribution 3 removed the swift driver and berth has none; OpenStack Swift serves the S3 API (its s3api middleware): use storage.s3 with regionendpoint",
      nameChild: false,
    },
    oss: {
      kind: "refused",
      problem: "distribution 3 removed the oss driver and berth has none; Alibaba Cloud OSS serves the S3 API: use storage.s3 with regionendpoint https://oss-<region>.aliyuncs.com",
      nameChild: false,
    },
    delete: section({ enabled: VALUE }),
    redirect: section({ disable: VALUE }),
    maintenance: section({
      uploadpurging: section({ enabled: VALUE, age: VALUE, interval: VALUE, dryrun: VALUE }),
      readonly: section({ enabled: VALUE }),
      // berth's: distribution has no online collection.
      gc: section({ enabled: VALUE, interval: VALUE, dryrun: VALUE, deleteuntagged: VALUE, graceperiod: VALUE, maxcpu: VALUE }),
    }),
    // layerinfo is distribution's older name for blobdescriptor, still honoured there.
    cache: section({ blobdescriptor: VALUE, blobdescriptorsize: VALUE, layerinfo: VALUE }),
    tag: section({ concurrencylimit: VALUE }),
  }),
  http: section({
    addr: VALUE,
    net: VALUE,
    host: VALUE,
    prefix: VALUE,
    secret: VALUE,
    relativeurls: VALUE,
    draintimeout: VALUE,
    timeout: section({ readheader: VALUE, idle: VALUE, inactivity: VALUE }),
    headers: { kind: "freemap", envKey: headerNameFromEnv },
    tls: section({
      certificate: VALUE,
      key: VALUE,
      clientcas: VALUE,
      minimumtls: VALUE,
      ciphersuites: VALUE,
      // src/config/build-tls.ts, served by src/acme/.
      letsencrypt: section({ cachefile: VALUE, email: VALUE, hosts: VALUE, directoryurl: VALUE }),
    }),
    // berth's keys: repositories, gcdurations (src/config/build-debug.ts). debug.tls (distribution 3) is not served.
    debug: section({ addr: VALUE, prometheus: section({ enabled: VALUE, path: VALUE, repositories: VALUE, gcdurations: VALUE }), tls: IGNORED }),
    http2: section({ disabled: VALUE }),
    h2c: section({ enabled: VALUE }),
  }),
  auth: section({
    htpasswd: section({ realm: VALUE, path: VALUE }),
    token: section({
      realm: VALUE,
      service: VALUE,
      issuer: VALUE,
      rootcertbundle: VALUE,
      jwks: VALUE,
      signingalgorithms: VALUE,
      autoredirect: VALUE,
      autoredirectpath: VALUE,
    }),
    silly: section({ realm: VALUE, service: VALUE }),
  }),
  notifications: section({
    events: section({ includereferences: VALUE }),
    // A list; each entry is checked against ENDPOINT_SPEC when it is built.
    endpoints: VALUE,
  }),
  redis: section({
    addr: VALUE,
    // distribution 3.x (go-redis): a list of addresses (sentinels with mastername), and its names for the pool settings.
    addrs: VALUE,
    mastername: VALUE,
    username: VALUE,
    password: VALUE,
    db: VALUE,
    dialtimeout: VALUE,
    readtimeout: VALUE,
    writetimeout: VALUE,
    pool: section({ maxidle: VALUE, maxactive: VALUE, idletimeout: VALUE }),
    maxidleconns: VALUE,
    poolsize: VALUE,
    connmaxidletime: VALUE,
    tls: section({
      enabled: VALUE,
      certificate: VALUE,
      key: VALUE,
      clientcas: VALUE,
      rootcas: VALUE,
    }),
  }),
  health: section({
    storagedriver: section({ enabled: VALUE, interval: VALUE, threshold: VALUE }),
    // Lists; each entry is checked against its keys when it is built (build-health.ts).
    file: VALUE,
    http: VALUE,
    tcp: VALUE,
  }),
  proxy: section({ ...UPSTREAM_KEYS, upstreams: VALUE }),
  // berth only: the built-in web interface (src/ui/).
  ui: section({ enabled: VALUE }),
  validation: section({
    enabled: VALUE,
    disabled: VALUE,
    manifests: section({ urls: section({ allow: VALUE, deny: VALUE }), indexes: section({ platforms: VALUE, platformlist: VALUE }) }),
  }),
  compatibility: IGNORED,
  reporting: IGNORED,
  // Lists; each entry is checked when it is built (build-middleware.ts).
  middleware: section({ storage: VALUE, registry: VALUE, repository: VALUE }),
  policy: section({ repository: section({ classes: VALUE }) }),
  catalog: section({ maxentries: VALUE }),
});

/** REGISTRY_HTTP_HEADERS_X_FRAME_OPTIONS → X-Frame-Options: env names cannot hold "-". */
function headerNameFromEnv(rest: string[]): string {
  return rest
    .flatMap((part) => part.split("-"))
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1).toLowerCase())
    .join("-");
}

function joinKey(parent: string, key: string): string {
  return parent === "" ? key : `${parent}.${key}`;
}

/** Warns about unknown and ignored keys, refuses security sections and foreign storage drivers. */
export function checkKeys(node: RawMap, spec: Spec, at: string, warnings: string[]): void {
  if (spec.kind !== "section") return;
  for (const [key, child] of node.entries) {
    const where = joinKey(at, key);
    const childSpec = spec.keys[key];
    if (childSpec === undefined) {
      // distribution treats any other key under storage as a driver name and fails to start.
      if (at === "storage") throw fail(where, child, `unknown storage driver; ${SUPPORTED_DRIVERS}`);
      // distribution fails to start on an access controller it does not know: so must we.
      if (at === "auth") throw fail(where, child, `unknown auth type; ${SUPPORTED_AUTH}`);
      warnings.push(`unknown key ${where}${fromEnv(child)}`);
      continue;
    }
    switch (childSpec.kind) {
      case "section":
        if (child.kind === "map") checkKeys(child, childSpec, where, warnings);
        break;
      case "ignored":
        if (!isEmpty(child)) warnings.push(`${where} is not supported by berth yet and is ignored${fromEnv(child)}`);
        break;
      case "refused":
        if (isEmpty(child)) break;
        if (childSpec.nameChild && child.kind === "map") {
          const [type, params] = child.entries.entries().next().value ?? [];
          throw fail(type === undefined ? where : joinKey(where, type), params ?? child, childSpec.problem);
        }
        throw fail(where, child, childSpec.problem);
      case "unsupported-driver":
        throw fail(where, child, `storage driver not supported yet; ${SUPPORTED_DRIVERS}`);
      case "value":
      case "freemap":
        break;
    }
  }
}
