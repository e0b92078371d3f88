/**
 * The pull-through cache against real upstreams and real clients: Debian's docker-registry
 * (distribution 2.8) with htpasswd and with token auth (the test token service as its realm),
 * another berth behind the counting, fault-injecting proxy (malformed token services, redirects
 * to another origin), skopeo and podman pulling through a mirror, and one mirror serving several
 * upstreams by prefix and by containerd's `?ns=`.
 *
 * Every process is started here and stopped by its PID in `after`. A missing program skips its
 * tests locally and fails them under CI=true (requireProgram).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { distributionConfig, freePort, requireDistribution, startDistribution, type DistributionProcess } from "./support/distribution-process.js";
import { describeRun, requireProgram, run, runOk, type RunResult } from "./support/external-program.js";
import { buildTestLayouts, readLayout, type TestLayouts } from "./support/oci-layout.js";
import {
  RegistryClient,
  digestOf,
  expectError,
  filesUnder,
  randomBlob,
  randomImage,
  registryTree,
  uniqueName,
  waitFor,
  type ImageParts,
  type RequestOptions,
} from "./support/registry-client.js";
import { createTestPki, type TestPki } from "./support/test-pki.js";
import { startTokenIssuer, type Acl, type TokenIssuer } from "./support/token-issuer.js";
import { startUpstreamProxy, type UpstreamProxy } from "./support/upstream-proxy.js";

const distribution = requireDistribution();
const htpasswd = requireProgram("htpasswd");
const openssl = requireProgram("openssl");
const skopeo = requireProgram("skopeo");
const podman = requireProgram("podman");

const MANIFESTS = /\/manifests\//;
const BLOBS = /\/blobs\/sha256:/;

// ---------------------------------------------------------------------------------------------
// helpers

/** A RegistryClient that sends one Authorization header with every request (pushes to a protected upstream). */
class AuthorizedClient extends RegistryClient {
  constructor(
    baseURL: string,
    private readonly authorization: string,
  ) {
    super(baseURL);
  }

  override fetch(pathOrURL: string, init: RequestOptions = {}): Promise<Response> {
    const headers = { ...(init.headers as Record<string, string> | undefined), Authorization: this.authorization };
    return super.fetch(pathOrURL, { ...init, headers });
  }
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

/** distribution 2.8 has no monolithic POST: each blob goes up as POST, one PATCH, PUT ?digest=. */
async function pushToDistribution(client: RegistryClient, name: string, tag: string, image: ImageParts): Promise<void> {
  for (const blob of [image.config, ...image.layers]) await client.pushBlob(name, blob, { chunkSize: Math.max(blob.length, 1) });
  await client.pushManifest(name, tag, image.bytes, image.mediaType);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Every upstream API path of one repository. */
function repositoryPaths(name: string): RegExp {
  return new RegExp(`^/v2/${escapeRegExp(name)}/`);
}

function blobData(root: string, digest: string): string {
  return join(registryTree(root), "blobs", "sha256", digest.slice(7, 9), digest.slice(7), "data");
}

function layerLink(root: string, name: string, digest: string): string {
  return join(registryTree(root), "repositories", name, "_layers", "sha256", digest.slice(7), "link");
}

function revisionLink(root: string, name: string, digest: string): string {
  return join(registryTree(root), "repositories", name, "_manifests", "revisions", "sha256", digest.slice(7), "link");
}

/**
 * Clients get verified bytes while the mirror's storage writes go on: wait until the blob is
 * stored and linked. (The bound only keeps a broken run from hanging; nothing is timed.)
 */
function blobCached(root: string, name: string, digest: string): Promise<void> {
  return waitFor(() => existsSync(blobData(root, digest)) && existsSync(layerLink(root, name, digest)), `${name}@${digest} to be cached`, 30_000);
}

/** Waits until the manifest and every blob of `image` are in the mirror's storage under `name`. */
async function imageCached(root: string, name: string, image: ImageParts): Promise<void> {
  await waitFor(() => existsSync(revisionLink(root, name, image.digest)), `${name}@${image.digest} to be cached`, 30_000);
  for (const blob of [image.config, ...image.layers]) await blobCached(root, name, digestOf(blob));
}

function digestsOf(image: ImageParts): string[] {
  return [image.digest, digestOf(image.config), ...image.layers.map((layer) => digestOf(layer))];
}

/** Nothing of `name` in the mirror's storage: no file of the repository, no blob data of `digests`. */
async function assertNothingStored(root: string, name: string, digests: string[]): Promise<void> {
  assert.deepEqual(await filesUnder(registryTree(root), `repositories/${name}/`), [], `nothing stored for ${name}`);
  for (const digest of digests) assert.equal(existsSync(blobData(root, digest)), false, `no blob data for ${digest}`);
}

/** The message of a 503 UNAVAILABLE answer (status, code and JSON checked). */
async function unavailable(response: Response): Promise<string> {
  return (await expectError(response, 503, "UNAVAILABLE")).message;
}

interface SeenRequest {
  method: string;
  url: string;
  authorization: string | undefined;
  headers: IncomingHttpHeaders;
}

/** A tiny HTTP server on another origin (a token realm, a CDN): a handler per path, and what it saw. */
interface LocalServer {
  url: string;
  seen: SeenRequest[];
  /** path (no query) → [status, headers, body] */
  routes: Map<string, { status: number; headers: Record<string, string>; body: Buffer }>;
  close(): Promise<void>;
}

async function startLocalServer(): Promise<LocalServer> {
  const seen: SeenRequest[] = [];
  const routes: LocalServer["routes"] = new Map();
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? "GET", url: req.url ?? "/", authorization: req.headers.authorization, headers: req.headers });
    req.resume();
    const path = new URL(req.url ?? "/", "http://local").pathname;
    const route = routes.get(path);
    if (!route) {
      res.writeHead(404, { "Content-Length": "0" }).end();
      return;
    }
    res.writeHead(route.status, { ...route.headers, "Content-Length": String(route.body.length) });
    res.end(req.method === "HEAD" ? undefined : route.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    routes,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

interface AuthDistribution {
  url: string;
  hostPort: string;
  log(): string;
  stop(): Promise<void>;
}

/**
 * docker-registry with an `auth:` section. startDistribution waits for `GET /v2/` to answer 200,
 * which a protected registry never does; this one is ready once it answers 401 (or 200).
 */
async function startProtectedDistribution(root: string, authYaml: string): Promise<AuthDistribution> {
  if (!distribution.path) throw new Error(`cannot start distribution: ${distribution.skip}`);
  for (let attempt = 0; ; attempt++) {
    const work = await mkdtemp(join(tmpdir(), "berth-distribution-auth-"));
    const configPath = join(work, "config.yml");
    const hostPort = `127.0.0.1:${await freePort()}`;
    const url = `http://${hostPort}`;
    await writeFile(configPath, distributionConfig(root, hostPort, authYaml));
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("REGISTRY_")));
    const child = spawn(distribution.path, ["serve", configPath], { env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    let exited = false;
    const exit = new Promise<void>((resolve) => child.once("exit", () => ((exited = true), resolve())));
    const stop = async (): Promise<void> => {
      if (!exited && child.pid !== undefined) {
        const pid = child.pid;
        const killer = setTimeout(() => exited || process.kill(pid, "SIGKILL"), 5000);
        process.kill(pid, "SIGTERM");
        await exit;
        clearTimeout(killer);
      }
      await rm(work, { recursive: true, force: true });
    };
    const deadline = Date.now() + 20_000;
    let ready = false;
    while (!exited && Date.now() < deadline) {
      try {
        const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
        await response.arrayBuffer();
        if (response.status === 200 || response.status === 401) {
          ready = true;
          break;
        }
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (ready) return { url, hostPort, log: () => output, stop };
    await stop();
    if (attempt < 2 && output.includes("address already in use")) continue;
    throw new Error(`docker-registry did not start on ${url}:\n${output}`);
  }
}

// ---------------------------------------------------------------------------------------------
// 1. distribution with htpasswd

describe("mirror of distribution 2.8 with htpasswd (proxy username/password, distribution's shorthand)", { skip: distribution.skip || htpasswd.skip }, () => {
  const PASSWORD = "s3cret-upstream";
  let work: string;
  let upstream: AuthDistribution;
  let mirror: BerthProcess;
  let wrong: BerthProcess;
  let pusher: RegistryClient;

  before(async () => {
    if (distribution.skip || htpasswd.skip) return;
    work = await mkdtemp(join(tmpdir(), "berth-proxy-htpasswd-"));
    const file = join(work, "htpasswd");
    const line = await runOk(htpasswd.path!, ["-Bbn", "alice", PASSWORD]);
    await writeFile(file, `${line.stdout.trim()}\n`);
    upstream = await startProtectedDistribution(join(work, "upstream"), `auth:\n  htpasswd:\n    realm: berth-upstream\n    path: ${file}\n`);
    pusher = new AuthorizedClient(upstream.url, basic("alice", PASSWORD));
    const proxySection = (password: string) => `proxy:\n  remoteurl: ${upstream.url}\n  username: alice\n  password: ${password}\n  ttl: 168h`;
    mirror = await startBerth({ configYaml: testConfig({ sections: proxySection(PASSWORD) }) });
    wrong = await startBerth({ configYaml: testConfig({ sections: proxySection("not-the-password") }) });
  });

  after(async () => {
    await wrong?.stop();
    await mirror?.stop();
    await upstream?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("the upstream really wants the credentials", async () => {
    const name = uniqueName("htp");
    assert.equal((await fetch(`${upstream.url}/v2/${name}/manifests/v1`, { method: "HEAD" })).status, 401);
  });

  it("with the right credentials a manifest by tag and its blobs come through the mirror byte for byte", async () => {
    const name = uniqueName("htp");
    const image = await randomImageOn(pusher, name, "v1");
    const client = new RegistryClient(mirror.url);

    const manifest = await client.get(`/v2/${name}/manifests/v1`);
    assert.equal(manifest.response.status, 200, `${manifest.bytes}\n${mirror.log().slice(-2000)}`);
    assert.deepEqual(manifest.bytes, image.bytes);
    assert.equal(manifest.response.headers.get("docker-content-digest"), image.digest);
    assert.equal(manifest.response.headers.get("content-type"), image.mediaType);
    for (const blob of [image.config, ...image.layers]) {
      const got = await client.get(`/v2/${name}/blobs/${digestOf(blob)}`);
      assert.equal(got.response.status, 200);
      assert.deepEqual(got.bytes, blob);
    }
    await imageCached(mirror.root!, name, image);
  });

  it("with wrong credentials every pull is 503 UNAVAILABLE naming the credentials, and nothing is stored", async () => {
    const name = uniqueName("htp");
    const image = await randomImageOn(pusher, name, "v1");
    const client = new RegistryClient(wrong.url);

    const byTag = await unavailable(await client.send(`/v2/${name}/manifests/v1`));
    assert.match(byTag, /credentials/);
    assert.ok(byTag.includes(upstream.url), byTag);
    assert.match(await unavailable(await client.send(`/v2/${name}/manifests/${image.digest}`)), /credentials/);
    assert.match(await unavailable(await client.send(`/v2/${name}/blobs/${digestOf(image.layers[0]!)}`)), /credentials/);
    assert.equal((await client.send(`/v2/${name}/blobs/${digestOf(image.config)}`, { method: "HEAD" })).status, 503);

    assert.deepEqual(await filesUnder(registryTree(wrong.root!), "blobs/"), [], "no blob data under the mirror's root");
    assert.deepEqual(await filesUnder(registryTree(wrong.root!), "repositories/"), [], "no repository under the mirror's root");
  });

  async function randomImageOn(client: RegistryClient, name: string, tag: string): Promise<ImageParts> {
    const image = randomImage({ layers: 2, layerSize: 50_000 });
    await pushToDistribution(client, name, tag, image);
    return image;
  }
});

// ---------------------------------------------------------------------------------------------
// 2. distribution with token auth

describe("mirror of distribution 2.8 with token auth (Bearer tokens from the upstream's realm)", { skip: distribution.skip || openssl.skip }, () => {
  const SERVICE = "upstream-registry";
  const ISSUER = "upstream-issuer";
  const USERS = { alice: "alice-token-secret" };
  /** alice may pull anything, anyone may pull public/*; nobody gets more from the realm (pushes use minted tokens). */
  const ACL: Acl = (user, type, name, requested) =>
    type === "repository" && (user === "alice" || name.startsWith("public/")) ? requested.filter((a) => a === "pull") : [];

  let work: string;
  let pki: TestPki;
  let issuer: TokenIssuer;
  let upstream: AuthDistribution;
  let proxy: UpstreamProxy;
  let mirror: BerthProcess;
  let client: RegistryClient;

  before(async () => {
    if (distribution.skip || openssl.skip) return;
    work = await mkdtemp(join(tmpdir(), "berth-proxy-token-"));
    pki = await createTestPki(openssl.path);
    const signing = await pki.issue("upstream-token-signer", { keyType: "ec" });
    issuer = await startTokenIssuer({ signing, service: SERVICE, issuer: ISSUER, users: USERS, acl: ACL });
    upstream = await startProtectedDistribution(
      join(work, "upstream"),
      `auth:\n  token:\n    realm: ${issuer.realm}\n    service: ${SERVICE}\n    issuer: ${ISSUER}\n    rootcertbundle: ${pki.ca.cert}\n`,
    );
    proxy = await startUpstreamProxy(upstream.url);
    mirror = await startBerth({
      configYaml: testConfig({
        sections: `proxy:\n  upstreams:\n    - prefix: up\n      remoteurl: ${proxy.url}\n      username: alice\n      password: ${USERS.alice}\n      ttl: 168h`,
      }),
    });
    client = new RegistryClient(mirror.url);
  });

  after(async () => {
    await mirror?.stop();
    await proxy?.close();
    await upstream?.stop();
    await issuer?.close();
    await pki?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function pushUpstream(name: string, tag: string): Promise<ImageParts> {
    const token = await issuer.mint({ sub: "pusher", access: [{ type: "repository", name, actions: ["pull", "push"] }] });
    const image = randomImage({ layers: 3, layerSize: 20_000 });
    await pushToDistribution(new AuthorizedClient(upstream.url, `Bearer ${token}`), name, tag, image);
    return image;
  }

  const issuedFor = (scope: string) => issuer.issued.filter((entry) => entry.scopes.includes(scope));

  it("several pulls fetch one token for the repository's scope and reuse it; a second repository gets its own", async () => {
    const name = uniqueName("tok");
    const image = await pushUpstream(name, "v1");
    const scope = `repository:${name}:pull`;
    proxy.resetCounts();
    const issuedBefore = issuer.issued.length;

    for (let i = 0; i < 2; i++) {
      const manifest = await client.get(`/v2/up/${name}/manifests/v1`);
      assert.deepEqual(
        issuedFor(scope).map((entry) => entry.user),
        ["alice"],
        `the mirror asks the token service as alice (the mirror answered ${manifest.response.status} ${manifest.bytes})`,
      );
      assert.equal(manifest.response.status, 200, `${manifest.bytes}\n${mirror.log().slice(-2000)}`);
      assert.deepEqual(manifest.bytes, image.bytes);
      assert.equal(manifest.response.headers.get("docker-content-digest"), image.digest);
    }
    for (const blob of [image.config, ...image.layers]) {
      const got = await client.get(`/v2/up/${name}/blobs/${digestOf(blob)}`);
      assert.equal(got.response.status, 200);
      assert.deepEqual(got.bytes, blob);
    }

    assert.equal(issuer.issued.length, issuedBefore + 1, "one token for all of it");
    assert.deepEqual(issuedFor(scope), [{ user: "alice", scopes: [scope], access: [{ type: "repository", name, actions: ["pull"] }] }]);
    // The upstream challenged once; every later request carried the same Bearer token.
    const [first, ...rest] = proxy.requests;
    assert.equal(first?.status, 401);
    assert.equal(first?.authorization, undefined);
    // Two tag pulls (HEAD each, the first one challenged), one manifest GET, one GET per blob.
    assert.equal(proxy.count("HEAD", MANIFESTS), 3);
    assert.equal(proxy.count("GET", MANIFESTS), 1);
    assert.equal(proxy.count("GET", BLOBS), 1 + image.layers.length);
    const bearer = rest[0]!.authorization;
    assert.match(bearer ?? "", /^Bearer \S+$/);
    for (const request of rest) {
      assert.equal(request.status, 200, `${request.method} ${request.path}`);
      assert.equal(request.authorization, bearer, `${request.method} ${request.path} reuses the token`);
    }

    const other = uniqueName("tok");
    const otherImage = await pushUpstream(other, "v1");
    const otherScope = `repository:${other}:pull`;
    const got = await client.get(`/v2/up/${other}/manifests/v1`);
    assert.equal(got.response.status, 200);
    assert.deepEqual(got.bytes, otherImage.bytes);
    assert.equal(issuedFor(otherScope).length, 1, "the second repository's own token");
    assert.equal(issuedFor(scope).length, 1, "and the first repository's token was not fetched again");
    assert.equal(issuer.issued.length, issuedBefore + 2);
  });

  it("cached digests cost no upstream request; a cached tag costs exactly one upstream HEAD and no GET (a public repository)", async () => {
    // public/*: anyone may pull, so this holds whichever credentials reach the token service.
    const name = uniqueName("public/tok");
    const image = await pushUpstream(name, "v1");
    const first = await client.get(`/v2/up/${name}/manifests/v1`);
    assert.equal(first.response.status, 200, `${first.bytes}`);
    assert.deepEqual(first.bytes, image.bytes);
    for (const blob of [image.config, ...image.layers]) assert.deepEqual((await client.get(`/v2/up/${name}/blobs/${digestOf(blob)}`)).bytes, blob);
    await imageCached(mirror.root!, `up/${name}`, image);
    assert.equal(issuedFor(`repository:${name}:pull`).length, 1, "one token for the tag, the manifest and the blobs");

    proxy.resetCounts();
    const byDigest = await client.get(`/v2/up/${name}/manifests/${image.digest}`);
    assert.equal(byDigest.response.status, 200);
    assert.deepEqual(byDigest.bytes, image.bytes);
    for (const blob of [image.config, ...image.layers]) {
      const digest = digestOf(blob);
      assert.deepEqual((await client.get(`/v2/up/${name}/blobs/${digest}`)).bytes, blob);
      assert.equal((await client.send(`/v2/up/${name}/blobs/${digest}`, { method: "HEAD" })).status, 200);
    }
    assert.equal(proxy.requests.length, 0, `cached digests are served without the upstream: ${JSON.stringify(proxy.requests)}`);

    const tokens = issuer.issued.length;
    const byTag = await client.get(`/v2/up/${name}/manifests/v1`);
    assert.deepEqual(byTag.bytes, image.bytes);
    assert.equal(proxy.count("HEAD", MANIFESTS), 1);
    assert.equal(proxy.count("GET"), 0);
    assert.equal(proxy.requests.length, 1);
    assert.equal(proxy.requests[0]!.status, 200);
    assert.match(proxy.requests[0]!.authorization ?? "", /^Bearer /, "the cached token");
    assert.equal(issuer.issued.length, tokens, "no new token");
  });
});

// ---------------------------------------------------------------------------------------------
// 3 and 4. another berth behind the counting proxy: broken token services, redirects elsewhere

describe("mirror of berth through the counting proxy: malformed token responses and redirects to another origin", () => {
  const USER = "alice";
  const PASSWORD = "mirror-secret";
  let upstream: BerthProcess;
  let proxy: UpstreamProxy;
  let mirror: BerthProcess;
  let elsewhere: LocalServer;
  let up: RegistryClient;
  let client: RegistryClient;

  before(async () => {
    upstream = await startBerth();
    proxy = await startUpstreamProxy(upstream.url);
    // The upstream berth has no auth and ignores credentials; the mirror has some all the same.
    mirror = await startBerth({
      configYaml: testConfig({
        sections: `proxy:\n  upstreams:\n    - prefix: up\n      remoteurl: ${proxy.url}\n      username: ${USER}\n      password: ${PASSWORD}`,
      }),
    });
    elsewhere = await startLocalServer();
    up = new RegistryClient(upstream.url);
    client = new RegistryClient(mirror.url);
  });

  after(async () => {
    await mirror?.stop();
    await proxy?.close();
    await elsewhere?.close();
    await upstream?.stop();
  });

  beforeEach(() => {
    proxy.clearFaults();
    proxy.resetCounts();
    elsewhere.seen.length = 0;
    elsewhere.routes.clear();
  });

  /** Every request for `name` answers 401 with a Bearer challenge naming `realm`. */
  function challengeWith(name: string, realm: string): void {
    proxy.inject({
      path: repositoryPaths(name),
      fault: {
        kind: "replace",
        status: 401,
        headers: { "WWW-Authenticate": `Bearer realm="${realm}",service="x"`, "Content-Type": "application/json" },
        body: Buffer.from(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] })),
      },
    });
  }

  for (const [label, body, contentType, message] of [
    ["a JSON object without a token", '{"nope":1}', "application/json", /token service answered no usable token/],
    ["something that is not JSON", "<html>not a token</html>", "text/html", /token service answered something that is not JSON/],
  ] as const) {
    it(`a token service answering ${label} makes pulls 503 UNAVAILABLE about the token, storing nothing`, async () => {
      const name = uniqueName("badtoken");
      const image = await up.pushImage(name, "v1", randomImage({ layers: 1, layerSize: 10_000 }));
      elsewhere.routes.set("/token", { status: 200, headers: { "Content-Type": contentType }, body: Buffer.from(body) });
      challengeWith(name, `${elsewhere.url}/token`);

      const byTag = await unavailable(await client.send(`/v2/up/${name}/manifests/v1`));
      assert.match(byTag, message);
      assert.ok(byTag.includes(proxy.url), byTag);
      const blob = await unavailable(await client.send(`/v2/up/${name}/blobs/${digestOf(image.layers[0]!)}`));
      assert.match(blob, message);

      // One token request per pull (a failed fetch is not cached), for the repository's pull scope.
      assert.equal(elsewhere.seen.length, 2, JSON.stringify(elsewhere.seen.map((s) => s.url)));
      for (const request of elsewhere.seen) {
        const url = new URL(request.url, elsewhere.url);
        assert.equal(url.pathname, "/token");
        assert.equal(url.searchParams.get("service"), "x");
        assert.equal(url.searchParams.get("scope"), `repository:${name}:pull`);
      }
      await assertNothingStored(mirror.root!, `up/${name}`, digestsOf(image));

      // The failure was not remembered: without the challenge the same pull works.
      proxy.clearFaults();
      const again = await client.get(`/v2/up/${name}/manifests/v1`);
      assert.equal(again.response.status, 200);
      assert.deepEqual(again.bytes, image.bytes);
    });
  }

  /**
   * The upstream's next blob GET asks for Basic credentials (so the mirror sends them from then
   * on), and the GET with them is redirected to `location` on another origin.
   */
  function redirectBlobOnce(name: string, digest: string, location: string): void {
    const path = new RegExp(`^/v2/${escapeRegExp(name)}/blobs/${digest}$`);
    proxy.inject({
      method: "GET",
      path,
      times: 1,
      fault: { kind: "replace", status: 401, headers: { "WWW-Authenticate": 'Basic realm="upstream"', "Content-Type": "application/json" }, body: Buffer.from("{}") },
    });
    proxy.inject({ method: "GET", path, times: 1, fault: { kind: "redirect", location } });
  }

  it("a blob GET redirected to another origin is followed without the Authorization header, and the blob is cached", async () => {
    const name = uniqueName("redirect");
    const image = await up.pushImage(name, "v1", randomImage({ layers: 1, layerSize: 150_000 }));
    const layer = image.layers[0]!;
    const digest = digestOf(layer);
    elsewhere.routes.set(`/cdn/${digest}`, { status: 200, headers: { "Content-Type": "application/octet-stream" }, body: layer });
    redirectBlobOnce(name, digest, `${elsewhere.url}/cdn/${digest}`);

    const got = await client.get(`/v2/up/${name}/blobs/${digest}`);
    assert.equal(got.response.status, 200, `${got.bytes}\n${mirror.log().slice(-2000)}`);
    assert.deepEqual(got.bytes, layer);
    assert.equal(got.response.headers.get("docker-content-digest"), digest);

    // The upstream's challenge, then the GET with the credentials, which it redirected.
    const gets = proxy.requests.filter((r) => r.method === "GET" && BLOBS.test(r.path));
    assert.deepEqual(gets.map((r) => r.status), [401, 307]);
    assert.equal(gets[1]!.authorization, basic(USER, PASSWORD), "the upstream got the credentials…");
    assert.equal(elsewhere.seen.length, 1);
    assert.equal(elsewhere.seen[0]!.url, `/cdn/${digest}`);
    assert.equal(elsewhere.seen[0]!.authorization, undefined, "…the redirect target did not");

    await blobCached(mirror.root!, `up/${name}`, digest);
    proxy.resetCounts();
    assert.deepEqual((await client.get(`/v2/up/${name}/blobs/${digest}`)).bytes, layer);
    assert.equal(proxy.requests.length, 0, `served from the cache: ${JSON.stringify(proxy.requests)}`);
    assert.equal(elsewhere.seen.length, 1);
  });

  it("a redirect target serving wrong bytes of the same length never yields a complete 200 body; nothing is stored; the next GET works", async () => {
    const name = uniqueName("redirect-bad");
    const image = await up.pushImage(name, "v1", randomImage({ layers: 1, layerSize: 150_000 }));
    const layer = image.layers[0]!;
    const digest = digestOf(layer);
    const wrongBytes = randomBlob(layer.length);
    elsewhere.routes.set(`/cdn/${digest}`, { status: 200, headers: { "Content-Type": "application/octet-stream" }, body: wrongBytes });
    redirectBlobOnce(name, digest, `${elsewhere.url}/cdn/${digest}`);

    // Acceptable: no response, an error status, or a 200 whose body is cut off. Not acceptable: a
    // complete 200 body (whatever its bytes), nor any body with the blob's digest.
    let complete: { status: number; bytes: Buffer } | undefined;
    try {
      const response = await client.fetch(`/v2/up/${name}/blobs/${digest}`);
      complete = { status: response.status, bytes: Buffer.from(await response.arrayBuffer()) };
    } catch {
      // the connection was cut (before or during the body)
    }
    if (complete) {
      assert.notEqual(complete.status, 200, `the client got a complete 200 body of ${complete.bytes.length} bytes`);
      assert.notEqual(digestOf(complete.bytes), digest);
    }
    assert.equal(elsewhere.seen.length, 1, "the mirror followed the redirect");
    assert.equal(elsewhere.seen[0]!.authorization, undefined);
    assert.equal(existsSync(blobData(mirror.root!, digest)), false, "no blob data for the digest");
    assert.equal(existsSync(layerLink(mirror.root!, `up/${name}`, digest)), false, "no link for the digest");

    proxy.clearFaults();
    proxy.resetCounts();
    const again = await client.get(`/v2/up/${name}/blobs/${digest}`);
    assert.equal(again.response.status, 200);
    assert.deepEqual(again.bytes, layer);
    assert.equal(proxy.count("GET", BLOBS), 1, "fetched again from the upstream");
    await blobCached(mirror.root!, `up/${name}`, digest);
  });
});

// ---------------------------------------------------------------------------------------------
// 5 and 6. skopeo and podman through a mirror of another berth

describe("skopeo and podman through a mirror of berth", () => {
  let work: string;
  let layouts: TestLayouts;
  let upstream: BerthProcess;
  let mirror: BerthProcess;
  let podmanStorage: string[];
  let outputs = 0;

  before(async () => {
    if (skopeo.skip) return;
    work = await mkdtemp(join(tmpdir(), "berth-proxy-clients-"));
    layouts = await buildTestLayouts(join(work, "source"), { bigLayerBytes: 512 * 1024 });
    const withAccessLog = { log: "  level: info\n  accesslog:\n    disabled: false" };
    upstream = await startBerth({ configYaml: testConfig(withAccessLog) });
    mirror = await startBerth({
      configYaml: testConfig({ ...withAccessLog, sections: `proxy:\n  upstreams:\n    - prefix: up\n      remoteurl: ${upstream.url}` }),
    });
    for (const dir of ["root", "runroot", "tmp"]) await mkdir(join(work, `podman-${dir}`));
    podmanStorage = [
      "--root", join(work, "podman-root"),
      "--runroot", join(work, "podman-runroot"),
      "--tmpdir", join(work, "podman-tmp"),
      "--storage-driver", "vfs",
      "--events-backend", "none",
    ];
  });

  after(async () => {
    await mirror?.stop();
    await upstream?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  function logs(): string {
    return `--- mirror log (tail) ---\n${mirror.log().slice(-3000)}\n--- upstream log (tail) ---\n${upstream.log().slice(-2000)}`;
  }

  function runSkopeo(args: string[]): Promise<RunResult> {
    return run(skopeo.path!, ["--debug", "--insecure-policy", ...args]);
  }

  async function skopeoOk(args: string[]): Promise<RunResult> {
    const result = await runSkopeo(args);
    assert.equal(result.code, 0, `skopeo failed:\n${describeRun(result)}\n${logs()}`);
    return result;
  }

  const single = () => `oci:${layouts.dir}:${layouts.refs.single}`;

  /** The test layout's single image, pushed to the upstream berth as `name:tag`. */
  function pushToUpstream(name: string, tag: string): Promise<RunResult> {
    return skopeoOk(["copy", "--dest-tls-verify=false", "--preserve-digests", single(), `docker://${upstream.hostPort}/${name}:${tag}`]);
  }

  it("skopeo copy from docker://<mirror>/up/<name>:<tag> to an OCI layout brings the upstream's manifest and blobs", { skip: skopeo.skip }, async () => {
    const name = uniqueName("skopeo");
    await pushToUpstream(name, "v1");
    const out = join(work, `out-${++outputs}`);
    await skopeoOk(["copy", "--src-tls-verify=false", `docker://${mirror.hostPort}/up/${name}:v1`, `oci:${out}`]);

    const image = layouts.single;
    const copied = await readLayout(out);
    assert.deepEqual(copied.index.manifests.map((m) => m.digest), [image.manifest.digest]);
    assert.deepEqual(await copied.readBlob(image.manifest.digest), image.manifestBytes);
    assert.deepEqual(copied.blobDigests, new Set([image.manifest.digest, ...image.blobDigests]));
    for (const digest of image.blobDigests) await blobCached(mirror.root!, `up/${name}`, digest);
  });

  it("skopeo copy into a mirrored name fails with 405; into a local name on the same mirror it works", { skip: skopeo.skip }, async () => {
    const image = layouts.single;
    const mirrored = uniqueName("skopeo-push");
    const pushed = await runSkopeo(["copy", "--dest-tls-verify=false", "--preserve-digests", single(), `docker://${mirror.hostPort}/up/${mirrored}:v1`]);
    assert.notEqual(pushed.code, 0, describeRun(pushed));
    assert.match(pushed.stderr, /405|unsupported|not supported/i, describeRun(pushed));
    const client = new RegistryClient(mirror.url);
    await expectError(await client.send(`/v2/up/${mirrored}/blobs/uploads/`, { method: "POST" }), 405, "UNSUPPORTED");
    await expectError(await client.putManifest(`up/${mirrored}`, "v1", image.manifestBytes, image.manifest.mediaType), 405, "UNSUPPORTED");
    // Nothing of it reached the upstream either.
    assert.equal((await fetch(`${upstream.url}/v2/${mirrored}/manifests/v1`, { method: "HEAD" })).status, 404);

    const local = uniqueName("skopeo-local");
    await skopeoOk(["copy", "--dest-tls-verify=false", "--preserve-digests", single(), `docker://${mirror.hostPort}/${local}:v1`]);
    const head = await fetch(`${mirror.url}/v2/${local}/manifests/v1`, { method: "HEAD", headers: { Accept: image.manifest.mediaType } });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("docker-content-digest"), image.manifest.digest);
    assert.equal((await fetch(`${upstream.url}/v2/${local}/manifests/v1`, { method: "HEAD" })).status, 404, "a local name stays local");
  });

  it("podman pull through the mirror stores the upstream's image: digest, image ID and layers", { skip: skopeo.skip || podman.skip }, async () => {
    const image = layouts.single;
    const name = uniqueName("podman");
    await pushToUpstream(name, "v1");
    const reference = `${mirror.hostPort}/up/${name}:v1`;
    const podmanOk = async (args: string[]): Promise<RunResult> => {
      const result = await run(podman.path!, [...podmanStorage, ...args]);
      assert.equal(result.code, 0, `podman failed:\n${describeRun(result)}\n${logs()}`);
      return result;
    };
    await podmanOk(["pull", "--tls-verify=false", reference]);
    const [info] = JSON.parse((await podmanOk(["image", "inspect", reference])).stdout) as {
      Id: string;
      Digest: string;
      RepoDigests: string[];
      RootFS: { Layers: string[] };
    }[];
    assert.ok(info);
    assert.equal(info.Digest, image.manifest.digest);
    assert.equal(`sha256:${info.Id}`, image.config.digest, "the image ID is the config digest");
    assert.deepEqual(info.RootFS.Layers, image.layers.map((layer) => layer.diffId));
    assert.ok(info.RepoDigests.includes(`${mirror.hostPort}/up/${name}@${image.manifest.digest}`), JSON.stringify(info.RepoDigests));
    for (const digest of image.blobDigests) await blobCached(mirror.root!, `up/${name}`, digest);
  });
});

// ---------------------------------------------------------------------------------------------
// 7. several upstreams in one mirror

describe("one mirror, several upstreams: prefix a → berth, prefix b → distribution, other names local", { skip: distribution.skip }, () => {
  const NAME = "lib/app";
  let work: string;
  let a: BerthProcess;
  let b: DistributionProcess;
  let mirror: BerthProcess;
  let client: RegistryClient;
  let imageA: ImageParts;
  let imageB: ImageParts;

  before(async () => {
    if (distribution.skip) return;
    work = await mkdtemp(join(tmpdir(), "berth-proxy-many-"));
    a = await startBerth();
    b = await startDistribution({ root: join(work, "b") });
    mirror = await startBerth({
      configYaml: testConfig({
        sections: [
          "proxy:",
          "  upstreams:",
          "    - prefix: a",
          `      remoteurl: ${a.url}`,
          "      namespaces: [a.example.test]",
          "    - prefix: b",
          `      remoteurl: ${b.url}`,
          "      namespaces: [b.example.test]",
        ].join("\n"),
      }),
    });
    client = new RegistryClient(mirror.url);
    imageA = await new RegistryClient(a.url).pushImage(NAME, "v1", randomImage({ layers: 1, layerSize: 5_000 }));
    imageB = randomImage({ layers: 1, layerSize: 5_000 });
    await pushToDistribution(new RegistryClient(b.url), NAME, "v1", imageB);
  });

  after(async () => {
    await mirror?.stop();
    await b?.stop();
    await a?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("the same name under each prefix is each upstream's own image", async () => {
    for (const [prefix, image, otherImage] of [
      ["a", imageA, imageB],
      ["b", imageB, imageA],
    ] as const) {
      const manifest = await client.get(`/v2/${prefix}/${NAME}/manifests/v1`);
      assert.equal(manifest.response.status, 200, `${prefix}: ${manifest.bytes}`);
      assert.deepEqual(manifest.bytes, image.bytes, prefix);
      assert.equal(manifest.response.headers.get("docker-content-digest"), image.digest);
      assert.equal(manifest.response.headers.get("oci-namespace"), null, "no ?ns=, no OCI-Namespace");
      const layer = image.layers[0]!;
      assert.deepEqual((await client.get(`/v2/${prefix}/${NAME}/blobs/${digestOf(layer)}`)).bytes, layer);
      // The other upstream's layer is not in this one.
      await expectError(await client.send(`/v2/${prefix}/${NAME}/blobs/${digestOf(otherImage.layers[0]!)}`), 404, "BLOB_UNKNOWN");
    }
  });

  it("a name outside both prefixes is a local repository: pushes are accepted (201) and served", async () => {
    const local = await client.pushImage(NAME, "v1", randomImage({ layers: 1, layerSize: 5_000 }));
    // "ab/…" only starts with the letters of prefix a, not with "a/".
    const boundary = await client.pushImage("ab/app", "v1", randomImage({ layers: 1, layerSize: 5_000 }));
    for (const [name, image] of [
      [NAME, local],
      ["ab/app", boundary],
    ] as const) {
      const got = await client.get(`/v2/${name}/manifests/v1`);
      assert.equal(got.response.status, 200);
      assert.deepEqual(got.bytes, image.bytes);
    }
    // …while a mirrored name is read-only.
    await expectError(await client.putManifest(`a/${NAME}`, "v2", local.bytes, local.mediaType), 405, "UNSUPPORTED");
    await expectError(await client.send(`/v2/b/${NAME}/blobs/uploads/`, { method: "POST" }), 405, "UNSUPPORTED");
  });

  it("?ns=<namespace> of an upstream answers with its image and OCI-Namespace; an unknown namespace is the local name", async () => {
    const local = await client.pushImage(NAME, "ns-local", randomImage({ layers: 1, layerSize: 1_000 }));
    for (const [namespace, image] of [
      ["a.example.test", imageA],
      ["b.example.test", imageB],
    ] as const) {
      const got = await client.get(`/v2/${NAME}/manifests/v1?ns=${namespace}`);
      assert.equal(got.response.status, 200, `${namespace}: ${got.bytes}`);
      assert.equal(got.response.headers.get("oci-namespace"), namespace);
      assert.deepEqual(got.bytes, image.bytes);
      assert.equal(got.response.headers.get("docker-content-digest"), image.digest);
      const layer = image.layers[0]!;
      const blob = await client.get(`/v2/${NAME}/blobs/${digestOf(layer)}?ns=${namespace}`);
      assert.equal(blob.response.headers.get("oci-namespace"), namespace);
      assert.deepEqual(blob.bytes, layer);
    }
    const unknown = await client.get(`/v2/${NAME}/manifests/ns-local?ns=elsewhere.test`);
    assert.equal(unknown.response.status, 200);
    assert.equal(unknown.response.headers.get("oci-namespace"), null);
    assert.deepEqual(unknown.bytes, local.bytes);
  });
});
