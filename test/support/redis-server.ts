/**
 * A real `redis-server` (Debian's package) for the Redis blob descriptor cache tests, on a free
 * loopback port, keeping nothing on disk (`--save "" --appendonly no`). Missing: the tests skip on a
 * developer's machine and fail in CI (CI=true), like every external program (external-program.ts).
 *
 * Outages are made with signals to its PID: SIGKILL (gone, and its data with it; `restart()` brings
 * up an empty one on the same port), SIGSTOP/SIGCONT (frozen: connections stay open, commands go
 * unanswered, the data survives).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import type { ConnectionOptions } from "node:tls";
import { freePort } from "./distribution-process.js";
import { requireProgram, type ProgramCheck } from "./external-program.js";

export const REDIS_PROGRAM = "redis-server";

export function requireRedis(): ProgramCheck {
  return requireProgram(REDIS_PROGRAM);
}

export interface RedisServer {
  port: number;
  /** "127.0.0.1:<port>", as redis.addr. */
  addr: string;
  /** A plain client for inspecting keys (closed by stop()). */
  client(): Redis;
  pid(): number | undefined;
  /** SIGKILL: the server is gone, its data with it. */
  kill(): Promise<void>;
  /** Starts a fresh (empty) server on the same port after kill(). */
  restart(): Promise<void>;
  /** SIGSTOP: the server stops answering; its connections and data stay. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  log(): string;
  stop(): Promise<void>;
}

export interface RedisTls {
  cert: string;
  key: string;
  clientCa?: string;
  /**
   * The server's own connections (a replica to its master, a sentinel to the servers and the other
   * sentinels, the Cluster bus) over TLS too (tls-replication, tls-cluster), with this client
   * certificate (tls-client-cert-file), checked against `clientCa`.
   */
  outbound?: { cert: string; key: string };
}

export interface RedisOptions {
  /**
   * Serve TLS only (no plain port), with this certificate and key (PEM files). With `clientCa`,
   * clients must present a certificate that chains to it (tls-auth-clients yes).
   */
  tls?: RedisTls;
  /** More arguments for redis-server (`--replicaof 127.0.0.1 6379`, …). */
  args?: string[];
  /**
   * Run as a sentinel (`redis-server sentinel.conf --sentinel`, what Debian's redis-sentinel runs)
   * watching the master at 127.0.0.1:`masterPort` under `masterName`, a failover agreed by `quorum`.
   */
  sentinel?: { masterName: string; masterPort: number; quorum: number };
}

export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const program = requireRedis();
  if (!program.path) throw new Error(`cannot start redis-server: ${program.skip}`);
  const dir = await mkdtemp(join(tmpdir(), "berth-redis-"));
  let port = 0;
  let child: ChildProcess | undefined;
  let output = "";
  let inspector: Redis | undefined;

  const launch = async (): Promise<void> => {
    output = "";
    const listen = options.tls
      ? [
          "--port", "0", "--tls-port", String(port), "--tls-cert-file", options.tls.cert, "--tls-key-file", options.tls.key,
          ...(options.tls.clientCa === undefined ? ["--tls-auth-clients", "no"] : ["--tls-ca-cert-file", options.tls.clientCa, "--tls-auth-clients", "yes"]),
          ...(options.tls.outbound === undefined
            ? []
            : ["--tls-client-cert-file", options.tls.outbound.cert, "--tls-client-key-file", options.tls.outbound.key, "--tls-replication", "yes", "--tls-cluster", "yes"]),
        ]
      : ["--port", String(port)];
    const sentinel = options.sentinel;
    const head: string[] = [];
    if (sentinel !== undefined) {
      // A sentinel rewrites its file (what it learnt of replicas and other sentinels): one per process.
      const conf = join(dir, "sentinel.conf");
      await writeFile(
        conf,
        [
          `sentinel monitor ${sentinel.masterName} 127.0.0.1 ${sentinel.masterPort} ${sentinel.quorum}`,
          `sentinel down-after-milliseconds ${sentinel.masterName} 1000`,
          `sentinel failover-timeout ${sentinel.masterName} 10000`,
          "",
        ].join("\n"),
      );
      head.push(conf, "--sentinel");
    }
    const args = [...head, ...listen, "--bind", "127.0.0.1", "--dir", dir, ...(sentinel === undefined ? ["--save", "", "--appendonly", "no"] : []), ...(options.args ?? [])];
    const proc = spawn(program.path!, args, {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    proc.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    const deadline = Date.now() + 10_000;
    while (!(sentinel === undefined ? /Ready to accept connections/ : /\+monitor master/).test(output)) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`redis-server exited before accepting connections:\n${output}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not start within 10 s:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    process.kill(proc.pid, "SIGKILL");
    await exited;
  };

  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      await kill();
      // The port was free when picked; another process may have taken it since.
      if (attempt >= 2 || !/Address already in use/i.test(String(err))) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  return {
    port,
    addr: `127.0.0.1:${port}`,
    client: () => {
      if (inspector === undefined) {
        inspector = new Redis({ host: "127.0.0.1", port, protocol: 2, maxRetriesPerRequest: 1, ...(options.tls === undefined ? {} : { tls: inspectorTls(options.tls) }) });
        inspector.on("error", () => undefined);
      }
      return inspector;
    },
    pid: () => child?.pid,
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
    pause: () => {
      if (child?.pid !== undefined) process.kill(child.pid, "SIGSTOP");
    },
    resume: () => {
      if (child?.pid !== undefined) process.kill(child.pid, "SIGCONT");
    },
    log: () => output,
    stop: async () => {
      inspector?.disconnect();
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * TLS options for a test's own client of a TLS server: trusting `clientCa`, presenting the
 * server's outbound certificate when it has one (needed where tls-auth-clients is on).
 */
export function inspectorTls(tls: RedisTls): ConnectionOptions {
  return {
    ...(tls.clientCa === undefined ? {} : { ca: readFileSync(tls.clientCa) }),
    ...(tls.outbound === undefined ? {} : { cert: readFileSync(tls.outbound.cert), key: readFileSync(tls.outbound.key) }),
  };
}
