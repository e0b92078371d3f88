/**
 * storage.azure with Entra ID (Azure AD) credentials and with a connection string, against
 * Azurite: over HTTPS with `--oauth basic` for tokens, with a stand-in for Entra ID's token service
 * (test/support/entra-token-service.ts; there is no real Entra ID here) as the credential's
 * authorityHost; over plain HTTP for the connection string.
 *
 * Everything that talks to the HTTPS servers runs in a process started with NODE_EXTRA_CA_CERTS
 * naming the test CA: berth itself, and for the shared driver suite this same file run again as a
 * child (BERTH_ENTRA_CHILD), since a running Node process cannot be told to trust another CA.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { ClientSecretCredential } from "@azure/identity";
import { AzureDriver, type AzureDriverOptions } from "../src/driver/azure/azure-driver.js";
import { runDriverSuite } from "./driver-suite.js";
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type Azurite } from "./support/azurite.js";
import { BERTH_CLI, startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { startEntraTokenService, type EntraClient, type EntraTokenService } from "./support/entra-token-service.js";
import { describeRun, requireProgram, run } from "./support/external-program.js";
import { RegistryClient, randomImage, uniqueName } from "./support/registry-client.js";
import { createTestPki, type TestPki } from "./support/test-pki.js";

const CONTAINER = "berth";
const CHILD = "BERTH_ENTRA_CHILD";
const CLIENT: EntraClient = { tenantId: "72f988bf-86f1-41af-91ab-2d7cd011db47", clientId: "berth-registry", secret: `s3cr3t-${randomBytes(12).toString("hex")}` };

interface ChildSetup {
  serviceUrl: string;
  authorityHost: string;
  client: EntraClient;
}

const childInput = process.env[CHILD];
if (childInput === undefined) defineTests();
else defineChildSuite(JSON.parse(childInput) as ChildSetup);

/** In the child, which trusts the test CA: the shared suite and redirects, with client_secret. */
function defineChildSuite(setup: ChildSetup): void {
  const options = (): AzureDriverOptions => ({
    accountname: AZURITE_ACCOUNT,
    container: CONTAINER,
    serviceurl: setup.serviceUrl,
    credentials: {
      type: "token",
      credential: new ClientSecretCredential(setup.client.tenantId, setup.client.clientId, setup.client.secret, { authorityHost: setup.authorityHost, disableInstanceDiscovery: true }),
    },
  });
  runDriverSuite("azure with client_secret (Entra ID token)", async () => ({ driver: new AzureDriver(options(), { blockSize: 256 * 1024, listPageSize: 7 }), cleanup: async () => undefined }));

  describe("azure redirects with an Entra ID token", () => {
    it("signs a read-only URL with a user delegation key, which Azurite serves", async () => {
      const driver = new AzureDriver(options());
      const path = `/entra-${randomBytes(4).toString("hex")}/data`;
      const bytes = randomBytes(3000);
      await driver.putContent(path, bytes);
      const url = await driver.redirectURL(path, "GET");
      assert.ok(url !== undefined);
      const query = new URL(url).searchParams;
      assert.equal(query.get("sp"), "r");
      assert.ok(query.get("skoid") !== null && query.get("sktid") === setup.client.tenantId, `a user delegation SAS: ${url}`);
      const response = await fetch(url);
      assert.equal(response.status, 200);
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);
      // The SAS reads, nothing more.
      assert.equal((await fetch(url, { method: "DELETE" })).status, 403);
      await driver.delete(path);
    });
  });
}

function defineTests(): void {
  const skip = requireProgram("openssl").skip;
  let pki: TestPki | undefined;
  let secure: Azurite | undefined;
  let plain: Azurite | undefined;
  let entra: EntraTokenService | undefined;
  let work = "";

  before(async () => {
    if (skip) return;
    pki = await createTestPki();
    const cert = await pki.issue("azure-services", { serverNames: { dns: ["localhost"], ips: ["127.0.0.1"] } });
    [secure, plain, entra, work] = await Promise.all([
      startAzurite({ oauth: cert }),
      startAzurite(),
      startEntraTokenService(cert, [CLIENT]),
      mkdtemp(join(tmpdir(), "berth-entra-")),
    ]);
    await plain.createContainer(CONTAINER);
    await plain.createContainer("registry");
    // The HTTPS Azurite's containers are made from a process that trusts the CA.
    const made = await run(
      process.execPath,
      ["--input-type=module", "-e", `import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
         const service = new BlobServiceClient(${JSON.stringify(secure.serviceUrl)}, new StorageSharedKeyCredential(${JSON.stringify(AZURITE_ACCOUNT)}, ${JSON.stringify(AZURITE_KEY)}));
         for (const name of ${JSON.stringify([CONTAINER, "registry"])}) await service.getContainerClient(name).createIfNotExists();`],
      { env: { NODE_EXTRA_CA_CERTS: pki.ca.cert }, cwd: fileURLToPath(new URL("../..", import.meta.url)), timeoutMs: 60_000 },
    );
    assert.equal(made.code, 0, describeRun(made));
  });

  after(async () => {
    await Promise.all([secure?.stop(), plain?.stop(), entra?.stop()]);
    await pki?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** storage.azure for the HTTPS Azurite with these credentials lines. */
  const entraYaml = (credentials: string[]): string =>
    [
      "  azure:",
      `    accountname: ${AZURITE_ACCOUNT}`,
      `    container: registry`,
      `    serviceurl: ${secure!.serviceUrl}`,
      "    credentials:",
      ...credentials.map((line) => `      ${line}`),
    ].join("\n");

  const clientSecretYaml = (secret: string): string =>
    entraYaml(["type: client_secret", `tenantid: ${CLIENT.tenantId}`, `clientid: ${CLIENT.clientId}`, `secret: ${secret}`, `authorityhost: ${entra!.authorityHost}`]);

  describe("storage.azure with Entra ID credentials (client_secret, default_credentials)", { skip }, () => {
    it("passes the shared driver suite with client_secret, and redirects with a user delegation SAS", async () => {
      const setup: ChildSetup = { serviceUrl: secure!.serviceUrl, authorityHost: entra!.authorityHost, client: CLIENT };
      const result = await run(process.execPath, ["--test-reporter=spec", fileURLToPath(import.meta.url)], {
        // Without the runner's NODE_TEST_CONTEXT the child reports in text, not to this runner.
        env: { [CHILD]: JSON.stringify(setup), NODE_EXTRA_CA_CERTS: pki!.ca.cert, NODE_TEST_CONTEXT: undefined as unknown as string },
        timeoutMs: 600_000,
      });
      assert.equal(result.code, 0, describeRun(result));
      assert.match(result.stdout, /pass [1-9]\d*/);
      assert.match(result.stdout, /fail 0/);
      assert.ok(entra!.requests.some((r) => r.outcome === "granted"), "tokens came from the stand-in");
    });

    it("berth pushes and pulls with client_secret; the secret is in no log line nor in config check", async () => {
      const berth = await startBerth({ configYaml: testConfig({ driver: clientSecretYaml(CLIENT.secret) }), env: { NODE_EXTRA_CA_CERTS: pki!.ca.cert } });
      try {
        const client = new RegistryClient(berth.url);
        const name = uniqueName("entra");
        const image = await client.pushImage(name, "latest", randomImage({ layers: 2 }));
        const manifest = await client.get(`/v2/${name}/manifests/latest`, { accept: image.mediaType });
        assert.equal(manifest.response.status, 200);
        assert.deepEqual(manifest.bytes, image.bytes);
        const layer = (image.manifest as { layers: Array<{ digest: string }> }).layers[0]!.digest;
        const redirect = await fetch(`${berth.url}/v2/${name}/blobs/${layer}`, { redirect: "manual" });
        assert.equal(redirect.status, 307);
        assert.ok(new URL(redirect.headers.get("location")!).searchParams.get("skoid") !== null, "a user delegation SAS");
        assert.ok(!berth.log().includes(CLIENT.secret), "the secret is not logged");
      } finally {
        await berth.stop();
      }
      const file = join(work, "client-secret.yml");
      await writeFile(file, testConfig({ driver: clientSecretYaml(CLIENT.secret) }));
      const checked = await run(process.execPath, [BERTH_CLI, "config", "check", file]);
      assert.equal(checked.code, 0, describeRun(checked));
      assert.ok(!(checked.stdout + checked.stderr).includes(CLIENT.secret), describeRun(checked));
      assert.ok(checked.stdout.includes(`"type": "client_secret"`), checked.stdout);
      assert.ok(checked.stdout.includes(`"secret": "********"`), checked.stdout);
      assert.ok(checked.stdout.includes(`"authorityhost": "${entra!.authorityHost}"`), checked.stdout);
    });

    it("berth serve stops at start when the token service refuses the secret, naming the key and not the secret", async () => {
      const wrong = `wrong-${randomBytes(12).toString("hex")}`;
      const file = join(work, "wrong-secret.yml");
      await writeFile(file, testConfig({ driver: clientSecretYaml(wrong) }));
      const result = await run(process.execPath, [BERTH_CLI, "serve", file], { env: { NODE_EXTRA_CA_CERTS: pki!.ca.cert }, timeoutMs: 60_000 });
      assert.equal(result.code, 1, describeRun(result));
      assert.match(
        result.stderr,
        /^berth: configuration: storage\.azure\.credentials: the token service refused the credentials \(invalid_client: AADSTS7000215: Invalid client secret provided\.\) for client "berth-registry" of tenant "72f988bf-86f1-41af-91ab-2d7cd011db47": check clientid, tenantid and secret/m,
        describeRun(result),
      );
      assert.ok(!(result.stdout + result.stderr).includes(wrong), "the secret is not printed");
      assert.ok(entra!.requests.some((r) => r.outcome === "refused"));
    });

    it("berth takes default_credentials from AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET", async () => {
      const granted = entra!.requests.filter((r) => r.outcome === "granted").length;
      const berth = await startBerth({
        configYaml: testConfig({ driver: entraYaml(["type: default_credentials", `authorityhost: ${entra!.authorityHost}`]) }),
        env: { NODE_EXTRA_CA_CERTS: pki!.ca.cert, AZURE_CLIENT_ID: CLIENT.clientId, AZURE_TENANT_ID: CLIENT.tenantId, AZURE_CLIENT_SECRET: CLIENT.secret },
      });
      try {
        const client = new RegistryClient(berth.url);
        const name = uniqueName("entradefault");
        const image = await client.pushImage(name, "v1", randomImage());
        const manifest = await client.get(`/v2/${name}/manifests/v1`, { accept: image.mediaType });
        assert.equal(manifest.response.status, 200);
        assert.deepEqual(manifest.bytes, image.bytes);
        assert.ok(entra!.requests.filter((r) => r.outcome === "granted").length > granted, "berth's token came from the stand-in");
        assert.ok(!berth.log().includes(CLIENT.secret));
      } finally {
        await berth.stop();
      }
    });

    it("refuses client_secret without its keys, an accountkey beside a token type, and an http authorityhost", async () => {
      for (const [credentials, message] of [
        [["type: client_secret", `clientid: ${CLIENT.clientId}`, "secret: x"], /storage\.azure\.credentials\.tenantid: required with credentials\.type client_secret/],
        [["type: client_secret", `tenantid: t`, `clientid: c`], /storage\.azure\.credentials\.secret: required with credentials\.type client_secret/],
        [["type: default_credentials", "authorityhost: http://login.example"], /storage\.azure\.credentials\.authorityhost: expected an https:\/\/ URL/],
      ] as const) {
        const file = join(work, `${randomBytes(4).toString("hex")}.yml`);
        await writeFile(file, testConfig({ driver: entraYaml([...credentials]) }));
        const result = await run(process.execPath, [BERTH_CLI, "config", "check", file]);
        assert.equal(result.code, 1, describeRun(result));
        assert.match(result.stderr, message, describeRun(result));
      }
      const file = join(work, "key-and-token.yml");
      await writeFile(file, testConfig({ driver: `${entraYaml(["type: default_credentials"])}\n    accountkey: ${AZURITE_KEY}` }));
      const result = await run(process.execPath, [BERTH_CLI, "config", "check", file]);
      assert.equal(result.code, 1, describeRun(result));
      assert.match(result.stderr, /storage\.azure\.accountkey: is not used with credentials\.type default_credentials/);
    });
  });

  describe("storage.azure with a connection string (connectionstring)", { skip }, () => {
    const connectionString = (): string => `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${plain!.serviceUrl};`;

    runDriverSuite("azure with a connection string", async () => ({
      driver: new AzureDriver({ accountname: AZURITE_ACCOUNT, container: CONTAINER, rootdirectory: "/connstr", credentials: { type: "connection_string", connectionString: connectionString() } }),
      cleanup: async () => undefined,
    }));

    it("berth pushes and pulls through it from REGISTRY_STORAGE_AZURE_CONNECTIONSTRING, and masks it", async () => {
      const driver = ["  azure:", "    container: registry", "    rootdirectory: /connstr-berth"].join("\n");
      const berth = await startBerth({ configYaml: testConfig({ driver }), env: { REGISTRY_STORAGE_AZURE_CONNECTIONSTRING: connectionString() } });
      try {
        const client = new RegistryClient(berth.url);
        const name = uniqueName("connstr");
        const image = await client.pushImage(name, "latest", randomImage());
        const manifest = await client.get(`/v2/${name}/manifests/latest`, { accept: image.mediaType });
        assert.equal(manifest.response.status, 200);
        assert.deepEqual(manifest.bytes, image.bytes);
        const stored: string[] = [];
        for await (const blob of plain!.client().getContainerClient("registry").listBlobsFlat({ prefix: `connstr-berth/docker/registry/v2/repositories/${name}/` })) stored.push(blob.name);
        assert.ok(stored.length > 0, "written to the connection string's account");
        assert.ok(!berth.log().includes(AZURITE_KEY));
      } finally {
        await berth.stop();
      }
      const file = join(work, "connstr.yml");
      await writeFile(file, testConfig({ driver: ["  azure:", "    container: registry"].join("\n") }));
      const checked = await run(process.execPath, [BERTH_CLI, "config", "check", file], { env: { REGISTRY_STORAGE_AZURE_CONNECTIONSTRING: connectionString() } });
      assert.equal(checked.code, 0, describeRun(checked));
      assert.ok(!(checked.stdout + checked.stderr).includes(AZURITE_KEY), describeRun(checked));
      assert.ok(checked.stdout.includes(`"connectionstring": "********"`), checked.stdout);
    });

    it("refuses a connection string beside accountkey, or one that names no key", async () => {
      for (const [extra, message] of [
        [`    accountkey: ${AZURITE_KEY}`, /storage\.azure\.accountkey: is not used with connectionstring/],
        ["", /storage\.azure\.connectionstring: expected an Azure Storage connection string/],
      ] as const) {
        const file = join(work, `${randomBytes(4).toString("hex")}.yml`);
        const value = extra === "" ? `AccountName=${AZURITE_ACCOUNT};BlobEndpoint=${plain!.serviceUrl}` : connectionString();
        await writeFile(file, testConfig({ driver: ["  azure:", "    container: registry", `    connectionstring: "${value}"`, ...(extra === "" ? [] : [extra])].join("\n") }));
        const result = await run(process.execPath, [BERTH_CLI, "config", "check", file]);
        assert.equal(result.code, 1, describeRun(result));
        assert.match(result.stderr, message, describeRun(result));
        assert.ok(!result.stderr.includes(AZURITE_KEY), "the key is not printed");
      }
    });
  });
}
