import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import type { Config } from "../config/config.js";
import { createLogger, type Logger } from "../log/logger.js";
import { createRegistryServer } from "../server/app.js";
import { purgeUploads } from "../storage/upload-purger.js";
import { createDriver, createRegistry, describeStorage, serverSettings } from "./compose.js";

export interface RunningRegistry {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Starts the registry described by `config` and resolves once it listens. */
export async function serve(config: Config, warnings: string[], logOverride?: Logger): Promise<RunningRegistry> {
  const log =
    logOverride ?? createLogger({ level: config.log.level, formatter: config.log.formatter, fields: config.log.fields });
  for (const warning of warnings) log.warn(warning);
  if (config.http.secretGenerated) {
    log.warn("http.secret is not set: generated one for this process; set it when running more than one node");
  }
  const driver = createDriver(config);
  const registry = createRegistry(config, driver, log);
  const server = createRegistryServer({
    registry,
    settings: serverSettings(config),
    secret: config.http.secret,
    log,
    accessLog: !config.log.accessLogDisabled,
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.http.listenPort, config.http.listenHost || undefined, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  log.info({ listen: url, storage: describeStorage(config), readOnly: config.storage.readOnly, deleteEnabled: config.storage.deleteEnabled }, `berth listening on ${url}, storing in ${describeStorage(config)}`);

  const purging = config.storage.uploadPurging;
  // setTimeout fires at once for delays past 2^31-1 ms (~24.8 days); a longer interval waits that long.
  const intervalMs = Math.min(purging.intervalMs, 2 ** 31 - 1);
  let purgeTimer: NodeJS.Timeout | undefined;
  if (purging.enabled && !config.storage.readOnly) {
    const purge = async (): Promise<void> => {
      const result = await purgeUploads(driver, new Date(Date.now() - purging.ageMs), purging.dryRun, log);
      if (result.purged.length > 0 || result.errors > 0) {
        log.info({ purged: result.purged.length, errors: result.errors, dryRun: purging.dryRun }, "purged stale uploads");
      }
    };
    const schedule = (): void => {
      purgeTimer = setTimeout(() => {
        purge().catch((err: unknown) => log.error({ err }, "upload purge failed")).finally(schedule);
      }, intervalMs);
      purgeTimer.unref();
    };
    // distribution waits a random part of the first interval so restarts do not purge in step.
    purgeTimer = setTimeout(() => {
      purge().catch((err: unknown) => log.error({ err }, "upload purge failed")).finally(schedule);
    }, Math.min(intervalMs, Math.floor(Math.random() * 60_000)));
    purgeTimer.unref();
  }

  return {
    server,
    url,
    close: async () => {
      if (purgeTimer) clearTimeout(purgeTimer);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}
