/**
 * The web UI over HTTP, without a browser: its paths, headers and encodings, ui.enabled, the JSON
 * view's answers and its refusals of bad input, and the cross-site write guard.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ConfigError } from "../src/config/config.js";
import { describeConfig, parseConfig } from "../src/config/load-config.js";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { run } from "./support/external-program.js";
import { BERTH_CLI } from "./support/berth-process.js";
import { expectError, RegistryClient } from "./support/registry-client.js";

const MINIMAL = "version: 0.1\nstorage:\n  inmemory:\n";

describe("ui.enabled in the configuration", () => {
  it("is on by default, off with ui.enabled: false or REGISTRY_UI_ENABLED=false, and described by config check", () => {
    assert.equal(parseConfig(MINIMAL, {}, "t.yml").config.ui.enabled, true);
    assert.equal(parseConfig(`${MINIMAL}ui:\n  enabled: false\n`, {}, "t.yml").config.ui.enabled, false);
    const fromEnv = parseConfig(MINIMAL, { REGISTRY_UI_ENABLED: "false" }, "t.yml");
    assert.equal(fromEnv.config.ui.enabled, false);
    assert.deepEqual(fromEnv.warnings, []);
    assert.deepEqual(describeConfig(fromEnv.config).ui, { enabled: false });
  });

  it("refuses a value that is not a boolean, naming the key", () => {
    assert.throws(
      () => parseConfig(`${MINIMAL}ui:\n  enabled: sometimes\n`, {}, "t.yml"),
      (err: unknown) => err instanceof ConfigError && err.key === "ui.enabled",
    );
  });

  it("warns about an unknown key under ui", () => {
    assert.deepEqual(parseConfig(`${MINIMAL}ui:\n  theme: pink\n`, {}, "t.yml").warnings, ["unknown key ui.theme"]);
  });

  it("berth config check prints ui.enabled", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-ui-config-"));
    try {
      await writeFile(join(dir, "config.yml"), MINIMAL);
      const result = await run(process.execPath, [BERTH_CLI, "config", "check", join(dir, "config.yml")], { env: { ...process.env, REGISTRY_UI_ENABLED: "false" } });
      assert.match(result.stdout, /"ui": \{\n\s*"enabled": false\n\s*\}/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("web UI over HTTP", () => {
  let berth: BerthProcess;
  let client: RegistryClient;

  before(async () => {
    berth = await startBerth({ configYaml: testConfig() });
    client = new RegistryClient(berth.url);
    for (const name of ["alpha/app", "alpha/tool", "beta/app", "gamma"]) await client.pushImage(name, "v1");
  });

  after(async () => {
    await berth?.stop();
  });

  it("GET / and GET /ui redirect to /ui/", async () => {
    for (const path of ["/", "/ui"]) {
      const response = await client.fetch(path);
      assert.equal(response.status, 302);
      assert.equal(response.headers.get("location"), "/ui/");
    }
  });

  it("GET /ui/ answers the page, compressed as asked, with a strict content security policy", async () => {
    const identity = await client.fetch("/ui/", { headers: { "Accept-Encoding": "identity" } });
    assert.equal(identity.status, 200);
    assert.equal(identity.headers.get("content-type"), "text/html; charset=utf-8");
    const html = await identity.text();
    assert.match(html, /<script src="ui.js" defer><\/script>/);
    const csp = identity.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    // fetch decodes the body itself: the header and the smaller length show what travelled.
    for (const [accept, coding] of [["br", "br"], ["gzip, br;q=0", "gzip"]] as const) {
      const compressed = await client.get("/ui/ui.js", { "Accept-Encoding": accept });
      assert.equal(compressed.response.headers.get("content-encoding"), coding);
      const plain = await client.get("/ui/ui.js", { "Accept-Encoding": "identity" });
      assert.equal(compressed.bytes.toString(), plain.bytes.toString());
      assert.ok(Number(compressed.response.headers.get("content-length")) < plain.bytes.length / 2);
    }
    const again = await client.fetch("/ui/", { headers: { "If-None-Match": identity.headers.get("etag")! } });
    assert.equal(again.status, 304);
  });

  it("an unknown UI path is 404 NOT_FOUND, a write to the UI 405 UNSUPPORTED", async () => {
    await expectError(await client.send("/ui/nope.js"), 404, "NOT_FOUND");
    await expectError(await client.send("/ui/api/nope"), 404, "NOT_FOUND");
    await expectError(await client.send("/ui/", { method: "POST", body: "x" }), 405, "UNSUPPORTED");
  });

  it("GET /ui/api/settings tells the page how to sign in and whether deletes can work", async () => {
    const { body } = await client.getJSON("/ui/api/settings");
    assert.deepEqual(body, { auth: "none", deleteEnabled: true, readOnly: false });
  });

  it("the page carries the same settings, and on an open registry preloads the first catalog page its script asks for", async () => {
    const html = await (await client.fetch("/ui/", { headers: { "Accept-Encoding": "identity" } })).text();
    const attribute = /<html lang="en" data-settings="([^"]*)">/.exec(html);
    assert.ok(attribute, "the settings attribute");
    const decoded = attribute[1]!.replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&amp;/g, "&");
    assert.deepEqual(JSON.parse(decoded), { auth: "none", deleteEnabled: true, readOnly: false });
    assert.match(html, /<link rel="preload" href="api\/catalog\?n=50" as="fetch" crossorigin="anonymous">/);
    assert.doesNotMatch(html, /\{\{/);
  });

  it("GET /ui/api/catalog pages the catalog, and ?q= searches names", async () => {
    assert.deepEqual((await client.getJSON("/ui/api/catalog?n=2")).body, { repositories: ["alpha/app", "alpha/tool"], next: "alpha/tool" });
    assert.deepEqual((await client.getJSON("/ui/api/catalog?n=2&last=alpha/tool")).body, { repositories: ["beta/app", "gamma"], next: null });
    assert.deepEqual((await client.getJSON("/ui/api/catalog?q=APP")).body, { repositories: ["alpha/app", "beta/app"], next: null });
    assert.deepEqual((await client.getJSON("/ui/api/catalog?q=app&n=1")).body, { repositories: ["alpha/app"], next: "alpha/app" });
    assert.deepEqual((await client.getJSON("/ui/api/catalog?q=app&n=1&last=alpha/app")).body, { repositories: ["beta/app"], next: null });
    assert.deepEqual((await client.getJSON("/ui/api/catalog?q=%3Cscript%3E")).body, { repositories: [], next: null });
  });

  it("GET /ui/api/repositories/<name>/tags summarizes each tag", async () => {
    const { body } = await client.getJSON<{ total: number; tags: Array<Record<string, unknown>> }>("/ui/api/repositories/alpha/app/tags");
    assert.equal(body.total, 1);
    const [tag] = body.tags;
    assert.equal(tag!.tag, "v1");
    assert.match(String(tag!.digest), /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(tag!.platforms, ["linux/amd64"]);
    assert.equal(typeof tag!.size, "number");
    assert.ok(!Number.isNaN(Date.parse(String(tag!.pushed))));
  });

  it("refuses bad input to the JSON view with the registry's error codes", async () => {
    await expectError(await client.send("/ui/api/catalog?n=-1"), 400, "PAGINATION_NUMBER_INVALID");
    await expectError(await client.send("/ui/api/repositories/alpha/app/tags?offset=x"), 400, "PAGINATION_NUMBER_INVALID");
    await expectError(await client.send("/ui/api/repositories/alpha/app/tags?order=random"), 400, "PAGINATION_NUMBER_INVALID");
    await expectError(await client.send("/ui/api/repositories/Alpha/tags"), 400, "NAME_INVALID");
    await expectError(await client.send("/ui/api/repositories/%E0%A4%A/tags"), 400, "NAME_INVALID");
    await expectError(await client.send("/ui/api/repositories/nobody/here/tags"), 404, "NAME_UNKNOWN");
    await expectError(await client.send("/ui/api/repositories/alpha/app/configs/sha256:xyz"), 400, "DIGEST_INVALID");
    await expectError(await client.send(`/ui/api/repositories/alpha/app/configs/sha256:${"0".repeat(64)}`), 404, "BLOB_UNKNOWN");
  });

  it("a write with another site's Origin or Sec-Fetch-Site is 403 DENIED and deletes nothing; registry clients are untouched", async () => {
    await expectError(await client.send("/v2/alpha/app/manifests/v1", { method: "DELETE", headers: { Origin: "http://evil.example" } }), 403, "DENIED");
    await expectError(await client.send("/v2/alpha/app/manifests/v1", { method: "DELETE", headers: { "Sec-Fetch-Site": "cross-site" } }), 403, "DENIED");
    await expectError(await client.send("/v2/alpha/app/manifests/v1", { method: "DELETE", headers: { Origin: "null" } }), 403, "DENIED");
    await expectError(await client.send("/v2/alpha/app/blobs/uploads/", { method: "POST", headers: { Origin: "http://evil.example" } }), 403, "DENIED");
    assert.equal((await client.fetch("/v2/alpha/app/manifests/v1", { method: "HEAD" })).status, 200);
    // Reads from anywhere still work, and so does a write from the registry's own origin.
    assert.equal((await client.fetch("/v2/alpha/app/manifests/v1", { method: "HEAD", headers: { Origin: "http://evil.example" } })).status, 200);
    assert.equal((await client.fetch("/v2/gamma/manifests/v1", { method: "DELETE", headers: { Origin: berth.url, "Sec-Fetch-Site": "same-origin" } })).status, 202);
    assert.equal((await client.fetch("/v2/beta/app/manifests/v1", { method: "DELETE" })).status, 202);
  });
});

describe("web UI turned off", () => {
  let berth: BerthProcess;

  before(async () => {
    berth = await startBerth({ configYaml: `${testConfig()}ui:\n  enabled: false\n` });
  });

  after(async () => {
    await berth?.stop();
  });

  it("serves no UI: / and /ui/ are 404 NOT_FOUND, and cross-site writes meet the API as before", async () => {
    const client = new RegistryClient(berth.url);
    await expectError(await client.send("/"), 404, "NOT_FOUND");
    await expectError(await client.send("/ui/"), 404, "NOT_FOUND");
    await expectError(await client.send("/ui/api/catalog"), 404, "NOT_FOUND");
    await expectError(await client.send("/v2/x/manifests/latest", { method: "DELETE", headers: { Origin: "http://evil.example" } }), 404, "MANIFEST_UNKNOWN");
  });
});
