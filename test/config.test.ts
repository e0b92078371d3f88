import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ConfigError, type Config } from "../src/config/config.js";
import {
  DEFAULT_CONFIG_YAML,
  describeConfig,
  formatGoDuration,
  loadConfig,
  parseConfig,
  parseGoDuration,
  parseListenAddress,
} from "../src/config/load-config.js";

const HOUR = 3_600_000;
const MINIMAL = "version: 0.1\nstorage:\n  inmemory:\n";

function parse(yaml: string, env: NodeJS.ProcessEnv = {}): { config: Config; warnings: string[] } {
  return parseConfig(yaml, env, "test.yml");
}

/** Asserts a ConfigError for `key` whose message contains `fragment`. */
function assertConfigError(run: () => unknown, key: string, fragment: string): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.key, key, err.message);
    assert.ok(err.message.startsWith(`configuration: ${key}: `), err.message);
    assert.ok(err.message.includes(fragment), `${JSON.stringify(err.message)} lacks ${JSON.stringify(fragment)}`);
    return true;
  });
}

async function withTempDir<T>(run: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "berth-config-"));
  try {
    return await run(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const DEBIAN_CONFIG = `version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`;

describe("embedded default configuration", () => {
  it("is used when no file is given, storing under ./data and listening on :5000", async () => {
    const { config, warnings, source } = await loadConfig({ env: {} });
    assert.equal(source, "(embedded default)");
    assert.deepEqual(warnings, []);
    assert.equal(config.version, "0.1");
    assert.deepEqual(config.log, { level: "info", formatter: "text", accessLogDisabled: false, fields: {}, reportCaller: false });
    assert.deepEqual(config.storage.driver, { kind: "filesystem", rootDirectory: path.resolve(process.cwd(), "data") });
    assert.equal(config.storage.deleteEnabled, false);
    assert.equal(config.storage.redirectDisabled, false);
    assert.equal(config.storage.readOnly, false);
    assert.deepEqual(config.storage.uploadPurging, { enabled: true, ageMs: 168 * HOUR, intervalMs: 24 * HOUR, dryRun: false });
    assert.deepEqual(config.storage.cache, { blobDescriptor: "inmemory", blobDescriptorSize: 10000 });
    assert.equal(config.http.addr, ":5000");
    assert.equal(config.http.listenHost, "");
    assert.equal(config.http.listenPort, 5000);
    assert.equal(config.http.host, undefined);
    assert.equal(config.http.prefix, "/");
    assert.deepEqual(config.http.headers, { "X-Content-Type-Options": ["nosniff"] });
    assert.equal(config.http.relativeUrls, false);
    assert.equal(config.http.drainTimeoutMs, 0);
  });

  it("generates a random 32-byte secret per load when none is configured", async () => {
    const a = await loadConfig({ env: {} });
    const b = await loadConfig({ env: {} });
    assert.equal(a.config.http.secretGenerated, true);
    assert.match(a.config.http.secret, /^[0-9a-f]{64}$/);
    assert.notEqual(a.config.http.secret, b.config.http.secret);
  });

  it("is exported as YAML text that parses to the same configuration", () => {
    const { config } = parse(DEFAULT_CONFIG_YAML);
    assert.equal(config.storage.driver.kind, "filesystem");
    assert.equal(config.http.addr, ":5000");
  });

  it("takes environment overrides", async () => {
    const { config } = await loadConfig({ env: { REGISTRY_STORAGE: "inmemory", REGISTRY_HTTP_ADDR: "127.0.0.1:0" } });
    assert.deepEqual(config.storage.driver, { kind: "inmemory" });
    assert.equal(config.http.listenPort, 0);
  });
});

describe("loading a configuration file", () => {
  it("reads the file named by options.file and reports its absolute path as the source", async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, "config.yml");
      await writeFile(file, MINIMAL);
      const { config, source } = await loadConfig({ file, env: {} });
      assert.equal(source, file);
      assert.deepEqual(config.storage.driver, { kind: "inmemory" });
    });
  });

  it("reads the file named by REGISTRY_CONFIGURATION_PATH when no file is given, as distribution does", async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, "config.yml");
      await writeFile(file, MINIMAL);
      const { config, source, warnings } = await loadConfig({ env: { REGISTRY_CONFIGURATION_PATH: file } });
      assert.equal(source, file);
      assert.deepEqual(warnings, []);
      assert.deepEqual(config.storage.driver, { kind: "inmemory" });
    });
  });

  it("fails naming the file when it cannot be read", async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, "missing.yml");
      await assert.rejects(loadConfig({ file, env: {} }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.key, "(file)");
        assert.ok(err.message.includes(`cannot read ${file}`), err.message);
        return true;
      });
    });
  });
});

describe("distribution configuration files", () => {
  it("starts on Debian's /etc/docker/registry/config.yml without a warning, its storage driver check on", () => {
    const { config, warnings } = parse(DEBIAN_CONFIG);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.health?.storageDriver, { intervalMs: 10_000, threshold: 3 });
    assert.deepEqual(config.storage.driver, { kind: "filesystem", rootDirectory: "/var/lib/docker-registry" });
    assert.equal(config.storage.deleteEnabled, true);
    assert.deepEqual(config.storage.cache, { blobDescriptor: "inmemory", blobDescriptorSize: 10000 });
    assert.deepEqual(config.log.fields, { service: "registry" });
    assert.equal(config.log.level, "info");
    assert.equal(config.http.listenHost, "");
    assert.equal(config.http.listenPort, 5000);
    assert.deepEqual(config.http.headers, { "X-Content-Type-Options": ["nosniff"] });
    // No maintenance section: distribution's upload purging defaults apply.
    assert.deepEqual(config.storage.uploadPurging, { enabled: true, ageMs: 168 * HOUR, intervalMs: 24 * HOUR, dryRun: false });
  });

  it("reads every supported key", () => {
    const { config, warnings } = parse(`version: 0.1
log:
  level: debug
  formatter: json
  accesslog:
    disabled: true
  fields:
    service: registry
    environment: staging
storage:
  filesystem:
    rootdirectory: /srv/registry
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
      age: 24h0m0s
      interval: 1h30m
      dryrun: true
    readonly:
      enabled: true
  cache:
    blobdescriptor: inmemory
    blobdescriptorsize: 500
http:
  addr: 127.0.0.1:5001
  net: tcp
  host: https://registry.example.com:8443
  prefix: /
  secret: asecretforlocaldevelopment
  relativeurls: true
  draintimeout: 60s
  headers:
    X-Content-Type-Options: [nosniff]
    Strict-Transport-Security: [max-age=31536000, includeSubDomains]
`);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.log, {
      level: "debug",
      formatter: "json",
      accessLogDisabled: true,
      fields: { service: "registry", environment: "staging" },
      reportCaller: false,
    });
    assert.deepEqual(config.storage, {
      driver: { kind: "filesystem", rootDirectory: "/srv/registry" },
      deleteEnabled: true,
      redirectDisabled: true,
      uploadPurging: { enabled: false, ageMs: 24 * HOUR, intervalMs: 1.5 * HOUR, dryRun: true },
      gc: { enabled: false, intervalMs: 24 * HOUR, dryRun: false, deleteUntagged: false, graceMs: HOUR, maxCpu: 0.25 },
      readOnly: true,
      tagLookupConcurrency: 0,
      cache: { blobDescriptor: "inmemory", blobDescriptorSize: 500 },
    });
    assert.deepEqual(config.http, {
      addr: "127.0.0.1:5001",
      net: "tcp",
      listenHost: "127.0.0.1",
      listenPort: 5001,
      host: "https://registry.example.com:8443",
      prefix: "/",
      h2c: false,
      secret: "asecretforlocaldevelopment",
      secretGenerated: false,
      headers: {
        "X-Content-Type-Options": ["nosniff"],
        "Strict-Transport-Security": ["max-age=31536000", "includeSubDomains"],
      },
      relativeUrls: true,
      drainTimeoutMs: 60_000,
      timeouts: { readHeaderMs: 30_000, idleMs: 5_000, inactivityMs: 300_000 },
      tls: undefined,
      http2Disabled: false,
      debug: { addr: undefined, listenHost: "", listenPort: 0, prometheus: { enabled: false, path: "/metrics", repositories: 0, gcDurations: false } },
    });
  });

  it("accepts the `storage: inmemory` shorthand distribution allows", () => {
    const { config } = parse("version: 0.1\nstorage: inmemory\n");
    assert.deepEqual(config.storage.driver, { kind: "inmemory" });
  });

  it("defaults rootdirectory to /var/lib/registry like distribution when the filesystem section has none", () => {
    const { config } = parse("version: 0.1\nstorage:\n  filesystem:\n");
    assert.deepEqual(config.storage.driver, { kind: "filesystem", rootDirectory: "/var/lib/registry" });
  });

  it("resolves a relative rootdirectory against the working directory", () => {
    const { config } = parse("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: var/registry\n");
    assert.deepEqual(config.storage.driver, { kind: "filesystem", rootDirectory: path.resolve(process.cwd(), "var/registry") });
  });

  it("runs without a blob descriptor cache when storage.cache is absent", () => {
    const { config } = parse(MINIMAL);
    assert.deepEqual(config.storage.cache, { blobDescriptor: undefined, blobDescriptorSize: 10000 });
  });

  it("defaults http.addr to :5000 and generates a secret when the http section is absent", () => {
    const { config } = parse(MINIMAL);
    assert.equal(config.http.addr, ":5000");
    assert.equal(config.http.listenPort, 5000);
    assert.equal(config.http.secretGenerated, true);
    assert.deepEqual(config.http.headers, {});
  });

  it("reads YAML 1.1 booleans (yes/no/on/off) as Go's yaml.v2 does", () => {
    const { config } = parse(`${MINIMAL}  delete:\n    enabled: yes\n  redirect:\n    disable: On\nlog:\n  accesslog:\n    disabled: no\n`);
    assert.equal(config.storage.deleteEnabled, true);
    assert.equal(config.storage.redirectDisabled, true);
    assert.equal(config.log.accessLogDisabled, false);
  });

  it("keeps numeric-looking strings as written (secret 0123, version \"0.1\")", () => {
    const { config } = parse('version: "0.1"\nstorage: inmemory\nhttp:\n  secret: 0123\nlog:\n  fields:\n    build: 007\n');
    assert.equal(config.http.secret, "0123");
    assert.equal(config.http.secretGenerated, false);
    assert.deepEqual(config.log.fields, { build: "007" });
  });

  it("resolves anchors and << merge keys", () => {
    const { config, warnings } = parse(`version: 0.1
x-common: &purge
  enabled: true
  age: 2h
storage:
  inmemory:
  maintenance:
    uploadpurging:
      <<: *purge
      interval: 30m
`);
    assert.deepEqual(warnings, ["unknown key x-common"]);
    assert.deepEqual(config.storage.uploadPurging, { enabled: true, ageMs: 2 * HOUR, intervalMs: 0.5 * HOUR, dryRun: false });
  });

  it("accepts log levels case-insensitively and 'warning' as warn", () => {
    assert.equal(parse(`${MINIMAL}log:\n  level: DEBUG\n`).config.log.level, "debug");
    assert.equal(parse(`${MINIMAL}log:\n  level: warning\n`).config.log.level, "warn");
    assert.equal(parse(`${MINIMAL}log:\n  formatter: logstash\n`).config.log.formatter, "logstash");
  });

  it("honours the deprecated top-level loglevel when log.level is absent, with a warning", () => {
    const legacy = parse(`${MINIMAL}loglevel: debug\n`);
    assert.equal(legacy.config.log.level, "debug");
    assert.deepEqual(legacy.warnings, ["loglevel is deprecated; use log.level"]);
    const both = parse(`${MINIMAL}loglevel: debug\nlog:\n  level: error\n`);
    assert.equal(both.config.log.level, "error");
    assert.deepEqual(both.warnings, ["loglevel is deprecated and overridden by log.level"]);
  });

  it("reads the legacy storage.cache.layerinfo name and warns about unknown cache types", () => {
    assert.equal(parse(`${MINIMAL}  cache:\n    layerinfo: inmemory\n`).config.storage.cache.blobDescriptor, "inmemory");
    const unknown = parse(`${MINIMAL}  cache:\n    blobdescriptor: memcached\n`);
    assert.equal(unknown.config.storage.cache.blobDescriptor, undefined);
    assert.deepEqual(unknown.warnings, ['storage.cache.blobdescriptor: unknown cache type "memcached", caching disabled']);
  });

  it("accepts a single string as a header value", () => {
    const { config } = parse(`${MINIMAL}http:\n  headers:\n    X-Frame-Options: DENY\n`);
    assert.deepEqual(config.http.headers, { "X-Frame-Options": ["DENY"] });
  });

  it("storage.filesystem.maxthreads is met by libuv's thread pool; a pool larger than the limit is named, a wrong value refused", () => {
    const yaml = (n: string) => `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /tmp/r\n    maxthreads: ${n}\n`;
    const saved = process.env.UV_THREADPOOL_SIZE;
    try {
      delete process.env.UV_THREADPOOL_SIZE;
      assert.deepEqual(parse(yaml("100")).warnings, []);
      process.env.UV_THREADPOOL_SIZE = "64";
      assert.deepEqual(parse(yaml("30")).warnings, ["storage.filesystem.maxthreads: 30, but UV_THREADPOOL_SIZE=64 lets up to 64 file operations run at once"]);
      assert.deepEqual(parse(yaml("100")).warnings, []);
    } finally {
      if (saved === undefined) delete process.env.UV_THREADPOOL_SIZE;
      else process.env.UV_THREADPOOL_SIZE = saved;
    }
    assertConfigError(() => parse(yaml("lots")), "storage.filesystem.maxthreads", "");
  });
});

describe("environment overrides", () => {
  it("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY replaces the root directory", () => {
    const { config, warnings } = parse(DEBIAN_CONFIG, { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: "/somewhere" });
    assert.deepEqual(config.storage.driver, { kind: "filesystem", rootDirectory: "/somewhere" });
    assert.deepEqual(warnings, []);
  });

  it("REGISTRY_HTTP_ADDR replaces the listen address", () => {
    const { config } = parse(DEBIAN_CONFIG, { REGISTRY_HTTP_ADDR: "[::1]:6000" });
    assert.equal(config.http.addr, "[::1]:6000");
    assert.equal(config.http.listenHost, "::1");
    assert.equal(config.http.listenPort, 6000);
  });

  it("REGISTRY_STORAGE_DELETE_ENABLED=true creates the section and reads a boolean", () => {
    const { config } = parse(MINIMAL, { REGISTRY_STORAGE_DELETE_ENABLED: "true" });
    assert.equal(config.storage.deleteEnabled, true);
    assert.equal(parse(DEBIAN_CONFIG, { REGISTRY_STORAGE_DELETE_ENABLED: "false" }).config.storage.deleteEnabled, false);
  });

  it("REGISTRY_LOG_LEVEL and REGISTRY_LOG_FORMATTER set logging", () => {
    const { config } = parse(MINIMAL, { REGISTRY_LOG_LEVEL: "debug", REGISTRY_LOG_FORMATTER: "json" });
    assert.equal(config.log.level, "debug");
    assert.equal(config.log.formatter, "json");
  });

  it("REGISTRY_HTTP_SECRET keeps a numeric value as a string", () => {
    const { config } = parse(MINIMAL, { REGISTRY_HTTP_SECRET: "12345" });
    assert.equal(config.http.secret, "12345");
    assert.equal(config.http.secretGenerated, false);
  });

  it("REGISTRY_HTTP_SECRET keeps characters YAML would treat specially, and unquotes quoted values", () => {
    assert.equal(parse(MINIMAL, { REGISTRY_HTTP_SECRET: "@s3cr#t: x" }).config.http.secret, "@s3cr#t: x");
    assert.equal(parse(MINIMAL, { REGISTRY_HTTP_SECRET: '"quoted value"' }).config.http.secret, "quoted value");
  });

  it("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_* set durations and flags", () => {
    const { config } = parse(DEBIAN_CONFIG, {
      REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: "1h30m",
      REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_INTERVAL: "10s",
      REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_DRYRUN: "true",
      REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED: "false",
      REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED: "true",
    });
    assert.deepEqual(config.storage.uploadPurging, { enabled: false, ageMs: 1.5 * HOUR, intervalMs: 10_000, dryRun: true });
    assert.equal(config.storage.readOnly, true);
  });

  it("REGISTRY_STORAGE_MAINTENANCE_GC_* set berth's online collection", () => {
    const { config, warnings } = parse(DEBIAN_CONFIG, {
      REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED: "true",
      REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL: "6h",
      REGISTRY_STORAGE_MAINTENANCE_GC_DRYRUN: "true",
      REGISTRY_STORAGE_MAINTENANCE_GC_DELETEUNTAGGED: "true",
      REGISTRY_STORAGE_MAINTENANCE_GC_GRACEPERIOD: "2h",
      REGISTRY_STORAGE_MAINTENANCE_GC_MAXCPU: "0.5",
    });
    assert.deepEqual(config.storage.gc, { enabled: true, intervalMs: 6 * HOUR, dryRun: true, deleteUntagged: true, graceMs: 2 * HOUR, maxCpu: 0.5 });
    assert.deepEqual(warnings, []);
  });

  it("sets the remaining keys: redirect, cache, host, prefix, net, relativeurls, draintimeout, accesslog", () => {
    const { config, warnings } = parse(MINIMAL, {
      REGISTRY_STORAGE_REDIRECT_DISABLE: "true",
      REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: "inmemory",
      REGISTRY_STORAGE_CACHE_BLOBDESCRIPTORSIZE: "42",
      REGISTRY_HTTP_HOST: "http://localhost:5000",
      REGISTRY_HTTP_PREFIX: "/",
      REGISTRY_HTTP_NET: "tcp",
      REGISTRY_HTTP_RELATIVEURLS: "true",
      REGISTRY_HTTP_DRAINTIMEOUT: "500ms",
      REGISTRY_LOG_ACCESSLOG_DISABLED: "true",
    });
    assert.deepEqual(warnings, []);
    assert.equal(config.storage.redirectDisabled, true);
    assert.deepEqual(config.storage.cache, { blobDescriptor: "inmemory", blobDescriptorSize: 42 });
    assert.equal(config.http.host, "http://localhost:5000");
    assert.equal(config.http.relativeUrls, true);
    assert.equal(config.http.drainTimeoutMs, 500);
    assert.equal(config.log.accessLogDisabled, true);
  });

  it("REGISTRY_STORAGE=inmemory replaces the file's driver but keeps delete, cache and maintenance", () => {
    const { config } = parse(DEBIAN_CONFIG, { REGISTRY_STORAGE: "inmemory" });
    assert.deepEqual(config.storage.driver, { kind: "inmemory" });
    assert.equal(config.storage.deleteEnabled, true);
    assert.equal(config.storage.cache.blobDescriptor, "inmemory");
  });

  it("REGISTRY_STORAGE=filesystem switches driver before REGISTRY_STORAGE_FILESYSTEM_* apply", () => {
    // Insertion order deliberately puts the parameter first: application order must not depend on it.
    const { config } = parse(MINIMAL, {
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: "/data/registry",
      REGISTRY_STORAGE: "filesystem",
    });
    assert.deepEqual(config.storage.driver, { kind: "filesystem", rootDirectory: "/data/registry" });
  });

  it("REGISTRY_STORAGE naming the configured driver keeps its parameters", () => {
    const { config } = parse(DEBIAN_CONFIG, { REGISTRY_STORAGE: "filesystem" });
    assert.deepEqual(config.storage.driver, { kind: "filesystem", rootDirectory: "/var/lib/docker-registry" });
  });

  it("REGISTRY_STORAGE_INMEMORY alongside a filesystem file is two drivers", () => {
    assertConfigError(() => parse(DEBIAN_CONFIG, { REGISTRY_STORAGE_INMEMORY: "" }), "storage", "exactly one storage driver");
  });

  it("matches key segments case-insensitively", () => {
    const { config, warnings } = parse(MINIMAL, { REGISTRY_Http_Addr: "localhost:7000", REGISTRY_storage_delete_Enabled: "yes" });
    assert.deepEqual(warnings, []);
    assert.equal(config.http.listenHost, "localhost");
    assert.equal(config.storage.deleteEnabled, true);
  });

  it("REGISTRY_LOG_FIELDS_<NAME> adds a log field, lower-cased", () => {
    const { config } = parse(DEBIAN_CONFIG, { REGISTRY_LOG_FIELDS_ENVIRONMENT: "staging", REGISTRY_LOG_FIELDS_SERVICE: "berth" });
    assert.deepEqual(config.log.fields, { service: "berth", environment: "staging" });
  });

  it("REGISTRY_HTTP_HEADERS_<NAME> sets a header, underscores becoming hyphens", () => {
    const { config } = parse(DEBIAN_CONFIG, {
      REGISTRY_HTTP_HEADERS_X_FRAME_OPTIONS: "[DENY]",
      REGISTRY_HTTP_HEADERS_X_CONTENT_TYPE_OPTIONS: "[nosniff, other]",
    });
    assert.deepEqual(config.http.headers, { "X-Content-Type-Options": ["nosniff", "other"], "X-Frame-Options": ["DENY"] });
  });

  it("a flow mapping value replaces a whole section", () => {
    const { config } = parse(DEBIAN_CONFIG, { REGISTRY_LOG_FIELDS: "{team: infra, region: eu}" });
    assert.deepEqual(config.log.fields, { team: "infra", region: "eu" });
  });

  it("warns about REGISTRY_ variables that match no key, without changing the configuration", () => {
    const { config, warnings } = parse(MINIMAL, {
      REGISTRY_FOO_BAR: "1",
      REGISTRY_HTTP_ADDR_EXTRA: "x",
      REGISTRY_STORAGE_FILESYSTEM_NOPE: "x",
      REGISTRY_STORAGE__DELETE: "x",
      HOME: "/root",
    });
    assert.deepEqual(warnings, [
      "environment variable REGISTRY_FOO_BAR matches no configuration key and is ignored",
      "environment variable REGISTRY_HTTP_ADDR_EXTRA matches no configuration key and is ignored",
      "environment variable REGISTRY_STORAGE_FILESYSTEM_NOPE matches no configuration key and is ignored",
      "environment variable REGISTRY_STORAGE__DELETE matches no configuration key and is ignored",
    ]);
    // The unknown filesystem parameter must not have created a second driver section.
    assert.deepEqual(config.storage.driver, { kind: "inmemory" });
  });

  it("does not let REGISTRY_VERSION change the version", () => {
    const { config, warnings } = parse(MINIMAL, { REGISTRY_VERSION: "2.8.3" });
    assert.equal(config.version, "0.1");
    assert.deepEqual(warnings, ["environment variable REGISTRY_VERSION cannot change version and is ignored"]);
  });

  it("warns about overrides of sections berth ignores, naming the variable", () => {
    const { warnings } = parse(MINIMAL, { REGISTRY_REPORTING_BUGSNAG_APIKEY: "k" });
    assert.deepEqual(warnings, ["reporting is not supported by berth yet and is ignored (from environment variable REGISTRY_REPORTING_BUGSNAG_APIKEY)"]);
  });

  it("names the key and the variable when an override has the wrong type", () => {
    assertConfigError(
      () => parse(MINIMAL, { REGISTRY_STORAGE_DELETE_ENABLED: "maybe" }),
      "storage.delete.enabled",
      'expected a boolean, got "maybe" (from environment variable REGISTRY_STORAGE_DELETE_ENABLED)',
    );
  });

  it("refuses incomplete auth and TLS, and unsupported drivers, set through the environment", () => {
    assertConfigError(() => parse(MINIMAL, { REGISTRY_AUTH_HTPASSWD_REALM: "basic" }), "auth.htpasswd.path", "required");
    assertConfigError(() => parse(MINIMAL, { REGISTRY_AUTH: "silly" }), "auth.silly.realm", "required");
    assertConfigError(() => parse(MINIMAL, { REGISTRY_HTTP_TLS_CERTIFICATE: "/c.pem" }), "http.tls.key", "required when http.tls.certificate is set");
    assertConfigError(() => parse(DEBIAN_CONFIG, { REGISTRY_STORAGE: "gcs" }), "storage.gcs.bucket", "required");
    // Switching to azure from the environment still needs its required keys.
    assertConfigError(() => parse(DEBIAN_CONFIG, { REGISTRY_STORAGE: "azure" }), "storage.azure.accountname", "required");
    // Switching to s3 from the environment still needs its required keys.
    assertConfigError(() => parse(DEBIAN_CONFIG, { REGISTRY_STORAGE: "s3" }), "storage.s3.bucket", "required");
    assertConfigError(() => parse(MINIMAL, { REGISTRY_STORAGE_S3_REGION: "us-east-1" }), "storage", "exactly one storage driver");
    assertConfigError(() => parse(MINIMAL, { REGISTRY_STORAGE: "bogus" }), "storage.bogus", "unknown storage driver");
  });

  it("keeps values that only look like YAML as text, so a malformed mapping is reported by key", () => {
    assertConfigError(
      () => parse(MINIMAL, { REGISTRY_LOG_FIELDS: "{a: [" }),
      "log.fields",
      'expected a mapping, got "{a: [" (from environment variable REGISTRY_LOG_FIELDS)',
    );
  });
});

describe("configuration errors name the key", () => {
  it("reports a type error with the full key path and the value", () => {
    assert.throws(
      () => parse(`${MINIMAL}  delete:\n    enabled: yes please\n`),
      (err: unknown) => err instanceof ConfigError && err.message === 'configuration: storage.delete.enabled: expected a boolean, got "yes please"',
    );
  });

  it("reports sections and strings of the wrong shape", () => {
    assertConfigError(() => parse("version: 0.1\nstorage: [inmemory]\n"), "storage", "expected a mapping, got a list");
    assertConfigError(() => parse(`${MINIMAL}http:\n  addr: {port: 5000}\n`), "http.addr", "expected a string, got a mapping");
    assertConfigError(() => parse(`${MINIMAL}http: yes\n`), "http", 'expected a mapping, got "yes"');
    assertConfigError(() => parse(`${MINIMAL}log:\n  fields:\n    nested: {a: b}\n`), "log.fields.nested", "expected a string");
  });

  it("requires positive integers where counts are expected", () => {
    for (const bad of ["0", "-5", "abc", "1.5"]) {
      assertConfigError(
        () => parse(`${MINIMAL}  cache:\n    blobdescriptorsize: ${bad}\n`),
        "storage.cache.blobdescriptorsize",
        "expected a positive integer",
      );
    }
  });

  it("requires version 0.1", () => {
    assertConfigError(() => parse("storage: inmemory\n"), "version", "required");
    assertConfigError(() => parse("version: 1.0\nstorage: inmemory\n"), "version", 'unsupported version "1.0"');
    assertConfigError(() => parse("version: 0.10\nstorage: inmemory\n"), "version", 'unsupported version "0.10"');
  });

  it("rejects unknown log levels and formatters", () => {
    assertConfigError(() => parse(`${MINIMAL}log:\n  level: verbose\n`), "log.level", 'expected one of error, warn, warning, info, debug, got "verbose"');
    assertConfigError(() => parse(`${MINIMAL}log:\n  formatter: xml\n`), "log.formatter", 'got "xml"');
  });

  it("reports YAML syntax errors against (file) with the line", () => {
    assertConfigError(() => parse("version: 0.1\nstorage:\n  inmemory: [\nhttp:\n"), "(file)", "test.yml: syntax error at line");
    assertConfigError(() => parse("version: 0.1\nhttp:\n  addr: :5000\n  addr: :6000\n"), "(file)", "syntax error at line 4");
    assertConfigError(() => parse("- version\n- 0.1\n"), "(file)", "expected a mapping of configuration keys");
  });

  it("refuses storage drivers berth does not implement yet", () => {
    assertConfigError(() => parse("version: 0.1\nstorage:\n  rados:\n    pool: p\n"), "storage.rados", "unknown storage driver");
  });

  it("refuses the swift and oss drivers that distribution 3 removed, pointing at storage.s3", () => {
    for (const driver of ["swift", "oss"]) {
      assertConfigError(() => parse(`version: 0.1\nstorage:\n  ${driver}:\n    container: c\n`), `storage.${driver}`, `distribution 3 removed the ${driver} driver`);
      assertConfigError(() => parse(`version: 0.1\nstorage:\n  ${driver}:\n    container: c\n`), `storage.${driver}`, "use storage.s3 with regionendpoint");
    }
  });

  it("requires exactly one storage driver", () => {
    assertConfigError(
      () => parse("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /r\n  inmemory:\n"),
      "storage",
      "exactly one storage driver must be configured, found filesystem and inmemory",
    );
    assertConfigError(() => parse("version: 0.1\nstorage:\n  delete:\n    enabled: true\n"), "storage", "no storage driver configured");
    assertConfigError(() => parse("version: 0.1\n"), "storage", "no storage driver configured");
  });

  it("accepts an empty auth section, which configures nothing", () => {
    assert.deepEqual(parse(`${MINIMAL}auth:\n`).warnings, []);
  });

  it("wants the redis section for the redis blob descriptor cache (see the redis block)", () => {
    assertConfigError(() => parse(`${MINIMAL}  cache:\n    blobdescriptor: redis\n`), "redis", "required by storage.cache.blobdescriptor: redis");
  });

  it("accepts tcp and unix for http.net; unix takes the socket path from http.addr", () => {
    const { config } = parse(`${MINIMAL}http:\n  net: unix\n  addr: /run/registry.sock\n`);
    assert.equal(config.http.net, "unix");
    assert.equal(config.http.addr, "/run/registry.sock");
    assert.equal((describeConfig(config)["http"] as Record<string, unknown>)["net"], "unix");
    assert.equal(parse(MINIMAL, { REGISTRY_HTTP_NET: "unix", REGISTRY_HTTP_ADDR: "/tmp/r.sock" }).config.http.net, "unix");
    assertConfigError(() => parse(`${MINIMAL}http:\n  net: unix\n`), "http.addr", "required with http.net: unix");
    assertConfigError(() => parse(`${MINIMAL}http:\n  net: tcp6\n`), "http.net", "use tcp or unix");
  });

  it("reads http.prefix as distribution serves it: leading slash required, trailing slash optional", () => {
    assert.equal(parse(`${MINIMAL}http:\n  prefix: ""\n`).config.http.prefix, "/");
    assert.equal(parse(`${MINIMAL}http:\n  prefix: /\n`).config.http.prefix, "/");
    assert.equal(parse(`${MINIMAL}http:\n  prefix: /registry/\n`).config.http.prefix, "/registry/");
    // gorilla/mux drops the trailing slashes before appending /v2/: the same paths are served.
    assert.equal(parse(`${MINIMAL}http:\n  prefix: /registry\n`).config.http.prefix, "/registry/");
    assert.equal(parse(`${MINIMAL}http:\n  prefix: /a/b.c_d~e//\n`).config.http.prefix, "/a/b.c_d~e/");
    assert.equal(parse(MINIMAL, { REGISTRY_HTTP_PREFIX: "/from-env/" }).config.http.prefix, "/from-env/");
    assertConfigError(() => parse(`${MINIMAL}http:\n  prefix: registry/\n`), "http.prefix", 'must start with "/"');
    assertConfigError(() => parse(MINIMAL, { REGISTRY_HTTP_PREFIX: "registry" }), "http.prefix", "REGISTRY_HTTP_PREFIX");
    assertConfigError(() => parse(`${MINIMAL}http:\n  prefix: /a//b/\n`), "http.prefix", "empty");
    assertConfigError(() => parse(`${MINIMAL}http:\n  prefix: /a/../b/\n`), "http.prefix", '".."');
    assertConfigError(() => parse(`${MINIMAL}http:\n  prefix: /v2/\n`), "http.prefix", '"v2" segment');
    assertConfigError(() => parse(`${MINIMAL}http:\n  prefix: /a/v2/b/\n`), "http.prefix", '"v2" segment');
    assertConfigError(() => parse(`${MINIMAL}http:\n  prefix: "/{name}/"\n`), "http.prefix", "a segment may hold");
    assertConfigError(() => parse(`${MINIMAL}http:\n  prefix: /a%20b/\n`), "http.prefix", "a segment may hold");
    assertConfigError(() => parse(`${MINIMAL}http:\n  prefix: /a?b/\n`), "http.prefix", "a segment may hold");
  });

  it("accepts http.host whose path is http.prefix (distribution's way to put the prefix in generated URLs)", () => {
    const { config } = parse(`${MINIMAL}http:\n  prefix: /registry/\n  host: https://r.example.com/registry/\n`);
    assert.equal(config.http.host, "https://r.example.com");
    assertConfigError(() => parse(`${MINIMAL}http:\n  prefix: /registry/\n  host: https://r.example.com/other/\n`), "http.host", "other than http.prefix");
  });

  it("reads http.h2c.enabled, and from REGISTRY_HTTP_H2C_ENABLED; warns that it does nothing over TLS", () => {
    assert.equal(parse(MINIMAL).config.http.h2c, false);
    assert.equal(parse(`${MINIMAL}http:\n  h2c:\n    enabled: true\n`).config.http.h2c, true);
    assert.equal(parse(MINIMAL, { REGISTRY_HTTP_H2C_ENABLED: "true" }).config.http.h2c, true);
    assert.equal(parse(MINIMAL, { REGISTRY_HTTP_H2C: "{enabled: true}" }).config.http.h2c, true);
    assertConfigError(() => parse(`${MINIMAL}http:\n  h2c: true\n`), "http.h2c", "expected a mapping");
    assertConfigError(() => parse(`${MINIMAL}http:\n  h2c:\n    enabled: sometimes\n`), "http.h2c.enabled", "");
    const overTls = parse(`${MINIMAL}http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n  h2c:\n    enabled: true\n`);
    assert.deepEqual(overTls.warnings, ["http.h2c.enabled has no effect with http.tls: there is no cleartext listener (HTTP/2 over TLS is http.http2)"]);
  });

  it("requires http.host to be an http(s) URL without a path", () => {
    assert.equal(parse(`${MINIMAL}http:\n  host: https://r.example.com/\n`).config.http.host, "https://r.example.com");
    assertConfigError(() => parse(`${MINIMAL}http:\n  host: r.example.com\n`), "http.host", "expected an absolute URL");
    assertConfigError(() => parse(`${MINIMAL}http:\n  host: ftp://r.example.com\n`), "http.host", "expected an http or https URL");
    assertConfigError(() => parse(`${MINIMAL}http:\n  host: https://r.example.com/v2\n`), "http.host", "without path");
    assertConfigError(() => parse(`${MINIMAL}http:\n  host: https://u:p@r.example.com\n`), "http.host", "credentials");
  });

  it("rejects invalid header names and values", () => {
    assertConfigError(() => parse(`${MINIMAL}http:\n  headers:\n    "Bad Header": [x]\n`), "http.headers.Bad Header", "not a valid HTTP header name");
    assertConfigError(() => parse(`${MINIMAL}http:\n  headers:\n    X-Evil: ["a\\r\\nSet-Cookie: x"]\n`), "http.headers.X-Evil", "invalid header value");
  });

  it("storage.maintenance.gc defaults to off, daily, one hour of grace, a quarter of a core", () => {
    assert.deepEqual(parse(MINIMAL).config.storage.gc, { enabled: false, intervalMs: 24 * HOUR, dryRun: false, deleteUntagged: false, graceMs: HOUR, maxCpu: 0.25 });
  });

  it("reads storage.maintenance.gc.maxcpu as a share of one core in (0, 1]", () => {
    const P = "storage.maintenance.gc.maxcpu";
    const gc = (v: string): string => `${MINIMAL}  maintenance:\n    gc:\n      maxcpu: ${v}\n`;
    assert.equal(parse(gc("0.5")).config.storage.gc.maxCpu, 0.5);
    assert.equal(parse(gc("1")).config.storage.gc.maxCpu, 1);
    assert.equal(parse(gc(".1")).config.storage.gc.maxCpu, 0.1);
    assert.equal(parse(MINIMAL, { REGISTRY_STORAGE_MAINTENANCE_GC_MAXCPU: "0.75" }).config.storage.gc.maxCpu, 0.75);
    for (const bad of ["0", "1.5", "-0.2", "25%", "half", "1e-1"]) {
      assertConfigError(() => parse(gc(JSON.stringify(bad))), P, "expected a share of one core above 0 and at most 1");
    }
    assertConfigError(() => parse(MINIMAL, { REGISTRY_STORAGE_MAINTENANCE_GC_MAXCPU: "2" }), P, "REGISTRY_STORAGE_MAINTENANCE_GC_MAXCPU");
  });

  it("rejects storage.maintenance.gc values that would collect what a push still needs, or poll in a loop", () => {
    const P = "storage.maintenance.gc";
    const gc = (k: string, v: string): string => `${MINIMAL}  maintenance:\n    gc:\n      ${k}: ${v}\n`;
    assert.throws(() => parse(gc("graceperiod", "5m")), {
      message: `configuration: ${P}.graceperiod: must be at least 10m0s: a layer pushed a moment before its manifest must not be collected in between`,
    });
    assert.throws(() => parse(gc("interval", "30s")), { message: `configuration: ${P}.interval: must be at least 1m` });
    assert.throws(() => parse(gc("enabled", "maybe")), { message: `configuration: ${P}.enabled: expected a boolean, got "maybe"` });
    assert.throws(() => parse(`${MINIMAL}  maintenance:\n    gc:\n      graceperiod: 1m\n`, {}), /graceperiod: must be at least 10m0s/);
    assert.throws(() => parse(MINIMAL, { REGISTRY_STORAGE_MAINTENANCE_GC_GRACEPERIOD: "1s" }), {
      message: `configuration: ${P}.graceperiod: must be at least 10m0s: a layer pushed a moment before its manifest must not be collected in between (from environment variable REGISTRY_STORAGE_MAINTENANCE_GC_GRACEPERIOD)`,
    });
    assert.match(parse(gc("bogus", "1")).warnings.join("\n"), /storage\.maintenance\.gc\.bogus/);
  });

  it("rejects invalid durations naming the key", () => {
    const P = "storage.maintenance.uploadpurging";
    const purge = (k: string, v: string): string => `${MINIMAL}  maintenance:\n    uploadpurging:\n      ${k}: ${v}\n`;
    assertConfigError(() => parse(purge("age", "7d")), `${P}.age`, 'unknown unit "d"');
    assertConfigError(() => parse(purge("interval", "10")), `${P}.interval`, "missing unit");
    assertConfigError(() => parse(purge("age", "0")), `${P}.age`, "must be greater than zero");
    assertConfigError(() => parse(purge("interval", "0s")), `${P}.interval`, "must be greater than zero");
    assertConfigError(() => parse(`${MINIMAL}http:\n  draintimeout: -1s\n`), "http.draintimeout", "must not be negative");
    assertConfigError(() => parse(`${MINIMAL}http:\n  draintimeout: soon\n`), "http.draintimeout", 'expected a duration such as "168h"');
  });
});

describe("durations", () => {
  it("parses Go durations into milliseconds", () => {
    const cases: Array<[string, number]> = [
      ["168h", 168 * HOUR],
      ["24h0m0s", 24 * HOUR],
      ["1h30m", 1.5 * HOUR],
      ["1.5h", 1.5 * HOUR],
      ["10s", 10_000],
      ["500ms", 500],
      [".5s", 500],
      ["1.s", 1000],
      ["0", 0],
      ["0s", 0],
      ["+2m", 120_000],
      ["-1m", -60_000],
      ["2h45m30.5s", 2 * HOUR + 45 * 60_000 + 30_500],
      ["1500us", 1.5],
      ["1500\u00b5s", 1.5],
      ["1500\u03bcs", 1.5],
      ["250000ns", 0.25],
    ];
    for (const [text, ms] of cases) assert.equal(parseGoDuration(text), ms, text);
  });

  it("rejects what time.ParseDuration rejects", () => {
    for (const text of ["", "10", "1d", "h", ".h", "1h 30m", " 1h", "1e3s", "9223372036854775808ns", "--1s"]) {
      assert.throws(() => parseGoDuration(text), Error, JSON.stringify(text));
    }
  });

  it("formats milliseconds like Go's Duration.String", () => {
    const cases: Array<[number, string]> = [
      [168 * HOUR, "168h0m0s"],
      [24 * HOUR, "24h0m0s"],
      [1.5 * HOUR, "1h30m0s"],
      [90_000, "1m30s"],
      [1500, "1.5s"],
      [500, "500ms"],
      [0.001, "1\u00b5s"],
      [0, "0s"],
    ];
    for (const [ms, text] of cases) assert.equal(formatGoDuration(ms), text, String(ms));
  });
});

describe("listen addresses", () => {
  it("splits host and port the way net.Listen reads them", () => {
    assert.deepEqual(parseListenAddress(":5000"), { host: "", port: 5000 });
    assert.deepEqual(parseListenAddress("127.0.0.1:5000"), { host: "127.0.0.1", port: 5000 });
    assert.deepEqual(parseListenAddress("[::1]:5000"), { host: "::1", port: 5000 });
    assert.deepEqual(parseListenAddress("[::]:443"), { host: "::", port: 443 });
    assert.deepEqual(parseListenAddress("localhost:5000"), { host: "localhost", port: 5000 });
    assert.deepEqual(parseListenAddress("0.0.0.0:0"), { host: "0.0.0.0", port: 0 });
  });

  it("rejects malformed addresses, naming http.addr", () => {
    for (const addr of ["5000", "::1:5000", "localhost:99999", "localhost:", "localhost:http", "[::1]5000", "[::1", "bad_host!:5000", "[127.0.0.1]:5000"]) {
      assertConfigError(() => parse(`${MINIMAL}http:\n  addr: "${addr}"\n`), "http.addr", `invalid listen address ${JSON.stringify(addr)}`);
    }
  });
});

describe("describeConfig", () => {
  it("masks the secret and uses distribution's key names", () => {
    const { config } = parse(`${DEBIAN_CONFIG.replace("http:\n", "http:\n  secret: hunter2-very-secret\n  host: https://r.example.com\n")}`);
    const described = describeConfig(config);
    const text = JSON.stringify(described);
    assert.ok(!text.includes("hunter2-very-secret"), text);
    assert.deepEqual(described, {
      version: "0.1",
      log: { level: "info", formatter: "text", fields: { service: "registry" }, accesslog: { disabled: false }, reportcaller: false },
      storage: {
        filesystem: { rootdirectory: "/var/lib/docker-registry" },
        delete: { enabled: true },
        redirect: { disable: false },
        maintenance: {
          uploadpurging: { enabled: true, age: "168h0m0s", interval: "24h0m0s", dryrun: false },
          gc: { enabled: false, interval: "24h0m0s", dryrun: false, deleteuntagged: false, graceperiod: "1h0m0s", maxcpu: 0.25 },
          readonly: { enabled: false },
        },
        cache: { blobdescriptor: "inmemory", blobdescriptorsize: 10000 },
      },
      http: {
        addr: ":5000",
        net: "tcp",
        host: "https://r.example.com",
        prefix: "/",
        secret: "********",
        headers: { "X-Content-Type-Options": ["nosniff"] },
        relativeurls: false,
        draintimeout: "0s",
        timeout: { readheader: "30s", idle: "5s", inactivity: "5m0s" },
        http2: { disabled: false },
        h2c: { enabled: false },
      },
      health: { storagedriver: { enabled: true, interval: "10s", threshold: 3 } },
      validation: { disabled: false, manifests: { urls: { allow: [], deny: [] }, indexes: { platforms: "all", platformlist: [] } } },
      ui: { enabled: true },
    });
  });

  it("masks a generated secret too and describes the inmemory driver", () => {
    const { config } = parse(MINIMAL);
    const described = describeConfig(config);
    assert.ok(!JSON.stringify(described).includes(config.http.secret));
    assert.deepEqual((described["storage"] as Record<string, unknown>)["inmemory"], {});
    assert.deepEqual((described["http"] as Record<string, unknown>)["secret"], "********");
  });
});

describe("unknown and unsupported keys", () => {
  it("warns about keys distribution does not have, with their full path", () => {
    const { warnings } = parse(`version: 0.1
colour: blue
storage:
  inmemory:
    size: 10
  delete:
    enabled: true
    soft: true
http:
  adress: :5000
log:
  fields:
    anything: goes
`);
    assert.deepEqual(warnings, [
      "unknown key colour",
      "unknown key storage.inmemory.size",
      "unknown key storage.delete.soft",
      "unknown key http.adress",
    ]);
  });

  it("warns about distribution sections berth ignores", () => {
    const sections = ["compatibility", "reporting"];
    const yaml = MINIMAL + sections.map((s) => `${s}:\n  something: 1\n`).join("");
    const { warnings } = parse(yaml);
    assert.deepEqual(warnings, sections.map((s) => `${s} is not supported by berth yet and is ignored`));
  });

  it("warns about nested distribution keys berth ignores", () => {
    const { warnings } = parse(`${MINIMAL}log:
  reportcaller: true
  hooks:
    - type: mail
http:
  debug:
    addr: :5001
    tls:
      certificate: /x
`);
    assert.deepEqual(warnings, [
      "log.hooks is not supported by berth yet and is ignored",
      "http.debug.tls is not supported by berth yet and is ignored",
    ]);
  });

  it("reads policy.repository.classes (a list, or one class), and from REGISTRY_POLICY_REPOSITORY_CLASSES", () => {
    assert.deepEqual(parse(`${MINIMAL}policy:\n  repository:\n    classes: [image, plugin]\n`).config.policy, { repositoryClasses: ["image", "plugin"] });
    assert.deepEqual(parse(MINIMAL).config.policy, { repositoryClasses: [] });
    assert.deepEqual(parse(MINIMAL, { REGISTRY_POLICY_REPOSITORY_CLASSES: "[image]" }).config.policy, { repositoryClasses: ["image"] });
    assert.deepEqual(parse(`${MINIMAL}policy:\n  repository:\n    kinds: [image]\n`).warnings, ["unknown key policy.repository.kinds"]);
  });

  it("does not warn about empty ignored sections", () => {
    assert.deepEqual(parse(`${MINIMAL}health:\nnotifications: {}\n`).warnings, []);
  });
});

describe("http.timeout (berth's connection timeouts)", () => {
  it("defaults to 30s for headers, 5s idle between requests and 5m of inactivity", () => {
    const { config, warnings } = parse(MINIMAL);
    assert.deepEqual(config.http.timeouts, { readHeaderMs: 30_000, idleMs: 5_000, inactivityMs: 300_000 });
    assert.deepEqual(warnings, []);
  });

  it("reads readheader, idle and inactivity as durations, each on its own", () => {
    const { config, warnings } = parse(`${MINIMAL}http:\n  timeout:\n    readheader: 1s\n    idle: 90s\n    inactivity: 1h\n`);
    assert.deepEqual(config.http.timeouts, { readHeaderMs: 1_000, idleMs: 90_000, inactivityMs: HOUR });
    assert.deepEqual(warnings, []);
    assert.deepEqual(parse(`${MINIMAL}http:\n  timeout:\n    idle: 500ms\n`).config.http.timeouts, { readHeaderMs: 30_000, idleMs: 500, inactivityMs: 300_000 });
  });

  it("takes REGISTRY_HTTP_TIMEOUT_* overrides", () => {
    const { config } = parse(MINIMAL, { REGISTRY_HTTP_TIMEOUT_READHEADER: "2s", REGISTRY_HTTP_TIMEOUT_INACTIVITY: "10m" });
    assert.deepEqual(config.http.timeouts, { readHeaderMs: 2_000, idleMs: 5_000, inactivityMs: 600_000 });
  });

  it("refuses zero, negative and unit-less values, naming the key", () => {
    assertConfigError(() => parse(`${MINIMAL}http:\n  timeout:\n    readheader: 0s\n`), "http.timeout.readheader", "greater than zero");
    assertConfigError(() => parse(`${MINIMAL}http:\n  timeout:\n    idle: "0"\n`), "http.timeout.idle", "greater than zero");
    assertConfigError(() => parse(`${MINIMAL}http:\n  timeout:\n    inactivity: -5s\n`), "http.timeout.inactivity", "");
    assertConfigError(() => parse(`${MINIMAL}http:\n  timeout:\n    inactivity: "300"\n`), "http.timeout.inactivity", "duration");
    assertConfigError(() => parse(MINIMAL, { REGISTRY_HTTP_TIMEOUT_IDLE: "0" }), "http.timeout.idle", "REGISTRY_HTTP_TIMEOUT_IDLE");
    assertConfigError(() => parse(`${MINIMAL}http:\n  timeout: 5s\n`), "http.timeout", "mapping");
  });

  it("warns about an unknown key under http.timeout", () => {
    const { warnings } = parse(`${MINIMAL}http:\n  timeout:\n    write: 5s\n`);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /http\.timeout\.write/);
  });

  it("is printed by describeConfig under distribution-style names", () => {
    const { config } = parse(`${MINIMAL}http:\n  timeout:\n    readheader: 10s\n    idle: 1m\n    inactivity: 2h\n`);
    assert.deepEqual((describeConfig(config).http as Record<string, unknown>).timeout, { readheader: "10s", idle: "1m0s", inactivity: "2h0m0s" });
  });
});

describe("redis section and the redis blob descriptor cache", () => {
  const REDIS_CACHE = `${MINIMAL}  cache:\n    blobdescriptor: redis\n`;

  it("reads distribution 2.8's keys", () => {
    const { config, warnings } = parse(`${REDIS_CACHE}redis:
  addr: redis.internal:6380
  password: asecret
  db: 3
  dialtimeout: 10ms
  readtimeout: 20ms
  writetimeout: 30ms
  pool:
    maxidle: 16
    maxactive: 64
    idletimeout: 300s
  tls:
    enabled: true
`);
    assert.deepEqual(warnings, []);
    assert.equal(config.storage.cache.blobDescriptor, "redis");
    assert.deepEqual(config.redis, {
      addr: "redis.internal:6380",
      host: "redis.internal",
      port: 6380,
      masterName: undefined,
      sentinels: [],
      cluster: [],
      username: undefined,
      password: "asecret",
      db: 3,
      dialTimeoutMs: 10,
      readTimeoutMs: 20,
      writeTimeoutMs: 30,
      tls: true,
      tlsFiles: { certificate: undefined, key: undefined, clientCAs: [], caKey: "clientcas" },
      pool: { maxIdle: 16, maxActive: 64, idleTimeoutMs: 300_000 },
    });
  });

  it("applies defaults, and reads the legacy layerinfo name", () => {
    const { config, warnings } = parse(`${MINIMAL}  cache:\n    layerinfo: redis\nredis:\n  addr: localhost:6379\n`);
    assert.deepEqual(warnings, []);
    assert.equal(config.storage.cache.blobDescriptor, "redis");
    assert.deepEqual(config.redis, {
      addr: "localhost:6379",
      host: "localhost",
      port: 6379,
      masterName: undefined,
      sentinels: [],
      cluster: [],
      username: undefined,
      password: undefined,
      db: 0,
      dialTimeoutMs: 5_000,
      readTimeoutMs: 1_000,
      writeTimeoutMs: 1_000,
      tls: false,
      tlsFiles: { certificate: undefined, key: undefined, clientCAs: [], caKey: "clientcas" },
      pool: { maxIdle: 0, maxActive: 0, idleTimeoutMs: 0 },
    });
    // A zero timeout means the default, not "none".
    assert.equal(parse(`${REDIS_CACHE}redis:\n  addr: localhost:6379\n  readtimeout: 0s\n`).config.redis?.readTimeoutMs, 1_000);
    // ":6379" is the local host, and IPv6 addresses are bracketed.
    assert.equal(parse(`${REDIS_CACHE}redis:\n  addr: ":6379"\n`).config.redis?.host, "localhost");
    const v6 = parse(`${REDIS_CACHE}redis:\n  addr: "[::1]:7000"\n`).config.redis;
    assert.deepEqual([v6?.host, v6?.port], ["::1", 7000]);
  });

  it("reads distribution 3.x's username, single-entry addrs and pool names", () => {
    const { config, warnings } = parse(`${REDIS_CACHE}redis:
  addrs: [cache.example.com:6379]
  username: alice
  password: "123456"
  db: 1
  maxidleconns: 16
  poolsize: 64
  connmaxidletime: 300s
`);
    assert.deepEqual(warnings, []);
    assert.equal(config.redis?.addr, "cache.example.com:6379");
    assert.equal(config.redis?.username, "alice");
    assert.equal(config.redis?.password, "123456");
    assert.deepEqual(config.redis?.pool, { maxIdle: 16, maxActive: 64, idleTimeoutMs: 300_000 });
  });

  it("refuses the redis cache without a server, naming the key", () => {
    assertConfigError(() => parse(REDIS_CACHE), "redis", "required by storage.cache.blobdescriptor: redis");
    assertConfigError(() => parse(`${REDIS_CACHE}redis:\n`), "redis", "required");
    assertConfigError(() => parse(`${REDIS_CACHE}redis:\n  password: x\n`), "redis.addr", "required by storage.cache.blobdescriptor: redis");
    assertConfigError(() => parse(`${REDIS_CACHE}redis:\n  addr: ""\n`), "redis.addr", "required");
  });

  it("refuses bad values, naming the key", () => {
    const bad = (body: string) => () => parse(`${REDIS_CACHE}redis:\n  addr: localhost:6379\n${body}`);
    assertConfigError(() => parse(`${REDIS_CACHE}redis:\n  addr: localhost\n`), "redis.addr", "missing port");
    assertConfigError(() => parse(`${REDIS_CACHE}redis:\n  addr: localhost:0\n`), "redis.addr", "port 0");
    assertConfigError(() => parse(`${REDIS_CACHE}redis:\n  addrs: [a:1, b:2]\n  db: 1\n`), "redis.db", "Redis Cluster has database 0 only");
    assertConfigError(() => parse(`${REDIS_CACHE}redis:\n  addrs: [a:1, b]\n`), "redis.addrs[1]", "invalid Redis address");
    assertConfigError(bad("  db: -1\n"), "redis.db", "non-negative integer");
    assertConfigError(bad("  db: one\n"), "redis.db", "non-negative integer");
    assertConfigError(bad("  dialtimeout: 10\n"), "redis.dialtimeout", "duration");
    assertConfigError(bad("  readtimeout: -1s\n"), "redis.readtimeout", "negative");
    assertConfigError(bad("  tls:\n    enabled: maybe\n"), "redis.tls.enabled", "boolean");
    assertConfigError(bad("  pool:\n    maxactive: lots\n"), "redis.pool.maxactive", "non-negative integer");
    assertConfigError(bad("  tls:\n    certificate: /etc/redis/client.pem\n"), "redis.tls.key", "required when redis.tls.certificate is set");
    assertConfigError(bad("  tls:\n    key: /etc/redis/client.key\n"), "redis.tls.certificate", "required when redis.tls.key is set");
    assertConfigError(bad("  tls:\n    rootcas: [/ca.pem]\n    clientcas: [/ca.pem]\n"), "redis.tls.rootcas", "clientcas is distribution 3.0's name of the same list");
    assertConfigError(bad("  tls:\n    enabled: false\n    clientcas: [/etc/redis/ca.pem]\n"), "redis.tls.enabled", "is false, but redis.tls names certificate files");
    assertConfigError(() => parse(REDIS_CACHE, { REGISTRY_REDIS_ADDR: "nohost" }), "redis.addr", "REGISTRY_REDIS_ADDR");
  });

  it("takes REGISTRY_REDIS_* overrides", () => {
    const { config, warnings } = parse(REDIS_CACHE, {
      REGISTRY_REDIS_ADDR: "10.0.0.5:6379",
      REGISTRY_REDIS_PASSWORD: "from-env",
      REGISTRY_REDIS_DB: "2",
      REGISTRY_REDIS_TLS_ENABLED: "true",
    });
    assert.deepEqual(warnings, []);
    assert.equal(config.redis?.host, "10.0.0.5");
    assert.equal(config.redis?.password, "from-env");
    assert.equal(config.redis?.db, 2);
    assert.equal(config.redis?.tls, true);
    const switched = parse(`${MINIMAL}redis:\n  addr: localhost:6379\n`, { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: "redis" });
    assert.equal(switched.config.storage.cache.blobDescriptor, "redis");
  });

  it("checks a redis section no cache uses, and says it is unused", () => {
    const { config, warnings } = parse(`${MINIMAL}redis:\n  addr: localhost:6379\n  password: x\n`);
    assert.equal(config.storage.cache.blobDescriptor, undefined);
    assert.equal(config.redis?.addr, "localhost:6379");
    assert.deepEqual(warnings, ["redis is configured but unused: only storage.cache.blobdescriptor: redis connects to it"]);
    assertConfigError(() => parse(`${MINIMAL}redis:\n  db: x\n`), "redis.db", "non-negative integer");
    assert.equal(parse(`${MINIMAL}redis:\n`).config.redis, undefined);
  });

  it("reads Sentinel: redis.addrs are the sentinels of redis.mastername", () => {
    const { config, warnings } = parse(`${REDIS_CACHE}redis:\n  addrs: [sentinel-1:26379, "[::1]:26380"]\n  mastername: registry\n  password: x\n`);
    assert.deepEqual(warnings, []);
    assert.equal(config.redis?.masterName, "registry");
    assert.deepEqual(config.redis?.sentinels, [
      { host: "sentinel-1", port: 26379 },
      { host: "::1", port: 26380 },
    ]);
    assert.deepEqual(describeConfig(config).redis, {
      mastername: "registry",
      addrs: ["sentinel-1:26379", "[::1]:26380"],
      password: "********",
      db: 0,
      dialtimeout: "5s",
      readtimeout: "1s",
      writetimeout: "1s",
      pool: { maxidle: 0, maxactive: 0, idletimeout: "0s" },
      tls: { enabled: false },
    });
    const fromEnv = parse(REDIS_CACHE, { REGISTRY_REDIS_ADDRS: "[10.0.0.5:26379, 10.0.0.6:26379]", REGISTRY_REDIS_MASTERNAME: "m" }).config.redis;
    assert.equal(fromEnv?.masterName, "m");
    assert.deepEqual(fromEnv?.sentinels, [
      { host: "10.0.0.5", port: 26379 },
      { host: "10.0.0.6", port: 26379 },
    ]);
  });

  it("reads several redis.addrs without redis.mastername as a Redis Cluster's nodes", () => {
    const { config, warnings } = parse(`${REDIS_CACHE}redis:\n  addrs: [node-1:7000, node-2:7001, node-3:7002]\n`);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.redis?.cluster, [
      { host: "node-1", port: 7000 },
      { host: "node-2", port: 7001 },
      { host: "node-3", port: 7002 },
    ]);
    assert.equal(config.redis?.masterName, undefined);
    assert.deepEqual((describeConfig(config).redis as { addrs?: unknown } | undefined)?.addrs, ["node-1:7000", "node-2:7001", "node-3:7002"]);
    assert.deepEqual(parse(REDIS_CACHE, { REGISTRY_REDIS_ADDRS: "[a:1, b:2]" }).config.redis?.cluster, [
      { host: "a", port: 1 },
      { host: "b", port: 2 },
    ]);
  });

  it("takes redis.tls with Sentinel and with a Cluster (the same settings for every server)", () => {
    const sentinel = parse(`${REDIS_CACHE}redis:\n  addrs: [a:1]\n  mastername: m\n  tls:\n    enabled: true\n`).config.redis!;
    assert.equal(sentinel.tls, true);
    assert.equal(sentinel.masterName, "m");
    const cluster = parse(`${REDIS_CACHE}redis:\n  addrs: [a:1, b:2]\n  tls:\n    clientcas: [/etc/berth/ca.pem]\n`, { REGISTRY_REDIS_TLS_ENABLED: "true" }).config.redis!;
    assert.equal(cluster.tls, true);
    assert.deepEqual(cluster.tlsFiles.clientCAs, ["/etc/berth/ca.pem"]);
    assert.equal(cluster.cluster.length, 2);
  });

  it("refuses Sentinel without sentinels, beside redis.addr, or with a bad address", () => {
    assertConfigError(() => parse(`${REDIS_CACHE}redis:\n  mastername: m\n`), "redis.addrs", "required with redis.mastername");
    assertConfigError(() => parse(`${REDIS_CACHE}redis:\n  addr: a:1\n  addrs: [b:2]\n  mastername: m\n`), "redis.addr", "list the sentinels in redis.addrs");
    assertConfigError(() => parse(`${REDIS_CACHE}redis:\n  addrs: [a:1, nohost]\n  mastername: m\n`), "redis.addrs[1]", "invalid Redis address");
    assertConfigError(() => parse(REDIS_CACHE, { REGISTRY_REDIS_ADDRS: "[a:1, nohost]" }), "redis.addrs[1]", "REGISTRY_REDIS_ADDRS");
  });

  it("reads redis.tls's files as absolute paths; they turn TLS on", () => {
    const { config, warnings } = parse(`${REDIS_CACHE}redis:\n  addr: localhost:6380\n  tls:\n    certificate: client.crt\n    key: /etc/berth/client.key\n    clientcas: [/etc/berth/ca.pem]\n`);
    assert.deepEqual(warnings, []);
    assert.equal(config.redis?.tls, true);
    assert.deepEqual(config.redis?.tlsFiles, { certificate: path.resolve("client.crt"), key: "/etc/berth/client.key", clientCAs: ["/etc/berth/ca.pem"], caKey: "clientcas" });
    assert.deepEqual((describeConfig(config).redis as { tls?: unknown } | undefined)?.tls, { enabled: true, certificate: path.resolve("client.crt"), key: "/etc/berth/client.key", clientcas: ["/etc/berth/ca.pem"] });
    const fromEnv = parse(`${REDIS_CACHE}redis:\n  addr: localhost:6380\n`, {
      REGISTRY_REDIS_TLS_CERTIFICATE: "/c.crt",
      REGISTRY_REDIS_TLS_KEY: "/c.key",
      REGISTRY_REDIS_TLS_CLIENTCAS: "[/ca1.pem, /ca2.pem]",
    }).config.redis;
    assert.deepEqual(fromEnv?.tlsFiles, { certificate: "/c.crt", key: "/c.key", clientCAs: ["/ca1.pem", "/ca2.pem"], caKey: "clientcas" });
    assert.equal(fromEnv?.tls, true);
    // The later distribution's name of the list, shown back under it.
    const rootcas = parse(`${REDIS_CACHE}redis:\n  addr: localhost:6380\n  tls:\n    rootcas: [/etc/berth/ca.pem]\n`).config;
    assert.deepEqual(rootcas.redis?.tlsFiles, { certificate: undefined, key: undefined, clientCAs: ["/etc/berth/ca.pem"], caKey: "rootcas" });
    assert.equal(rootcas.redis?.tls, true);
    assert.deepEqual((describeConfig(rootcas).redis as { tls?: unknown } | undefined)?.tls, { enabled: true, rootcas: ["/etc/berth/ca.pem"] });
  });

  it("warns about redis keys it does not know, and about addrs beside addr", () => {
    const { warnings } = parse(`${REDIS_CACHE}redis:\n  addr: localhost:6379\n  sentinelpassword: x\n`);
    assert.deepEqual(warnings, ["unknown key redis.sentinelpassword"]);
    const both = parse(`${REDIS_CACHE}redis:\n  addr: localhost:6379\n  addrs: [a:1, b:2]\n`);
    assert.equal(both.config.redis?.addr, "localhost:6379");
    assert.deepEqual(both.warnings, ["redis.addrs is ignored: redis.addr is set"]);
  });

  it("masks the password in describeConfig", () => {
    const { config } = parse(`${REDIS_CACHE}redis:\n  addr: localhost:6379\n  username: bob\n  password: hunter2\n  readtimeout: 250ms\n`);
    const described = describeConfig(config);
    assert.ok(!JSON.stringify(described).includes("hunter2"));
    assert.deepEqual(described.redis, {
      addr: "localhost:6379",
      username: "bob",
      password: "********",
      db: 0,
      dialtimeout: "5s",
      readtimeout: "250ms",
      writetimeout: "1s",
      pool: { maxidle: 0, maxactive: 0, idletimeout: "0s" },
      tls: { enabled: false },
    });
    assert.deepEqual((describeConfig(config).storage as Record<string, unknown>).cache, { blobdescriptor: "redis", blobdescriptorsize: 10000 });
    assert.equal(describeConfig(parse(MINIMAL).config).redis, undefined);
  });
});

describe("proxy (pull-through cache)", () => {
  it("reads distribution's keys as one upstream serving every name, with distribution's defaults", () => {
    const { config, warnings } = parse(`${MINIMAL}proxy:\n  remoteurl: https://registry-1.docker.io/\n  username: bob\n  password: pw\n`);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.proxy, {
      upstreams: [
        {
          prefix: "",
          remoteURL: "https://registry-1.docker.io",
          username: "bob",
          password: "pw",
          ttlMs: 168 * 3_600_000,
          namespaces: ["docker.io"],
          libraryPrefix: true,
          maxStalenessMs: undefined,
          maxSizeBytes: undefined,
          connectTimeoutMs: 5_000,
          readTimeoutMs: 30_000,
        },
      ],
    });
  });

  it("takes REGISTRY_PROXY_* overrides, and ttl 0 as never expiring", () => {
    const { config } = parse(MINIMAL, { REGISTRY_PROXY_REMOTEURL: "http://upstream.test:5000", REGISTRY_PROXY_TTL: "0" });
    const upstream = config.proxy?.upstreams[0];
    assert.equal(upstream?.remoteURL, "http://upstream.test:5000");
    assert.equal(upstream?.ttlMs, 0);
    assert.deepEqual(upstream?.namespaces, ["upstream.test:5000"]);
    assert.equal(upstream?.libraryPrefix, false);
  });

  it("takes a whole list of upstreams from REGISTRY_PROXY_UPSTREAMS", () => {
    const { config, warnings } = parse(MINIMAL, { REGISTRY_PROXY_UPSTREAMS: "[{prefix: hub, remoteurl: https://registry-1.docker.io, ttl: 24h}]" });
    assert.deepEqual(warnings, []);
    assert.equal(config.proxy?.upstreams.length, 1);
    assert.equal(config.proxy?.upstreams[0]?.prefix, "hub");
    assert.equal(config.proxy?.upstreams[0]?.ttlMs, 24 * 3_600_000);
  });

  it("reads a list of upstreams, each with its own prefix, credentials, TTL and limits, longest prefix first", () => {
    const { config, warnings } = parse(`${MINIMAL}proxy:
  upstreams:
    - prefix: hub
      remoteurl: https://registry-1.docker.io
      ttl: 24h
      maxsize: 10GiB
      maxstaleness: 1h
    - prefix: hub/internal/
      remoteurl: https://ghcr.io
      username: u
      password: p
      namespaces: [ghcr.io, GHCR.example]
      libraryprefix: false
      connecttimeout: 2s
      readtimeout: 10s
      color: blue
`);
    assert.deepEqual(warnings, ["unknown key proxy.upstreams[1].color"]);
    const [first, second] = config.proxy?.upstreams ?? [];
    assert.equal(first?.prefix, "hub/internal");
    assert.deepEqual(first?.namespaces, ["ghcr.io", "ghcr.example"]);
    assert.equal(first?.connectTimeoutMs, 2_000);
    assert.equal(first?.readTimeoutMs, 10_000);
    assert.equal(second?.prefix, "hub");
    assert.equal(second?.maxSizeBytes, 10 * 2 ** 30);
    assert.equal(second?.maxStalenessMs, 3_600_000);
    assert.equal(second?.ttlMs, 24 * 3_600_000);
  });

  it("refuses an upstream without a URL, with a URL that is not http(s), or with credentials in the URL", () => {
    assertConfigError(() => parse(`${MINIMAL}proxy:\n  username: a\n  password: b\n`), "proxy.remoteurl", "required");
    assertConfigError(() => parse(`${MINIMAL}proxy:\n  remoteurl: ftp://x\n`), "proxy.remoteurl", "http or https");
    assertConfigError(() => parse(`${MINIMAL}proxy:\n  remoteurl: not a url\n`), "proxy.remoteurl", "is not a URL");
    assertConfigError(() => parse(`${MINIMAL}proxy:\n  remoteurl: https://u:p@x\n`), "proxy.remoteurl", "credentials go in username");
  });

  it("refuses half credentials, bad prefixes, duplicate prefixes and namespaces, and bad sizes", () => {
    assertConfigError(() => parse(`${MINIMAL}proxy:\n  remoteurl: https://x\n  username: a\n`), "proxy.password", "go together");
    const list = (entries: string) => `${MINIMAL}proxy:\n  upstreams:\n${entries}`;
    assertConfigError(() => parse(list("    - remoteurl: https://x\n")), "proxy.upstreams[0].prefix", "required");
    assertConfigError(() => parse(list("    - prefix: Hub\n      remoteurl: https://x\n")), "proxy.upstreams[0].prefix", "not a repository name prefix");
    assertConfigError(
      () => parse(list("    - prefix: a\n      remoteurl: https://x\n    - prefix: a\n      remoteurl: https://y\n")),
      "proxy.upstreams",
      "two upstreams serve the prefix a",
    );
    assertConfigError(
      () => parse(list("    - prefix: a\n      remoteurl: https://x\n    - prefix: b\n      remoteurl: https://x\n")),
      "proxy.upstreams",
      "answer the namespace x",
    );
    assertConfigError(() => parse(list("    - prefix: a\n      remoteurl: https://x\n      maxsize: lots\n")), "proxy.upstreams[0].maxsize", "expected a size");
    assertConfigError(() => parse(list("    - prefix: a\n      remoteurl: https://x\n      readtimeout: 0s\n")), "proxy.upstreams[0].readtimeout", "greater than zero");
    assertConfigError(() => parse(`${MINIMAL}proxy:\n  remoteurl: https://x\n  prefix: a\n`), "proxy.prefix", "give a prefix to an entry");
  });
});

describe("health (distribution's periodic checks)", () => {
  const withHealth = (yaml: string): string => `${MINIMAL}health:\n${yaml}`;

  it("reads every check with distribution's defaults: 10 s interval, threshold 1, status 200, timeout the interval", () => {
    const { config, warnings } = parse(
      withHealth(`  storagedriver:
    enabled: true
  file:
    - file: drain-me
  http:
    - uri: http://127.0.0.1:8080/ping
  tcp:
    - addr: 127.0.0.1:6379
`),
    );
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.health, {
      storageDriver: { intervalMs: 10_000, threshold: 1 },
      files: [{ file: "drain-me", path: path.resolve("drain-me"), intervalMs: 10_000, threshold: 1 }],
      http: [{ uri: "http://127.0.0.1:8080/ping", hostname: "127.0.0.1", headers: {}, statusCode: 200, timeoutMs: 10_000, intervalMs: 10_000, threshold: 1 }],
      tcp: [{ addr: "127.0.0.1:6379", host: "127.0.0.1", port: 6379, timeoutMs: 10_000, intervalMs: 10_000, threshold: 1 }],
    });
  });

  it("reads the configured values", () => {
    const { config } = parse(
      withHealth(`  storagedriver: { enabled: true, interval: 2s, threshold: 3 }
  http:
    - uri: https://auth.example.com/health
      headers: { Authorization: [Bearer abc] }
      statuscode: 204
      timeout: 500ms
      interval: 1m
      threshold: 2
  tcp:
    - { addr: "[::1]:5432", timeout: 1s, interval: 5s, threshold: 4 }
`),
    );
    assert.deepEqual(config.health?.storageDriver, { intervalMs: 2_000, threshold: 3 });
    assert.deepEqual(config.health?.http[0], {
      uri: "https://auth.example.com/health",
      hostname: "auth.example.com",
      headers: { Authorization: ["Bearer abc"] },
      statusCode: 204,
      timeoutMs: 500,
      intervalMs: 60_000,
      threshold: 2,
    });
    assert.deepEqual(config.health?.tcp[0], { addr: "[::1]:5432", host: "::1", port: 5432, timeoutMs: 1_000, intervalMs: 5_000, threshold: 4 });
  });

  it("configures nothing when the storage driver check is disabled and no other check is listed", () => {
    assert.equal(parse(withHealth("  storagedriver:\n    enabled: false\n    interval: 3s\n")).config.health, undefined);
    assert.equal(parse(MINIMAL).config.health, undefined);
  });

  it("REGISTRY_HEALTH_* overrides set the storage driver check and the check lists", () => {
    const { config, warnings } = parse(MINIMAL, {
      REGISTRY_HEALTH_STORAGEDRIVER_ENABLED: "true",
      REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL: "5s",
      REGISTRY_HEALTH_STORAGEDRIVER_THRESHOLD: "2",
      REGISTRY_HEALTH_FILE: "[{file: /srv/drain, interval: 1s}]",
      REGISTRY_HEALTH_TCP: '[{addr: "127.0.0.1:6379"}]',
    });
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.health?.storageDriver, { intervalMs: 5_000, threshold: 2 });
    assert.deepEqual(config.health?.files, [{ file: "/srv/drain", path: "/srv/drain", intervalMs: 1_000, threshold: 1 }]);
    assert.equal(config.health?.tcp[0]?.addr, "127.0.0.1:6379");
  });

  it("refuses a zero or negative interval, naming the key", () => {
    assert.throws(() => parse(withHealth("  storagedriver:\n    enabled: true\n    interval: 0s\n")), {
      message: 'configuration: health.storagedriver.interval: must be a positive duration such as "10s", got "0s"',
    });
    assert.throws(() => parse(withHealth("  file:\n    - file: /srv/drain\n      interval: -1s\n")), {
      message: 'configuration: health.file[0].interval: must be a positive duration such as "10s", got "-1s"',
    });
    assert.throws(() => parse(MINIMAL, { REGISTRY_HEALTH_STORAGEDRIVER_ENABLED: "true", REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL: "0" }), {
      message: 'configuration: health.storagedriver.interval: must be a positive duration such as "10s", got "0" (from environment variable REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL)',
    });
  });

  it("refuses a uri that is no http or https URL, naming the key", () => {
    assert.throws(() => parse(withHealth("  http:\n    - uri: not a url\n")), {
      message: 'configuration: health.http[0].uri: must be an http or https URL with a host, got "not a url"',
    });
    assert.throws(() => parse(withHealth("  http:\n    - uri: ftp://files.example.com/\n")), {
      message: 'configuration: health.http[0].uri: must be an http or https URL with a host, got "ftp://files.example.com/"',
    });
    assert.throws(() => parse(withHealth("  http:\n    - uri: https://user:hunter2@/x\n")), {
      message: 'configuration: health.http[0].uri: must be an http or https URL with a host, got "https://user:***@/x"',
    });
    assert.throws(() => parse(withHealth("  http:\n    - headers: {}\n")), {
      message: "configuration: health.http[0].uri: required: the http or https URL to send HEAD requests to",
    });
  });

  it("refuses an addr without a port, naming the key", () => {
    assert.throws(() => parse(withHealth("  tcp:\n    - addr: redis.example.com\n")), {
      message: 'configuration: health.tcp[0].addr: expected host:port, got "redis.example.com": missing port (expected "host:port" or ":port")',
    });
    assert.throws(() => parse(withHealth("  tcp:\n    - addr: :6379\n")), {
      message: 'configuration: health.tcp[0].addr: expected host:port with a host and a port other than 0, got ":6379"',
    });
  });

  it("refuses a bad status code, threshold or list shape, and two checks of one name", () => {
    assert.throws(() => parse(withHealth("  http:\n    - uri: http://a.example/\n      statuscode: 700\n")), {
      message: 'configuration: health.http[0].statuscode: expected an HTTP status code (100-599), got "700"',
    });
    assert.throws(() => parse(withHealth("  tcp:\n    - addr: a.example:1\n      threshold: many\n")), {
      message: 'configuration: health.tcp[0].threshold: expected a non-negative integer, got "many"',
    });
    assert.throws(() => parse(withHealth("  file: /srv/drain\n")), { message: 'configuration: health.file: expected a list of checks, got "/srv/drain"' });
    assert.throws(() => parse(withHealth("  file:\n    - file: /srv/drain\n    - file: /srv/drain\n")), {
      message: 'configuration: health.file[1].file: "/srv/drain" is already checked by health.file[0].file; each check needs its own file, URI or address',
    });
  });

  it("warns about an unknown key in a check", () => {
    assert.deepEqual(parse(withHealth("  tcp:\n    - addr: a.example:1\n      intervall: 5s\n")).warnings, ["unknown key health.tcp[0].intervall"]);
  });
});

describe("describeConfig masks every secret", () => {
  it("never shows http.secret, passwords, S3 keys, header values of notifications or health checks, signing keys or URL passwords", () => {
    const secrets = ["httpsecret1", "s3secretkey1", "s3session1", "proxypass1", "redispass1", "hookheader1", "signkey1", "hookurlpass1", "healthheader1", "healthurlpass1"];
    const { config } = parse(`version: 0.1
storage:
  s3:
    bucket: b
    region: us-east-1
    accesskey: AKIAEXAMPLE
    secretkey: ${secrets[1]}
    sessiontoken: ${secrets[2]}
  cache:
    blobdescriptor: redis
http:
  secret: ${secrets[0]}
proxy:
  remoteurl: https://registry-1.docker.io
  username: someone
  password: ${secrets[3]}
redis:
  addr: localhost:6379
  password: ${secrets[4]}
notifications:
  endpoints:
    - name: hook
      url: https://user:${secrets[7]}@hooks.example.com/registry
      headers: { Authorization: [Bearer ${secrets[5]}] }
      signingkey: ${secrets[6]}
health:
  http:
    - uri: https://probe:${secrets[9]}@auth.example.com/health
      headers: { Authorization: [Basic ${secrets[8]}] }
`);
    const shown = JSON.stringify(describeConfig(config));
    for (const secret of secrets) assert.ok(!shown.includes(secret), `${secret} is shown: ${shown}`);
    const health = describeConfig(config)["health"] as { http: Array<Record<string, unknown>> };
    assert.deepEqual(health.http[0], {
      uri: "https://probe:***@auth.example.com/health",
      headers: { Authorization: "<redacted>" },
      statuscode: 200,
      timeout: "10s",
      interval: "10s",
      threshold: 1,
    });
  });
});

describe("http.debug (the debug listener and Prometheus)", () => {
  it("is off by default", () => {
    const { config, warnings } = parse(MINIMAL);
    assert.deepEqual(config.http.debug, { addr: undefined, listenHost: "", listenPort: 0, prometheus: { enabled: false, path: "/metrics", repositories: 0, gcDurations: false } });
    assert.deepEqual(warnings, []);
  });

  it("reads addr, prometheus.enabled, path and repositories", () => {
    const { config, warnings } = parse(`${MINIMAL}http:\n  debug:\n    addr: 127.0.0.1:5001\n    prometheus:\n      enabled: true\n      path: /prom\n      repositories: 20\n      gcdurations: true\n`);
    assert.deepEqual(config.http.debug, { addr: "127.0.0.1:5001", listenHost: "127.0.0.1", listenPort: 5001, prometheus: { enabled: true, path: "/prom", repositories: 20, gcDurations: true } });
    assert.deepEqual(warnings, []);
  });

  it("takes REGISTRY_HTTP_DEBUG_* overrides", () => {
    const { config } = parse(MINIMAL, {
      REGISTRY_HTTP_DEBUG_ADDR: ":5001",
      REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED: "true",
      REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH: "/m",
      REGISTRY_HTTP_DEBUG_PROMETHEUS_REPOSITORIES: "5",
    });
    assert.deepEqual(config.http.debug, { addr: ":5001", listenHost: "", listenPort: 5001, prometheus: { enabled: true, path: "/m", repositories: 5, gcDurations: false } });
  });

  it("warns, as distribution serves nothing, when prometheus is enabled without a debug address", () => {
    const { config, warnings } = parse(`${MINIMAL}http:\n  debug:\n    prometheus:\n      enabled: true\n`);
    assert.equal(config.http.debug.prometheus.enabled, false);
    assert.deepEqual(warnings, ["http.debug.prometheus.enabled without http.debug.addr: no listener serves the metrics, so none are collected"]);
  });

  it("refuses an invalid address, naming the key", () => {
    assertConfigError(() => parse(`${MINIMAL}http:\n  debug:\n    addr: localhost\n`), "http.debug.addr", 'invalid listen address "localhost": missing port (expected "host:port" or ":port")');
    assertConfigError(() => parse(MINIMAL, { REGISTRY_HTTP_DEBUG_ADDR: ":99999" }), "http.debug.addr", 'invalid listen address ":99999": "99999" is not a port number (0-65535) (from environment variable REGISTRY_HTTP_DEBUG_ADDR)');
  });

  it("refuses the API's own port", () => {
    assertConfigError(() => parse(`${MINIMAL}http:\n  addr: :5000\n  debug:\n    addr: 127.0.0.1:5000\n`), "http.debug.addr", '"127.0.0.1:5000" is the port http.addr listens on; the debug listener needs a port of its own');
    // Another address on the same port is another socket.
    assert.equal(parse(`${MINIMAL}http:\n  addr: 127.0.0.1:5000\n  debug:\n    addr: 127.0.0.2:5000\n`).config.http.debug.listenPort, 5000);
  });

  it("refuses a metrics path that is not a path, is under /v2 or is taken", () => {
    const withPath = (path: string) => `${MINIMAL}http:\n  debug:\n    addr: :5001\n    prometheus:\n      enabled: true\n      path: ${JSON.stringify(path)}\n`;
    assertConfigError(() => parse(withPath("metrics")), "http.debug.prometheus.path", 'must start with "/", got "metrics"');
    assertConfigError(() => parse(withPath("/v2/metrics")), "http.debug.prometheus.path", '"/v2/metrics" is under /v2, the registry API\'s path');
    assertConfigError(() => parse(withPath("/v2")), "http.debug.prometheus.path", '"/v2" is under /v2, the registry API\'s path');
    assertConfigError(() => parse(withPath("/debug/health")), "http.debug.prometheus.path", '"/debug/health" is already served on the debug listener');
    assertConfigError(() => parse(withPath("/debug/health/ready")), "http.debug.prometheus.path", '"/debug/health/ready" is already served on the debug listener');
    assertConfigError(() => parse(withPath("/debug/config")), "http.debug.prometheus.path", '"/debug/config" is already served on the debug listener');
    assertConfigError(() => parse(withPath("/m?x=1")), "http.debug.prometheus.path", 'must be a path without query or fragment, got "/m?x=1"');
  });

  it("bounds prometheus.repositories", () => {
    assertConfigError(() => parse(`${MINIMAL}http:\n  debug:\n    addr: :5001\n    prometheus:\n      repositories: 20000\n`), "http.debug.prometheus.repositories", "at most 10000, got 20000");
    assertConfigError(() => parse(`${MINIMAL}http:\n  debug:\n    addr: :5001\n    prometheus:\n      repositories: many\n`), "http.debug.prometheus.repositories", 'expected a non-negative integer, got "many"');
  });
});
