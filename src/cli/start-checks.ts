/**
 * What `berth serve` checks before it listens, beyond the configuration's keys: the files it reads
 * (htpasswd, token root certificates and JWKS, the TLS certificate, key and client CAs, the Redis
 * client certificate and CAs), the filesystem root it writes, the hosts the health checks name,
 * and the OTEL_* environment. `berth config check` runs this same function, so it refuses exactly
 * what serve refuses at start. Each failure is a ConfigError naming its key (or variable).
 *
 * Not here, because a configuration cannot be faulted for them: a port already taken, storage or
 * Redis that is down at the moment (berth starts without Redis and waits for S3).
 */
import type { AccessController } from "../auth/access-controller.js";
import type { Config } from "../config/config.js";
import { checkFilesystemRoot } from "../driver/filesystem-root-check.js";
import { resolveCheckHosts } from "../health/resolve-check-hosts.js";
import type { Logger } from "../log/logger.js";
import { loadBaseTlsOptions, loadTlsOptions } from "../server/tls-server.js";
import { readTracingSettings } from "../tracing/tracing-settings.js";
import { createAccessController } from "./compose.js";

/** What the checks loaded that serve goes on using. */
export interface StartPrerequisites {
  access: AccessController;
}

export async function checkStartPrerequisites(config: Config, env: NodeJS.ProcessEnv, log: Logger): Promise<StartPrerequisites> {
  readTracingSettings(env);
  const tls = config.http.tls;
  // With letsencrypt there is no certificate file: the client CAs and suites are still checked.
  if (tls !== undefined) (tls.letsEncrypt === undefined ? loadTlsOptions : loadBaseTlsOptions)(tls);
  // Only when the cache connects: an unused redis section is reported, never dialled.
  if (config.storage.cache.blobDescriptor === "redis" && config.redis !== undefined) {
    const { loadRedisTlsOptions } = await import("../cache/redis-tls.js");
    loadRedisTlsOptions(config.redis);
  }
  const driver = config.storage.driver;
  // A read-only registry writes nothing, and starts on a root it cannot write.
  if (driver.kind === "filesystem" && !config.storage.readOnly) await checkFilesystemRoot(driver.rootDirectory);
  if (config.health !== undefined) await resolveCheckHosts(config.health);
  return { access: await createAccessController(config, log) };
}
