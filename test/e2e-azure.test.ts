import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AzureDriver } from "../src/driver/azure/azure-driver.js";
import { PathNotFoundError } from "../src/driver/storage-driver.js";
import { BERTH_CLI, startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type Azurite } from "./support/azurite.js";
import { describeRun, requireProgram, run } from "./support/external-program.js";
import { buildTestLayouts, readLayout, sha256Digest } from "./support/oci-layout.js";
import { digestOf, expectError, randomBlob, RegistryClient, uniqueName, withQuery } from "./support/registry-client.js";

/**
 * berth with storage.azure, end to end against Azurite: push and pull, a chunked upload continued
 * by another node, redirects a client follows to Azurite, offline garbage collection of the Azure
 * tree, and configurations that cannot work refused at start and by `berth config check`.
 */

const MiB = 1024 * 1024;
const CONTAINER = "registry";
const skopeo = requireProgram("skopeo");
const V2 = "/docker/registry/v2";

let azurite: Azurite | undefined;
const processes: BerthProcess[] = [];

function server(): Azurite {
  assert.ok(azurite, "azurite was not started");
  return azurite;
}

function azureYaml(rootdirectory: string, overrides: Record<string, string | undefined> = {}): string {
  const keys: Record<string, string | undefined> = {
    accountname: AZURITE_ACCOUNT,
    accountkey: AZURITE_KEY,
    container: CONTAINER,
    serviceurl: server().serviceUrl,
    rootdirectory,
    ...overrides,
  };
  const lines = Object.entries(keys)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `    ${key}: ${JSON.stringify(value)}`);
  return `  azure:\n${lines.join("\n")}`;
}

function driverFor(rootdirectory: string): AzureDriver {
  return new AzureDriver({
    accountname: AZURITE_ACCOUNT,
    container: CONTAINER,
    credentials: { type: "shared_key", accountKey: AZURITE_KEY },
    serviceurl: server().serviceUrl,
    rootdirectory,
  });
}

async function start(rootdirectory: string, storage?: string): Promise<{ berth: BerthProcess; client: RegistryClient }> {
  const berth = await startBerth({ configYaml: testConfig({ driver: azureYaml(rootdirectory), storage }) });
  processes.push(berth);
  return { berth, client: new RegistryClient(berth.url) };
}

function blobDataPath(digest: string): string {
  const hex = digest.slice("sha256:".length);
  return `${V2}/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
}

before(async () => {
  azurite = await startAzurite();
  await azurite.createContainer(CONTAINER);
});

after(async () => {
  for (const berth of processes) await berth.stop();
  await azurite?.stop();
});

describe("berth on Azure Blob Storage (Azurite)", () => {
  it("pushes blobs and an image and pulls them through a 307 to a read-only SAS URL", async () => {
    const root = `/e2e-${randomBytes(4).toString("hex")}`;
    const { client } = await start(root);
    const name = uniqueName("azure");
    const small = randomBlob(1000);
    // Chunks of 3 MiB + 1: each PATCH is a writer session continuing the staged blocks of the last.
    const large = randomBytes(12 * MiB + 5);
    const smallDigest = await client.pushBlob(name, small);
    const largeDigest = await client.pushBlob(name, large, { chunkSize: 3 * MiB + 1 });
    const image = await client.pushImage(name, "v1");
    for (const [digest, bytes] of [[smallDigest, small], [largeDigest, large], [digestOf(image.config), image.config]] as const) {
      const get = await client.send(`/v2/${name}/blobs/${digest}`);
      assert.equal(get.status, 307, `GET ${digest}`);
      assert.equal(get.headers.get("docker-content-digest"), digest);
      const location = get.headers.get("location")!;
      assert.ok(location.startsWith(`${server().serviceUrl}/${CONTAINER}${root}/docker/registry/v2/blobs/`), location);
      const sas = new URL(location).searchParams;
      assert.equal(sas.get("sp"), "r", "read permission only");
      const expires = Date.parse(sas.get("se")!);
      assert.ok(expires > Date.now() && expires <= Date.now() + 21 * 60_000, `expires ${sas.get("se")}`);
      // A client that follows redirects gets the bytes from Azurite in one call.
      const followed = await fetch(client.url(`/v2/${name}/blobs/${digest}`));
      assert.equal(followed.status, 200);
      assert.ok(Buffer.from(await followed.arrayBuffer()).equals(bytes), `bytes of ${digest} from Azurite`);
      // The URL reads, and only reads.
      const write = await fetch(location, { method: "PUT", headers: { "x-ms-blob-type": "BlockBlob" }, body: "overwritten" });
      assert.equal(write.status, 403);
      const head = await client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" });
      assert.equal(head.status, 307, `HEAD ${digest}`);
    }
    const manifest = await client.get(`/v2/${name}/manifests/v1`, { Accept: image.mediaType });
    assert.equal(manifest.response.status, 200);
    assert.ok(manifest.bytes.equals(image.bytes));
    // distribution's layout under the root directory, and nothing left of the uploads.
    const driver = driverFor(root);
    assert.equal((await driver.stat(blobDataPath(largeDigest))).size, large.length);
    await assert.rejects(driver.list(`${V2}/repositories/${name}/_uploads`), PathNotFoundError);
  });

  it("skopeo copy pushes an image and copies it back out, its blobs fetched from Azurite through redirects", { skip: skopeo.skip }, async () => {
    const root = `/e2e-${randomBytes(4).toString("hex")}`;
    const { berth } = await start(root);
    const work = await mkdtemp(join(tmpdir(), "berth-azure-skopeo-"));
    try {
      const layouts = await buildTestLayouts(join(work, "source"));
      const image = layouts.single;
      const skopeoOk = async (args: string[]): Promise<void> => {
        const result = await run(skopeo.path!, ["--debug", "--insecure-policy", ...args]);
        assert.equal(result.code, 0, `skopeo failed:\n${describeRun(result)}\n--- berth log (tail) ---\n${berth.log().slice(-3000)}`);
      };
      await skopeoOk(["copy", "--dest-tls-verify=false", "--preserve-digests", `oci:${layouts.dir}:${layouts.refs.single}`, `docker://${berth.hostPort}/e2e/azure:v1`]);
      const out = join(work, "out");
      await skopeoOk(["copy", "--src-tls-verify=false", "--preserve-digests", `docker://${berth.hostPort}/e2e/azure:v1`, `oci:${out}:pulled`]);
      const copied = await readLayout(out);
      assert.deepEqual(copied.index.manifests.map((m) => m.digest), [image.manifest.digest]);
      assert.deepEqual(copied.blobDigests, new Set([image.manifest.digest, ...image.blobDigests]));
      const big = image.layers[1]!.descriptor;
      assert.equal(sha256Digest(await copied.readBlob(big.digest)), big.digest);
      // The layers came from Azure, not through berth: each blob GET was a redirect.
      const redirected = await fetch(`${berth.url}/v2/e2e/azure/blobs/${big.digest}`, { redirect: "manual" });
      assert.equal(redirected.status, 307);
      assert.ok(redirected.headers.get("location")!.startsWith(`${server().serviceUrl}/${CONTAINER}/`));
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it("serves the bytes itself with storage.redirect.disable, ranges included", async () => {
    const { client } = await start(`/e2e-${randomBytes(4).toString("hex")}`, "  redirect:\n    disable: true");
    const name = uniqueName("azure");
    const blob = randomBlob(70_000);
    const digest = await client.pushBlob(name, blob, { chunkSize: 30_000 });
    const { response, bytes } = await client.get(`/v2/${name}/blobs/${digest}`);
    assert.equal(response.status, 200);
    assert.ok(bytes.equals(blob));
    const range = await client.get(`/v2/${name}/blobs/${digest}`, { Range: "bytes=10-19" });
    assert.equal(range.response.status, 206);
    assert.ok(range.bytes.equals(blob.subarray(10, 20)));
  });

  it("continues on a second node an upload the first started, with nothing visible at the path before the PUT", async () => {
    const root = `/e2e-${randomBytes(4).toString("hex")}`;
    const first = await start(root);
    const second = await start(root);
    const name = uniqueName("azure");
    const blob = randomBytes(5 * MiB + 123);
    const half = 2 * MiB + 7;
    const { location, uuid } = await first.client.startUpload(name);
    const patched = await first.client.patchChunk(location, blob.subarray(0, half), 0);
    assert.equal(patched.status, 202);
    assert.equal(patched.headers.get("range"), `0-${half - 1}`);

    // Staged, not committed: the upload's data is not a blob yet, but its blocks are there.
    const dataPath = `${V2}/repositories/${name}/_uploads/${uuid}/data`;
    const driver = driverFor(root);
    await assert.rejects(driver.stat(dataPath), PathNotFoundError);
    const blocks = await server().client().getContainerClient(CONTAINER).getBlockBlobClient(`${root.slice(1)}${dataPath}`).getBlockList("uncommitted");
    assert.equal((blocks.uncommittedBlocks ?? []).reduce((sum, block) => sum + block.size, 0), half);

    // The second node continues it from the location the first gave.
    const next = second.client.url(patched.headers.get("location")!.replace(first.berth.url, ""));
    const status = await second.client.send(next);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), `0-${half - 1}`);
    const rest = await second.client.patchChunk(next, blob.subarray(half), half);
    assert.equal(rest.status, 202);
    assert.equal(rest.headers.get("range"), `0-${blob.length - 1}`);
    const digest = digestOf(blob);
    const done = await first.client.send(withQuery(first.client.url(rest.headers.get("location")!.replace(second.berth.url, "")), { digest }), { method: "PUT" });
    assert.equal(done.status, 201);
    const pulled = await fetch(first.client.url(`/v2/${name}/blobs/${digest}`));
    assert.ok(Buffer.from(await pulled.arrayBuffer()).equals(blob));
    await assert.rejects(driver.list(`${V2}/repositories/${name}/_uploads`), PathNotFoundError);
  });

  it("refuses an upload whose digest does not match with 400 DIGEST_INVALID, and stores no blob", async () => {
    const root = `/e2e-${randomBytes(4).toString("hex")}`;
    const { client } = await start(root);
    const name = uniqueName("azure");
    const blob = randomBlob(4000);
    const claimed = digestOf(randomBlob(4000));
    const { location } = await client.startUpload(name);
    const patched = await client.patchChunk(location, blob, 0);
    assert.equal(patched.status, 202);
    const put = await client.send(withQuery(client.url(patched.headers.get("location")!), { digest: claimed }), { method: "PUT" });
    await expectError(put, 400, "DIGEST_INVALID");
    const driver = driverFor(root);
    await assert.rejects(driver.stat(blobDataPath(claimed)), PathNotFoundError);
    await assert.rejects(driver.stat(blobDataPath(digestOf(blob))), PathNotFoundError);
    await expectError(await client.send(`/v2/${name}/blobs/${claimed}`, { method: "GET" }), 404, "BLOB_UNKNOWN");
  });

  it("berth garbage-collect removes the blobs no manifest references from the Azure tree, and keeps the rest", async () => {
    const root = `/e2e-${randomBytes(4).toString("hex")}`;
    const { berth, client } = await start(root);
    const name = uniqueName("azure");
    const image = await client.pushImage(name, "kept");
    const orphan = randomBlob(3000);
    const orphanDigest = await client.pushBlob(name, orphan);
    await berth.stop();

    const work = await mkdtemp(join(tmpdir(), "berth-azure-gc-"));
    try {
      const config = join(work, "config.yml");
      await writeFile(config, testConfig({ driver: azureYaml(root) }));
      const collected = await run(process.execPath, [BERTH_CLI, "garbage-collect", config]);
      assert.equal(collected.code, 0, describeRun(collected));
      assert.match(collected.stderr + collected.stdout, /berth garbage-collect: azure container registry at http:\/\/127\.0\.0\.1:\d+\/devstoreaccount1, root \/e2e-/);
      assert.match(collected.stdout, /blobs deleted: 1 \(3000 bytes/);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    const driver = driverFor(root);
    await assert.rejects(driver.stat(blobDataPath(orphanDigest)), PathNotFoundError);
    for (const digest of [digestOf(image.config), ...image.layers.map((layer) => digestOf(layer))]) {
      assert.ok((await driver.stat(blobDataPath(digest))).size > 0, `kept ${digest}`);
    }
    const { client: after } = await start(root);
    const pulled = await after.get(`/v2/${name}/manifests/kept`, { Accept: image.mediaType });
    assert.equal(pulled.response.status, 200);
    assert.ok(pulled.bytes.equals(image.bytes));
  });
});

describe("storage.azure configurations that cannot work", () => {
  let work = "";
  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-azure-config-"));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  /** `berth config check` and `berth serve` on the same file: both exit 1 with `message`. */
  async function refusedByBoth(driver: string, message: RegExp): Promise<void> {
    const file = join(work, `${randomBytes(4).toString("hex")}.yml`);
    await writeFile(file, testConfig({ driver }));
    for (const args of [["config", "check", file], ["serve", file]]) {
      const result = await run(process.execPath, [BERTH_CLI, ...args], { timeoutMs: 60_000 });
      assert.equal(result.code, 1, describeRun(result));
      assert.match(result.stderr, message, describeRun(result));
      assert.doesNotMatch(result.stderr, /listening on/);
    }
  }

  it("refuses a configuration without a container, naming the key", async () => {
    await refusedByBoth(azureYaml("/x", { container: undefined }), /^berth: configuration: storage\.azure\.container: required/m);
  });

  it("refuses an account key that is not base64, without showing it", async () => {
    await refusedByBoth(azureYaml("/x", { accountkey: "not a key!" }), /^berth: configuration: storage\.azure\.accountkey: expected the storage account's access key, in base64/m);
  });

  it("berth serve refuses a key the service does not accept, and a container that does not exist", async () => {
    const wrongKey = Buffer.from(randomBytes(64)).toString("base64");
    for (const [overrides, message] of [
      [{ accountkey: wrongKey }, /^berth: configuration: storage\.azure\.accountkey: http:\/\/127\.0\.0\.1:\d+\/devstoreaccount1 refused the key of account "devstoreaccount1"/m],
      [{ container: "no-such-container" }, /^berth: configuration: storage\.azure\.container: container "no-such-container" does not exist at http:\/\/127\.0\.0\.1:\d+\/devstoreaccount1/m],
    ] as const) {
      const file = join(work, `${randomBytes(4).toString("hex")}.yml`);
      await writeFile(file, testConfig({ driver: azureYaml("/x", overrides) }));
      const result = await run(process.execPath, [BERTH_CLI, "serve", file], { timeoutMs: 60_000 });
      assert.equal(result.code, 1, describeRun(result));
      assert.match(result.stderr, message, describeRun(result));
      assert.ok(!result.stderr.includes(wrongKey), "the key is not printed");
      // `config check` reads the file only: the service's answer is for serve.
      const checked = await run(process.execPath, [BERTH_CLI, "config", "check", file]);
      assert.equal(checked.code, 0, describeRun(checked));
    }
  });
});
