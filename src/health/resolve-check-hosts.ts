import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { ConfigError, type HealthConfig } from "../config/config.js";

/**
 * Every host a check names resolves, or start-up fails naming the key: a typo in a host name would
 * otherwise only show as a check that is down, draining the node for a reason nobody looks for.
 */
export async function resolveCheckHosts(health: HealthConfig): Promise<void> {
  const hosts = [
    ...health.http.map((check, i) => ({ key: `health.http[${i}].uri`, host: check.hostname })),
    ...health.tcp.map((check, i) => ({ key: `health.tcp[${i}].addr`, host: check.host })),
  ];
  await Promise.all(
    hosts.map(async ({ key, host }) => {
      if (isIP(host) !== 0) return;
      try {
        await lookup(host);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
        throw new ConfigError(key, `host ${JSON.stringify(host)} does not resolve (${code})`);
      }
    }),
  );
}
