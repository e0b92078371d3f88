import type { Access } from "./access-controller.js";

/**
 * Routes anyone may call without credentials: the health, liveness and readiness checks load
 * balancers probe, and /v2's redirect to /v2/ (distribution's router answers it before any check).
 */
const PUBLIC_ROUTES = new Set(["health", "live", "ready", "base-redirect"]);

/** True for a route that needs no authentication at all (not even the "who are you?" of `GET /v2/`). */
export function isPublicRoute(route: string): boolean {
  return PUBLIC_ROUTES.has(route);
}

/** The routes whose first path parameter is a repository name (src/server/router.ts). */
const REPOSITORY_ROUTES = new Set(["tags", "manifest", "uploads", "upload", "blob", "referrers"]);

/**
 * The access a request needs, from its route, method and query, as distribution's app.go decides
 * it:
 *
 * | request | needs |
 * | --- | --- |
 * | `GET /v2/` | nothing (but the caller must still authenticate) |
 * | `GET /v2/_catalog`, `GET /debug/status` | `registry:catalog:*` |
 * | GET or HEAD on a repository | `repository:<name>:pull` |
 * | POST, PUT or PATCH on a repository | `repository:<name>:pull,push` |
 * | DELETE on a repository | `repository:<name>:delete` |
 * | `POST …/blobs/uploads/?from=<other>` (a cross-repository mount) | also `repository:<other>:pull` |
 *
 * Names are taken as routed, before validation: a request for an invalid name is refused for
 * lack of access before it could learn that the name is invalid.
 */
export function requiredAccess(route: string, method: string, name: string, query: URLSearchParams): Access[] {
  // The status page tells about the whole registry: it needs what listing every name needs.
  if (route === "catalog" || route === "status") return [{ type: "registry", name: "catalog", action: "*" }];
  if (!REPOSITORY_ROUTES.has(route)) return [];
  const needed = repositoryAccess(method, name);
  const from = query.get("from");
  if (route === "uploads" && method === "POST" && from !== null && from !== "") {
    // Mounting reads the blob from the other repository: that needs pull there.
    needed.push(...repositoryAccess("GET", from));
  }
  return needed;
}

function repositoryAccess(method: string, name: string): Access[] {
  switch (method) {
    case "GET":
    case "HEAD":
      return [{ type: "repository", name, action: "pull" }];
    case "POST":
    case "PUT":
    case "PATCH":
      return [
        { type: "repository", name, action: "pull" },
        { type: "repository", name, action: "push" },
      ];
    case "DELETE":
      return [{ type: "repository", name, action: "delete" }];
    default:
      // The router only lets the methods above through; anything else needs everything.
      return [{ type: "repository", name, action: "*" }];
  }
}
