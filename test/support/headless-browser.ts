/**
 * Debian's chromium, started headless by puppeteer-core for the web UI tests, and stopped by its
 * PID. A missing chromium skips those tests on a developer's machine and fails them under CI=true
 * (test/support/external-program.ts).
 */
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { requireProgram, type ProgramCheck } from "./external-program.js";

export const chromium: ProgramCheck = requireProgram("chromium");

export interface HeadlessBrowser {
  browser: Browser;
  /** A new tab (its own storage: a new browser context), with the colour scheme and width asked for. */
  page(options?: { dark?: boolean; phone?: boolean }): Promise<Page>;
  close(): Promise<void>;
}

export async function startBrowser(): Promise<HeadlessBrowser> {
  if (chromium.path === undefined) throw new Error("chromium is not installed");
  const browser = await puppeteer.launch({
    executablePath: chromium.path,
    headless: true,
    // The tests run as root in CI, where chromium's sandbox cannot start; nothing untrusted is browsed.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"],
  });
  const pid = browser.process()?.pid;
  return {
    browser,
    async page(options = {}) {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: options.dark ? "dark" : "light" }]);
      await page.setViewport(options.phone ? { width: 390, height: 844, deviceScaleFactor: 1, isMobile: true, hasTouch: true } : { width: 1280, height: 900 });
      return page;
    },
    async close() {
      await browser.close().catch(() => undefined);
      if (pid !== undefined) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    },
  };
}

/** Opens a UI address and waits until the page says it has rendered it. */
export async function openUi(page: Page, url: string): Promise<void> {
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForSelector('html[data-ready="true"]');
}

/** Follows a hash address inside an open page and waits for it to render. */
export async function goHash(page: Page, hash: string): Promise<void> {
  await page.evaluate((h) => {
    document.documentElement.dataset.ready = "false";
    location.hash = h;
  }, hash);
  await page.waitForSelector('html[data-ready="true"]');
}

/** The visible text of the page's main region. */
export function mainText(page: Page): Promise<string> {
  return page.$eval("main", (el) => (el as HTMLElement).innerText);
}
