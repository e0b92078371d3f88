// The top-level redis section: the server the redis blob descriptor cache connects to.
import type { RedisConfig } from "./config.js";
import { parseListenAddress } from "./listen-address.js";
import { child, fail, fromEnv, readBool, readDuration, readNonNegativeInt, readOptionalString, readSection, readStringList } from "./raw-values.js";
import type { RawMap } from "./raw-yaml.js";

const DEFAULT_REDIS_DIAL_TIMEOUT_MS = 5_000;
const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 1_000;

/**
 * The top-level redis section. Its server is required (redis.addr) when the redis blob descriptor
 * cache is configured; a section nothing uses is checked all the same, and reported.
 */
export function buildRedis(root: RawMap, used: boolean, warnings: string[]): RedisConfig | undefined {
  const at = "redis";
  const node = child(root, at);
  const redis = readSection(node, at);
  if (redis === undefined || redis.entries.size === 0) {
    if (used) throw fail(at, node, "required by storage.cache.blobdescriptor: redis; set redis.addr to the server's host:port");
    return undefined;
  }
  const pool = readSection(child(redis, "pool"), `${at}.pool`);
  // redis.pool.* (distribution 2.x) wins over its go-redis name (3.x); 0 when neither is set.
  const poolInt = (key: string, alias: string): number =>
    readNonNegativeInt(child(pool, key), `${at}.pool.${key}`) ?? readNonNegativeInt(child(redis, alias), `${at}.${alias}`) ?? 0;
  // 0 (or absent) means the default, as a zero timeout would mean "none" to distribution.
  const duration = (key: string, fallback: number): number => readDuration(child(redis, key), `${at}.${key}`) || fallback;

  const addrNode = child(redis, "addr");
  let addr = readOptionalString(addrNode, `${at}.addr`);
  let addrSource = addrNode;
  const addrsNode = child(redis, "addrs");
  const addrs = readStringList(addrsNode, `${at}.addrs`);
  if (addr === undefined && addrs.length > 0) {
    if (addrs.length > 1) {
      throw fail(`${at}.addrs`, addrsNode, `berth connects to one Redis server (cluster and sentinel are not supported); got ${addrs.length} addresses`);
    }
    addr = addrs[0];
    addrSource = addrsNode;
  } else if (addr !== undefined && addrs.length > 0) {
    warnings.push(`${at}.addrs is ignored: ${at}.addr is set${fromEnv(addrsNode)}`);
  }
  let host = "";
  let port = 0;
  if (addr === undefined) {
    if (used) throw fail(`${at}.addr`, node, "required by storage.cache.blobdescriptor: redis: the server's host:port, such as localhost:6379");
  } else {
    const key = addrSource === addrsNode ? `${at}.addrs` : `${at}.addr`;
    try {
      ({ host, port } = parseListenAddress(addr));
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw fail(key, addrSource, `invalid Redis address ${JSON.stringify(addr)}: ${reason}`);
    }
    if (port === 0) throw fail(key, addrSource, `invalid Redis address ${JSON.stringify(addr)}: port 0`);
    if (host === "") host = "localhost";
  }
  if (!used) warnings.push(`${at} is configured but unused: only storage.cache.blobdescriptor: redis connects to it`);
  const tls = readSection(child(redis, "tls"), `${at}.tls`);
  return {
    addr,
    host,
    port,
    username: readOptionalString(child(redis, "username"), `${at}.username`),
    password: readOptionalString(child(redis, "password"), `${at}.password`),
    db: readNonNegativeInt(child(redis, "db"), `${at}.db`) ?? 0,
    dialTimeoutMs: duration("dialtimeout", DEFAULT_REDIS_DIAL_TIMEOUT_MS),
    readTimeoutMs: duration("readtimeout", DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
    writeTimeoutMs: duration("writetimeout", DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
    tls: readBool(child(tls, "enabled"), `${at}.tls.enabled`) ?? false,
    pool: {
      maxIdle: poolInt("maxidle", "maxidleconns"),
      maxActive: poolInt("maxactive", "poolsize"),
      idleTimeoutMs: readDuration(child(pool, "idletimeout"), `${at}.pool.idletimeout`) ?? readDuration(child(redis, "connmaxidletime"), `${at}.connmaxidletime`) ?? 0,
    },
  };
}
