// The top-level redis section: the server the redis blob descriptor cache connects to.
import type { RedisConfig, RedisTlsFiles } from "./config.js";
import { parseListenAddress } from "./listen-address.js";
import { absolutePath, child, fail, fromEnv, readBool, readDuration, readNonNegativeInt, readOptionalString, readSection, readStringList } from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

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

  const addrs = readStringList(child(redis, "addrs"), `${at}.addrs`);
  const masterNode = child(redis, "mastername");
  const masterName = readOptionalString(masterNode, `${at}.mastername`) || undefined;
  const servers = masterName === undefined ? readServer(redis, addrs, warnings, used) : readSentinels(redis, addrs, masterName);
  // The same TLS settings reach every server: sentinels, master and replicas, Cluster nodes, as
  // go-redis applies its one TLSConfig to each connection (distribution 3).
  const tls = readSection(child(redis, "tls"), `${at}.tls`);
  const tlsFiles = readTlsFiles(tls);
  const hasFiles = tlsFiles.certificate !== undefined || tlsFiles.clientCAs.length > 0;
  const enabledNode = child(tls, "enabled");
  const enabled = readBool(enabledNode, `${at}.tls.enabled`);
  if (enabled === false && hasFiles) {
    throw fail(`${at}.tls.enabled`, enabledNode, "is false, but redis.tls names certificate files: remove them, or the line (the files turn TLS on)");
  }
  const tlsOn = enabled === true || hasFiles;
  const dbNode = child(redis, "db");
  if (servers.cluster.length > 0 && (readNonNegativeInt(dbNode, `${at}.db`) ?? 0) !== 0) {
    throw fail(`${at}.db`, dbNode, "Redis Cluster has database 0 only (several redis.addrs make a Cluster)");
  }
  if (!used) warnings.push(`${at} is configured but unused: only storage.cache.blobdescriptor: redis connects to it`);
  return {
    ...servers,
    masterName,
    username: readOptionalString(child(redis, "username"), `${at}.username`),
    password: readOptionalString(child(redis, "password"), `${at}.password`),
    db: readNonNegativeInt(child(redis, "db"), `${at}.db`) ?? 0,
    dialTimeoutMs: duration("dialtimeout", DEFAULT_REDIS_DIAL_TIMEOUT_MS),
    readTimeoutMs: duration("readtimeout", DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
    writeTimeoutMs: duration("writetimeout", DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
    tls: tlsOn,
    tlsFiles,
    pool: {
      maxIdle: poolInt("maxidle", "maxidleconns"),
      maxActive: poolInt("maxactive", "poolsize"),
      idleTimeoutMs: readDuration(child(pool, "idletimeout"), `${at}.pool.idletimeout`) ?? readDuration(child(redis, "connmaxidletime"), `${at}.connmaxidletime`) ?? 0,
    },
  };
}

type Servers = Pick<RedisConfig, "addr" | "host" | "port" | "sentinels" | "cluster">;

/**
 * One server: redis.addr (2.x), or redis.addrs with one entry (3.x). Several addresses without a
 * master name are a Redis Cluster's nodes, as go-redis's universal client takes them.
 */
function readServer(redis: RawMap, addrs: string[], warnings: string[], used: boolean): Servers {
  const at = "redis";
  const addrNode = child(redis, "addr");
  const addrsNode = child(redis, "addrs");
  let addr = readOptionalString(addrNode, `${at}.addr`);
  let source = addrNode;
  let key = `${at}.addr`;
  if (addr === undefined && addrs.length > 0) {
    if (addrs.length > 1) {
      const cluster = addrs.map((one, i) => readAddress(one, `${at}.addrs[${i}]`, addrsNode));
      return { addr: addrs.join(","), host: cluster[0]!.host, port: cluster[0]!.port, sentinels: [], cluster };
    }
    addr = addrs[0];
    source = addrsNode;
    key = `${at}.addrs`;
  } else if (addr !== undefined && addrs.length > 0) {
    warnings.push(`${at}.addrs is ignored: ${at}.addr is set${fromEnv(addrsNode)}`);
  }
  if (addr === undefined) {
    if (used) throw fail(`${at}.addr`, redis, "required by storage.cache.blobdescriptor: redis: the server's host:port, such as localhost:6379");
    return { addr, host: "", port: 0, sentinels: [], cluster: [] };
  }
  return { addr, ...readAddress(addr, key, source), sentinels: [], cluster: [] };
}

/** Sentinel (go-redis's failover client): redis.addrs are the sentinels that know redis.mastername. */
function readSentinels(redis: RawMap, addrs: string[], masterName: string): Servers {
  const at = "redis";
  const addrNode = child(redis, "addr");
  const addrsNode = child(redis, "addrs");
  if (readOptionalString(addrNode, `${at}.addr`) !== undefined) {
    throw fail(`${at}.addr`, addrNode, `names one server, but redis.mastername ${JSON.stringify(masterName)} asks for Sentinel: list the sentinels in redis.addrs instead`);
  }
  if (addrs.length === 0) throw fail(`${at}.addrs`, addrsNode ?? redis, `required with redis.mastername: the sentinels' host:port addresses`);
  const sentinels = addrs.map((addr, i) => readAddress(addr, `${at}.addrs[${i}]`, addrsNode));
  const first = sentinels[0]!;
  return { addr: addrs.join(","), host: first.host, port: first.port, sentinels, cluster: [] };
}

function readAddress(addr: string, key: string, source: Raw | undefined): { host: string; port: number } {
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseListenAddress(addr));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw fail(key, source, `invalid Redis address ${JSON.stringify(addr)}: ${reason}`);
  }
  if (port === 0) throw fail(key, source, `invalid Redis address ${JSON.stringify(addr)}: port 0`);
  return { host: host === "" ? "localhost" : host, port };
}

/** redis.tls's files, named only: they are read when berth starts (src/cache/redis-tls.ts). */
function readTlsFiles(tls: RawMap | undefined): RedisTlsFiles {
  const at = "redis.tls";
  const certificate = readOptionalString(child(tls, "certificate"), `${at}.certificate`) || undefined;
  const key = readOptionalString(child(tls, "key"), `${at}.key`) || undefined;
  if (certificate !== undefined && key === undefined) throw fail(`${at}.key`, child(tls, "certificate"), "required when redis.tls.certificate is set");
  if (key !== undefined && certificate === undefined) throw fail(`${at}.certificate`, child(tls, "key"), "required when redis.tls.key is set");
  // distribution 3.0 named the server's CAs clientcas (and never used them); later releases rootcas.
  const rootCAs = readStringList(child(tls, "rootcas"), `${at}.rootcas`);
  const clientCAs = readStringList(child(tls, "clientcas"), `${at}.clientcas`);
  if (rootCAs.length > 0 && clientCAs.length > 0) throw fail(`${at}.rootcas`, child(tls, "rootcas"), "redis.tls.clientcas is distribution 3.0's name of the same list: set one");
  return {
    certificate: certificate === undefined ? undefined : absolutePath(certificate),
    key: key === undefined ? undefined : absolutePath(key),
    clientCAs: (rootCAs.length > 0 ? rootCAs : clientCAs).map(absolutePath),
    caKey: rootCAs.length > 0 ? "rootcas" : "clientcas",
  };
}
