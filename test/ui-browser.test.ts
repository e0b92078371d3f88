/**
 * The web UI in a real browser (Debian's chromium, headless, through puppeteer-core) against a
 * real berth process: images, a multi-platform index and artifacts with a subject are pushed
 * through the registry API, and the tests check what a person sees and can do.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import type { CDPSession, Page } from "puppeteer-core";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { chromium, goHash, mainText, openUi, startBrowser, type HeadlessBrowser } from "./support/headless-browser.js";
import { bulkName, linkManyRepositories } from "./support/many-repositories.js";
import { descriptorOf, digestOf, indexOf, json, OCI_CONFIG, OCI_EMPTY, OCI_LAYER, OCI_MANIFEST, randomBlob, RegistryClient, EMPTY_JSON } from "./support/registry-client.js";

const skip = chromium.skip;

/** Where screenshots go when BERTH_UI_SCREENSHOTS names a directory (docs/ui/ in the repository). */
const SCREENSHOTS = process.env.BERTH_UI_SCREENSHOTS;

const HOSTILE = `<img src=x onerror="window.__xss='img'"><script>window.__xss='script'</script>"><svg onload="window.__xss='svg'">`;
/** A repository name and a tag with every odd character the grammars allow. */
const ODD_NAME = "odd.name_x__y--z/a-b.c";
const ODD_TAG = "_Weird.Tag-1.x__y";

interface Pushed {
  digest: string;
  size: number;
}

async function pushImage(client: RegistryClient, name: string, tag: string, config: Record<string, unknown>, annotations?: Record<string, string>, layers = 2): Promise<Pushed> {
  const configBytes = json(config);
  await client.pushBlob(name, configBytes);
  const layerBlobs = Array.from({ length: layers }, (_, i) => randomBlob(1000 * (i + 1)));
  for (const layer of layerBlobs) await client.pushBlob(name, layer);
  const manifest = json({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: descriptorOf(OCI_CONFIG, configBytes),
    layers: layerBlobs.map((l) => descriptorOf(OCI_LAYER, l)),
    ...(annotations ? { annotations } : {}),
  });
  return { digest: await client.pushManifest(name, tag, manifest, OCI_MANIFEST), size: manifest.length };
}

/** An artifact (empty config, one blob) whose subject is `subject`, pushed by digest as oras and cosign do. */
async function pushArtifact(client: RegistryClient, name: string, subject: Pushed, artifactType: string): Promise<string> {
  await client.pushBlob(name, EMPTY_JSON);
  const blob = randomBlob(300);
  await client.pushBlob(name, blob);
  const manifest = json({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType,
    config: descriptorOf(OCI_EMPTY, EMPTY_JSON),
    layers: [descriptorOf("application/octet-stream", blob)],
    subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size },
    annotations: { "org.opencontainers.image.created": "2026-01-02T03:04:05Z" },
  });
  const digest = `sha256:${(await import("node:crypto")).createHash("sha256").update(manifest).digest("hex")}`;
  await client.pushManifest(name, digest, manifest, OCI_MANIFEST);
  return digest;
}

function imageConfig(architecture: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    created: "2026-03-04T05:06:07Z",
    architecture,
    os: "linux",
    config: {
      Entrypoint: ["/usr/bin/app", "--serve"],
      Cmd: ["--port", "8080"],
      Env: ["PATH=/usr/local/bin:/usr/bin", "APP_MODE=production"],
      Labels: { "org.opencontainers.image.source": "https://example.com/app" },
      ExposedPorts: { "8080/tcp": {} },
      WorkingDir: "/srv",
    },
    rootfs: { type: "layers", diff_ids: [] },
    history: [{ created: "2026-03-04T05:06:07Z", created_by: "COPY app /usr/bin/app" }],
    ...extra,
  };
}

/** Sums the bytes the network carried (compressed, headers included) for one page load. */
async function transferredBytes(page: Page, url: string): Promise<{ bytes: number; urls: string[] }> {
  const cdp: CDPSession = await page.createCDPSession();
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
  let bytes = 0;
  const urls: string[] = [];
  cdp.on("Network.requestWillBeSent", (e) => urls.push(e.request.url));
  cdp.on("Network.loadingFinished", (e) => (bytes += e.encodedDataLength));
  await openUi(page, url);
  await page.waitForNetworkIdle({ idleTime: 200 });
  await cdp.detach();
  return { bytes, urls };
}

async function screenshot(page: Page, name: string): Promise<void> {
  if (SCREENSHOTS === undefined) return;
  await mkdir(SCREENSHOTS, { recursive: true });
  await writeFile(`${SCREENSHOTS}/${name}.png`, await page.screenshot({ fullPage: false }));
}

describe("web UI in a browser: an open registry", { skip }, () => {
  let berth: BerthProcess;
  let browser: HeadlessBrowser;
  let client: RegistryClient;
  let v1: Pushed;

  before(async () => {
    if (skip) return;
    berth = await startBerth({ configYaml: testConfig() });
    client = new RegistryClient(berth.url);
    v1 = await pushImage(client, "team/app", "v1", imageConfig("amd64"), { "org.opencontainers.image.description": "the app" });
    // A later push: its tag link is newer (push times have the filesystem's resolution).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await pushImage(client, "team/app", "v2", imageConfig("amd64"));
    await pushArtifact(client, "team/app", v1, "application/vnd.dev.cosign.artifact.sig.v1+json");
    await pushArtifact(client, "team/app", v1, "application/spdx+json");
    await pushArtifact(client, "team/app", v1, "application/vnd.cncf.notary.signature");
    const amd = await pushImage(client, "team/multi", "amd64-only", imageConfig("amd64"));
    const arm = await pushImage(client, "team/multi", "arm64-only", imageConfig("arm64", { variant: "v8" }));
    const index = indexOf([
      { mediaType: OCI_MANIFEST, digest: amd.digest, size: amd.size },
      { mediaType: OCI_MANIFEST, digest: arm.digest, size: arm.size },
    ]);
    (index.manifest.manifests as Array<Record<string, unknown>>)[1]!.platform = { os: "linux", architecture: "arm64", variant: "v8" };
    await client.pushManifest("team/multi", "latest", json(index.manifest), index.mediaType);
    await pushImage(client, ODD_NAME, ODD_TAG, imageConfig("amd64", { config: { Labels: { evil: HOSTILE }, Env: [HOSTILE] } }), { "org.example.note": HOSTILE, [HOSTILE]: "key" });
    await pushImage(client, "team/doomed", "gone-soon", imageConfig("amd64"));
    await pushImage(client, "team/doomed", "stays", imageConfig("amd64"));
    browser = await startBrowser();
  });

  after(async () => {
    await browser?.close();
    await berth?.stop();
  });

  it("GET / redirects to the UI, whose first load stays under 100 KB on the wire and asks nothing of other origins", async () => {
    const page = await browser.page();
    const { bytes, urls } = await transferredBytes(page, `${berth.url}/`);
    assert.equal(page.url(), `${berth.url}/ui/`);
    assert.ok(bytes > 0 && bytes < 100 * 1024, `first load transferred ${bytes} bytes`);
    const foreign = urls.filter((u) => !u.startsWith(berth.url) && !u.startsWith("data:"));
    assert.deepEqual(foreign, []);
    // The first catalog page is preloaded with the script, and the script's request reuses it: one
    // request for it, and no request for the settings (the page carries them).
    assert.deepEqual(urls.filter((u) => u.includes("/ui/api/")), [`${berth.url}/ui/api/catalog?n=50`]);
    console.log(`# first page load: ${bytes} bytes transferred in ${urls.length} requests`);
    await page.close();
  });

  it("the catalog lists every repository, and the search shows only the names that match", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/`);
    const names = await page.$$eval("#repositories a", (links) => links.map((a) => a.textContent));
    assert.deepEqual([...names].sort(), [ODD_NAME, "team/app", "team/doomed", "team/multi"].sort());
    await screenshot(page, "catalog-light");
    await page.type("#search", "mult");
    await page.evaluate(() => (document.documentElement.dataset.ready = "false"));
    await page.keyboard.press("Enter");
    await page.waitForSelector('html[data-ready="true"]');
    assert.deepEqual(await page.$$eval("#repositories a", (links) => links.map((a) => a.textContent)), ["team/multi"]);
    await page.close();
  });

  it("the repository page shows each tag's digest, platform, size, push time and pull commands, newest first on request", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/#/r/${encodeURIComponent("team/app")}`);
    const rows = await page.$$eval("tbody tr", (trs) => trs.map((tr) => (tr as HTMLElement).innerText));
    assert.equal(rows.length, 2);
    assert.match(rows[0]!, /^v1\b/);
    assert.match(rows[0]!, /linux\/amd64/);
    assert.match(rows[0]!, /application\/vnd\.oci\.image\.manifest\.v1\+json/);
    assert.match(rows[0]!, /\d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    const pulls = await page.$$eval(".pull input", (inputs) => inputs.map((i) => (i as HTMLInputElement).value));
    assert.ok(pulls.includes(`docker pull ${berth.hostPort}/team/app:v1`), pulls.join("\n"));
    assert.ok(pulls.includes(`docker pull ${berth.hostPort}/team/app@${v1.digest}`));
    await screenshot(page, "repository-light");
    await page.evaluate(() => (document.documentElement.dataset.ready = "false"));
    await page.select("#order", "newest");
    await page.waitForSelector('html[data-ready="true"]');
    const newest = await page.$$eval("tbody tr th", (ths) => ths.map((th) => th.textContent));
    assert.deepEqual(newest, ["v2", "v1"]);
    await page.close();
  });

  it("the manifest page shows the image config, the layers, the referrers by kind, and the raw JSON", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/#/m/${encodeURIComponent("team/app")}/v1`);
    await page.waitForFunction(() => !document.querySelector("#referrers-title")?.parentElement?.querySelector(".status") && document.querySelector("#config-title + dl"));
    const text = await mainText(page);
    for (const expected of ["2026-03-04 05:06 UTC", "linux/amd64", '["/usr/bin/app","--serve"]', '["--port","8080"]', "APP_MODE=production", "8080/tcp", "org.opencontainers.image.source", "COPY app /usr/bin/app", "/srv"]) {
      assert.ok(text.includes(expected), `missing ${expected}`);
    }
    assert.match(text, /2 layers, 2\.9 KiB compressed/);
    assert.match(text, /Cosign signatures \(1\)/);
    assert.match(text, /SBOMs \(1\)/);
    assert.match(text, /Notation signatures \(1\)/);
    const raw = JSON.parse(await page.$eval("#raw", (el) => el.textContent ?? "")) as { config: { mediaType: string } };
    assert.equal(raw.config.mediaType, OCI_CONFIG);
    await screenshot(page, "manifest-light");
    // A referrer is a link to its own manifest page, which links back to its subject.
    await page.evaluate(() => (document.documentElement.dataset.ready = "false"));
    await page.click("#referrers-title ~ ul a");
    await page.waitForSelector('html[data-ready="true"]');
    assert.match(await mainText(page), new RegExp(`Refers to\\s+${v1.digest}`));
    await page.close();
  });

  it("an index shows its platforms, each a link to its manifest", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/#/r/${encodeURIComponent("team/multi")}`);
    const latest = await page.$$eval("tbody tr", (trs) => trs.map((tr) => (tr as HTMLElement).innerText).filter((t) => t.startsWith("latest")));
    assert.match(latest[0]!, /linux\/amd64, linux\/arm64\/v8/);
    await goHash(page, `#/m/${encodeURIComponent("team/multi")}/latest`);
    const platforms = await page.$$eval("tbody tr th", (ths) => ths.map((th) => th.textContent));
    assert.deepEqual(platforms, ["linux/amd64", "linux/arm64/v8"]);
    await page.evaluate(() => (document.documentElement.dataset.ready = "false"));
    await page.click("tbody tr:nth-child(2) a");
    await page.waitForSelector('html[data-ready="true"]');
    await page.waitForSelector("#config-title + dl");
    assert.match(await mainText(page), /linux\/arm64\/v8/);
    await page.close();
  });

  it("odd names and tags work, and HTML and script in annotations, labels and env are shown as text, never run", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/#/r/${encodeURIComponent(ODD_NAME)}`);
    assert.equal(await page.$eval("main h1", (h) => h.textContent), ODD_NAME);
    await page.evaluate(() => (document.documentElement.dataset.ready = "false"));
    await page.click("tbody tr th a");
    await page.waitForSelector('html[data-ready="true"]');
    await page.waitForSelector("#config-title + dl");
    const text = await mainText(page);
    assert.ok(text.includes(`${ODD_NAME}:${ODD_TAG}`));
    assert.ok(text.split(HOSTILE).length - 1 >= 4, "the hostile strings appear verbatim (annotation value and key, label, env)");
    assert.equal(await page.evaluate(() => (window as unknown as { __xss?: string }).__xss), undefined);
    assert.equal(await page.$$eval("main img, main script, main svg", (els) => els.length), 0);
    await page.close();
  });

  it("an address naming no valid repository is explained, not requested", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/#/r/${encodeURIComponent("UPPER/../case")}`);
    assert.match(await mainText(page), /is not a valid repository name/);
    await goHash(page, `#/m/team%2Fapp/${encodeURIComponent("<b>x</b>")}`);
    assert.match(await mainText(page), /“<b>x<\/b>” is neither a tag nor a digest/);
    await page.close();
  });

  it("deleting a tag asks first: cancel keeps it, confirm deletes it", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/#/r/${encodeURIComponent("team/doomed")}`);
    await page.click('button[aria-label="Delete tag team/doomed:gone-soon"]');
    await page.waitForSelector("#confirm[open]");
    assert.match(await page.$eval("#confirm-text", (p) => p.textContent ?? ""), /Delete tag team\/doomed:gone-soon\? This cannot be undone/);
    await page.click('#confirm button[value="cancel"]');
    assert.equal((await client.fetch("/v2/team/doomed/manifests/gone-soon", { method: "HEAD" })).status, 200);
    await page.click('button[aria-label="Delete tag team/doomed:gone-soon"]');
    await page.waitForSelector("#confirm[open]");
    await page.click("#confirm-delete");
    await page.waitForFunction(() => document.querySelector("main")?.textContent?.includes("Deleted team/doomed:gone-soon."));
    assert.equal((await client.fetch("/v2/team/doomed/manifests/gone-soon", { method: "HEAD" })).status, 404);
    assert.equal((await client.fetch("/v2/team/doomed/manifests/stays", { method: "HEAD" })).status, 200);
    await page.close();
  });

  it("a write another site's page sends through the browser is refused, and nothing is deleted", async () => {
    // Any page that is not the registry's origin: the token-less open registry is the worst case.
    const page = await browser.page();
    await page.goto("data:text/html,<title>elsewhere</title>");
    const outcome = await page.evaluate(async (url) => {
      try {
        const response = await fetch(`${url}/v2/team/doomed/manifests/stays`, { method: "DELETE" });
        return `status ${response.status}`;
      } catch (err) {
        return `blocked: ${String(err)}`;
      }
    }, berth.url);
    assert.match(outcome, /^blocked/);
    const form = await page.evaluate(async (url) => {
      // A no-cors request is sent without a preflight; the guard refuses it on the server.
      await fetch(`${url}/v2/team/doomed/manifests/stays`, { method: "POST", mode: "no-cors", body: "x" }).catch(() => undefined);
      return "sent";
    }, berth.url);
    assert.equal(form, "sent");
    assert.equal((await client.fetch("/v2/team/doomed/manifests/stays", { method: "HEAD" })).status, 200);
    await page.close();
  });

  it("works from the keyboard: every field has a label, and Tab reaches the search box first", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/`);
    const unlabelled = await page.$$eval("input, select", (els) => els.filter((el) => (el as HTMLInputElement).labels?.length === 0 && !el.getAttribute("aria-label")).map((el) => el.outerHTML));
    assert.deepEqual(unlabelled, []);
    // The page puts the focus on its content, so the first Tab reaches the search box.
    assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "search");
    // From the top of the document, the skip link comes first.
    assert.equal(await page.evaluate(() => document.querySelector("a[href], button, input, select")?.id), "skip");
    await page.close();
  });

  it("dark and phone layouts render the same content (screenshots in docs/ui/)", async () => {
    const dark = await browser.page({ dark: true });
    await openUi(dark, `${berth.url}/ui/#/m/${encodeURIComponent("team/app")}/v1`);
    await dark.waitForSelector("#config-title + dl");
    const background = await dark.$eval("body", (b) => getComputedStyle(b).backgroundColor);
    assert.equal(background, "rgb(13, 17, 23)");
    await screenshot(dark, "manifest-dark");
    await goHash(dark, "#/");
    await screenshot(dark, "catalog-dark");
    await dark.close();
    const phone = await browser.page({ phone: true });
    await openUi(phone, `${berth.url}/ui/#/r/${encodeURIComponent("team/app")}`);
    // Nothing wider than the screen but the tables, which scroll inside their own box.
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
    await screenshot(phone, "repository-phone");
    await phone.close();
  });
});

describe("web UI in a browser: deletes turned off", { skip }, () => {
  let berth: BerthProcess;
  let browser: HeadlessBrowser;

  before(async () => {
    if (skip) return;
    berth = await startBerth({ configYaml: testConfig({ deleteEnabled: false }) });
    await pushImage(new RegistryClient(berth.url), "team/app", "v1", imageConfig("amd64"));
    browser = await startBrowser();
  });

  after(async () => {
    await browser?.close();
    await berth?.stop();
  });

  it("offers no delete button and says why", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/#/r/${encodeURIComponent("team/app")}`);
    assert.equal(await page.$$eval("main button.danger", (b) => b.length), 0);
    assert.match(await mainText(page), /Deleting is turned off on this registry \(storage\.delete\.enabled\)/);
    await page.close();
  });
});

describe("web UI in a browser: 10,000 repositories", { skip }, () => {
  const COUNT = 10_000;
  let berth: BerthProcess;
  let browser: HeadlessBrowser;

  before(async () => {
    if (skip) return;
    berth = await startBerth({ configYaml: testConfig() });
    const image = await new RegistryClient(berth.url).pushImage(bulkName(0), "latest");
    await linkManyRepositories(berth.root!, COUNT, { manifest: image.digest, blobs: [digestOf(image.config), ...image.layers.map((l) => digestOf(l))] });
    browser = await startBrowser();
  });

  after(async () => {
    await browser?.close();
    await berth?.stop();
  });

  it("the first catalog page shows 50 names and a next page; the search finds one name among them all", async () => {
    const page = await browser.page();
    await openUi(page, `${berth.url}/ui/`);
    const names = await page.$$eval("#repositories a", (links) => links.map((a) => a.textContent));
    assert.deepEqual(names, Array.from({ length: 50 }, (_, i) => bulkName(i)));
    await page.evaluate(() => (document.documentElement.dataset.ready = "false"));
    await page.click('a[rel="next"]');
    await page.waitForSelector('html[data-ready="true"]');
    assert.equal(await page.$eval("#repositories a", (a) => a.textContent), bulkName(50));
    await goHash(page, "#/?q=repo-09999");
    assert.deepEqual(await page.$$eval("#repositories a", (links) => links.map((a) => a.textContent)), [bulkName(9999)]);
    await goHash(page, "#/?q=repo-099");
    assert.equal(await page.$$eval("#repositories a", (links) => links.length), 50, "100 names match: a first page of 50");
    await page.close();
  });
});

describe("web UI in a browser under http.prefix", { skip }, () => {
  let berth: BerthProcess;
  let browser: HeadlessBrowser;

  before(async () => {
    if (skip) return;
    berth = await startBerth({ configYaml: testConfig({ http: "  prefix: /registry/" }) });
    await pushImage(new RegistryClient(`${berth.url}/registry`), "team/app", "v1", imageConfig("amd64"));
    browser = await startBrowser();
  });

  after(async () => {
    await browser?.close();
    await berth?.stop();
  });

  it("GET / redirects to <prefix>ui/, whose page reads the catalog and a manifest under the prefix", async () => {
    const page = await browser.page();
    const requested: string[] = [];
    page.on("request", (request) => requested.push(new URL(request.url()).pathname));
    await openUi(page, `${berth.url}/`);
    assert.equal(page.url(), `${berth.url}/registry/ui/`);
    assert.deepEqual(await page.$$eval("#repositories a", (links) => links.map((a) => a.textContent)), ["team/app"]);
    await goHash(page, `#/m/${encodeURIComponent("team/app")}/v1`);
    await page.waitForSelector("#config-title + dl");
    assert.ok(requested.includes("/registry/v2/team/app/manifests/v1"), requested.join("\n"));
    assert.deepEqual(requested.filter((path) => path !== "/" && !path.startsWith("/registry/")), []);
    await page.close();
  });
});
