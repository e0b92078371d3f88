/**
 * The object storage of the S3 cases: one throwaway Ceph radosgw per benchmark run (the test
 * support's, test/support/ceph-s3.ts), started by the first S3 case that needs it and stopped at
 * the end of the run (ctx.atExit; a watchdog stops it too should the benchmark die), and the
 * request-counting proxies (test/support/s3-request-log.ts) the registries talk to: one per
 * injected latency.
 *
 * radosgw runs with `tcp_nodelay=1`: without it, every answer with a body (GET, listings,
 * CompleteMultipartUpload) waits ~40 ms for the client's delayed ACK on loopback, which would
 * favour whichever registry HEADs rather than lists.
 *
 * Every server run gets a fresh root directory in the one bucket, named after its kind, and the
 * run's objects are removed afterwards (untimed) so that memstore's RAM does not fill up.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AbortMultipartUploadCommand, DeleteObjectsCommand, ListMultipartUploadsCommand, S3Client } from "@aws-sdk/client-s3";
import { cephSkipReason, listKeys, startCephS3, type CephS3 } from "../test/support/ceph-s3.js";
import { startS3RequestLog, type S3Request, type S3RequestLog } from "../test/support/s3-request-log.js";
import { readProcCpu, startServer, type RunningServer, type ServerKind } from "./servers.js";
import type { BenchContext } from "./types.js";

const KEY = "s3-env";
/** memstore keeps objects in RAM up to this size; each run's objects are deleted after it. */
const OSD_SIZE_GB = "8";

export interface BenchS3 {
  ceph: CephS3;
  /** The proxy that counts requests and delays each by `delayMs` (started on first use). */
  proxy(delayMs: number): Promise<S3RequestLog>;
  /** CPU seconds of the Ceph daemons so far (radosgw, OSD, monitor). */
  cephCpuS(): number;
  /** Deletes every object and open multipart upload under `root` (a run's root directory). */
  removeRoot(root: string): Promise<void>;
}

/** Why the S3 cases cannot run here (Ceph's packages missing), or undefined. */
export function s3Unavailable(): string | undefined {
  try {
    const skip = cephSkipReason();
    return skip === false ? undefined : skip;
  } catch (err) {
    return err instanceof Error ? err.message : String(err); // CI=true: the reason, as an error
  }
}

/** The shared S3 environment of this benchmark run, started on first call. */
export function benchS3(ctx: BenchContext): Promise<BenchS3> {
  let env = ctx.shared.get(KEY) as Promise<BenchS3> | undefined;
  if (!env) {
    env = startEnv(ctx);
    ctx.shared.set(KEY, env);
  }
  return env;
}

async function startEnv(ctx: BenchContext): Promise<BenchS3> {
  const skip = s3Unavailable();
  if (skip) throw new Error(`the S3 cases need Ceph: ${skip}`);
  const t0 = performance.now();
  const ceph = await startCephS3({ bucket: "berth-bench", env: { RGW_FRONTEND_OPTS: "tcp_nodelay=1", CEPH_OSD_SIZE_GB: OSD_SIZE_GB } });
  process.stdout.write(`  (Ceph radosgw started for the S3 cases in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${ceph.endpoint})\n`);
  const proxies = new Map<number, Promise<S3RequestLog>>();
  const admin = ceph.client();
  ctx.atExit(async () => {
    for (const p of proxies.values()) await (await p).close().catch(() => undefined);
    admin.destroy();
    await ceph.stop();
  });
  const daemonPids = readFileSync(join(ceph.stateDir, "pids"), "utf8")
    .split("\n")
    .map((line) => line.split(" "))
    .filter(([pid, name]) => pid && name && name !== "watchdog")
    .map(([pid]) => Number(pid));
  return {
    ceph,
    proxy(delayMs) {
      let p = proxies.get(delayMs);
      if (!p) {
        p = startS3RequestLog(ceph.endpoint, { delayMs });
        proxies.set(delayMs, p);
      }
      return p;
    },
    cephCpuS: () =>
      daemonPids.reduce((sum, pid) => {
        try {
          return sum + readProcCpu(pid).cpu;
        } catch {
          return sum;
        }
      }, 0),
    removeRoot: (root) => removeRoot(admin, ceph.bucket, root),
  };
}

async function removeRoot(s3: S3Client, bucket: string, root: string): Promise<void> {
  const prefix = `${root.replace(/^\//, "")}/`;
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  for (const u of uploads.Uploads ?? []) {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key!, UploadId: u.UploadId! })).catch(() => undefined);
  }
  const keys = await listKeys(s3, bucket, prefix);
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
  }
}

/** The `storage:` lines of a registry on `endpoint` (a proxy), rooted at `root`: the same for both kinds. */
export function s3StorageYaml(s3: CephS3, endpoint: string, root: string): string {
  return [
    "  s3:",
    `    accesskey: ${s3.accessKeyId}`,
    `    secretkey: ${s3.secretAccessKey}`,
    `    region: ${s3.region}`,
    `    regionendpoint: ${endpoint}`,
    `    bucket: ${s3.bucket}`,
    "    forcepathstyle: true",
    `    rootdirectory: ${root}`,
    // Served through the registry, not a presigned URL: the pull measures the registry.
    "  redirect:",
    "    disable: true",
    // Nothing in the bucket may change behind a run's back (distribution purges at a random time after start).
    "  maintenance:",
    "    uploadpurging:",
    "      enabled: false",
  ].join("\n");
}

export interface S3Server {
  s3: BenchS3;
  log: S3RequestLog;
  /** The run's root directory in the bucket. */
  root: string;
}

/**
 * Replaces the plain (filesystem) server the harness started with the same kind on S3 through the
 * proxy of `delayMs`, as the mirror cases do, so the harness reads the S3 server's CPU and memory.
 */
export async function restartOnS3(srv: RunningServer, ctx: BenchContext, delayMs: number): Promise<S3Server> {
  const s3 = await benchS3(ctx);
  const log = await s3.proxy(delayMs);
  const root = `/bench-${srv.kind}-${randomBytes(4).toString("hex")}`;
  await srv.stop();
  const server = await startServer(srv.kind, {
    tmpRoot: ctx.tmpRoot,
    berthWorkers: ctx.berthWorkers,
    storageYaml: s3StorageYaml(s3.ceph, log.endpoint, root),
    // distribution's AWS SDK panics on a plain-http endpoint when AWS_CA_BUNDLE is set (some machines set it for other tools).
    env: serverEnv(srv.kind),
  });
  Object.assign(srv, server);
  return { s3, log, root };
}

function serverEnv(kind: ServerKind): Record<string, string> {
  return kind === "distribution" ? { AWS_CA_BUNDLE: "" } : {};
}

/** Requests by operation, e.g. { PutObject: 12, HeadObject: 3 }. */
export function byOperation(requests: S3Request[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of requests) out[r.operation] = (out[r.operation] ?? 0) + 1;
  return out;
}
