/**
 * The `redis` blob descriptor cache (storage.cache.blobdescriptor: redis), shared by every node
 * that points at the same Redis.
 *
 * Keys are distribution's (registry/storage/cache/redis/redis.go), so a Redis shared with
 * distribution registries on the same storage stays coherent both ways:
 *
 * | key | type | holds |
 * | --- | --- | --- |
 * | `blobs::<digest>` | hash | `digest`, `size`, `mediatype` (the bytes exist; media type set once) |
 * | `repository::<name>::blobs` | set | digests linked in the repository |
 * | `repository::<name>::blobs::<digest>` | hash | `mediatype` of the blob in that repository |
 *
 * A repository-scoped get answers only when the digest is a member of the repository's set, the
 * global hash has `digest` and `size`, and the repository's hash has a media type (distribution
 * 3's rule; 2.8 errs on the last, which its callers also treat as a miss). Clearing a repository
 * entry removes the membership and the repository hash (either alone makes distribution miss);
 * clearing the global entry removes the global hash, which makes every repository miss.
 *
 * Failure handling: Redis is a cache, never a dependency. When it is unreachable (refused, closed,
 * or a command not answered within the command timeout) the cache is marked down, once, with one
 * log line: gets miss (the registry reads storage), sets are dropped, and clears are remembered in
 * a bounded list. A probe checks Redis every second; when it answers again the remembered clears
 * are replayed, in order and before any other command of this process, and only then is the cache
 * used again (one more log line). So a stale entry never outlives a delete made here. Should more
 * clears pile up than the list holds, every blob descriptor key is deleted on recovery instead.
 *
 * One connection carries every command (ioredis pipelines them), so commands reach Redis in the
 * order they were issued, including commands that timed out on a stalled server and run when it
 * resumes: a set issued before a clear never lands after it. On a Redis Cluster that holds per key
 * (one connection per node, and a key lives on one node), and an entry's commands are sent one by
 * one rather than as a MULTI (see `run`).
 *
 * The same client follows a Sentinel master (redis.mastername) through a failover.
 */
import type { ConnectionOptions } from "node:tls";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { OPAQUE_FAILURES, describeFailure, isReplyError } from "./redis-failure-reason.js";
import { probeRedisTls } from "./redis-tls-probe.js";
import type { Digest } from "../reference/digest.js";
import type { Logger } from "../log/logger.js";
import { validateDescriptor, validateKey, type BlobDescriptor, type BlobDescriptorCache, type CacheStats } from "./blob-descriptor-cache.js";

export interface RedisBlobDescriptorCacheOptions {
  host: string;
  port: number;
  username?: string | undefined;
  password?: string | undefined;
  db: number;
  /**
   * TLS options for every connection (src/cache/redis-tls.ts): the server, or the sentinels and
   * the master they name, or each Cluster node. Undefined for clear text.
   */
  tls: ConnectionOptions | undefined;
  /**
   * Sentinel: host and port are then ignored; the sentinels name the master of `masterName`, and
   * berth follows it when they fail over.
   */
  sentinel?: { masterName: string; sentinels: Array<{ host: string; port: number }> } | undefined;
  /**
   * Redis Cluster: host and port are then ignored; these nodes are asked for the slot map. An
   * entry's keys hash to different slots, so its commands are sent one by one (each to its key's
   * node) instead of as one MULTI: a get then sees all of an entry or misses, as before, since
   * every part of an entry is checked.
   */
  cluster?: Array<{ host: string; port: number }> | undefined;
  /** Connecting (TCP and TLS handshake) gives up after this long (redis.dialtimeout). */
  dialTimeoutMs: number;
  /** A command not answered within this long marks Redis unreachable (redis.readtimeout/writetimeout). */
  commandTimeoutMs: number;
  log: Logger;
  /** How often an unreachable Redis is checked on. Default 1000 ms. */
  probeIntervalMs?: number;
  /** Clears remembered while Redis is unreachable, at most. Default 10000. */
  maxPendingClears?: number;
  /** Told of each round trip to Redis (tracing), without the cache knowing of a tracer. */
  observer?: RedisCommandObserver;
}

/**
 * `start` is called as a get, set or clear is sent to Redis (not when the cache answers without
 * it, being down); what it returns is called once, when Redis answered or the command failed.
 */
export interface RedisCommandObserver {
  start(operation: "get" | "set" | "clear", repository: string | undefined): (error?: unknown) => void;
}

/** Reconnect delays: 100 ms doubling up to 2 s. */
const MAX_RECONNECT_DELAY_MS = 2000;
const DEFAULT_PROBE_INTERVAL_MS = 1000;
const DEFAULT_MAX_PENDING_CLEARS = 10_000;
/** Clears replayed per MULTI on recovery. */
const REPLAY_BATCH = 256;
const OCTET_STREAM = "application/octet-stream";

interface PendingClear {
  digest: string;
  repository: string | undefined;
}

export class RedisBlobDescriptorCache implements BlobDescriptorCache {
  private readonly client: Redis | Cluster;
  private readonly log: Logger;
  private readonly where: string;
  private readonly probeIntervalMs: number;
  private readonly maxPendingClears: number;
  private readonly counts: CacheStats = { requests: 0, hits: 0, misses: 0, errors: 0 };
  private readonly observer: RedisCommandObserver | undefined;
  /** Commands go to Redis only while up. */
  private up = false;
  /** Why Redis is not up, for health: a short phrase without addresses or internals. */
  private reason = "not connected yet";
  /** True once "unreachable" was logged for the current outage. */
  private announcedDown = false;
  private connectedOnce = false;
  private recovering = false;
  private opened = false;
  private closed = false;
  private probe: NodeJS.Timeout | undefined;
  /** Clears Redis has not confirmed, oldest first, keyed "<repository>\n<digest>". */
  private readonly pending = new Map<string, PendingClear>();
  /** More clears were missed than `pending` holds: forget every blob descriptor on recovery. */
  private forgetAllOnRecovery = false;
  /** The server asked why TLS fails when ioredis does not say (Sentinel, Cluster); undefined without TLS. */
  private readonly tlsProbeTarget: { host: string; port: number; tls: ConnectionOptions; timeoutMs: number } | undefined;
  private probing = false;

  constructor(options: RedisBlobDescriptorCacheOptions) {
    this.log = options.log;
    const hostPort = (host: string, port: number): string => `${host.includes(":") ? `[${host}]` : host}:${port}`;
    const { sentinel, cluster } = options;
    this.where =
      cluster !== undefined
        ? `cluster ${cluster.map((n) => hostPort(n.host, n.port)).join(",")}`
        : sentinel === undefined
          ? hostPort(options.host, options.port)
          : `master ${sentinel.masterName} via sentinels ${sentinel.sentinels.map((s) => hostPort(s.host, s.port)).join(",")}`;
    const first = cluster?.[0] ?? sentinel?.sentinels[0];
    this.tlsProbeTarget = options.tls === undefined || first === undefined ? undefined : { ...first, tls: options.tls, timeoutMs: options.dialTimeoutMs };
    this.probeIntervalMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.maxPendingClears = options.maxPendingClears ?? DEFAULT_MAX_PENDING_CLEARS;
    this.observer = options.observer;
    const reconnectDelay = (times: number): number => Math.min(100 * 2 ** Math.min(times - 1, 5), MAX_RECONNECT_DELAY_MS);
    const connection: RedisOptions = {
      db: options.db,
      connectTimeout: options.dialTimeoutMs,
      commandTimeout: options.commandTimeoutMs,
      // Fail fast instead of queueing while disconnected, and never resend a command that may
      // already have run: the cache decides what to do with a failed command (drop it, or
      // remember a clear).
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      retryStrategy: reconnectDelay,
      lazyConnect: true,
      // At close, a connection that does not close at once (a frozen server) is destroyed soon.
      disconnectTimeout: 200,
      // RESP2 and no CLIENT SETINFO: works with any Redis a distribution registry may share.
      protocol: 2,
      disableClientInfo: true,
      connectionName: "berth",
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      // A demoted master answers writes with READONLY until Sentinel's CLIENT KILL arrives: reconnect
      // at once (through the sentinels), without resending; the cache treats the write as failed.
      reconnectOnError: (err) => err.message.startsWith("READONLY"),
    };
    if (cluster !== undefined) {
      this.client = new Cluster(cluster, {
        redisOptions: connection,
        lazyConnect: true,
        enableOfflineQueue: false,
        clusterRetryStrategy: reconnectDelay,
        slotsRefreshTimeout: options.dialTimeoutMs,
        scaleReads: "master",
      });
    } else if (sentinel !== undefined) {
      this.client = new Redis({
        ...connection,
        sentinels: sentinel.sentinels,
        name: sentinel.masterName,
        role: "master",
        // Told of +switch-master by the sentinels, not only when the old master drops the connection.
        failoverDetector: true,
        sentinelRetryStrategy: reconnectDelay,
        // TLS to the sentinels as to the master (go-redis's FailoverOptions give both one TLSConfig).
        ...(options.tls === undefined ? {} : { sentinelTLS: options.tls, enableTLSForSentinelMode: true }),
      });
    } else {
      this.client = new Redis({ ...connection, host: options.host, port: options.port });
    }
    this.client.on("error", (err: Error) => this.failed(err));
    // A Cluster that cannot reach any node to learn the slots says so only per node; one node's
    // error while the Cluster is up is a failed command, handled where the command fails.
    if (this.client instanceof Cluster) this.client.on("node error", (err: Error) => !this.up && this.failed(err));
    this.client.on("close", () => {
      // When already down, the error that closed the connection (refused, timed out) says more.
      if (this.up) this.failed(new Error("connection lost"));
    });
    this.client.on("ready", () => void this.recover());
  }

  open(): void {
    if (this.opened || this.closed) return;
    this.opened = true;
    // Failures arrive as "error" events (with their cause); the promise adds nothing.
    this.client.connect().catch(() => undefined);
    this.probe = setInterval(() => {
      if (!this.up && this.client.status === "ready") void this.recover();
    }, this.probeIntervalMs);
    this.probe.unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.up = false;
    this.reason = "closed";
    if (this.probe) clearInterval(this.probe);
    this.client.disconnect(false);
  }

  async get(digest: Digest, repository?: string): Promise<BlobDescriptor | undefined> {
    validateKey(digest, repository);
    this.counts.requests++;
    const found = await this.lookup(digest, repository);
    if (found === undefined) this.counts.misses++;
    else this.counts.hits++;
    return found;
  }

  stats(): CacheStats {
    return { ...this.counts };
  }

  private async lookup(digest: Digest, repository: string | undefined): Promise<BlobDescriptor | undefined> {
    // Redis down: every lookup is an error, as each would be a failed command in distribution.
    if (!this.up) {
      this.counts.errors++;
      return undefined;
    }
    const d = digest.toString();
    const done = this.observer?.start("get", repository);
    try {
      if (repository === undefined) {
        const reply = await this.client.hmget(globalKey(d), "digest", "size", "mediatype");
        done?.();
        return parseGlobal(digest, reply);
      }
      const [member, global, mediaType] = await this.run([
        ["sismember", repositorySetKey(repository), d],
        ["hmget", globalKey(d), "digest", "size", "mediatype"],
        ["hget", repositoryHashKey(repository, d), "mediatype"],
      ]);
      done?.();
      if (member !== 1) return undefined;
      const descriptor = parseGlobal(digest, global as Array<string | null>);
      if (descriptor === undefined || typeof mediaType !== "string") return undefined;
      return mediaType === "" ? descriptor : { ...descriptor, mediaType };
    } catch (err) {
      this.counts.errors++;
      done?.(err);
      this.commandFailed(err);
      return undefined;
    }
  }

  async set(descriptor: BlobDescriptor, repository?: string): Promise<void> {
    validateDescriptor(descriptor);
    validateKey(descriptor.digest, repository);
    if (!this.up) return;
    const d = descriptor.digest.toString();
    const commands: Command[] = [];
    if (repository !== undefined) commands.push(["sadd", repositorySetKey(repository), d]);
    commands.push(["hset", globalKey(d), "digest", d, "size", String(descriptor.size)]);
    // The global media type is the first one set, as distribution's HSETNX.
    commands.push(["hsetnx", globalKey(d), "mediatype", descriptor.mediaType]);
    if (repository !== undefined) commands.push(["hset", repositoryHashKey(repository, d), "mediatype", descriptor.mediaType]);
    const done = this.observer?.start("set", repository);
    try {
      await this.run(commands);
      done?.();
    } catch (err) {
      done?.(err);
      this.commandFailed(err);
    }
  }

  async clear(digest: Digest, repository?: string): Promise<void> {
    validateKey(digest, repository);
    const entry = { digest: digest.toString(), repository };
    if (!this.up) {
      this.remember(entry);
      return;
    }
    const done = this.observer?.start("clear", repository);
    try {
      await this.run(clearCommands(entry));
      done?.();
    } catch (err) {
      done?.(err);
      // It may or may not have run: replaying it is harmless, forgetting it is not.
      this.remember(entry);
      this.failed(err);
    }
  }

  async health(): Promise<Record<string, string>> {
    if (this.up) {
      try {
        await this.client.ping();
      } catch (err) {
        this.failed(err);
      }
    }
    return this.up ? {} : { redis: `unreachable: ${this.reason}` };
  }

  /** Clears not yet confirmed by Redis (for tests). */
  get pendingClears(): number {
    return this.pending.size;
  }

  /** A get or set failed: an error reply (a foreign key of another type) is only a miss. */
  private commandFailed(err: unknown): void {
    if (isReplyError(err)) {
      this.log.debug({ err: err.message }, "redis blob descriptor cache: command refused");
      return;
    }
    this.failed(err);
  }

  /** Redis is unreachable (or refused a clear): stop using it until a probe succeeds. */
  private failed(err: unknown): void {
    if (this.closed) return;
    const reason = describeFailure(err);
    // While down, a connection closing after its cause (a Cluster node's TLS error, then the slot
    // refresh's "Connection is closed.") does not hide the cause.
    const keepCause = !this.up && this.announcedDown && OPAQUE_FAILURES.has(reason) && !OPAQUE_FAILURES.has(this.reason);
    this.up = false;
    if (!keepCause) this.reason = reason;
    if (OPAQUE_FAILURES.has(this.reason)) this.explainOverTls();
    if (this.announcedDown) return;
    this.announcedDown = true;
    this.log.warn(
      { redis: this.where, err: err instanceof Error ? err.message : String(err) },
      "redis blob descriptor cache unreachable: serving blob descriptors from storage until it is back",
    );
  }

  /**
   * Through Sentinel or on a Cluster, ioredis hides why a TLS connection failed: ask the first
   * sentinel or node directly (redis-tls-probe.ts) and report its answer. One probe at a time.
   */
  private explainOverTls(): void {
    const target = this.tlsProbeTarget;
    if (target === undefined || this.probing) return;
    this.probing = true;
    void probeRedisTls(target.host, target.port, target.tls, target.timeoutMs).then((err) => {
      this.probing = false;
      if (err === undefined || this.up || this.closed) return;
      const reason = describeFailure(err);
      if (!OPAQUE_FAILURES.has(reason)) this.reason = reason;
    });
  }

  private remember(entry: PendingClear): void {
    if (this.forgetAllOnRecovery) return;
    const key = `${entry.repository ?? ""}\n${entry.digest}`;
    this.pending.delete(key);
    this.pending.set(key, entry);
    if (this.pending.size > this.maxPendingClears) {
      this.pending.clear();
      this.forgetAllOnRecovery = true;
    }
  }

  /** Redis answers again: replay what it missed, then use it. Runs once at a time. */
  private async recover(): Promise<void> {
    if (this.up || this.recovering || this.closed) return;
    this.recovering = true;
    let replayed = 0;
    try {
      await this.client.ping();
      if (this.forgetAllOnRecovery) {
        await this.forgetEverything();
        this.forgetAllOnRecovery = false;
        this.log.warn({ redis: this.where }, "redis blob descriptor cache: too many clears missed while unreachable; forgot every blob descriptor");
      }
      // Clears that arrive meanwhile join `pending` (the cache is still down) and are replayed too.
      while (this.pending.size > 0) {
        const batch = [...this.pending].slice(0, REPLAY_BATCH);
        await this.run(batch.flatMap(([, entry]) => clearCommands(entry)));
        for (const [key] of batch) this.pending.delete(key);
        replayed += batch.length;
      }
      if (this.closed) return;
      this.up = true;
      this.reason = "";
      if (this.announcedDown) {
        this.log.info({ redis: this.where, replayedClears: replayed }, "redis blob descriptor cache reachable again");
      } else if (!this.connectedOnce) {
        this.log.info({ redis: this.where }, "redis blob descriptor cache connected");
      }
      this.announcedDown = false;
      this.connectedOnce = true;
    } catch (err) {
      this.failed(err);
    } finally {
      this.recovering = false;
    }
  }

  /**
   * Deletes every blob descriptor in Redis, this process's or another's (garbage-collect, after
   * deleting blobs behind every registry's back). Connects first, waiting up to `timeoutMs`;
   * rejects when Redis cannot be reached or fails. Resolves to the number of keys deleted.
   */
  async forgetAll(timeoutMs: number): Promise<number> {
    this.open();
    const deadline = Date.now() + timeoutMs;
    while (!this.up) {
      if (this.closed || Date.now() > deadline) throw new Error(`redis at ${this.where} ${this.closed ? "closed" : `unreachable: ${this.reason}`}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.forgetEverything();
  }

  /** Deletes every key of distribution's blob descriptor layout (on every master of a Cluster); resolves to how many. */
  private async forgetEverything(): Promise<number> {
    let deleted = 0;
    const servers = this.client instanceof Cluster ? this.client.nodes("master") : [this.client];
    for (const server of servers) {
      for (const pattern of ["blobs::*", "repository::*::blobs*"]) {
        let cursor = "0";
        do {
          const [next, keys] = await server.scan(cursor, "MATCH", pattern, "COUNT", 1000);
          // One DEL per key on a Cluster node: a DEL of keys in several slots is refused (CROSSSLOT).
          if (keys.length > 0) deleted += this.client instanceof Cluster ? (await Promise.all(keys.map((key) => server.del(key)))).reduce((a, b) => a + b, 0) : await server.del(...keys);
          cursor = next;
        } while (cursor !== "0");
      }
    }
    return deleted;
  }

  /**
   * Runs `commands` as one MULTI on a single server (or Sentinel's master). On a Cluster they are
   * sent at once, each to its key's node, and may partly apply; every reader checks every part
   * of an entry, and clearing either part of a repository entry makes it a miss. Commands on one
   * key still reach its node in the order they were issued (one connection per node).
   * Resolves to the replies in order, or rejects with the first error.
   */
  private async run(commands: Command[]): Promise<unknown[]> {
    if (!(this.client instanceof Cluster)) return execResults(await this.client.multi(commands).exec());
    const settled = await Promise.allSettled(commands.map(([name, ...args]) => this.client.call(name, ...args)));
    return settled.map((result) => {
      if (result.status === "rejected") throw result.reason;
      return result.value;
    });
  }
}

function globalKey(digest: string): string {
  return `blobs::${digest}`;
}

function repositorySetKey(repository: string): string {
  return `repository::${repository}::blobs`;
}

function repositoryHashKey(repository: string, digest: string): string {
  return `repository::${repository}::blobs::${digest}`;
}

/** A Redis command and its arguments. */
type Command = [name: string, ...args: string[]];

function clearCommands(entry: PendingClear): Command[] {
  if (entry.repository === undefined) return [["del", globalKey(entry.digest)]];
  return [
    ["srem", repositorySetKey(entry.repository), entry.digest],
    ["del", repositoryHashKey(entry.repository, entry.digest)],
  ];
}

/** The replies of a MULTI, or the first error among them. */
function execResults(results: Array<[Error | null, unknown]> | null): unknown[] {
  if (results === null) throw new Error("transaction aborted");
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

function parseGlobal(digest: Digest, reply: Array<string | null>): BlobDescriptor | undefined {
  const [stored, size, mediaType] = reply;
  // distribution may map one digest to a descriptor of another algorithm; berth wants its own.
  if (stored !== digest.toString() || typeof size !== "string" || !/^\d{1,16}$/.test(size)) return undefined;
  const n = Number(size);
  if (!Number.isSafeInteger(n)) return undefined;
  return { digest, size: n, mediaType: typeof mediaType === "string" && mediaType !== "" ? mediaType : OCTET_STREAM };
}
