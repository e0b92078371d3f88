/**
 * A Redis Cluster from Debian's redis-server on free loopback ports: three masters
 * (`--cluster-enabled yes`), joined with `redis-cli --cluster create` (redis-tools, which
 * redis-server depends on), each stopped by its PID.
 */
import { Cluster } from "ioredis";
import { requireProgram, runOk } from "./external-program.js";
import { inspectorTls, startRedis, type RedisServer, type RedisTls } from "./redis-server.js";

export interface RedisClusterSet {
  nodes: RedisServer[];
  /** The nodes' addresses, as redis.addrs. */
  addrs: string[];
  /** A cluster client for inspecting keys (closed by stop()). */
  client(): Cluster;
  stop(): Promise<void>;
}

const WAIT_MS = 60_000;

/** With `tls`, the nodes serve TLS only and their cluster bus is TLS too (tls-cluster yes). */
export async function startRedisCluster(options: { tls?: RedisTls } = {}): Promise<RedisClusterSet> {
  const tls = options.tls;
  const cli = requireProgram("redis-cli");
  if (!cli.path) throw new Error(`cannot create a Redis Cluster: ${cli.skip}`);
  const nodes: RedisServer[] = [];
  let inspector: Cluster | undefined;
  try {
    for (let i = 0; i < 3; i++) nodes.push(await startRedis({ ...(tls === undefined ? {} : { tls }), args: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"] }));
    const cliTls =
      tls === undefined ? [] : ["--tls", ...(tls.clientCa === undefined ? [] : ["--cacert", tls.clientCa]), ...(tls.outbound === undefined ? [] : ["--cert", tls.outbound.cert, "--key", tls.outbound.key])];
    await runOk(cli.path, [...cliTls, "--cluster", "create", ...nodes.map((n) => n.addr), "--cluster-yes"]);
    const deadline = Date.now() + WAIT_MS;
    for (const node of nodes) {
      while (!/cluster_state:ok/.test(String(await node.client().call("CLUSTER", "INFO")))) {
        if (Date.now() > deadline) throw new Error("timed out waiting for the cluster to be ok");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (err) {
    for (const node of nodes) await node.stop();
    throw err;
  }
  return {
    nodes,
    addrs: nodes.map((n) => n.addr),
    client: () => {
      if (inspector === undefined) {
        inspector = new Cluster(nodes.map((n) => ({ host: "127.0.0.1", port: n.port })), { redisOptions: { protocol: 2, ...(tls === undefined ? {} : { tls: inspectorTls(tls) }) } });
        inspector.on("error", () => undefined);
      }
      return inspector;
    },
    stop: async () => {
      inspector?.disconnect();
      for (const node of nodes) await node.stop();
    },
  };
}
