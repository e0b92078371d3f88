/**
 * skopeo (containers/image, the library podman and buildah use) against berth with access control
 * and TLS, the whole way a user runs it: `--dest-creds`/`--src-creds` against htpasswd over HTTPS
 * with the registry's CA in `--dest-cert-dir`; against token auth through the test token service
 * (challenge, token for the scope, retry); and with a client certificate under mutual TLS.
 */
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { startBerth, type BerthProcess } from "./support/berth-process.js";
import { describeRun, requireProgram, run, type RunResult } from "./support/external-program.js";
import { buildTestLayouts, readLayout, type TestLayouts } from "./support/oci-layout.js";
import { createTestPki, type CertFiles, type TestPki } from "./support/test-pki.js";
import { startTokenIssuer, type Acl, type TokenIssuer } from "./support/token-issuer.js";

const skopeo = requireProgram("skopeo");
const openssl = requireProgram("openssl");
const skip = skopeo.skip || openssl.skip;

const USERS = { alice: "alice-secret", bob: "bob-secret" };
/** alice may push and pull team/*; bob may only pull; anyone may pull public/*. */
const ACL: Acl = (user, type, name, requested) => {
  if (type !== "repository") return [];
  if (name.startsWith("public/")) return requested.filter((a) => a === "pull" || (user === "alice" && a === "push"));
  if (user === "alice" && name.startsWith("team/")) return requested.filter((a) => a === "pull" || a === "push");
  if (user === "bob" && name.startsWith("team/")) return requested.filter((a) => a === "pull");
  return [];
};

function baseConfig(extra: string): string {
  return `version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  inmemory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: e2e-auth\n${extra}`;
}

describe("skopeo with access control and TLS", { skip }, () => {
  let work: string;
  let pki: TestPki;
  let layouts: TestLayouts;
  let serverCert: CertFiles;
  /** A containers/image certificate directory: the CA as ca.crt. */
  let certDir: string;
  let outputs = 0;

  before(async () => {
    if (skip) return;
    work = await mkdtemp(join(tmpdir(), "berth-e2e-auth-"));
    pki = await createTestPki(openssl.path);
    serverCert = await pki.issue("registry", { serverNames: { dns: ["localhost"], ips: ["127.0.0.1"] } });
    certDir = join(work, "certs");
    await mkdir(certDir);
    await copyFile(pki.ca.cert, join(certDir, "ca.crt"));
    layouts = await buildTestLayouts(join(work, "source"), { bigLayerBytes: 512 * 1024 });
  });

  after(async () => {
    await pki?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  function skopeoRun(args: string[]): Promise<RunResult> {
    return run(skopeo.path!, ["--debug", "--insecure-policy", ...args]);
  }

  async function skopeoOk(args: string[], berth: BerthProcess): Promise<RunResult> {
    const result = await skopeoRun(args);
    assert.equal(result.code, 0, `skopeo failed:\n${describeRun(result)}\n--- berth log (tail) ---\n${berth.log().slice(-3000)}`);
    return result;
  }

  const source = () => `oci:${layouts.dir}:${layouts.refs.single}`;
  const output = () => `oci:${join(work, `out-${++outputs}`)}:pulled`;

  describe("htpasswd over HTTPS", () => {
    let berth: BerthProcess;
    before(async () => {
      if (skip) return;
      const htpasswd = join(work, "htpasswd");
      await writeFile(htpasswd, `alice:${await bcrypt.hash(USERS.alice, 5)}\n`);
      berth = await startBerth({
        configYaml: baseConfig(`  tls:\n    certificate: ${serverCert.cert}\n    key: ${serverCert.key}\nauth:\n  htpasswd:\n    realm: berth-e2e\n    path: ${htpasswd}\n`),
      });
    });
    after(async () => {
      await berth?.stop();
    });

    const remote = (ref: string) => `docker://${berth.hostPort}/${ref}`;

    it("skopeo copy --dest-creds pushes with the CA from --dest-cert-dir, and --src-creds pulls the same digests back", async () => {
      await skopeoOk(["copy", "--dest-cert-dir", certDir, "--dest-creds", `alice:${USERS.alice}`, "--preserve-digests", source(), remote("team/app:v1")], berth);
      const out = output();
      await skopeoOk(["copy", "--src-cert-dir", certDir, "--src-creds", `alice:${USERS.alice}`, "--preserve-digests", remote("team/app:v1"), out], berth);
      const copied = await readLayout(out.slice("oci:".length, -":pulled".length));
      assert.deepEqual(copied.index.manifests.map((m) => m.digest), [layouts.single.manifest.digest]);
      assert.match(berth.log(), /user=alice|"user":"alice"/, "the access log names the user");
    });

    it("a wrong password and no credentials are refused (unauthorized)", async () => {
      const wrong = await skopeoRun(["inspect", "--cert-dir", certDir, "--creds", "alice:wrong", remote("team/app:v1")]);
      assert.notEqual(wrong.code, 0, describeRun(wrong));
      assert.match(wrong.stderr, /unauthorized|authentication required|401/i);
      const none = await skopeoRun(["inspect", "--cert-dir", certDir, "--no-creds", remote("team/app:v1")]);
      assert.notEqual(none.code, 0, describeRun(none));
    });

    it("without the CA, skopeo refuses the registry's certificate", async () => {
      const result = await skopeoRun(["inspect", "--creds", `alice:${USERS.alice}`, remote("team/app:v1")]);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /certificate|x509/i);
    });
  });

  describe("token auth through a token service", () => {
    let berth: BerthProcess;
    let issuer: TokenIssuer;
    before(async () => {
      if (skip) return;
      const signing = await pki.issue("token-signer", { keyType: "ec" });
      issuer = await startTokenIssuer({ signing, service: "berth-e2e", issuer: "e2e-issuer", users: USERS, acl: ACL });
      berth = await startBerth({
        configYaml: baseConfig(`auth:\n  token:\n    realm: ${issuer.realm}\n    service: berth-e2e\n    issuer: e2e-issuer\n    rootcertbundle: ${pki.ca.cert}\n`),
      });
    });
    after(async () => {
      await berth?.stop();
      await issuer?.close();
    });

    const remote = (ref: string) => `docker://${berth.hostPort}/${ref}`;

    it("skopeo pushes as alice after fetching a token for repository:team/app:pull,push", async () => {
      await skopeoOk(["copy", "--dest-tls-verify=false", "--dest-creds", `alice:${USERS.alice}`, "--preserve-digests", source(), remote("team/app:v1")], berth);
      const scopes = issuer.issued.filter((i) => i.user === "alice").flatMap((i) => i.scopes);
      assert.ok(scopes.includes("repository:team/app:pull,push"), scopes.join(" "));
    });

    it("bob (pull only) pulls the image but cannot push to it", async () => {
      await skopeoOk(["copy", "--src-tls-verify=false", "--src-creds", `bob:${USERS.bob}`, remote("team/app:v1"), output()], berth);
      const push = await skopeoRun(["copy", "--dest-tls-verify=false", "--dest-creds", `bob:${USERS.bob}`, source(), remote("team/app:v2")]);
      assert.notEqual(push.code, 0, describeRun(push));
      assert.match(push.stderr, /unauthorized|authentication required|denied|401/i);
    });

    it("anonymous clients pull a public repository but not a private one", async () => {
      await skopeoOk(["copy", "--dest-tls-verify=false", "--dest-creds", `alice:${USERS.alice}`, source(), remote("public/base:v1")], berth);
      await skopeoOk(["copy", "--src-tls-verify=false", "--src-no-creds", remote("public/base:v1"), output()], berth);
      const denied = await skopeoRun(["inspect", "--tls-verify=false", "--no-creds", remote("team/app:v1")]);
      assert.notEqual(denied.code, 0, describeRun(denied));
    });

    it("a wrong password is refused by the token service", async () => {
      const result = await skopeoRun(["inspect", "--tls-verify=false", "--creds", "alice:wrong", remote("team/app:v1")]);
      assert.notEqual(result.code, 0);
    });
  });

  describe("mutual TLS", () => {
    let berth: BerthProcess;
    let clientCertDir: string;
    before(async () => {
      if (skip) return;
      const clientCA = await pki.newRoot("client-ca");
      const client = await pki.issue("skopeo-client", { client: true, issuer: clientCA });
      clientCertDir = join(work, "client-certs");
      await mkdir(clientCertDir);
      await copyFile(pki.ca.cert, join(clientCertDir, "ca.crt"));
      await copyFile(client.cert, join(clientCertDir, "client.cert"));
      await copyFile(client.key, join(clientCertDir, "client.key"));
      berth = await startBerth({
        configYaml: baseConfig(`  tls:\n    certificate: ${serverCert.cert}\n    key: ${serverCert.key}\n    clientcas: [${clientCA.cert}]\n`),
      });
    });
    after(async () => {
      await berth?.stop();
    });

    const remote = (ref: string) => `docker://${berth.hostPort}/${ref}`;

    it("skopeo with a client certificate in --dest-cert-dir pushes and pulls", async () => {
      await skopeoOk(["copy", "--dest-cert-dir", clientCertDir, "--preserve-digests", source(), remote("mtls/app:v1")], berth);
      await skopeoOk(["copy", "--src-cert-dir", clientCertDir, remote("mtls/app:v1"), output()], berth);
    });

    it("skopeo without a client certificate cannot connect", async () => {
      const result = await skopeoRun(["inspect", "--cert-dir", certDir, remote("mtls/app:v1")]);
      assert.notEqual(result.code, 0, describeRun(result));
      assert.match(result.stderr, /certificate|tls|handshake|EOF|reset/i);
    });
  });
});
