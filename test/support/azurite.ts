/**
 * A real Azure Blob Storage emulator (Azurite, the npm devDependency `azurite`) for the azure
 * driver's tests: its blob service only, on a free loopback port, keeping its data in a temporary
 * directory that stop() removes. Started as a child Node process and stopped by its PID.
 *
 * Azurite is a devDependency, so it is always there after `npm ci`: a missing one is a failure,
 * never a skip.
 *
 * What Azurite does not cover (the driver's tests cannot prove it): a real Entra ID (its
 * `--oauth basic` checks a token's claims, not its signature; test/support/entra-token-service.ts
 * stands in for the token service), the
 * service's throttling (503 ServerBusy) and its block limits (Azurite does not enforce the 50,000
 * committed or 100,000 uncommitted blocks per blob), copies that stay pending (Azurite copies within
 * an account at once), and the real service's listing page sizes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { freePort } from "./distribution-process.js";

/** Azurite's well-known development account (documented by Microsoft; not a secret). */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface Azurite {
  port: number;
  /** The blob service of the development account: `http://127.0.0.1:<port>/devstoreaccount1`. */
  serviceUrl: string;
  pid(): number | undefined;
  /** Creates a container (the driver expects it to exist, as distribution's does). */
  createContainer(name: string): Promise<void>;
  /** An SDK client of the account, to look at storage past the driver. */
  client(): BlobServiceClient;
  log(): string;
  stop(): Promise<void>;
}

function azuriteBlobMain(): string {
  const require = createRequire(import.meta.url);
  // The package's own entry point for the blob service (its `azurite-blob` bin).
  return join(dirname(require.resolve("azurite/package.json")), "dist", "src", "blob", "main.js");
}

export interface AzuriteOptions {
  /**
   * Serve HTTPS with this certificate (`--cert`, `--key`) and accept Entra ID bearer tokens
   * (`--oauth basic`: issuer, audience and lifetime are checked, not the signature). Shared Key
   * requests are accepted too. Clients must trust the certificate's CA (NODE_EXTRA_CA_CERTS).
   */
  oauth?: { cert: string; key: string };
}

export async function startAzurite(options: AzuriteOptions = {}): Promise<Azurite> {
  const dir = await mkdtemp(join(tmpdir(), "berth-azurite-"));
  let child: ChildProcess | undefined;
  let output = "";
  let port = 0;

  const kill = async (): Promise<void> => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    process.kill(proc.pid, "SIGKILL");
    await exited;
  };

  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    output = "";
    // --skipApiVersionCheck: the SDK may speak a newer service version than this Azurite release
    // knows; the operations the driver uses are older than both.
    const proc = spawn(
      process.execPath,
      [
        azuriteBlobMain(), "--blobHost", "127.0.0.1", "--blobPort", String(port), "--location", dir, "--skipApiVersionCheck", "--disableTelemetry", "--silent",
        ...(options.oauth === undefined ? [] : ["--cert", options.oauth.cert, "--key", options.oauth.key, "--oauth", "basic"]),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child = proc;
    proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    proc.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    const deadline = Date.now() + 30_000;
    let failed: Error | undefined;
    while (!/successfully listens/.test(output)) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        failed = new Error(`azurite exited before listening:\n${output}`);
        break;
      }
      if (Date.now() > deadline) {
        failed = new Error(`azurite did not listen within 30 s:\n${output}`);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    if (failed === undefined) break;
    await kill();
    // The port was free when picked; another process may have taken it since.
    if (attempt >= 2 || !/EADDRINUSE/.test(output)) {
      await rm(dir, { recursive: true, force: true });
      throw failed;
    }
  }

  const serviceUrl = `${options.oauth === undefined ? "http" : "https"}://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  let inspector: BlobServiceClient | undefined;
  const client = (): BlobServiceClient => {
    inspector ??= new BlobServiceClient(serviceUrl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
    return inspector;
  };
  return {
    port,
    serviceUrl,
    pid: () => child?.pid,
    createContainer: async (name) => {
      await client().getContainerClient(name).createIfNotExists();
    },
    client,
    log: () => output,
    stop: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
