/**
 * A Redis Sentinel set from Debian's redis-server, on free loopback ports: a master, one replica
 * and one or three sentinels (`redis-server sentinel.conf --sentinel`, what the redis-sentinel
 * package runs), each stopped by its PID. `failover()` asks a sentinel to promote the replica
 * (SENTINEL FAILOVER); killing the master (`master.kill()`) makes them elect it by themselves.
 */
import { Redis } from "ioredis";
import { inspectorTls, startRedis, type RedisServer, type RedisTls } from "./redis-server.js";

export interface RedisSentinelSet {
  masterName: string;
  master: RedisServer;
  replica: RedisServer;
  sentinels: RedisServer[];
  /** The sentinels' addresses, as redis.addrs. */
  addrs: string[];
  /** The port the first sentinel answering names as the master now. */
  masterPort(): Promise<number>;
  /** SENTINEL FAILOVER, then waits until every sentinel names the replica as the master. */
  failover(): Promise<void>;
  /** Waits until every sentinel names the server on `port` as the master. */
  waitForMaster(port: number, what: string): Promise<void>;
  stop(): Promise<void>;
}

const WAIT_MS = 60_000;

/**
 * With `tls`, every process serves TLS only and talks TLS to the others (the replica to the master,
 * sentinels to both and to each other), each with the same certificates.
 */
export async function startRedisSentinelSet(options: { sentinels: 1 | 3; masterName?: string; tls?: RedisTls }): Promise<RedisSentinelSet> {
  const tls = options.tls === undefined ? {} : { tls: options.tls };
  const masterName = options.masterName ?? "berthmaster";
  const started: RedisServer[] = [];
  const clients: Redis[] = [];
  try {
    const master = await startRedis(tls);
    started.push(master);
    const replica = await startRedis({ ...tls, args: ["--replicaof", "127.0.0.1", String(master.port)] });
    started.push(replica);
    await poll(async () => /master_link_status:up/.test(await replica.client().info("replication")), "the replica to sync with the master");
    const quorum = options.sentinels === 1 ? 1 : 2;
    const sentinels: RedisServer[] = [];
    for (let i = 0; i < options.sentinels; i++) {
      const sentinel = await startRedis({ ...tls, sentinel: { masterName, masterPort: master.port, quorum } });
      started.push(sentinel);
      sentinels.push(sentinel);
    }
    const sentinelClient = (sentinel: RedisServer): Redis => {
      const client = new Redis({
        host: "127.0.0.1",
        port: sentinel.port,
        protocol: 2,
        maxRetriesPerRequest: 1,
        lazyConnect: false,
        ...(options.tls === undefined ? {} : { tls: inspectorTls(options.tls) }),
      });
      client.on("error", () => undefined);
      clients.push(client);
      return client;
    };
    const asking = sentinels.map(sentinelClient);
    // A sentinel learns of the replica from the master's INFO, and of other sentinels by hello
    // messages: a failover before that finds no replica to promote, or no majority.
    await poll(async () => {
      for (const client of asking) {
        const replicas = (await client.call("SENTINEL", "REPLICAS", masterName)) as unknown[];
        if (replicas.length < 1) return false;
        const others = (await client.call("SENTINEL", "SENTINELS", masterName)) as unknown[];
        if (others.length < options.sentinels - 1) return false;
      }
      return true;
    }, "the sentinels to know the replica and each other");

    const namedMaster = async (client: Redis): Promise<number> => {
      const reply = (await client.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName)) as [string, string] | null;
      return reply === null ? 0 : Number(reply[1]);
    };
    const waitForMaster = async (port: number, what: string): Promise<void> => {
      await poll(async () => {
        for (const client of asking) if ((await namedMaster(client).catch(() => 0)) !== port) return false;
        return true;
      }, what);
    };
    return {
      masterName,
      master,
      replica,
      sentinels,
      addrs: sentinels.map((s) => s.addr),
      masterPort: async () => {
        for (const client of asking) {
          const port = await namedMaster(client).catch(() => 0);
          if (port !== 0) return port;
        }
        throw new Error("no sentinel names a master");
      },
      failover: async () => {
        await asking[0]!.call("SENTINEL", "FAILOVER", masterName);
        await waitForMaster(replica.port, "the sentinels to name the replica as the master");
      },
      waitForMaster,
      stop: async () => {
        for (const client of clients) client.disconnect();
        for (const server of started.reverse()) await server.stop();
      },
    };
  } catch (err) {
    for (const client of clients) client.disconnect();
    for (const server of started.reverse()) await server.stop();
    throw err;
  }
}

async function poll(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
