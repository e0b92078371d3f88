import type { IncomingMessage, ServerResponse } from "node:http";
import { RegistryError } from "../errcode/registry-error.js";
import type { PathMount } from "../server/path-mount.js";
import { pageHeaders } from "./page-headers.js";
import type { StaticAsset } from "./static-assets.js";
import { sendAsset } from "./static-assets.js";
import { answerUiApi, sendApiResult, type UiApiParts } from "./ui-api.js";
import { isUiPath, uiRoute } from "./ui-paths.js";

/**
 * The web UI on the registry's port: `/` redirects to `/ui/`, `/ui/` is the page (one HTML file,
 * its script and style: everything shipped, nothing from elsewhere), `/ui/api/` its JSON view.
 * The page and its assets are public (they hold no registry data); what the page shows comes
 * through the registry API and the JSON view, both behind the access controller.
 */
export class WebUi implements PathMount {
  private readonly headers: Record<string, string>;

  constructor(
    private readonly assets: ReadonlyMap<string, StaticAsset>,
    private readonly api: UiApiParts,
    tokenRealm: string | undefined,
    /** Where the page is, under http.prefix ("/ui/", "/registry/ui/"): what the redirects name. */
    private readonly pagePath: string,
  ) {
    this.headers = pageHeaders(tokenRealm);
  }

  owns(path: string): boolean {
    return isUiPath(path);
  }

  route(path: string): string {
    return uiRoute(path);
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") throw new RegistryError("UNSUPPORTED", `${method} is not supported on the web UI; it reads only`);
    if (path === "/" || path === "/ui") {
      res.writeHead(302, { ...this.headers, Location: this.pagePath, "Content-Length": 0 });
      res.end();
      return;
    }
    if (path.startsWith("/ui/api/")) {
      sendApiResult(req, res, await answerUiApi(this.api, req, path, query), this.headers);
      return;
    }
    const asset = this.assets.get(path === "/ui/" ? "index.html" : path.slice("/ui/".length));
    if (asset === undefined) throw new RegistryError("NOT_FOUND");
    sendAsset(req, res, asset, this.headers);
  }
}
