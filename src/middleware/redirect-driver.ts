import type { StorageDriver } from "../driver/storage-driver.js";
import { RedirectWrappingDriver } from "./redirect-wrapping-driver.js";

/**
 * distribution's `redirect` storage middleware: every blob is fetched from `baseURL` plus its
 * storage path ("https://cdn.example.com/base" + "/docker/registry/v2/blobs/…/data"), whatever
 * the driver. The server at baseURL must serve the storage tree (a CDN or web server over it).
 */
export class RedirectDriver extends RedirectWrappingDriver {
  readonly #origin: string;
  readonly #basePath: string;

  /** `baseURL` is checked at load (src/config/build-middleware.ts): a scheme and a host. */
  constructor(inner: StorageDriver, baseURL: URL) {
    super(inner);
    this.#origin = `${baseURL.protocol}//${baseURL.host}`;
    // Go's path.Join(base, path): one slash between, none at the end of the base.
    this.#basePath = baseURL.pathname.replace(/\/+$/, "");
  }

  async redirectURL(path: string): Promise<string | undefined> {
    return this.#origin + encodeURI(this.#basePath + path);
  }
}
