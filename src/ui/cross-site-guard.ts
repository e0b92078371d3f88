import { RegistryError } from "../errcode/registry-error.js";
import type { RequestInterceptor, RoutedRequest } from "../server/request-interceptor.js";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Refuses a write (DELETE, PUT, POST, PATCH) that a browser sent on behalf of another site: the
 * UI's delete buttons call the registry API, and a page elsewhere must not be able to make a
 * logged-in browser do the same. Browsers say where a request comes from (`Sec-Fetch-Site`, and
 * `Origin` on every non-GET request); registry clients (docker, skopeo, oras…) send neither, so
 * they are untouched. A request is refused with 403 DENIED when `Sec-Fetch-Site` is `cross-site`
 * or `same-site`, or when its `Origin` names another host than the one it was sent to.
 */
export class CrossSiteGuard implements RequestInterceptor {
  around(request: RoutedRequest, next: () => Promise<void>): Promise<void> {
    if (!SAFE_METHODS.has(request.method) && isCrossSite(request)) {
      return Promise.reject(new RegistryError("DENIED", "a write from another site's page is refused (cross-site request)"));
    }
    return next();
  }
}

function isCrossSite({ req }: RoutedRequest): boolean {
  const fetchSite = req.headers["sec-fetch-site"];
  if (fetchSite === "cross-site" || fetchSite === "same-site") return true;
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  // An opaque origin ("null": sandboxed frames, file: pages) is never this registry.
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    return true;
  }
  const forwarded = req.headers["x-forwarded-host"];
  const host = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(",")[0]?.trim() || req.headers.host || req.headers[":authority"];
  return typeof host !== "string" || originHost.toLowerCase() !== host.toLowerCase();
}
