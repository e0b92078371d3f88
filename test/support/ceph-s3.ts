/**
 * A real S3 server for tests: a throwaway Ceph cluster with radosgw, started by
 * scripts/start-ceph.sh and stopped (by the PIDs it recorded) by scripts/stop-ceph.sh.
 *
 * Needs the Debian packages ceph-mon, ceph-osd, radosgw and ceph-common. When they are missing,
 * the tests that need the server are skipped on a developer's machine and fail in CI (CI=true),
 * like every other external program the tests use (see external-program.ts).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import type { S3DriverOptions } from "../../src/driver/s3/s3-driver.js";
import { describeRun, findOnPath, run } from "./external-program.js";

/** The repository's scripts/ directory (tests run from dist/test/support). */
const SCRIPTS = fileURLToPath(new URL("../../../scripts/", import.meta.url));
export const START_CEPH = join(SCRIPTS, "start-ceph.sh");
export const STOP_CEPH = join(SCRIPTS, "stop-ceph.sh");

/** What start-ceph.sh needs on PATH. */
const CEPH_PROGRAMS = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool", "ceph-authtool"];
const INSTALL_HINT = "apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common";

/**
 * `false` when Ceph can be started; otherwise the reason to skip. Throws when CI=true, so that a
 * CI run never passes with the S3 tests silently skipped.
 */
export function cephSkipReason(): string | false {
  const missing = CEPH_PROGRAMS.filter((name) => findOnPath(name) === undefined);
  if (!findOnPath("bash")) missing.push("bash");
  if (missing.length === 0) return false;
  const reason = `Ceph is not installed (missing ${missing.join(", ")}; ${INSTALL_HINT})`;
  if (process.env.CI === "true") throw new Error(`${reason}; CI=true, so this is a failure`);
  return reason;
}

export interface CephS3 {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** A bucket created for this server. */
  bucket: string;
  stateDir: string;
  /** Driver options for this server and bucket, with a fresh root directory unless one is given. */
  driverOptions(overrides?: Partial<S3DriverOptions>): S3DriverOptions;
  /** A client for the server, with the settings Ceph needs. */
  client(): S3Client;
  /** Stops the daemons by their recorded PIDs and deletes the state directory. Idempotent. */
  stop(): Promise<void>;
}

/** berth's `storage.s3` lines for this server and bucket (test/support/berth-process.ts testConfig). */
export function s3DriverConfig(s3: CephS3, rootdirectory: string): string {
  return [
    "  s3:",
    `    accesskey: ${s3.accessKeyId}`,
    `    secretkey: ${s3.secretAccessKey}`,
    `    region: ${s3.region}`,
    `    regionendpoint: ${s3.endpoint}`,
    `    bucket: ${s3.bucket}`,
    "    forcepathstyle: true",
    `    rootdirectory: ${rootdirectory}`,
    `    chunksize: ${5 * 1024 * 1024}`,
  ].join("\n");
}

/**
 * Starts a cluster (about 3 seconds) and creates a bucket. A watchdog started with it stops the
 * cluster should this process die without calling `stop()`. `env` goes to scripts/start-ceph.sh
 * (e.g. RGW_FRONTEND_OPTS, CEPH_OSD_SIZE_GB).
 */
export async function startCephS3(options: { bucket?: string; env?: Record<string, string> } = {}): Promise<CephS3> {
  const stateDir = await mkdtemp(join(tmpdir(), "berth-ceph-"));
  const result = await run("bash", [START_CEPH], {
    env: { ...options.env, S3_STATE_DIR: stateDir, S3_WATCH_PID: String(process.pid) },
    timeoutMs: 3 * 60 * 1000,
  });
  if (result.code !== 0) throw new Error(`could not start Ceph: ${describeRun(result)}`);
  const env = Object.fromEntries(
    result.stdout
      .split("\n")
      .map((line) => /^export ([A-Z0-9_]+)=(.*)$/.exec(line))
      .filter((match): match is RegExpExecArray => match !== null)
      .map((match) => [match[1]!, match[2]!]),
  );
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= run("bash", [STOP_CEPH, stateDir], { timeoutMs: 60_000 }).then((r) => {
      if (r.code !== 0) throw new Error(`could not stop Ceph: ${describeRun(r)}`);
    }));
  try {
    const endpoint = required(env, "S3_ENDPOINT");
    const region = required(env, "S3_REGION");
    const accessKeyId = required(env, "S3_ACCESS_KEY");
    const secretAccessKey = required(env, "S3_SECRET_KEY");
    const bucket = options.bucket ?? `berth-test-${randomBytes(4).toString("hex")}`;
    // The SDK's notice about its future Node requirement is noise in test output.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
    const client = (): S3Client =>
      new S3Client({
        endpoint,
        region,
        credentials: { accessKeyId, secretAccessKey },
        forcePathStyle: true,
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
      });
    const admin = client();
    try {
      await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    } finally {
      admin.destroy();
    }
    return {
      endpoint,
      region,
      accessKeyId,
      secretAccessKey,
      bucket,
      stateDir,
      driverOptions: (overrides = {}) => ({
        accesskey: accessKeyId,
        secretkey: secretAccessKey,
        region,
        regionendpoint: endpoint,
        bucket,
        forcepathstyle: true,
        rootdirectory: `/run-${randomBytes(4).toString("hex")}`,
        ...overrides,
      }),
      client,
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

function required(env: Record<string, string>, name: string): string {
  const value = env[name];
  if (value === undefined || value === "") throw new Error(`start-ceph.sh did not report ${name}`);
  return value;
}

/** Every key under `prefix` in `bucket`, sorted (all pages). */
export async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    keys.push(...(page.Contents ?? []).map((object) => object.Key!));
    token = page.NextContinuationToken;
  } while (token !== undefined);
  return keys.sort();
}

/** Keys of the multipart uploads still open under `prefix`. */
export async function openMultipartUploads(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const out = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (out.Uploads ?? []).map((upload) => upload.Key!);
}
