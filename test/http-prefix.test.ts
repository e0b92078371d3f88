/**
 * http.prefix: berth serves the API, the web UI and its main-port /debug/ routes under the prefix,
 * answers 404 outside it, and every URL it generates (upload and manifest Locations, pagination
 * Links) carries it. Shown with raw HTTP and the test registry client against a real `berth serve`,
 * with skopeo through Debian's nginx mapping "/" to "/registry/" as operators deploy it, and side by
 * side with Debian's docker-registry (distribution 2.8) configured with the same prefix.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { requireDistribution, startDistribution, type DistributionProcess } from "./support/distribution-process.js";
import { describeRun, requireProgram, run } from "./support/external-program.js";
import { requireNginx, startNginxProxy, type NginxProxy } from "./support/nginx-proxy.js";
import { buildTestLayouts, type TestLayouts } from "./support/oci-layout.js";
import { digestOf, expectError, OCI_MANIFEST, randomBlob, randomImage, rawRequest, RegistryClient, uniqueName, withQuery } from "./support/registry-client.js";

const PREFIX = "/registry/";

/** The path and query of a URL (absolute or not), with the query's parameters sorted. */
function pathAndSortedQuery(url: string): string {
  const parsed = new URL(url, "http://placeholder");
  parsed.searchParams.sort();
  return parsed.pathname + parsed.search;
}

/** The URL inside a `Link: <url>; rel="next"` header. */
function linkTarget(link: string | null): string {
  const match = /^<([^>]+)>;\s*rel="next"$/.exec(link ?? "");
  assert.ok(match, `a next Link, got ${JSON.stringify(link)}`);
  return match[1]!;
}

describe("http.prefix on berth", () => {
  let berth: BerthProcess;
  let client: RegistryClient;

  before(async () => {
    berth = await startBerth({ configYaml: testConfig({ http: `  prefix: ${PREFIX}` }) });
    client = new RegistryClient(`${berth.url}/registry`);
  });
  after(async () => {
    await berth?.stop();
  });

  it("GET <prefix>v2/ answers 200 with the API version header; GET /v2/ and paths beside the prefix answer 404", async () => {
    const base = await fetch(`${berth.url}/registry/v2/`);
    assert.equal(base.status, 200);
    assert.equal(base.headers.get("docker-distribution-api-version"), "registry/2.0");
    await base.arrayBuffer();
    for (const path of ["/v2/", "/v2/_catalog", "/registryx/v2/", "/regis/v2/", "/v2/registry/v2/"]) {
      const response = await rawRequest(berth.url, "GET", path);
      await expectError(response, 404, "NOT_FOUND");
    }
  });

  it("a push outside the prefix is refused 404 and writes nothing", async () => {
    const bytes = randomBlob(100);
    const response = await rawRequest(berth.url, "POST", `/v2/outside/blobs/uploads/?digest=${digestOf(bytes)}`, { headers: { "Content-Type": "application/octet-stream" }, body: bytes });
    await expectError(response, 404, "NOT_FOUND");
    const repositories = await readdir(join(berth.root!, "docker/registry/v2/repositories")).catch(() => [] as string[]);
    assert.ok(!repositories.includes("outside"), "no repository was created");
  });

  it("POST, PATCH and PUT of a chunked upload: each Location is under the prefix, and the blob is served there", async () => {
    const name = uniqueName("prefix");
    const bytes = randomBlob(3000);
    const { location } = await client.startUpload(name);
    assert.match(location, new RegExp(`^${berth.url}/registry/v2/${name}/blobs/uploads/[0-9a-f-]+\\?_state=`));
    const patched = await client.patchChunk(location, bytes, 0);
    assert.equal(patched.status, 202);
    const next = patched.headers.get("location")!;
    assert.match(next, new RegExp(`^${berth.url}/registry/v2/${name}/blobs/uploads/[0-9a-f-]+\\?_state=`));
    const status = await client.send(next);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), `0-${bytes.length - 1}`);
    const done = await client.send(withQuery(next, { digest: digestOf(bytes) }), { method: "PUT" });
    assert.equal(done.status, 201);
    assert.equal(done.headers.get("location"), `${berth.url}/registry/v2/${name}/blobs/${digestOf(bytes)}`);
    const { response, bytes: served } = await client.get(done.headers.get("location")!);
    assert.equal(response.status, 200);
    assert.equal(digestOf(served), digestOf(bytes));
  });

  it("PUT a manifest: its Location is under the prefix; GET by tag there returns the bytes as pushed", async () => {
    const name = uniqueName("prefix");
    const image = await client.pushImage(name, "v1", randomImage());
    const response = await client.putManifest(name, "v2", image.bytes, image.mediaType);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("location"), `${berth.url}/registry/v2/${name}/manifests/${image.digest}`);
    const { response: got, bytes } = await client.get(`/v2/${name}/manifests/v1`, { Accept: OCI_MANIFEST });
    assert.equal(got.status, 200);
    assert.deepEqual(bytes, image.bytes);
  });

  it("the Links of tags and catalog pagination are under the prefix, and following them reaches the next page", async () => {
    const name = uniqueName("prefix");
    const image = await client.pushImage(name, "a", randomImage());
    await client.pushManifest(name, "b", image.bytes, image.mediaType);
    const first = await client.fetch(`/v2/${name}/tags/list?n=1`);
    assert.deepEqual(await first.json(), { name, tags: ["a"] });
    const next = linkTarget(first.headers.get("link"));
    assert.equal(pathAndSortedQuery(next), `/registry/v2/${name}/tags/list?last=a&n=1`);
    assert.ok(next.startsWith(`${berth.url}/registry/`), next);
    const second = await client.fetch(next);
    assert.deepEqual(await second.json(), { name, tags: ["b"] });

    await client.pushImage(uniqueName("prefix"), "x", randomImage());
    const catalog = await client.fetch("/v2/_catalog?n=1");
    assert.equal(catalog.status, 200);
    await catalog.arrayBuffer();
    assert.match(pathAndSortedQuery(linkTarget(catalog.headers.get("link"))), /^\/registry\/v2\/_catalog\?last=[^&]+&n=1$/);
  });

  it("the web UI is under the prefix: / and <prefix> redirect to <prefix>ui/, which serves the page; /ui/ is 404", async () => {
    for (const path of ["/", "/registry/", "/registry/ui"]) {
      const response = await rawRequest(berth.url, "GET", path);
      assert.equal(response.status, 302, path);
      assert.equal(response.headers.get("location"), "/registry/ui/", path);
    }
    const page = await rawRequest(berth.url, "GET", "/registry/ui/");
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script src="ui\.js"/);
    const settings = await rawRequest(berth.url, "GET", "/registry/ui/api/settings");
    assert.equal(settings.status, 200);
    await expectError(await rawRequest(berth.url, "GET", "/ui/"), 404, "NOT_FOUND");
  });

  it("the main port's /debug/health is under the prefix, and 404 at /debug/health", async () => {
    const health = await rawRequest(berth.url, "GET", "/registry/debug/health");
    assert.equal(health.status, 200);
    await expectError(await rawRequest(berth.url, "GET", "/debug/health"), 404, "NOT_FOUND");
  });
});

describe("http.prefix with http.relativeurls and with http.host", () => {
  let relative: BerthProcess;
  let hosted: BerthProcess;

  before(async () => {
    // Without the trailing slash, as gorilla/mux lets distribution users write it.
    relative = await startBerth({ configYaml: testConfig({ http: "  prefix: /registry\n  relativeurls: true" }) });
    hosted = await startBerth({ configYaml: testConfig({ http: "  prefix: /registry/\n  host: https://r.example.com/registry/" }) });
  });
  after(async () => {
    await relative?.stop();
    await hosted?.stop();
  });

  it("relative Locations carry the prefix (distribution's leave it out)", async () => {
    const client = new RegistryClient(`${relative.url}/registry`);
    const response = await client.send(`/v2/${uniqueName("rel")}/blobs/uploads/`, { method: "POST" });
    assert.equal(response.status, 202);
    assert.match(response.headers.get("location")!, /^\/registry\/v2\/rel\/[^?]+\/blobs\/uploads\/[0-9a-f-]+\?_state=/);
  });

  it("Locations on http.host carry the prefix once", async () => {
    const client = new RegistryClient(`${hosted.url}/registry`);
    const response = await client.send(`/v2/${uniqueName("host")}/blobs/uploads/`, { method: "POST" });
    assert.equal(response.status, 202);
    assert.match(response.headers.get("location")!, /^https:\/\/r\.example\.com\/registry\/v2\/host\/[^?]+\/blobs\/uploads\//);
  });
});

const skopeo = requireProgram("skopeo");
const nginx = requireNginx();

describe("skopeo through nginx mapping / to berth's /registry/", () => {
  const skip = skopeo.skip || nginx.skip;
  let berth: BerthProcess;
  let proxy: NginxProxy;
  let work: string;
  let layouts: TestLayouts;

  before(async () => {
    if (skip) return;
    work = await mkdtemp(join(tmpdir(), "berth-prefix-skopeo-"));
    layouts = await buildTestLayouts(join(work, "source"), { bigLayerBytes: 1 << 20 });
    berth = await startBerth({ configYaml: testConfig({ http: `  prefix: ${PREFIX}` }) });
    // The public "/" is the registry's "/registry/"; the URLs berth generates name "/registry/…",
    // which the second location passes on unchanged.
    proxy = await startNginxProxy([berth.hostPort], [
      { path: "/", upstreamPath: "/registry/" },
      { path: "/registry/", upstreamPath: "" },
    ]);
  });
  after(async () => {
    await proxy?.stop();
    await berth?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("skopeo copy pushes an image to the proxy and copies it back with the same digests, following berth's /registry/ Locations through the proxy", { skip }, async () => {
    const skopeoOk = async (args: string[]): Promise<void> => {
      const result = await run(skopeo.path!, ["--debug", "--insecure-policy", ...args]);
      assert.equal(result.code, 0, `skopeo failed:\n${describeRun(result)}\n--- nginx ---\n${await proxy.errorLog()}\n--- berth ---\n${berth.log().slice(-3000)}`);
    };
    await skopeoOk(["copy", "--dest-tls-verify=false", "--preserve-digests", `oci:${layouts.dir}:${layouts.refs.single}`, `docker://${proxy.hostPort}/through/nginx:v1`]);
    const out = join(work, "out");
    await skopeoOk(["copy", "--src-tls-verify=false", "--preserve-digests", `docker://${proxy.hostPort}/through/nginx:v1`, `oci:${out}:pulled`]);
    const head = await fetch(`${berth.url}/registry/v2/through/nginx/manifests/v1`, { method: "HEAD", headers: { Accept: OCI_MANIFEST } });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("docker-content-digest"), layouts.single.manifest.digest);
    // skopeo asked for "/v2/…"; the upload Locations berth gave named "/registry/v2/…", and skopeo
    // followed them back through the proxy.
    const log = await proxy.accessLog();
    assert.ok(log.some((entry) => entry.uri.startsWith("/v2/through/nginx/")), "skopeo's own requests");
    const pushes = log.filter((entry) => entry.method === "PUT" && entry.uri.startsWith("/registry/v2/through/nginx/blobs/uploads/"));
    assert.deepEqual(log.filter((entry) => entry.status >= 400 && entry.status !== 401 && !(entry.method === "HEAD" && entry.status === 404)), [], "no request failed");
    assert.ok(pushes.length > 0, "skopeo followed berth's prefixed Locations through the proxy");
  });
});

const distribution = requireDistribution();

describe("http.prefix side by side with distribution 2.8", () => {
  let berth: BerthProcess;
  let registry: DistributionProcess;
  let work: string;

  before(async () => {
    if (distribution.skip) return;
    work = await mkdtemp(join(tmpdir(), "berth-prefix-compat-"));
    berth = await startBerth({ configYaml: testConfig({ http: `  prefix: ${PREFIX}` }) });
    registry = await startDistribution({ root: join(work, "distribution"), extraYaml: `  prefix: ${PREFIX}\n`, readyPath: `${PREFIX}v2/` });
  });
  after(async () => {
    await registry?.stop();
    await berth?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** The same operations on one registry: each step's status and the shape of its Location or Link. */
  const bytes = randomBlob(2000);
  const image = randomImage();
  const other = randomImage();

  async function walk(url: string): Promise<string[]> {
    const steps: string[] = [];
    const shape = (location: string | null): string =>
      location === null ? "-" : pathAndSortedQuery(location).replace(/uploads\/[0-9a-f-]{36}/, "uploads/<uuid>").replace(/_state=[^&]+/, "_state=<state>");
    // distribution's Links are relative, berth's absolute (as before http.prefix): their paths are compared.
    const note = (label: string, response: Response, header: "location" | "link" = "location"): void => {
      const value = response.headers.get(header);
      steps.push(`${label} ${response.status} ${shape(header === "link" && value !== null ? linkTarget(value) : value)}`);
    };
    for (const path of ["/registry/v2/", "/v2/", "/registryx/v2/", "/v2/registry/v2/"]) note(`GET ${path}`, await rawRequest(url, "GET", path));
    const client = new RegistryClient(`${url}/registry`);
    const start = await client.send("/v2/same/blobs/uploads/", { method: "POST" });
    note("POST upload", start);
    const patched = await client.patchChunk(client.url(start.headers.get("location")!), bytes, 0);
    note("PATCH", patched);
    const done = await client.send(withQuery(client.url(patched.headers.get("location")!), { digest: digestOf(bytes) }), { method: "PUT" });
    note("PUT upload", done);
    note("GET blob", await client.send(`/v2/same/blobs/${digestOf(bytes)}`));
    // distribution 2.8 ignores the body of POST ?digest=: blobs go up as POST, then PUT with the body.
    const pushBlobs = async (name: string, image: ReturnType<typeof randomImage>): Promise<void> => {
      for (const blob of [image.config, ...image.layers]) {
        const upload = await client.startUpload(name);
        const put = await client.send(withQuery(upload.location, { digest: digestOf(blob) }), { method: "PUT", headers: { "Content-Type": "application/octet-stream" }, body: blob });
        assert.equal(put.status, 201);
      }
    };
    await pushBlobs("same", image);
    for (const tag of ["a", "b"]) note(`PUT manifest ${tag}`, await client.putManifest("same", tag, image.bytes, image.mediaType));
    note("GET manifest", await client.send("/v2/same/manifests/a", { headers: { Accept: OCI_MANIFEST } }));
    // distribution 2.8 does not paginate tags (3.0 does): the status only.
    steps.push(`GET tags n=1 ${(await client.send("/v2/same/tags/list?n=1")).status}`);
    await pushBlobs("other", other);
    assert.equal((await client.putManifest("other", "x", other.bytes, other.mediaType)).status, 201);
    note("GET catalog n=1", await client.send("/v2/_catalog?n=1"), "link");
    return steps;
  }

  it("the same operations give the same status codes and the same Location and Link paths", { skip: distribution.skip }, async () => {
    const ours = await walk(berth.url);
    const theirs = await walk(registry.url);
    assert.deepEqual(ours, theirs);
    assert.ok(ours.includes(`PUT upload 201 /registry/v2/same/blobs/${digestOf(bytes)}`), ours.join("\n"));
    assert.ok(ours.includes(`PUT manifest a 201 /registry/v2/same/manifests/${image.digest}`), ours.join("\n"));
  });
});

describe("a mirror whose upstream is served under a prefix (proxy.remoteurl with the prefix)", () => {
  let upstream: BerthProcess;
  let mirror: BerthProcess;

  before(async () => {
    upstream = await startBerth({ configYaml: testConfig({ http: `  prefix: ${PREFIX}` }) });
    mirror = await startBerth({ configYaml: testConfig({ sections: `proxy:\n  remoteurl: ${upstream.url}/registry/` }) });
  });
  after(async () => {
    await mirror?.stop();
    await upstream?.stop();
  });

  it("pulls a manifest and its blobs through, and lists tags across the upstream's pages (its Links name the prefix)", async () => {
    const up = new RegistryClient(`${upstream.url}/registry`);
    const image = await up.pushImage("library/paged", "t0000", randomImage());
    // More tags than the mirror asks for in one page (1,000), so the second page is reached by the Link.
    for (let i = 1; i <= 1000; i++) await up.pushManifest("library/paged", `t${String(i).padStart(4, "0")}`, image.bytes, image.mediaType);
    const down = new RegistryClient(mirror.url);
    const { response, bytes } = await down.get("/v2/library/paged/manifests/t0000", { Accept: OCI_MANIFEST });
    assert.equal(response.status, 200);
    assert.equal(digestOf(bytes), image.digest);
    for (const layer of image.layers) {
      const blob = await down.get(`/v2/library/paged/blobs/${digestOf(layer)}`);
      assert.equal(blob.response.status, 200);
      assert.equal(digestOf(blob.bytes), digestOf(layer));
    }
    const tags = await down.tags("library/paged", "?n=10000");
    assert.equal(tags.length, 1001);
    assert.equal(tags.at(-1), "t1000");
  });
});
