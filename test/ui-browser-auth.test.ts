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
import { chromium, mainText, openUi, startBrowser, type HeadlessBrowser } from "./support/headless-browser.js";
import { randomImage, RegistryClient } from "./support/registry-client.js";
import { createTestPki, type TestPki } from "./support/test-pki.js";
import { startTokenIssuer, type Acl, type TokenIssuer } from "./support/token-issuer.js";

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
  /** alice: everything on team/*, and the catalog; bob: pull on team/* and the catalog, no delete. */
  const ACL: Acl = (user, type, name, requested) => {
    if (type === "registry" && name === "catalog" && user !== undefined) return requested;
    if (type !== "repository" || !name.startsWith("team/")) return [];
    if (user === "alice") return requested;
    if (user === "bob") return requested.filter((a) => a === "pull");
    return [];
  };

  before(async () => {
    if (skip) return;
    pki = await createTestPki(openssl.path!);
    const signing = await pki.issue("token-signer", { keyType: "ec" });
    issuer = await startTokenIssuer({ signing, service: "berth-ui", issuer: "ui-issuer", users: USERS, acl: ACL });
    berth = await startBerth({
      configYaml: testConfig({ sections: `auth:\n  token:\n    realm: ${issuer.realm}\n    service: berth-ui\n    issuer: ui-issuer\n    rootcertbundle: ${pki.ca.cert}` }),
    });
    issuer.allowOrigin(berth.url);
    const token = await issuer.mint({ sub: "alice", access: [{ type: "repository", name: "team/app", actions: ["pull", "push"] }] });
    const client = new RegistryClient(berth.url, { Authorization: `Bearer ${token}` });
    await client.pushImage("team/app", "v1");
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

  it("bob signs in at the token service, sees the catalog and tags, and his delete is refused with the reason", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/`);
    await signIn(page, "bob", "bob-secret");
    assert.deepEqual(await page.$$eval("#repositories a", (links) => links.map((a) => a.textContent)), ["team/app"]);
    assert.ok(issuer.issued.some((i) => i.user === "bob" && i.scopes.includes("registry:catalog:*")), "the page asked the token service for the catalog scope");
    await page.evaluate(() => (document.documentElement.dataset.ready = "false"));
    await page.click("#repositories a");
    await page.waitForSelector('html[data-ready="true"]');
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
