import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { GcsDriver, PENDING_SUFFIX, type GcsDriverOptions } from "../src/driver/gcs/gcs-driver.js";
import { GcsBucket } from "../src/driver/gcs/gcs-bucket.js";
import { PathNotFoundError } from "../src/driver/storage-driver.js";
import { createDriver, describeStorage } from "../src/cli/compose.js";
import { ConfigError, type GcsServiceAccount } from "../src/config/config.js";
import { describeConfig, MASK, parseConfig } from "../src/config/load-config.js";
import { BERTH_CLI, startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { describeRun, run } from "./support/external-program.js";
import { startGcsEmulator, testServiceAccount, type GcsEmulator } from "./support/gcs-emulator.js";
import { digestOf, randomBlob, RegistryClient, uniqueName } from "./support/registry-client.js";
import { runDriverSuite } from "./driver-suite.js";

/**
 * The shared driver suite and GCS-specific tests, against firebase-tools' Cloud Storage emulator
 * (test/support/gcs-emulator.ts), which this file starts and stops.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const account: GcsServiceAccount = testServiceAccount();
let emulator: GcsEmulator | undefined;

function server(): GcsEmulator {
  assert.ok(emulator, "the GCS emulator was not started");
  return emulator;
}

function options(overrides: Partial<GcsDriverOptions> = {}): GcsDriverOptions {
  return {
    bucket: server().bucket,
    apiEndpoint: server().endpoint,
    serviceAccount: account,
    rootDirectory: `/t-${randomBytes(4).toString("hex")}`,
    chunkSize: 256 * KiB,
    maxConcurrency: 50,
    ...overrides,
  };
}

/** Every object name under the driver's root, side objects included: the bucket past the driver. */
async function rawNames(o: GcsDriverOptions, path: string): Promise<string[]> {
  const bucket = new GcsBucket(o);
  const names: string[] = [];
  let token: string | undefined;
  do {
    const page = await bucket.listPage({ Prefix: bucket.dirPrefix(path), ContinuationToken: token });
    names.push(...page.Contents.map((item) => item.Key.slice(bucket.root.length + 1)));
    token = page.NextContinuationToken;
  } while (token !== undefined);
  return names.sort();
}

/** The storage lines of a berth configuration on the emulator, credentials inline. */
function gcsDriverYaml(root: string, extra = ""): string {
  const key = account.private_key.trimEnd().split("\n").map((line) => `        ${line}`).join("\n");
  return [
    "  gcs:",
    `    bucket: ${server().bucket}`,
    `    apiendpoint: ${server().endpoint}`,
    `    rootdirectory: ${root}`,
    "    chunksize: 262144",
    "    credentials:",
    "      type: service_account",
    `      client_email: ${account.client_email}`,
    "      private_key: |",
    key,
    extra,
  ]
    .filter((line) => line !== "")
    .join("\n");
}

before(async () => {
  emulator = await startGcsEmulator();
});

after(async () => {
  await emulator?.stop();
});

runDriverSuite("gcs", async () => ({ driver: new GcsDriver(options({ rootDirectory: "/suite" })), cleanup: async () => undefined }));

describe("gcs storage driver specifics", () => {
  it("continues an upload in another process from the session the first one closed, with nothing at the path before commit", async () => {
    const o = options();
    const path = "/uploads/id/data";
    // Sessions ending mid-quantum, on a quantum, and spanning several chunks.
    const sizes = [1000, 256 * KiB - 1000, 700 * KiB + 3, 17, 3 * 256 * KiB];
    const written: Buffer[] = [];
    let expected = 0;
    for (const [i, size] of sizes.entries()) {
      // A new driver each session: another node, sharing nothing but the bucket.
      const driver = new GcsDriver(o);
      const writer = await driver.writer(path, i > 0);
      assert.equal(writer.size, expected, `session ${i} starts at ${expected}`);
      const bytes = randomBytes(size);
      for (let at = 0; at < size; at += 100_000) await writer.write(bytes.subarray(at, at + 100_000));
      written.push(bytes);
      expected += size;
      await writer.close();
      await assert.rejects(driver.stat(path), PathNotFoundError, "nothing at the path before commit");
      assert.deepEqual(await rawNames(o, "/uploads"), [`uploads/id/data${PENDING_SUFFIX}`], "only the side object is stored");
      assert.deepEqual(await driver.list("/uploads/id").catch(() => []), [], "the side object is not listed");
    }
    const driver = new GcsDriver(o);
    const last = await driver.writer(path, true);
    assert.equal(last.size, expected);
    await last.commit();
    assert.ok((await driver.getContent(path)).equals(Buffer.concat(written)));
    assert.deepEqual(await rawNames(o, "/uploads"), ["uploads/id/data"], "commit removes the side object");
    await driver.delete("/uploads");
  });

  it("a writer that dies mid-upload leaves nothing visible at its path", async () => {
    const o = options();
    const driver = new GcsDriver(o);
    const writer = await driver.writer("/crash/data", false);
    // Four chunks sent to the session, then the process "dies": no close, no commit.
    await writer.write(randomBytes(4 * 256 * KiB + 5));
    await assert.rejects(driver.stat("/crash/data"), PathNotFoundError);
    await assert.rejects(driver.getContent("/crash/data"), PathNotFoundError);
    assert.deepEqual(await rawNames(o, "/crash").catch(() => []), []);
    // A later writer starts over: the session was never recorded.
    const again = await driver.writer("/crash/data", true);
    assert.equal(again.size, 0);
    await again.cancel();
  });

  it("a session that holds more than the side object says wins (a writer that died after sending chunks)", async () => {
    const o = options();
    const driver = new GcsDriver(o);
    const first = randomBytes(300 * KiB);
    const writer = await driver.writer("/ahead/data", false);
    await writer.write(first);
    await writer.close(); // 256 KiB in the session, 44 KiB in the side object
    const second = await driver.writer("/ahead/data", true);
    assert.equal(second.size, first.length);
    // Fills two chunks (the tail plus new bytes): the first is sent, the second is being sent when
    // the writer "dies" (neither close nor commit).
    await second.write(randomBytes(600 * KiB));
    const third = await driver.writer("/ahead/data", true);
    assert.ok(third.size === 512 * KiB || third.size === 768 * KiB, `the session's bytes, not the side object's: ${third.size}`);
    await third.cancel();
    await assert.rejects(driver.stat("/ahead/data"), PathNotFoundError);
  });

  it("redirects GETs to a V4 signed URL that serves the object, and only with a key to sign with", async () => {
    const o = options();
    const driver = new GcsDriver(o);
    const bytes = randomBytes(10_000);
    await driver.putContent("/signed/data", bytes);
    const url = await driver.redirectURL("/signed/data", "GET");
    assert.ok(url !== undefined);
    assert.ok(url.startsWith(`${server().endpoint}/${server().bucket}/`), url);
    assert.match(url, /X-Goog-Algorithm=GOOG4-RSA-SHA256/);
    assert.match(url, /X-Goog-Expires=1200/);
    assert.match(url, /X-Goog-Signature=[0-9a-f]+/);
    const direct = await fetch(url);
    assert.equal(direct.status, 200);
    assert.ok(Buffer.from(await direct.arrayBuffer()).equals(bytes));
    assert.equal(await driver.redirectURL("/signed/data", "HEAD"), undefined, "a V4 read signature is for GET");
    const unsigned = new GcsDriver({ ...o, serviceAccount: undefined });
    assert.equal(await unsigned.redirectURL("/signed/data", "GET"), undefined);
    await driver.delete("/signed");
  });

  it("stores under rootdirectory with distribution's names", async () => {
    const o = options({ rootDirectory: "/layout-root/" });
    const driver = new GcsDriver(o);
    await driver.putContent("/docker/registry/v2/blobs/x", Buffer.from("x"));
    const bucket = new GcsBucket(o);
    const page = await bucket.listPage({ Prefix: "layout-root/" });
    assert.deepEqual(page.Contents.map((item) => item.Key), ["layout-root/docker/registry/v2/blobs/x"]);
    await driver.delete("/docker");
  });
});

describe("berth on GCS", () => {
  const processes: BerthProcess[] = [];
  const root = `/berth-e2e-${randomBytes(4).toString("hex")}`;
  const start = async (extraStorage?: string): Promise<BerthProcess> => {
    const berth = await startBerth({ configYaml: testConfig({ driver: gcsDriverYaml(root), storage: extraStorage }) });
    processes.push(berth);
    return berth;
  };

  after(async () => {
    for (const berth of processes) await berth.stop();
  });

  it("pushes blobs and an image, and pulls them through a 307 to a signed URL", async () => {
    const client = new RegistryClient((await start()).url);
    const name = uniqueName("gcs");
    const small = randomBlob(1000);
    const large = randomBytes(3 * MiB + 5);
    const smallDigest = await client.pushBlob(name, small);
    // Chunks that are not multiples of 256 KiB, each PATCH its own writer session.
    const largeDigest = await client.pushBlob(name, large, { chunkSize: 700 * KiB + 1 });
    const image = await client.pushImage(name, "v1");
    for (const [digest, bytes] of [[smallDigest, small], [largeDigest, large], [digestOf(image.config), image.config]] as const) {
      const get = await client.send(`/v2/${name}/blobs/${digest}`);
      assert.equal(get.status, 307, `GET ${digest}`);
      const location = get.headers.get("location")!;
      assert.ok(location.startsWith(`${server().endpoint}/${server().bucket}/`), location);
      assert.match(location, /X-Goog-Signature=/);
      const direct = await fetch(location);
      assert.ok(Buffer.from(await direct.arrayBuffer()).equals(bytes), `bytes of ${digest} from GCS`);
    }
    const manifest = await client.get(`/v2/${name}/manifests/v1`, { Accept: image.mediaType });
    assert.equal(manifest.response.status, 200);
    assert.ok(manifest.bytes.equals(image.bytes));
    const driver = new GcsDriver(options({ rootDirectory: root }));
    const hex = largeDigest.slice("sha256:".length);
    assert.equal((await driver.stat(`/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`)).size, large.length);
    await assert.rejects(driver.list(`/docker/registry/v2/repositories/${name}/_uploads`), PathNotFoundError, "nothing left of the uploads");
  });

  it("serves bytes and ranges itself with storage.redirect.disable", async () => {
    const client = new RegistryClient((await start("  redirect:\n    disable: true")).url);
    const name = uniqueName("gcs");
    const blob = randomBlob(70_000);
    const digest = await client.pushBlob(name, blob, { chunkSize: 30_000 });
    const { response, bytes } = await client.get(`/v2/${name}/blobs/${digest}`);
    assert.equal(response.status, 200);
    assert.ok(bytes.equals(blob));
    const range = await client.get(`/v2/${name}/blobs/${digest}`, { Range: "bytes=10-19" });
    assert.equal(range.response.status, 206);
    assert.ok(range.bytes.equals(blob.subarray(10, 20)));
  });

  it("resumes an upload on another berth process: the second node continues the first node's session", async () => {
    const first = new RegistryClient((await start()).url);
    const second = new RegistryClient((await start()).url);
    const name = uniqueName("gcs");
    const blob = randomBytes(MiB + 300 * KiB + 7);
    const { location } = await first.startUpload(name);
    const cut = 600 * KiB + 3;
    const patched = await first.patchChunk(location, blob.subarray(0, cut), 0);
    assert.equal(patched.status, 202);
    assert.equal(patched.headers.get("range"), `0-${cut - 1}`);
    // The same upload URL, on the other node (both share http.secret and the bucket).
    const next = new URL(first.url(patched.headers.get("location")!));
    const onSecond = second.url(`${next.pathname}${next.search}`);
    const status = await second.send(onSecond);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), `0-${cut - 1}`);
    const rest = await second.patchChunk(onSecond, blob.subarray(cut), cut);
    assert.equal(rest.status, 202);
    const digest = digestOf(blob);
    const done = await second.send(`${second.url(rest.headers.get("location")!)}&digest=${digest}`, { method: "PUT" });
    assert.equal(done.status, 201);
    const pulled = await fetch(first.url(`/v2/${name}/blobs/${digest}`));
    assert.ok(Buffer.from(await pulled.arrayBuffer()).equals(blob));
  });

  it("PATCH with a Content-Range past the upload's end answers 416 RANGE_INVALID and writes nothing", async () => {
    const client = new RegistryClient((await start()).url);
    const name = uniqueName("gcs");
    const { location, uuid } = await client.startUpload(name);
    const first = await client.patchChunk(location, randomBytes(300 * KiB), 0);
    assert.equal(first.status, 202);
    const next = client.url(first.headers.get("location")!);
    const o = options({ rootDirectory: root });
    const before = await rawNames(o, `/docker/registry/v2/repositories/${name}/_uploads/${uuid}`);
    const skipped = await client.patchChunk(next, randomBytes(1000), 300 * KiB + 10);
    assert.equal(skipped.status, 416);
    const body = (await skipped.json()) as { errors: Array<{ code: string }> };
    assert.equal(body.errors[0]?.code, "RANGE_INVALID");
    assert.deepEqual(await rawNames(o, `/docker/registry/v2/repositories/${name}/_uploads/${uuid}`), before, "no object added or removed");
    const status = await client.send(next);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), `0-${300 * KiB - 1}`, "the upload is where it was");
    const writer = await new GcsDriver(o).writer(`/docker/registry/v2/repositories/${name}/_uploads/${uuid}/data`, true);
    assert.equal(writer.size, 300 * KiB, "the session and side object hold what the first PATCH sent");
  });

  it("berth garbage-collect deletes an unreferenced blob from the bucket and keeps the image", async () => {
    const gcRoot = `/berth-gc-${randomBytes(4).toString("hex")}`;
    const config = testConfig({ driver: gcsDriverYaml(gcRoot) });
    const berth = await startBerth({ configYaml: config });
    const client = new RegistryClient(berth.url);
    const name = uniqueName("gcs");
    const image = await client.pushImage(name, "v1");
    const orphan = await client.pushBlob(name, randomBlob(5000));
    await berth.stop();
    const dir = await mkdtemp(join(tmpdir(), "berth-gcs-gc-"));
    try {
      const file = join(dir, "config.yml");
      await writeFile(file, config);
      const result = await run(process.execPath, [BERTH_CLI, "garbage-collect", file]);
      assert.equal(result.code, 0, describeRun(result));
      assert.match(result.stdout, /blobs deleted: +1 /);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const driver = new GcsDriver(options({ rootDirectory: gcRoot }));
    const blobPath = (digest: string): string => `/docker/registry/v2/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/data`;
    await assert.rejects(driver.stat(blobPath(orphan)), PathNotFoundError);
    assert.equal((await driver.stat(blobPath(digestOf(image.config)))).size, image.config.length);
    const again = await startBerth({ configYaml: config });
    processes.push(again);
    const manifest = await new RegistryClient(again.url).get(`/v2/${name}/manifests/v1`, { Accept: image.mediaType });
    assert.equal(manifest.response.status, 200);
    assert.ok(manifest.bytes.equals(image.bytes));
  });
});

describe("storage.gcs configuration", () => {
  const parse = (yaml: string, env: NodeJS.ProcessEnv = {}) => parseConfig(yaml, env, "test.yml");
  const inline = (extra: string): string =>
    `version: 0.1\nstorage:\n  gcs:\n    bucket: registry-bucket\n    credentials:\n      type: service_account\n      client_email: ${account.client_email}\n      private_key: ${JSON.stringify(account.private_key)}\n${extra}`;
  const configError = (yaml: string, key: string, fragment: string, env: NodeJS.ProcessEnv = {}): void => {
    assert.throws(
      () => parse(yaml, env),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.key, key, err.message);
        assert.ok(err.message.includes(fragment), err.message);
        return true;
      },
    );
  };

  it("reads distribution's keys with its defaults, masks the private key, and builds the driver", async () => {
    const { config, warnings } = parse(inline("    rootdirectory: /prefix\n    useragent: x\n"));
    assert.deepEqual(warnings, []);
    const driver = config.storage.driver;
    assert.equal(driver.kind, "gcs");
    if (driver.kind !== "gcs") return;
    assert.equal(driver.bucket, "registry-bucket");
    assert.equal(driver.chunkSize, 5 * MiB);
    assert.equal(driver.rootDirectory, "/prefix");
    assert.equal(driver.apiEndpoint, undefined);
    assert.equal(driver.userAgent, "x");
    assert.equal(driver.maxConcurrency, 50);
    assert.equal(driver.serviceAccount?.client_email, account.client_email);
    const described = JSON.stringify(describeConfig(config));
    assert.ok(!described.includes("PRIVATE KEY"), described);
    assert.ok(described.includes(MASK));
    assert.ok((await createDriver(config)) instanceof GcsDriver);
    assert.equal(describeStorage(config), "gcs bucket registry-bucket, root /prefix");
  });

  it("takes REGISTRY_STORAGE_GCS_* overrides, the key file and the credentials' fields included", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-gcs-key-"));
    try {
      const keyfile = join(dir, "key.json");
      await writeFile(keyfile, JSON.stringify(account));
      const { config } = parse("version: 0.1\nstorage:\n  inmemory:\n", {
        REGISTRY_STORAGE: "gcs",
        REGISTRY_STORAGE_GCS_BUCKET: "from-env",
        REGISTRY_STORAGE_GCS_KEYFILE: keyfile,
        REGISTRY_STORAGE_GCS_CHUNKSIZE: String(512 * KiB),
        REGISTRY_STORAGE_GCS_APIENDPOINT: "http://127.0.0.1:9199/",
        REGISTRY_STORAGE_GCS_USERAGENT: "ua/1",
        REGISTRY_STORAGE_GCS_MAXCONCURRENCY: "30",
      });
      assert.deepEqual(
        { ...config.storage.driver, serviceAccount: undefined },
        {
          kind: "gcs",
          bucket: "from-env",
          serviceAccount: undefined,
          keyFile: keyfile,
          rootDirectory: "",
          chunkSize: 512 * KiB,
          apiEndpoint: "http://127.0.0.1:9199",
          userAgent: "ua/1",
          maxConcurrency: 30,
        },
      );
      const fromFields = parse(inline(""), { REGISTRY_STORAGE_GCS_CREDENTIALS_CLIENT_EMAIL: "other@demo-berth.iam.gserviceaccount.com" });
      assert.equal(fromFields.config.storage.driver.kind === "gcs" && fromFields.config.storage.driver.serviceAccount?.client_email, "other@demo-berth.iam.gserviceaccount.com");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses bad values, naming the key", () => {
    configError("version: 0.1\nstorage:\n  gcs:\n    chunksize: 262144\n", "storage.gcs.bucket", "required");
    configError(inline("    chunksize: 300000\n"), "storage.gcs.chunksize", "multiple of 262144");
    configError(inline("    chunksize: 0\n"), "storage.gcs.chunksize", "");
    configError(inline("    apiendpoint: ftp://x\n"), "storage.gcs.apiendpoint", "expected an http or https URL");
    configError(inline("    maxconcurrency: many\n"), "storage.gcs.maxconcurrency", "");
    configError(inline("    maxconcurrency: 0\n"), "storage.gcs.maxconcurrency", "");
    const low = parse(inline("    maxconcurrency: 10\n"));
    assert.equal(low.config.storage.driver.kind === "gcs" && low.config.storage.driver.maxConcurrency, 25);
    assert.deepEqual(low.warnings, ["storage.gcs.maxconcurrency 10 is raised to 25, distribution's least"]);
    configError(inline("    keyfile: /nonexistent/key.json\n"), "storage.gcs.credentials", "not both");
    configError("version: 0.1\nstorage:\n  gcs:\n    bucket: b-1\n    keyfile: /nonexistent/key.json\n", "storage.gcs.keyfile", "cannot read the service account key");
    configError(
      "version: 0.1\nstorage:\n  gcs:\n    bucket: b-1\n    credentials:\n      type: service_account\n      client_email: a@b\n      private_key: not-a-key\n",
      "storage.gcs.credentials",
      "private_key is not a PEM private key",
    );
    configError("version: 0.1\nstorage:\n  gcs:\n    bucket: b-1\n    credentials:\n      type: authorized_user\n", "storage.gcs.credentials", 'type must be "service_account"');
    configError("version: 0.1\nstorage:\n  gcs:\n    bucket: Bad_Bucket!\n", "storage.gcs.bucket", "not a Cloud Storage bucket name");
  });

  it("berth serve and berth config check refuse a bad storage.gcs with a clear message", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-gcs-bad-"));
    try {
      const file = join(dir, "config.yml");
      await writeFile(file, "version: 0.1\nstorage:\n  gcs:\n    bucket: registry-bucket\n    chunksize: 1000\nhttp:\n  addr: 127.0.0.1:0\n  secret: s\n");
      for (const args of [["serve", file], ["config", "check", file]]) {
        const result = await run(process.execPath, [BERTH_CLI, ...args], { timeoutMs: 60_000 });
        assert.notEqual(result.code, 0, describeRun(result));
        assert.match(result.stderr, /storage\.gcs\.chunksize: must be a multiple of 262144 \(256 KiB\)/, describeRun(result));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
