// Builds the typed Config from the checked Raw tree, one section at a time.
import { buildAuth } from "./build-auth.js";
import { buildDebug } from "./build-debug.js";
import { buildHealth } from "./build-health.js";
import { buildHttp } from "./build-http.js";
import { buildLog } from "./build-log.js";
import { buildNotifications } from "./build-notifications.js";
import { buildPolicy } from "./build-policy.js";
import { buildProxy } from "./build-proxy.js";
import { buildRedis } from "./build-redis.js";
import { buildStorage } from "./build-storage.js";
import { buildTls } from "./build-tls.js";
import type { Config } from "./config.js";
import { child, fail, readString } from "./raw-values.js";
import type { RawMap } from "./raw-yaml.js";

export function buildConfig(root: RawMap, warnings: string[]): Config {
  const versionNode = child(root, "version");
  const version = readString(versionNode, "version");
  if (version === undefined) throw fail("version", versionNode, 'required; set "version: 0.1"');
  if (version !== "0.1") throw fail("version", versionNode, `unsupported version ${JSON.stringify(version)}; berth reads version 0.1`);

  const storage = buildStorage(root, warnings);
  const http = buildHttp(root);
  return {
    version,
    log: buildLog(root, warnings),
    storage,
    http: { ...http, ...buildTls(root, warnings), debug: buildDebug(root, http, warnings) },
    auth: buildAuth(root, warnings),
    redis: buildRedis(root, storage.cache.blobDescriptor === "redis", warnings),
    proxy: buildProxy(root, warnings),
    notifications: buildNotifications(root, warnings),
    health: buildHealth(root, warnings),
    policy: buildPolicy(root),
  };
}
