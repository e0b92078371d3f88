import assert from "node:assert/strict";
import { createHash, randomBytes, randomInt } from "node:crypto";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { settleCopy, type CopyStatus } from "../src/driver/azure/copy-settle.js";
import { AzureDriver, type AzureDriverOptions, type AzureDriverTuning } from "../src/driver/azure/azure-driver.js";
import { PathNotFoundError } from "../src/driver/storage-driver.js";
import { describeStorage } from "../src/cli/compose.js";
import { ConfigError } from "../src/config/config.js";
import { describeConfig, MASK, parseConfig } from "../src/config/load-config.js";
import { runDriverSuite } from "./driver-suite.js";
import { describeRun, run } from "./support/external-program.js";
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type Azurite } from "./support/azurite.js";

/**
 * The shared driver suite and azure-specific tests, against Azurite (a real Azure Blob Storage
 * emulator, started by this file on a free port and stopped by its PID). Each driver works in a
 * container of its own or under a root directory of its own.
 */

const MiB = 1024 * 1024;
const CONTAINER = "berth";
const MEMORY_PROBE = "BERTH_AZURE_MEMORY_PROBE";

let azurite: Azurite | undefined;

function server(): Azurite {
  assert.ok(azurite, "azurite was not started");
  return azurite;
}

function driverOptions(overrides: Partial<AzureDriverOptions> = {}): AzureDriverOptions {
  return {
    accountname: AZURITE_ACCOUNT,
    container: CONTAINER,
    credentials: { type: "shared_key", accountKey: AZURITE_KEY },
    serviceurl: server().serviceUrl,
    ...overrides,
  };
}

const CRASH_PROBE = "BERTH_AZURE_CRASH_PROBE";
const probeInput = process.env[MEMORY_PROBE];
const crashInput = process.env[CRASH_PROBE];
if (crashInput !== undefined) await crashProbe(crashInput);
else if (probeInput === undefined) defineTests();
else await memoryProbe(probeInput);

function defineTests(): void {
  before(async () => {
    azurite = await startAzurite();
    await azurite.createContainer(CONTAINER);
  });

  after(async () => {
    await azurite?.stop();
  });

  /** Tests of the shared suite this driver cannot pass, with the reason. None. */
  const SUITE_SKIPS: Record<string, string> = {};

  runDriverSuite("azure", async () => ({ driver: new AzureDriver(driverOptions()), cleanup: async () => undefined }), { skip: SUITE_SKIPS });

  // Small blocks and pages, so that the suite's sizes cross block and page boundaries.
  runDriverSuite(
    "azure (256 KiB blocks, 7-name pages, rootdirectory)",
    async () => ({ driver: new AzureDriver(driverOptions({ rootdirectory: "/small/" }), { blockSize: 256 * 1024, listPageSize: 7 }), cleanup: async () => undefined }),
    { skip: SUITE_SKIPS },
  );

  describe("azure storage driver specifics", () => {
    it("uses distribution's blob names under rootdirectory", async () => {
      const driver = new AzureDriver(driverOptions({ rootdirectory: "/nested/root/" }));
      await driver.putContent("/docker/registry/v2/x", Buffer.from("layout"));
      const names: string[] = [];
      for await (const blob of server().client().getContainerClient(CONTAINER).listBlobsFlat({ prefix: "nested/" })) names.push(blob.name);
      assert.deepEqual(names, ["nested/root/docker/registry/v2/x"]);
      assert.deepEqual(await driver.list("/"), ["/docker"]);
      await driver.delete("/");
      await assert.rejects(driver.list("/"), PathNotFoundError);
    });

    it("close() stages blocks without a visible blob, and delete of the directory drops them", async () => {
      const driver = new AzureDriver(driverOptions(), { blockSize: 64 * 1024 });
      const dir = `/staged-${randomBytes(4).toString("hex")}`;
      const writer = await driver.writer(`${dir}/_uploads/id/data`, false);
      await writer.write(randomBytes(200 * 1024));
      await writer.close();
      await assert.rejects(driver.stat(`${dir}/_uploads/id/data`), PathNotFoundError);
      const blob = server().client().getContainerClient(CONTAINER).getBlockBlobClient(`${dir.slice(1)}/_uploads/id/data`);
      const staged = (await blob.getBlockList("uncommitted")).uncommittedBlocks ?? [];
      assert.deepEqual(staged.map((block) => block.size), [65536, 65536, 65536, 8192]);
      await driver.putContent(`${dir}/_uploads/id/startedat`, Buffer.from("now"));
      await driver.delete(`${dir}/_uploads/id`);
      await assert.rejects(blob.getBlockList("all"), (err: unknown) => (err as { statusCode?: number }).statusCode === 404);
    });

    it("continues a blob committed whole (Put Blob) by staging its bytes again", async () => {
      const driver = new AzureDriver(driverOptions(), { blockSize: 1000 });
      const path = `/whole-${randomBytes(4).toString("hex")}/data`;
      const first = randomBytes(2500);
      await driver.putContent(path, first);
      const writer = await driver.writer(path, true);
      assert.equal(writer.size, first.length);
      const more = randomBytes(10);
      await writer.write(more);
      await writer.close();
      const resumed = await driver.writer(path, true);
      assert.equal(resumed.size, first.length + more.length);
      await resumed.commit();
      assert.deepEqual(await driver.getContent(path), Buffer.concat([first, more]));
      await driver.delete(path);
    });

    it("continues a committed writer's blocks by name, without re-reading them", async () => {
      const driver = new AzureDriver(driverOptions(), { blockSize: 1000 });
      const path = `/blocks-${randomBytes(4).toString("hex")}/data`;
      const first = randomBytes(2500);
      const writer = await driver.writer(path, false);
      await writer.write(first);
      await writer.commit();
      const blob = server().client().getContainerClient(CONTAINER).getBlockBlobClient(path.slice(1));
      const committed = (await blob.getBlockList("committed")).committedBlocks ?? [];
      const more = await driver.writer(path, true);
      assert.equal(more.size, first.length);
      await more.write(Buffer.from("tail"));
      await more.commit();
      const after = (await blob.getBlockList("committed")).committedBlocks ?? [];
      assert.deepEqual(after.slice(0, committed.length), committed, "the first blocks are kept as they were");
      assert.deepEqual(await driver.getContent(path), Buffer.concat([first, Buffer.from("tail")]));
      await driver.delete(path);
    });

    it("stat of the root asks the service, so the health check sees a missing container or a refused key", async () => {
      const good = new AzureDriver(driverOptions());
      assert.equal((await good.stat("/")).isDir, true);
      assert.equal(await good.containerProblem(), undefined);
      const missing = new AzureDriver(driverOptions({ container: "no-such-container" }));
      await assert.rejects(missing.stat("/"), (err: unknown) => !(err instanceof PathNotFoundError) && /ContainerNotFound/.test(String((err as { code?: unknown }).code ?? err)));
      assert.equal(await missing.containerProblem(), "container-not-found");
      const wrongKey = new AzureDriver(driverOptions({ credentials: { type: "shared_key", accountKey: randomBytes(64).toString("base64") } }));
      await assert.rejects(wrongKey.stat("/"), (err: unknown) => !(err instanceof PathNotFoundError));
      assert.equal(await wrongKey.containerProblem(), "authentication-failed");
    });

    it("redirectURL is a read-only SAS URL that fetch() can read; a tampered one is refused", async () => {
      const driver = new AzureDriver(driverOptions());
      const path = `/redirect-${randomBytes(4).toString("hex")}/blob`;
      await driver.putContent(path, Buffer.from("through azurite"));
      const url = (await driver.redirectURL(path, "GET"))!;
      const read = await fetch(url);
      assert.equal(read.status, 200);
      assert.equal(await read.text(), "through azurite");
      const tampered = new URL(url);
      tampered.searchParams.set("sp", "rw");
      assert.equal((await fetch(tampered)).status, 403);
      await driver.delete(path);
    });
  });

  describe("storage.azure configuration", () => {
    const YAML = `version: 0.1
storage:
  azure:
    accountname: myaccount
    accountkey: ${AZURITE_KEY}
    container: registry
    rootdirectory: /prefix
  delete:
    enabled: true
`;
    const parse = (yaml: string, env: NodeJS.ProcessEnv = {}) => parseConfig(yaml, env, "test.yml");
    const configError = (run: () => unknown, key: string, fragment: string): void => {
      assert.throws(run, (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.key, key, err.message);
        assert.ok(err.message.includes(fragment), err.message);
        return true;
      });
    };

    it("reads distribution's keys, with its defaults", () => {
      const { config, warnings } = parse(YAML);
      assert.deepEqual(warnings, []);
      assert.deepEqual(config.storage.driver, {
        kind: "azure",
        accountName: "myaccount",
        credentials: { type: "shared_key", accountKey: AZURITE_KEY },
        container: "registry",
        realm: "core.windows.net",
        serviceUrl: undefined,
        rootDirectory: "/prefix",
        maxRetries: 5,
        retryDelayMs: 100,
      });
      assert.equal(describeStorage(config), "azure container registry at https://myaccount.blob.core.windows.net, root /prefix");
      const china = parse(YAML.replace("container: registry", "container: registry\n    realm: core.chinacloudapi.cn\n    credentials:\n      type: shared_key"));
      assert.equal(describeStorage(china.config), "azure container registry at https://myaccount.blob.core.chinacloudapi.cn, root /prefix");
      const driver = new AzureDriver({ accountname: "myaccount", container: "registry", credentials: { type: "shared_key", accountKey: AZURITE_KEY }, realm: "core.chinacloudapi.cn", rootdirectory: "/prefix/" });
      assert.equal(driver.options.serviceUrl, "https://myaccount.blob.core.chinacloudapi.cn");
      assert.equal(driver.options.root, "prefix");
    });

    it("takes REGISTRY_STORAGE_AZURE_* overrides, serviceurl included", () => {
      const { config } = parse("version: 0.1\nstorage:\n  inmemory:\n", {
        REGISTRY_STORAGE: "azure",
        REGISTRY_STORAGE_AZURE_ACCOUNTNAME: "fromenv",
        REGISTRY_STORAGE_AZURE_ACCOUNTKEY: AZURITE_KEY,
        REGISTRY_STORAGE_AZURE_CONTAINER: "env-container",
        REGISTRY_STORAGE_AZURE_SERVICEURL: "http://127.0.0.1:10000/fromenv/",
        REGISTRY_STORAGE_AZURE_CREDENTIALS_TYPE: "shared_key",
      });
      assert.equal(config.storage.driver.kind, "azure");
      if (config.storage.driver.kind !== "azure") return;
      assert.equal(config.storage.driver.accountName, "fromenv");
      assert.equal(config.storage.driver.container, "env-container");
      assert.equal(config.storage.driver.serviceUrl, "http://127.0.0.1:10000/fromenv");
    });

    it("reads client_secret credentials from REGISTRY_STORAGE_AZURE_CREDENTIALS_*, and masks the secret", () => {
      const secret = "client-secret-from-env";
      const { config, warnings } = parse(YAML.replace(`    accountkey: ${AZURITE_KEY}\n`, ""), {
        REGISTRY_STORAGE_AZURE_CREDENTIALS_TYPE: "client_secret",
        REGISTRY_STORAGE_AZURE_CREDENTIALS_TENANTID: "tenant-1",
        REGISTRY_STORAGE_AZURE_CREDENTIALS_CLIENTID: "client-1",
        REGISTRY_STORAGE_AZURE_CREDENTIALS_SECRET: secret,
        REGISTRY_STORAGE_AZURE_CREDENTIALS_AUTHORITYHOST: "https://login.microsoftonline.us/",
      });
      assert.deepEqual(warnings, []);
      assert.equal(config.storage.driver.kind, "azure");
      if (config.storage.driver.kind !== "azure") return;
      assert.deepEqual(config.storage.driver.credentials, { type: "client_secret", tenantId: "tenant-1", clientId: "client-1", secret, authorityHost: "https://login.microsoftonline.us" });
      const described = describeConfig(config) as { storage: { azure: { credentials: Record<string, unknown> } } };
      assert.deepEqual(described.storage.azure.credentials, { type: "client_secret", tenantid: "tenant-1", clientid: "client-1", secret: MASK, authorityhost: "https://login.microsoftonline.us" });
      assert.ok(!JSON.stringify(described).includes(secret));
    });

    it("reads a connection string, taking the account name from it, and masks it", () => {
      const connectionString = `DefaultEndpointsProtocol=https;AccountName=fromstring;AccountKey=${AZURITE_KEY};EndpointSuffix=core.windows.net`;
      const { config } = parse("version: 0.1\nstorage:\n  azure:\n    container: registry\n", { REGISTRY_STORAGE_AZURE_CONNECTIONSTRING: connectionString });
      assert.equal(config.storage.driver.kind, "azure");
      if (config.storage.driver.kind !== "azure") return;
      assert.equal(config.storage.driver.accountName, "fromstring");
      assert.deepEqual(config.storage.driver.credentials, { type: "connection_string", connectionString });
      const described = JSON.stringify(describeConfig(config));
      assert.ok(!described.includes(AZURITE_KEY) && described.includes(`"connectionstring":"${MASK}"`), described);
      const driver = new AzureDriver({ accountname: "fromstring", container: "registry", credentials: { type: "connection_string", connectionString } });
      assert.equal(driver.options.serviceUrl, "https://fromstring.blob.core.windows.net");
    });

    it("masks the account key when describing the configuration", () => {
      const described = describeConfig(parse(YAML).config) as { storage: { azure: Record<string, unknown> } };
      assert.equal(described.storage.azure["accountname"], "myaccount");
      assert.equal(described.storage.azure["accountkey"], MASK);
      assert.ok(!JSON.stringify(described).includes(AZURITE_KEY));
    });

    it("refuses what the driver could not run with, naming the key", () => {
      configError(() => parse(YAML.replace("    container: registry\n", "")), "storage.azure.container", "required");
      configError(() => parse(YAML.replace("    accountname: myaccount\n", "")), "storage.azure.accountname", "required");
      configError(() => parse(YAML.replace(`    accountkey: ${AZURITE_KEY}\n`, "")), "storage.azure.accountkey", "required with credentials.type shared_key");
      configError(() => parse(YAML.replace(AZURITE_KEY, "secret!")), "storage.azure.accountkey", "in base64");
      configError(() => parse(YAML.replace("container: registry", "container: Registry_1")), "storage.azure.container", "an Azure container name");
      configError(() => parse(YAML.replace("container: registry", "container: registry\n    serviceurl: ftp://host/x")), "storage.azure.serviceurl", "an http(s) URL");
      configError(() => parse(YAML.replace("container: registry", "container: registry\n    credentials:\n      type: default_credentials")), "storage.azure.accountkey", "is not used with credentials.type default_credentials");
      configError(() => parse(YAML.replace("container: registry", "container: registry\n    credentials:\n      type: sas")), "storage.azure.credentials.type", "expected one of shared_key, client_secret, default_credentials");
      configError(() => parse(YAML.replace("container: registry", "container: registry\n    connectionstring: UseDevelopmentStorage=true")), "storage.azure.accountkey", "is not used with connectionstring");
      configError(() => parse(YAML.replace("container: registry", "container: registry\n    max_retries: -2")), "storage.azure.max_retries", "expected -1 or a non-negative integer");
      configError(() => parse(YAML.replace("container: registry", "container: registry\n    retry_delay: soon")), "storage.azure.retry_delay", "");
      configError(() => parse(YAML.replace("container: registry", "container: registry\n    max_retries: 3\n    copy_status_poll_max_retry: 5")), "storage.azure.copy_status_poll_max_retry", "set one");
    });

    it("reads max_retries and retry_delay (distribution 3.0), and their release candidates' names with a warning", () => {
      const azure = (yaml: string, env: Record<string, string> = {}): { maxRetries: number; retryDelayMs: number; warnings: string[] } => {
        const { config, warnings } = parse(yaml, env);
        assert.equal(config.storage.driver.kind, "azure");
        const driver = config.storage.driver as { maxRetries: number; retryDelayMs: number };
        return { maxRetries: driver.maxRetries, retryDelayMs: driver.retryDelayMs, warnings };
      };
      assert.deepEqual(azure(YAML), { maxRetries: 5, retryDelayMs: 100, warnings: [] });
      assert.deepEqual(azure(YAML.replace("container: registry", "container: registry\n    max_retries: 12\n    retry_delay: 2s")), { maxRetries: 12, retryDelayMs: 2000, warnings: [] });
      assert.deepEqual(azure(YAML.replace("container: registry", "container: registry\n    max_retries: 0\n    retry_delay: 0s")), { maxRetries: 5, retryDelayMs: 100, warnings: [] });
      assert.deepEqual(azure(YAML.replace("container: registry", "container: registry\n    max_retries: -1")).maxRetries, -1);
      assert.deepEqual(azure(YAML.replace("container: registry", "container: registry\n    copy_status_poll_max_retry: 9\n    copy_status_poll_delay: 1s")), {
        maxRetries: 9,
        retryDelayMs: 1000,
        warnings: [
          "storage.azure.copy_status_poll_max_retry is read as storage.azure.max_retries, its name since distribution 3.0",
          "storage.azure.copy_status_poll_delay is read as storage.azure.retry_delay, its name since distribution 3.0",
        ],
      });
      const described = describeConfig(parse(YAML.replace("container: registry", "container: registry\n    max_retries: 3")).config) as { storage: { azure: Record<string, unknown> } };
      assert.equal(described.storage.azure["max_retries"], 3);
      assert.equal(described.storage.azure["retry_delay"], "100ms");
    });

    it("waits for a pending copy as distribution does: n-th wait retry_delay × n, aborted after max_retries checks, at once with -1", async () => {
      /** A copy the service reports `statuses` for, one per check; records the waits and the abort. */
      const copy = (statuses: CopyStatus[], description?: string) => {
        const log: string[] = [];
        return {
          log,
          pending: {
            status: async () => {
              const status = statuses.shift() ?? "pending";
              log.push(`check ${status}`);
              return { status, description };
            },
            abort: async () => {
              log.push("abort");
            },
          },
          sleep: async (ms: number) => {
            log.push(`wait ${ms}`);
          },
        };
      };
      const done = copy(["pending", "pending", "success"]);
      await settleCopy(done.pending, { maxRetries: 5, retryDelayMs: 100 }, "a", done.sleep);
      assert.deepEqual(done.log, ["check pending", "wait 100", "check pending", "wait 200", "check success"]);
      const stuck = copy([]);
      await assert.rejects(settleCopy(stuck.pending, { maxRetries: 3, retryDelayMs: 10 }, "of /a to /b", stuck.sleep), /copy of \/a to \/b still pending after 3 checks \(max_retries 3\): aborted/);
      assert.deepEqual(stuck.log, ["check pending", "wait 10", "check pending", "wait 20", "check pending", "abort"]);
      const failed = copy(["pending", "failed"], "source changed");
      await assert.rejects(settleCopy(failed.pending, { maxRetries: 5, retryDelayMs: 1 }, "c", failed.sleep), /copy c failed: source changed/);
      assert.ok(!failed.log.includes("abort"));
      const never = copy([]);
      await assert.rejects(settleCopy(never.pending, { maxRetries: -1, retryDelayMs: 100 }, "d", never.sleep), /max_retries is -1: aborted/);
      assert.deepEqual(never.log, ["abort"]);
    });
  });

  describe("azure writer killed mid-upload", () => {
    it("leaves no blob at the path, and a writer on another process continues its staged blocks", async () => {
      const options = driverOptions();
      const blockSize = 64 * 1024;
      const path = `/crash-${randomBytes(4).toString("hex")}/_uploads/id/data`;
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
        env: { ...process.env, [CRASH_PROBE]: JSON.stringify({ options, blockSize, path }) },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
      // Killed while it writes: after a few blocks were staged, in the middle of more.
      while (!/blocks \d+/.test(output)) {
        assert.equal(child.exitCode, null, `the writer exited early:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      process.kill(child.pid!, "SIGKILL");
      assert.equal(await exited, "SIGKILL");

      const driver = new AzureDriver(options, { blockSize });
      await assert.rejects(driver.stat(path), PathNotFoundError);
      await assert.rejects(driver.getContent(path), PathNotFoundError);
      const resumed = await driver.writer(path, true);
      assert.ok(resumed.size >= 3 * blockSize, `continues from ${resumed.size} bytes of staged blocks`);
      assert.equal(resumed.size % blockSize, 0, "whole blocks only: the killed writer's gathered bytes were never acknowledged");
      const staged = resumed.size;
      await resumed.write(Buffer.from("end"));
      await resumed.commit();
      const content = await driver.getContent(path);
      assert.equal(content.length, staged + 3);
      assert.ok(content.subarray(0, staged).equals(pattern(0, staged)), "the staged bytes are the killed writer's, in order");
      assert.equal(content.subarray(staged).toString(), "end");
      await driver.delete(path.slice(0, path.indexOf("/_uploads")));
    });
  });

  describe("azure writer memory", () => {
    it("keeps memory bounded while streaming ~40 MiB in uneven small writes", async () => {
      // In a fresh process, so that the RSS baseline is not inflated by earlier tests' heap.
      const options = driverOptions();
      const blockSize = 2 * MiB;
      const result = await run(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url)], {
        env: { [MEMORY_PROBE]: JSON.stringify({ options, blockSize, path: `/memory-${randomBytes(4).toString("hex")}/data`, total: 40 * MiB + 12_345 }) },
        timeoutMs: 300_000,
      });
      assert.equal(result.code, 0, describeRun(result));
      const report = JSON.parse(result.stdout.trim().split("\n").at(-1)!) as MemoryReport;
      process.stderr.write(
        `# azure writer memory: ${(report.total / MiB).toFixed(1)} MiB in ${report.writes} writes of 1 B–256 KiB, 2 MiB blocks: ` +
          `baseline RSS ${(report.baselineRss / MiB).toFixed(1)} MiB, peak RSS growth ${(report.rssGrowth / MiB).toFixed(1)} MiB, ` +
          `peak arrayBuffers growth ${(report.bufferGrowth / MiB).toFixed(1)} MiB\n`,
      );
      // A few 2 MiB blocks (one staging, one waiting, one filling, one free for reuse) plus the
      // SDK's and sockets' own buffers: a fraction of the 40 MiB written.
      assert.ok(report.bufferGrowth < 12 * MiB, `arrayBuffers grew by ${report.bufferGrowth} bytes`);
      assert.ok(report.rssGrowth < 24 * MiB, `RSS grew by ${report.rssGrowth} bytes`);
      const driver = new AzureDriver(options);
      assert.equal((await driver.stat(report.path)).size, report.total);
      const hash = createHash("sha256");
      for await (const chunk of await driver.reader(report.path)) hash.update(chunk as Buffer);
      assert.equal(hash.digest("hex"), report.sha256);
      await driver.delete(report.path);
    });
  });
}


interface MemoryReport {
  path: string;
  total: number;
  writes: number;
  baselineRss: number;
  rssGrowth: number;
  bufferGrowth: number;
  sha256: string;
}

/**
 * The child process of the memory test: streams `total` random bytes in uneven writes through one
 * writer and reports the peak growth of RSS and of ArrayBuffer memory (sampled after a full GC, so
 * that only live memory counts), and the bytes' SHA-256.
 */
async function memoryProbe(input: string): Promise<void> {
  const { options, blockSize, path, total } = JSON.parse(input) as { options: AzureDriverOptions; blockSize: number; path: string; total: number };
  const gc = (globalThis as { gc?: () => void }).gc;
  assert.ok(gc, "run with --expose-gc");
  const driver = new AzureDriver(options, { blockSize });
  await driver.putContent(`${path}-warm-up`, Buffer.from("warm"));
  await driver.delete(`${path}-warm-up`);
  const hash = createHash("sha256");
  gc();
  const baseline = process.memoryUsage();
  let peakRss = baseline.rss;
  let peakArrayBuffers = baseline.arrayBuffers;
  const writer = await driver.writer(path, false);
  let written = 0;
  let writes = 0;
  while (written < total) {
    // Uneven writes between 1 byte and 256 KiB, as a client's TCP reads would arrive.
    const chunk = randomBytes(Math.min(total - written, randomInt(3) === 0 ? randomInt(1, 100) : randomInt(1, 256 * 1024)));
    hash.update(chunk);
    await writer.write(chunk);
    written += chunk.length;
    if (++writes % 16 === 0) {
      gc();
      const usage = process.memoryUsage();
      peakRss = Math.max(peakRss, usage.rss);
      peakArrayBuffers = Math.max(peakArrayBuffers, usage.arrayBuffers);
    }
  }
  await writer.commit();
  const report: MemoryReport = {
    path,
    total,
    writes,
    baselineRss: baseline.rss,
    rssGrowth: peakRss - baseline.rss,
    bufferGrowth: peakArrayBuffers - baseline.arrayBuffers,
    sha256: hash.digest("hex"),
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** Bytes [start, end) of the crash probe's stream: byte i is i mod 251, so any prefix can be checked. */
function pattern(start: number, end: number): Buffer {
  const bytes = Buffer.allocUnsafe(end - start);
  for (let i = start; i < end; i++) bytes[i - start] = i % 251;
  return bytes;
}

/**
 * The child process of the crash test: writes the pattern through one writer without end, in
 * 10,000-byte writes, and reports how many blocks' worth it has written, until it is killed.
 */
async function crashProbe(input: string): Promise<void> {
  const { options, blockSize, path } = JSON.parse(input) as { options: AzureDriverOptions; blockSize: number; path: string };
  const driver = new AzureDriver(options, { blockSize });
  const writer = await driver.writer(path, false);
  for (let written = 0; ; written += 10_000) {
    await writer.write(pattern(written, written + 10_000));
    const blocks = Math.floor(written / blockSize);
    // Past four blocks, at least three are staged: a writer waits for block n-1 once block n+1 is cut.
    if (blocks >= 4) process.stdout.write(`blocks ${blocks}\n`);
  }
}
