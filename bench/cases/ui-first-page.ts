/**
 * The web UI at 10,000 repositories: the time from opening the UI in a fresh headless chromium tab
 * (no cache; the browser itself already running) to the rendered first catalog page, wall clock
 * as the benchmark sees it (goal < 1 s), and the JSON view's search over every name: the first
 * search, a second after the page (whose catalog request started reading every name), and a
 * following one. distribution has no UI: on it the case times its first catalog page of 50
 * from /v2/_catalog, the least any bolted-on UI has to wait for (a reference, not a comparison).
 */
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { bulkName, linkManyRepositories } from "../../test/support/many-repositories.js";
import { digestOf, randomImage, RegistryClient } from "../../test/support/registry-client.js";
import { chromium, startBrowser, type HeadlessBrowser } from "../../test/support/headless-browser.js";
import type { RunningServer } from "../servers.js";
import type { BenchCase } from "../types.js";

const REPOSITORIES = 10_000;

interface State {
  browser: HeadlessBrowser | undefined;
}

async function timed(url: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(url);
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return performance.now() - started;
}

export const uiFirstPage: BenchCase<State> = {
  name: "ui-first-page",
  description: `web UI: ms from opening /ui/ to the rendered first catalog page, ${REPOSITORIES} repositories (distribution: its first /v2/_catalog page, as a reference)`,
  unit: "ms",
  higherIsBetter: false,
  figures: [
    { key: "htmlMs", label: "page clock: HTML received, ms", higherIsBetter: false },
    { key: "scriptMs", label: "page clock: script run (DOMContentLoaded), ms", higherIsBetter: false },
    { key: "listMs", label: "page clock: list rendered (≤), ms", higherIsBetter: false },
    { key: "searchColdMs", label: "first search ms, 1 s after the page", higherIsBetter: false },
    { key: "searchWarmMs", label: "next search ms", higherIsBetter: false },
  ],
  unavailable: () => (chromium.skip === false ? undefined : chromium.skip),
  async setup(srv: RunningServer): Promise<State> {
    // Chunked uploads: distribution 2.8 answers a monolithic POST ?digest= with 202, not 201.
    const client = new RegistryClient(srv.url);
    const image = randomImage();
    for (const blob of [image.config, ...image.layers]) await client.pushBlob(bulkName(0), blob, { chunkSize: 1 << 20 });
    await client.pushManifest(bulkName(0), "latest", image.bytes, image.mediaType);
    await linkManyRepositories(join(srv.dir, "storage"), REPOSITORIES, { manifest: image.digest, blobs: [digestOf(image.config), ...image.layers.map((l) => digestOf(l))] });
    return { browser: srv.kind === "berth" ? await startBrowser() : undefined };
  },
  async run(srv: RunningServer, _ctx, state: State) {
    if (state.browser === undefined) return { value: await timed(`${srv.url}/v2/_catalog?n=50`) };
    const page = await state.browser.page();
    // The browser is running, as a user's is: its first tab's start-up is not the UI's.
    await page.goto("about:blank");
    const started = performance.now();
    await page.goto(`${srv.url}/ui/`, { waitUntil: "domcontentloaded" });
    await page.waitForSelector('html[data-ready="true"] #repositories a');
    const value = performance.now() - started;
    // Where the time went, by the page's own clock (0 = the navigation's start, the renderer's
    // start-up included): the HTML received, the script run, the list rendered.
    const inPage = await page.evaluate(() => {
      // Runs in the page: the DOM's Performance, which Node's typings do not describe.
      const timing = performance as unknown as { getEntriesByType(type: string): Array<{ responseEnd: number; domContentLoadedEventEnd: number }> };
      const nav = timing.getEntriesByType("navigation")[0]!;
      return { htmlMs: nav.responseEnd, scriptMs: nav.domContentLoadedEventEnd, listMs: performance.now() };
    });
    const shown = await page.$$eval("#repositories a", (links) => links.length);
    if (shown !== 50) throw new Error(`the first page shows ${shown} names, not 50`);
    await page.close();
    // The catalog page started reading every name for the search; a person types for a moment.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const searchColdMs = await timed(`${srv.url}/ui/api/catalog?q=repo-09999`);
    const searchWarmMs = await timed(`${srv.url}/ui/api/catalog?q=repo-05`);
    return { value, extra: { searchColdMs, searchWarmMs, ...inPage } };
  },
  async teardown(state: State) {
    await state.browser?.close();
  },
};
