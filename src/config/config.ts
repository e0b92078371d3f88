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
  };
  storage: {
    driver: FilesystemStorage | InMemoryStorage;
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
    readOnly: boolean;
    cache: { blobDescriptor: "inmemory" | undefined; blobDescriptorSize: number };
  };
  http: {
    /** host:port or :port as distribution writes it */
    addr: string;
    /** Parsed from addr. Empty host means all interfaces. */
    listenHost: string;
    listenPort: number;
    /** Base URL used to build absolute Location headers; undefined means derive from the request. */
    host: string | undefined;
    prefix: string;
    /** HMAC key for upload state tokens. Random per process when not configured (single node only). */
    secret: string;
    secretGenerated: boolean;
    headers: Record<string, string[]>;
    relativeUrls: boolean;
    drainTimeoutMs: number;
  };
}

export interface FilesystemStorage {
  kind: "filesystem";
  rootDirectory: string;
}

export interface InMemoryStorage {
  kind: "inmemory";
}

/** A configuration problem, naming the key. Start-up prints it and exits with status 1. */
export class ConfigError extends Error {
  constructor(readonly key: string, problem: string) {
    super(`configuration: ${key}: ${problem}`);
    this.name = "ConfigError";
  }
}
