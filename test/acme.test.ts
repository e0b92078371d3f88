/**
 * http.tls.letsencrypt against a real ACME CA: pebble (Let's Encrypt's test CA) validates
 * TLS-ALPN-01 by connecting to berth's own port, so a certificate only appears if berth answered
 * the challenge. Clients are node:https/node:tls trusting pebble's issuing root alone.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { connect as http2Connect } from "node:http2";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type PeerCertificate } from "node:tls";
import { after, before, describe, it } from "node:test";
import { BERTH_CLI, startBerth, type BerthProcess } from "./support/berth-process.js";
import { freePort } from "./support/distribution-process.js";
import { describeRun, requireProgram, run } from "./support/external-program.js";
import { requirePebble, startPebble, type PebbleServer } from "./support/pebble.js";
import { createTestPki, type TestPki } from "./support/test-pki.js";

const programs = [requireProgram("openssl"), ...requirePebble()];
const skip = programs.find((program) => program.skip !== false)?.skip ?? false;

function acmeConfig(port: number, cache: string, pebble: PebbleServer, httpExtra = ""): string {
  return `version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  inmemory: {}
http:
  addr: 127.0.0.1:${port}
  secret: acme-test
  tls:
    letsencrypt:
      cachefile: ${cache}
      email: ops@registry.test
      hosts: [registry.test, second.test]
      directoryurl: ${pebble.directoryURL}
${httpExtra}`;
}

/** GET /v2/ with `servername` as SNI, trusting only `ca`; the status and the server's certificate. */
function getV2(port: number, servername: string, ca: string): Promise<{ status: number; cert: PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/v2/", servername, ca, agent: false, headers: { host: servername } }, (res) => {
      const cert = (res.socket as import("node:tls").TLSSocket).getPeerCertificate();
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, cert }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A bare TLS handshake; resolves with the error when it fails. */
function handshake(port: number, servername: string | undefined, ca: string): Promise<{ cert?: PeerCertificate; error?: Error }> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, ca, ...(servername === undefined ? {} : { servername }) }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve({ cert });
    });
    socket.on("error", (error) => resolve({ error }));
  });
}

describe("http.tls.letsencrypt with a real ACME CA (pebble)", { skip }, () => {
  let pki: TestPki;
  let pebble: PebbleServer;
  let berth: BerthProcess;
  let port: number;
  let cache: string;
  let root: string;
  let first: PeerCertificate;

  const start = () => startBerth({ configYaml: acmeConfig(port, cache, pebble), env: { NODE_EXTRA_CA_CERTS: pebble.apiCA } });

  before(async () => {
    pki = await createTestPki();
    port = await freePort();
    pebble = await startPebble({ pki, tlsPort: port });
    cache = join(await mkdtemp(join(tmpdir(), "berth-acme-")), "cache");
    root = await pebble.issuingRoot();
    berth = await start();
  });

  after(async () => {
    await berth?.stop();
    await pebble?.stop();
    if (cache !== undefined) await rm(join(cache, ".."), { recursive: true, force: true });
    await pki?.cleanup();
  });

  it("an allowed host gets a certificate issued by pebble and a working /v2/", async () => {
    const { status, cert } = await getV2(port, "registry.test", root);
    assert.equal(status, 200);
    assert.equal(cert.subjectaltname, "DNS:registry.test");
    assert.match(String(cert.issuer.CN), /^Pebble Intermediate CA/);
    assert.equal(pebble.orderCount(), 1, pebble.log());
    first = cert;
    // autocert's layout: the account key, and the host's key then its chain.
    const entries = (await readdir(cache)).sort();
    assert.deepEqual(entries, ["acme_account+key", "registry.test"]);
    assert.match(await readFile(join(cache, "acme_account+key"), "utf8"), /^-----BEGIN EC PRIVATE KEY-----/);
    const entry = await readFile(join(cache, "registry.test"), "utf8");
    assert.match(entry, /^-----BEGIN EC PRIVATE KEY-----[\s\S]+-----BEGIN CERTIFICATE-----[\s\S]+-----BEGIN CERTIFICATE-----/);
  });

  it("a second handshake is served from the cache: same certificate, no new order", async () => {
    const { status, cert } = await getV2(port, "registry.test", root);
    assert.equal(status, 200);
    assert.equal(cert.serialNumber, first.serialNumber);
    // HTTP/2 is negotiated (ALPN) with the ordered certificate as with certificate files.
    const session = http2Connect(`https://127.0.0.1:${port}`, { ca: root, servername: "registry.test" });
    const h2Status = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ":path": "/v2/", ":authority": "registry.test" });
      stream.on("response", (headers) => resolve(Number(headers[":status"])));
      stream.on("error", reject);
      stream.resume();
    });
    assert.equal(h2Status, 200);
    assert.equal(session.alpnProtocol, "h2");
    session.close();
    assert.equal(pebble.orderCount(), 1);
  });

  it("a host not in hosts fails the handshake, and nothing is ordered or written", async () => {
    const { error } = await handshake(port, "denied.test", root);
    assert.ok(error, "the handshake succeeded");
    const noName = await handshake(port, undefined, root);
    assert.ok(noName.error, "a handshake without a server name succeeded");
    assert.equal(pebble.orderCount(), 1);
    assert.deepEqual((await readdir(cache)).sort(), ["acme_account+key", "registry.test"]);
  });

  it("another host's order does not hold up handshakes for a host that has its certificate", async () => {
    let secondDone = false;
    const second = handshake(port, "second.test", root).then((result) => {
      secondDone = true;
      return result;
    });
    const cached = await handshake(port, "registry.test", root);
    assert.equal(cached.cert?.serialNumber, first.serialNumber);
    assert.equal(secondDone, false, "the cached host's handshake waited for the other host's order");
    const ordered = await second;
    assert.equal(ordered.error, undefined);
    assert.equal(ordered.cert?.subjectaltname, "DNS:second.test");
    assert.equal(pebble.orderCount(), 2);
  });

  it("a restart reads the cache directory back: same certificate, no new order", async () => {
    await berth.stop();
    berth = await start();
    const { status, cert } = await getV2(port, "registry.test", root);
    assert.equal(status, 200);
    assert.equal(cert.serialNumber, first.serialNumber);
    assert.equal(pebble.orderCount(), 2);
  });

  it("with http.http2.disabled the certificate from the cache is served over HTTP/1.1 alone", async () => {
    await berth.stop();
    berth = await startBerth({ configYaml: acmeConfig(port, cache, pebble, "  http2:\n    disabled: true\n"), env: { NODE_EXTRA_CA_CERTS: pebble.apiCA } });
    const { status, cert } = await getV2(port, "registry.test", root);
    assert.equal(status, 200);
    assert.equal(cert.serialNumber, first.serialNumber);
    const h2 = await new Promise<string | false | null>((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port, ca: root, servername: "registry.test", ALPNProtocols: ["h2", "http/1.1"] }, () => {
        resolve(socket.alpnProtocol);
        socket.end();
      });
      socket.on("error", reject);
    });
    assert.equal(h2, "http/1.1");
    assert.equal(pebble.orderCount(), 2);
  });

  it("a corrupt certificate entry is not served: the next handshake orders a new one and replaces it", async () => {
    await berth.stop();
    await writeFile(join(cache, "second.test"), "-----BEGIN EC PRIVATE KEY-----\nnot a key\n-----END EC PRIVATE KEY-----\n");
    berth = await start();
    const orders = pebble.orderCount();
    const { error, cert } = await handshake(port, "second.test", root);
    assert.equal(error, undefined);
    assert.equal(cert?.subjectaltname, "DNS:second.test");
    assert.equal(pebble.orderCount(), orders + 1);
    assert.match(await readFile(join(cache, "second.test"), "utf8"), /^-----BEGIN EC PRIVATE KEY-----\n(?!not a key)/);
  });

  it("a certificate is renewed in the background before it expires, and the new one is served and kept", async () => {
    await berth.stop();
    // Renew when less than (lifetime - 3 s) is left: three seconds after issuance.
    const lifetime = new Date(first.valid_to).getTime() - new Date(first.valid_from).getTime();
    berth = await startBerth({
      configYaml: acmeConfig(port, cache, pebble),
      env: { NODE_EXTRA_CA_CERTS: pebble.apiCA, BERTH_TEST_ACME_RENEW_BEFORE_MS: String(lifetime - 3000) },
    });
    // No handshake is made: the renewal is berth's own doing.
    while (!/ACME certificate for registry\.test issued/.test(berth.log())) {
      assert.equal(berth.child.exitCode, null, berth.log());
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(pebble.orderCount() > 2);
    const { status, cert } = await getV2(port, "registry.test", root);
    assert.equal(status, 200);
    assert.notEqual(cert.serialNumber, first.serialNumber);
    // Kept in the cache directory: a restart now would serve the renewed certificate.
    const kept = await readFile(join(cache, "registry.test"), "utf8");
    const keptLeaf = new X509Certificate(kept.slice(kept.indexOf("-----BEGIN CERTIFICATE-----")));
    assert.notEqual(keptLeaf.serialNumber, first.serialNumber);
  });
});

describe("http.tls.letsencrypt refused at start", { skip }, () => {
  let pki: TestPki;
  let work: string;
  before(async () => {
    pki = await createTestPki();
    work = await mkdtemp(join(tmpdir(), "berth-acme-bad-"));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
    await pki?.cleanup();
  });

  it("letsencrypt beside a certificate: berth config check and berth serve both refuse, naming the key (distribution's rule)", async () => {
    const file = join(work, "both.yml");
    await writeFile(file, `version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.1:0\n  tls:\n    certificate: /etc/c.pem\n    key: /etc/k.pem\n    letsencrypt:\n      cachefile: ${join(work, "c0")}\n      hosts: [registry.test]\n`);
    for (const args of [["config", "check", file], ["serve", file]]) {
      const result = await run(process.execPath, [BERTH_CLI, ...args]);
      assert.equal(result.code, 1, describeRun(result));
      assert.match(result.stderr, /http\.tls\.letsencrypt: cannot specify both certificate and Let's Encrypt/, describeRun(result));
    }
    const noHosts = join(work, "nohosts.yml");
    await writeFile(noHosts, `version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  tls:\n    letsencrypt:\n      cachefile: ${join(work, "c0")}\n`);
    const check = await run(process.execPath, [BERTH_CLI, "config", "check", noHosts]);
    assert.equal(check.code, 1, describeRun(check));
    assert.match(check.stderr, /http\.tls\.letsencrypt\.hosts: required/);
    // Nothing was created for a refused configuration.
    assert.deepEqual((await readdir(work)).sort(), ["both.yml", "nohosts.yml"]);
  });

  it("berth serve --workers 2 with letsencrypt is refused: the workers would each order certificates", async () => {
    const file = join(work, "workers.yml");
    await writeFile(file, `version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.1:0\n  tls:\n    letsencrypt:\n      cachefile: ${join(work, "c0")}\n      hosts: [registry.test]\n`);
    const result = await run(process.execPath, [BERTH_CLI, "serve", "--workers", "2", file]);
    assert.equal(result.code, 2, describeRun(result));
    assert.match(result.stderr, /--workers cannot be used with http\.tls\.letsencrypt/);
    await rm(file);
  });

  it("an unreachable directory URL stops berth serve before it listens, naming directoryurl", async () => {
    const port = await freePort();
    const dead = await freePort();
    const yaml = `version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.1:${port}\n  tls:\n    letsencrypt:\n      cachefile: ${join(work, "c1")}\n      hosts: [registry.test]\n      directoryurl: https://127.0.0.1:${dead}/dir\n`;
    await assert.rejects(startBerth({ configYaml: yaml }), /http\.tls\.letsencrypt\.directoryurl: cannot register an ACME account at https:\/\/127\.0\.0\.1:\d+\/dir/);
  });

  it("an account key that cannot be read stops berth serve before any request to the CA, and is left as it was", async () => {
    const dir = join(work, "bad-account");
    await import("node:fs/promises").then((fs) => fs.mkdir(dir));
    await writeFile(join(dir, "acme_account+key"), "garbage");
    const dead = await freePort();
    const yaml = `version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.1:0\n  tls:\n    letsencrypt:\n      cachefile: ${dir}\n      hosts: [registry.test]\n      directoryurl: https://127.0.0.1:${dead}/dir\n`;
    await assert.rejects(startBerth({ configYaml: yaml }), /http\.tls\.letsencrypt\.cachefile: the ACME account key in .* cannot be read/);
    assert.equal(await readFile(join(dir, "acme_account+key"), "utf8"), "garbage");
  });

  it("a cachefile that is a file (distribution 2.8's JSON cache) stops berth serve, and the file is left as it was", async () => {
    const file = join(work, "letsencrypt.json");
    await writeFile(file, '{"Email":"a@b.example"}');
    const yaml = `version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.1:0\n  tls:\n    letsencrypt:\n      cachefile: ${file}\n      hosts: [registry.test]\n`;
    await assert.rejects(startBerth({ configYaml: yaml }), /http\.tls\.letsencrypt\.cachefile: .* is a file: distribution 2\.8/);
    assert.equal(await readFile(file, "utf8"), '{"Email":"a@b.example"}');
  });
});
