/**
 * The web UI with access control, in a real browser (chromium through puppeteer-core): the login
 * form against htpasswd, and token auth where the page gets its tokens from the token service
 * (test/support/token-issuer.ts) like any registry client, and deletes the issuer does not grant
 * are refused with the reason shown.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import type { Page } from "puppeteer-core";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { requireProgram } from "./support/external-program.js";
import { chromium, goHash, mainText, openUi, startBrowser, type HeadlessBrowser } from "./support/headless-browser.js";
import { randomImage, RegistryClient } from "./support/registry-client.js";
import { createTestPki, type TestPki } from "./support/test-pki.js";
import { startTokenIssuer, type AccessEntry, type Acl, type TokenIssuer } from "./support/token-issuer.js";

const openssl = requireProgram("openssl");
const skip = chromium.skip || openssl.skip;

async function signIn(page: Page, user: string, password: string): Promise<void> {
  await page.waitForSelector("#login-user");
  await page.type("#login-user", user);
  await page.type("#login-password", password);
  await page.evaluate(() => (document.documentElement.dataset.ready = "false"));
  await page.keyboard.press("Enter");
  await page.waitForSelector('html[data-ready="true"]');
}

describe("web UI in a browser: htpasswd", { skip }, () => {
  let work: string;
  let berth: BerthProcess;
  let browser: HeadlessBrowser;

  before(async () => {
    if (skip) return;
    work = await mkdtemp(join(tmpdir(), "berth-ui-htpasswd-"));
    const htpasswd = join(work, "htpasswd");
    await writeFile(htpasswd, `alice:${await bcrypt.hash("alice-secret", 5)}\n`);
    berth = await startBerth({ configYaml: testConfig({ sections: `auth:\n  htpasswd:\n    realm: berth-ui\n    path: ${htpasswd}` }) });
    const client = new RegistryClient(berth.url, { Authorization: `Basic ${Buffer.from("alice:alice-secret").toString("base64")}` });
    await client.pushImage("team/app", "v1");
    browser = await startBrowser();
  });

  after(async () => {
    await browser?.close();
    await berth?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("the JSON view asks for credentials like the API: 401 UNAUTHORIZED with the Basic challenge", async () => {
    const response = await fetch(`${berth.url}/ui/api/catalog`);
    assert.equal(response.status, 401);
    assert.equal(response.headers.get("www-authenticate"), 'Basic realm="berth-ui"');
    assert.equal(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code, "UNAUTHORIZED");
  });

  it("the page carries auth htpasswd and preloads nothing: the catalog would only be answered 401", async () => {
    const html = await (await fetch(`${berth.url}/ui/`)).text();
    assert.match(html, /data-settings="\{&quot;auth&quot;:&quot;htpasswd&quot;/);
    assert.doesNotMatch(html, /rel="preload"/);
  });

  it("shows the login form first, refuses a wrong password, and shows the catalog after signing in", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/`);
    assert.ok(await page.$("#login-user"), "the login form");
    assert.doesNotMatch(await mainText(page), /team\/app/);
    await signIn(page, "alice", "wrong");
    assert.match(await mainText(page), /That user name and password were not accepted/);
    await page.$eval("#login-user", (i) => ((i as HTMLInputElement).value = ""));
    await signIn(page, "alice", "alice-secret");
    assert.deepEqual(await page.$$eval("#repositories a", (links) => links.map((a) => a.textContent)), ["team/app"]);
    assert.match(await page.$eval("#session", (s) => s.textContent ?? ""), /Signed in as alice/);
    await page.close();
  });
});

describe("web UI in a browser: token auth", { skip }, () => {
  let pki: TestPki;
  let issuer: TokenIssuer;
  let berth: BerthProcess;
  let browser: HeadlessBrowser;
  const USERS = { alice: "alice-secret", bob: "bob-secret" };
  /** alice: everything on team/*; bob: pull on team/* and shared/base, no delete; the catalog to both. */
  const ACL: Acl = (user, type, name, requested) => {
    if (type === "registry" && name === "catalog" && user !== undefined) return requested;
    if (type !== "repository") return [];
    if (user === "alice" && name.startsWith("team/")) return requested;
    if (user === "bob" && (name.startsWith("team/") || name === "shared/base")) return requested.filter((a) => a === "pull");
    return [];
  };
  /** The same, as the token service writes it into a catalog token: a prefix and a name. */
  const catalogGrants = (user: string | undefined): AccessEntry[] => {
    if (user === "alice") return [{ type: "repository", name: "team/*", actions: ["pull", "push", "delete"] }];
    if (user === "bob") return [{ type: "repository", name: "team/*", actions: ["pull"] }, { type: "repository", name: "shared/base", actions: ["pull"] }];
    return [];
  };
  const REPOSITORIES = ["team/app", "team/lib", "shared/base", "other/secret", "other/teamwork"];

  /** A token from the token service for `scope`, as the page gets one (Basic credentials, or none). */
  async function tokenFor(scope: string, user?: keyof typeof USERS): Promise<string> {
    const url = new URL(issuer.realm);
    url.searchParams.set("service", "berth-ui");
    url.searchParams.set("scope", scope);
    const headers: Record<string, string> = user === undefined ? {} : { Authorization: `Basic ${Buffer.from(`${user}:${USERS[user]}`).toString("base64")}` };
    const response = await fetch(url, { headers });
    assert.equal(response.status, 200);
    return ((await response.json()) as { token: string }).token;
  }

  async function catalogJSON(query: string, token: string | undefined): Promise<{ status: number; body: unknown; challenge: string | null }> {
    const response = await fetch(`${berth.url}/ui/api/catalog${query}`, { headers: token === undefined ? {} : { Authorization: `Bearer ${token}` } });
    return { status: response.status, body: await response.json(), challenge: response.headers.get("www-authenticate") };
  }

  before(async () => {
    if (skip) return;
    pki = await createTestPki(openssl.path!);
    const signing = await pki.issue("token-signer", { keyType: "ec" });
    issuer = await startTokenIssuer({ signing, service: "berth-ui", issuer: "ui-issuer", users: USERS, acl: ACL, catalogGrants });
    berth = await startBerth({
      configYaml: testConfig({ sections: `auth:\n  token:\n    realm: ${issuer.realm}\n    service: berth-ui\n    issuer: ui-issuer\n    rootcertbundle: ${pki.ca.cert}` }),
    });
    issuer.allowOrigin(berth.url);
    const token = await issuer.mint({ sub: "admin", access: REPOSITORIES.map((name) => ({ type: "repository", name, actions: ["pull", "push"] })) });
    const client = new RegistryClient(berth.url, { Authorization: `Bearer ${token}` });
    for (const name of REPOSITORIES) await client.pushImage(name, "v1");
    await client.pushImage("team/app", "v2", randomImage());
    browser = await startBrowser();
  });

  after(async () => {
    await browser?.close();
    await berth?.stop();
    await issuer?.close();
    await pki?.cleanup();
  });

  it("an anonymous visitor, whom the token service grants nothing, is asked to sign in", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/`);
    assert.ok(await page.$("#login-user"), "the login form");
    await page.close();
  });

  it("the JSON catalog lists, page by page, exactly what the catalog token grants pull on; search finds nothing else", async () => {
    const bob = await tokenFor("registry:catalog:*", "bob");
    assert.deepEqual((await catalogJSON("?n=2", bob)).body, { repositories: ["shared/base", "team/app"], next: "team/app" });
    assert.deepEqual((await catalogJSON("?n=2&last=team%2Fapp", bob)).body, { repositories: ["team/lib"], next: null });
    assert.deepEqual((await catalogJSON("?q=team", bob)).body, { repositories: ["team/app", "team/lib"], next: null });
    assert.deepEqual((await catalogJSON("?q=secret", bob)).body, { repositories: [], next: null });
    assert.deepEqual((await catalogJSON("?q=other", bob)).body, { repositories: [], next: null });
    // A token naming a repository that does not exist lists only what exists.
    const ghost = await issuer.mint({ sub: "carol", access: [{ type: "repository", name: "ghost/none", actions: ["pull"] }, { type: "repository", name: "other/secret", actions: ["push"] }] });
    assert.deepEqual((await catalogJSON("", ghost)).body, { repositories: [], next: null });
    // `*` grants every name.
    const all = await issuer.mint({ sub: "root", access: [{ type: "repository", name: "*", actions: ["pull"] }] });
    assert.deepEqual((await catalogJSON("", all)).body, { repositories: ["other/secret", "other/teamwork", "shared/base", "team/app", "team/lib"], next: null });
  });

  it("the JSON catalog refuses like /v2/_catalog: 401 with the catalog challenge without a token, and for a token that grants no pull", async () => {
    const none = await catalogJSON("", undefined);
    assert.equal(none.status, 401);
    assert.equal((none.body as { errors: { code: string }[] }).errors[0]!.code, "UNAUTHORIZED");
    assert.equal(none.challenge, `Bearer realm="${issuer.realm}",service="berth-ui",scope="registry:catalog:*"`);
    const anonymous = await catalogJSON("", await tokenFor("registry:catalog:*"));
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.challenge, `Bearer realm="${issuer.realm}",service="berth-ui",scope="registry:catalog:*",error="insufficient_scope"`);
    const broken = await catalogJSON("", "not.a.jwt");
    assert.equal(broken.status, 401);
    assert.match(broken.challenge ?? "", /error="invalid_token"/);
  });

  it("a repository the token does not grant is refused by /ui/api/ exactly as by /v2/: status, error code and challenge", async () => {
    const bob = await tokenFor("repository:other/secret:pull", "bob");
    const headers = { Authorization: `Bearer ${bob}` };
    const ui = await fetch(`${berth.url}/ui/api/repositories/other/secret/tags`, { headers });
    const v2 = await fetch(`${berth.url}/v2/other/secret/tags/list`, { headers });
    assert.equal(ui.status, 401);
    assert.equal(ui.status, v2.status);
    assert.equal(ui.headers.get("www-authenticate"), v2.headers.get("www-authenticate"));
    assert.equal(ui.headers.get("www-authenticate"), `Bearer realm="${issuer.realm}",service="berth-ui",scope="repository:other/secret:pull",error="insufficient_scope"`);
    const codes = async (r: Response) => ((await r.json()) as { errors: { code: string }[] }).errors.map((e) => e.code);
    assert.deepEqual(await codes(ui), await codes(v2));
    const config = await fetch(`${berth.url}/ui/api/repositories/other/secret/configs/sha256:${"0".repeat(64)}`, { headers });
    assert.equal(config.status, 401);
  });

  it("bob signs in at the token service and sees exactly what he may pull; search and a direct address reveal nothing else", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/`);
    await signIn(page, "bob", "bob-secret");
    assert.deepEqual(await page.$$eval("#repositories a", (links) => links.map((a) => a.textContent)), ["shared/base", "team/app", "team/lib"]);
    assert.ok(issuer.issued.some((i) => i.user === "bob" && i.scopes.includes("registry:catalog:*")), "the page asked the token service for the catalog scope");
    await goHash(page, `#/?q=team`);
    assert.deepEqual(await page.$$eval("#repositories a", (links) => links.map((a) => a.textContent)), ["team/app", "team/lib"]);
    await goHash(page, `#/?q=other`);
    assert.equal(await page.$("#repositories"), null);
    assert.match(await mainText(page), /No repository matches/);
    await goHash(page, `#/r/${encodeURIComponent("other/secret")}`);
    assert.match(await mainText(page), /You may not see other\/secret/);
    assert.doesNotMatch(await mainText(page), /v1/);
    await page.close();
  });

  it("bob sees the tags of a repository he may pull, and his delete is refused with the reason", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/`);
    await signIn(page, "bob", "bob-secret");
    await goHash(page, `#/r/${encodeURIComponent("team/app")}`);
    assert.deepEqual(await page.$$eval("tbody tr th", (ths) => ths.map((th) => th.textContent)), ["v1", "v2"]);
    await page.click('button[aria-label="Delete tag team/app:v1"]');
    await page.waitForSelector("#confirm[open]");
    await page.click("#confirm-delete");
    await page.waitForFunction(() => document.querySelector("main .error")?.textContent?.includes("Refused: you may not delete in team/app"));
    const token = await issuer.mint({ sub: "alice", access: [{ type: "repository", name: "team/app", actions: ["pull"] }] });
    assert.equal((await fetch(`${berth.url}/v2/team/app/manifests/v1`, { method: "HEAD", headers: { Authorization: `Bearer ${token}` } })).status, 200);
    await page.close();
  });

  it("alice, whom the token service grants delete, deletes a tag", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/#/r/${encodeURIComponent("team/app")}`);
    await signIn(page, "alice", "alice-secret");
    await page.click('button[aria-label="Delete tag team/app:v2"]');
    await page.waitForSelector("#confirm[open]");
    await page.click("#confirm-delete");
    await page.waitForFunction(() => document.querySelector("main")?.textContent?.includes("Deleted team/app:v2."));
    const token = await issuer.mint({ sub: "alice", access: [{ type: "repository", name: "team/app", actions: ["pull"] }] });
    assert.equal((await fetch(`${berth.url}/v2/team/app/manifests/v2`, { method: "HEAD", headers: { Authorization: `Bearer ${token}` } })).status, 404);
    await page.close();
  });
});
