import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { brotliCompressSync, constants as zlib, gzipSync } from "node:zlib";

/** One file of the page, compressed once at start: the whole UI is a few tens of KiB. */
export interface StaticAsset {
  contentType: string;
  identity: Buffer;
  gzip: Buffer;
  brotli: Buffer;
  etag: string;
}

/** The files under src/ui/assets/ the page is made of, by the name they are served under. */
const ASSET_FILES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "ui.css": "text/css; charset=utf-8",
  "ui.js": "text/javascript; charset=utf-8",
  "icon.svg": "image/svg+xml",
};

/**
 * On an open registry the browser fetches the first catalog page while it fetches the script,
 * instead of after running it: the request the script makes first for `#/` (ui.js, catalogPage,
 * with credentials "same-origin" so that the preload matches). Measured at 10,000 repositories
 * (docs/benchmarks.md, ui-first-page). With auth the request would only be answered 401.
 */
const CATALOG_PRELOAD = '<link rel="preload" href="api/catalog?n=50" as="fetch" crossorigin="anonymous">';

/**
 * The shipped assets live beside the sources (src/ui/assets/), not in dist/: tsc does not copy
 * them, and the package ships both trees. From dist/src/ui/ that is three levels up.
 */
const ASSETS_DIR = new URL("../../../src/ui/assets/", import.meta.url);

/**
 * Reads and compresses every asset; rejects when one is missing. Runs on the first request for a
 * UI path (create-web-ui.ts), so brotli at quality 5: 7 ms for all assets where quality 11 took
 * 104 ms of that request, for 11.1 KB instead of 10.0 KB. The page gets `settings` (what
 * /ui/api/settings answers) in its `data-settings` attribute, so that its script asks the registry
 * for the catalog at once instead of asking for the settings first: one round trip less before
 * the first page, and they never change while the process runs.
 */
export async function loadStaticAssets(settings: { auth: string }): Promise<Map<string, StaticAsset>> {
  const assets = new Map<string, StaticAsset>();
  for (const [name, contentType] of Object.entries(ASSET_FILES)) {
    let identity = await readFile(new URL(name, ASSETS_DIR));
    if (name === "index.html") {
      const html = identity.toString("utf8").replace("{{settings}}", escapeAttribute(JSON.stringify(settings))).replace("{{preload}}", settings.auth === "none" ? CATALOG_PRELOAD : "");
      identity = Buffer.from(html);
    }
    assets.set(name, {
      contentType,
      identity,
      gzip: gzipSync(identity, { level: 9 }),
      brotli: brotliCompressSync(identity, { params: { [zlib.BROTLI_PARAM_QUALITY]: 5, [zlib.BROTLI_PARAM_SIZE_HINT]: identity.length } }),
      etag: `"${createHash("sha256").update(identity).digest("base64url").slice(0, 22)}"`,
    });
  }
  return assets;
}

/** Sends an asset in the best encoding the client accepts, 304 when its copy is current. */
export function sendAsset(req: IncomingMessage, res: ServerResponse, asset: StaticAsset, headers: Record<string, string>): void {
  const common = { ...headers, ETag: asset.etag, Vary: "Accept-Encoding", "Cache-Control": "no-cache" };
  if (req.headers["if-none-match"] === asset.etag) {
    res.writeHead(304, common);
    res.end();
    return;
  }
  const accepted = acceptedEncodings(req.headers["accept-encoding"]);
  const [body, encoding] = accepted.has("br") ? [asset.brotli, "br"] : accepted.has("gzip") ? [asset.gzip, "gzip"] : [asset.identity, undefined];
  res.writeHead(200, {
    ...common,
    "Content-Type": asset.contentType,
    "Content-Length": body.length,
    ...(encoding === undefined ? {} : { "Content-Encoding": encoding }),
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** A value for a double-quoted HTML attribute. */
function escapeAttribute(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
}

/** The codings of an Accept-Encoding header, without those refused by q=0. */
function acceptedEncodings(header: string | undefined): Set<string> {
  const accepted = new Set<string>();
  for (const item of (header ?? "").split(",")) {
    const [coding, ...params] = item.trim().toLowerCase().split(";");
    if (!coding) continue;
    if (params.some((p) => /^\s*q=0(\.0*)?\s*$/.test(p))) continue;
    accepted.add(coding);
  }
  return accepted;
}
