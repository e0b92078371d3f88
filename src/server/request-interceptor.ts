import type { IncomingMessage, ServerResponse } from "node:http";

/** A request the router matched, as interceptors see it before its access check and handler run. */
export interface RoutedRequest {
  req: IncomingMessage;
  res: ServerResponse;
  /**
   * berth's route name (src/server/router.ts): base, catalog, tags, manifest, uploads, upload, blob,
   * referrers, health, status; or a path mount's (src/server/path-mount.ts): ui, ui_api_catalog, …
   */
  route: string;
  method: string;
  /** The request target's path, without query, http.prefix (and scheme and authority in absolute form). */
  path: string;
  /** The repository the path names, decoded ("" for routes without one), before any mirror namespace is applied. */
  repository: string;
}

/**
 * What a cross-cutting capability (metrics, tracing, health's drain) adds around every routed
 * request, without a conditional in the server per feature. `next` runs the access check and the
 * handler; an interceptor may throw a RegistryError instead of calling it (the error becomes the
 * answer, as any handler error does). Interceptors run in the order given, the first outermost.
 * Requests that match no route (404, 405) are not intercepted.
 */
export interface RequestInterceptor {
  around(request: RoutedRequest, next: () => Promise<void>): Promise<void>;
}

/** The interceptors folded into one, or undefined for none (the server then calls the handler directly). */
export function chainInterceptors(interceptors: readonly RequestInterceptor[]): RequestInterceptor | undefined {
  if (interceptors.length === 0) return undefined;
  if (interceptors.length === 1) return interceptors[0];
  return {
    around(request, next) {
      const run = (i: number): Promise<void> => (i === interceptors.length ? next() : interceptors[i]!.around(request, () => run(i + 1)));
      return run(0);
    },
  };
}
