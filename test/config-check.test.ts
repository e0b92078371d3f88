/**
 * `berth config check` refuses what `berth serve` refuses at start, by the same code
 * (src/cli/start-checks.ts): every bad configuration here is given to both, and both must exit 1
 * with the same line naming the key, serve before it listens. Debian's stock
 * /etc/docker/registry/config.yml (docker-registry package) is one of them: its htpasswd path is a
 * directory.
 *
 * The certificates come from test/support/test-pki.ts (openssl); without openssl or docker-registry
 * the tests that need them skip (CI=true: they fail; .ci/run installs both).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { BERTH_CLI } from "./support/berth-process.js";
import { requireDistribution } from "./support/distribution-process.js";
import { requireProgram } from "./support/external-program.js";
import { createTestPki, type CertFiles, type TestPki } from "./support/test-pki.js";

const DEBIAN_CONFIG = "/etc/docker/registry/config.yml";

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function berth(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BERTH_CLI, ...args], { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** The `berth: configuration: …` line a refused start prints. */
function refusal(result: Result): string | undefined {
  return result.stderr.split("\n").find((line) => line.startsWith("berth: "));
}

/**
 * Runs `config check` and `serve` on `file`: both exit 1 with the same line, matching `expected`;
 * serve never listened, and check printed no "valid".
 */
async function assertBothRefuse(file: string, expected: RegExp, env: Record<string, string> = {}): Promise<void> {
  const check = await berth(["config", "check", file], env);
  const serve = await berth(["serve", file], env);
  assert.equal(check.code, 1, `config check exit code; stderr: ${check.stderr}`);
  assert.equal(serve.code, 1, `serve exit code; stderr: ${serve.stderr}`);
  assert.match(refusal(check) ?? "", expected);
  assert.equal(refusal(check), refusal(serve), "config check and serve refuse with the same message");
  assert.doesNotMatch(check.stdout, /valid/);
  assert.doesNotMatch(serve.stderr, /listening/);
}

describe("berth config check refuses what berth serve refuses at start", () => {
  let work: string;
  let file: string;
  const write = async (yaml: string): Promise<string> => {
    await writeFile(file, yaml);
    return file;
  };
  const base = (lines: string): string => `version: 0.1\nlog:\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${join(work, "data")}\nhttp:\n  addr: 127.0.0.1:0\n  secret: s\n${lines}`;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-config-check-"));
    file = join(work, "config.yml");
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("Debian's stock config.yml: auth.htpasswd.path is a directory", { skip: requireDistribution().skip }, async () => {
    assert.ok(existsSync(DEBIAN_CONFIG), `${DEBIAN_CONFIG} comes with the docker-registry package`);
    // Its storage root is writable by root only: the htpasswd line is what stops root.
    const expected = process.getuid?.() === 0 ? /^berth: configuration: auth\.htpasswd\.path: \/etc\/docker\/registry is a directory: name the htpasswd file itself/ : /^berth: configuration: /;
    await assertBothRefuse(DEBIAN_CONFIG, expected, { REGISTRY_HTTP_ADDR: "127.0.0.1:0" });
  });

  it("Debian's stock config.yml with an htpasswd file and a storage root of its own is valid", { skip: requireDistribution().skip }, async () => {
    const htpasswd = join(work, "htpasswd");
    await writeFile(htpasswd, `alice:${bcrypt.hashSync("secret", 5)}\n`);
    const result = await berth(["config", "check", DEBIAN_CONFIG], {
      REGISTRY_AUTH_HTPASSWD_PATH: htpasswd,
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(work, "debian-data"),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /: valid\n/);
    // The start-up warning serve logs is a warning of config check too.
    assert.match(result.stderr, /^warning: auth\.htpasswd without http\.tls: credentials travel in clear text/m);
    assert.equal(existsSync(join(work, "debian-data")), false, "config check creates nothing");
  });

  it("a missing htpasswd file", async () => {
    await assertBothRefuse(await write(base(`auth:\n  htpasswd:\n    realm: r\n    path: ${join(work, "nope")}\n`)), /^berth: configuration: auth\.htpasswd\.path: .*nope does not exist; create it with: htpasswd -cB/);
  });

  it("a storage root under a regular file", async () => {
    const plain = join(work, "plain-file");
    await writeFile(plain, "x");
    const yaml = base("").replace(join(work, "data"), join(plain, "data"));
    await assertBothRefuse(await write(yaml), new RegExp(`^berth: configuration: storage\\.filesystem\\.rootdirectory: ${plain}/data cannot be created: ${plain} is not a directory$`));
  });

  it("a storage root that is a file", async () => {
    const plain = join(work, "plain-root");
    await writeFile(plain, "x");
    const yaml = base("").replace(join(work, "data"), plain);
    await assertBothRefuse(await write(yaml), new RegExp(`^berth: configuration: storage\\.filesystem\\.rootdirectory: ${plain} is not a directory$`));
  });

  it("token auth whose rootcertbundle is missing, or holds no certificate", async () => {
    const token = (bundle: string): string => base(`auth:\n  token:\n    realm: https://auth.example.com/token\n    service: s\n    issuer: i\n    rootcertbundle: ${bundle}\n`);
    await assertBothRefuse(await write(token(join(work, "missing.pem"))), /^berth: configuration: auth\.token\.rootcertbundle: cannot read .*missing\.pem: ENOENT/);
    const garbage = join(work, "garbage.pem");
    await writeFile(garbage, "not a certificate\n");
    await assertBothRefuse(await write(token(garbage)), /^berth: configuration: auth\.token\.rootcertbundle: .*garbage\.pem: /);
  });

  it("a bad OTEL_* variable", async () => {
    await assertBothRefuse(await write(base("")), /^berth: configuration: OTEL_TRACES_EXPORTER: unsupported exporter "zipkin"/, { OTEL_TRACES_EXPORTER: "zipkin" });
  });

  describe("certificate files", { skip: requireProgram("openssl").skip }, () => {
    let pki: TestPki;
    let server: CertFiles;
    let client: CertFiles;
    before(async () => {
      pki = await createTestPki();
      server = await pki.issue("server", { serverNames: { dns: ["localhost"] } });
      client = await pki.issue("client", { client: true });
    });
    after(async () => {
      await pki.cleanup();
    });
    const redis = (tls: string): string =>
      base(`redis:\n  addr: 127.0.0.1:1\n  tls:\n${tls}`).replace("storage:\n", "storage:\n  cache:\n    blobdescriptor: redis\n");

    it("http.tls: a missing certificate, a key of another certificate", async () => {
      await assertBothRefuse(await write(base(`  tls:\n    certificate: ${join(work, "none.crt")}\n    key: ${server.key}\n`)), /^berth: configuration: http\.tls\.certificate: cannot read .*none\.crt/);
      await assertBothRefuse(await write(base(`  tls:\n    certificate: ${server.cert}\n    key: ${client.key}\n`)), /^berth: configuration: http\.tls\.key: .*client\.key is not the private key of the certificate in .*server\.crt/);
    });

    it("redis.tls: a missing client certificate, a key of another certificate, a CA file with no certificate", async () => {
      await assertBothRefuse(await write(redis(`    certificate: ${join(work, "none.crt")}\n    key: ${client.key}\n`)), /^berth: configuration: redis\.tls\.certificate: cannot read .*none\.crt/);
      await assertBothRefuse(await write(redis(`    certificate: ${client.cert}\n    key: ${server.key}\n`)), /^berth: configuration: redis\.tls\.key: .*server\.key is not the private key of the certificate in .*client\.crt/);
      await assertBothRefuse(await write(redis(`    clientcas: [${client.key}]\n`)), /^berth: configuration: redis\.tls\.clientcas: .*client\.key holds no PEM certificate/);
    });

    it("valid files pass, and the check connects to nothing", async () => {
      await mkdir(join(work, "data"), { recursive: true });
      const yaml = redis(`    certificate: ${client.cert}\n    key: ${client.key}\n    clientcas: [${pki.ca.cert}]\n`).replace(
        "  secret: s\n",
        `  secret: s\n  tls:\n    certificate: ${server.cert}\n    key: ${server.key}\n`,
      );
      // Redis at 127.0.0.1:1 answers nothing: a check that dialled it would fail or hang.
      const result = await berth(["config", "check", await write(yaml)]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /: valid\n/);
      assert.match(result.stdout, /"clientcas": \[\n\s+".*test-ca\.crt"\n\s+\]/);
    });
  });
});
