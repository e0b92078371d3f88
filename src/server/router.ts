import { RegistryError } from "../errcode/registry-error.js";
import type { Handler } from "./request-context.js";
import { getBase, redirectToBase } from "./routes/base.js";
import { deleteBlob, getBlob } from "./routes/blobs.js";
import { getCatalog } from "./routes/catalog.js";
import { getHealth, getLive, getReady, getStatus } from "./routes/health.js";
import { deleteManifest, getManifest, putManifest } from "./routes/manifests.js";
import { getReferrers } from "./routes/referrers.js";
import { getTags } from "./routes/tags.js";
import { cancelUpload, completeUpload, getUploadStatus, patchUpload, startUpload } from "./routes/uploads.js";

type Method = "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE";

interface Route {
  name: string;
  /** Captures the repository name (1) and, where the route has one, the reference (2). */
  pattern: RegExp;
  methods: Partial<Record<Method, Handler>>;
}

// Order matters: names may contain "/blobs" or "/manifests", so the more specific suffixes are
// tried first and the name capture is greedy.
const ROUTES: Route[] = [
  { name: "base", pattern: /^\/v2\/$/, methods: { GET: getBase, HEAD: getBase } },
  { name: "base-redirect", pattern: /^\/v2$/, methods: { GET: redirectToBase, HEAD: redirectToBase } },
  { name: "catalog", pattern: /^\/v2\/_catalog$/, methods: { GET: getCatalog } },
  { name: "tags", pattern: /^\/v2\/(.+)\/tags\/list$/, methods: { GET: getTags, HEAD: getTags } },
  {
    name: "manifest",
    pattern: /^\/v2\/(.+)\/manifests\/([^/]+)$/,
    methods: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest },
  },
  { name: "uploads", pattern: /^\/v2\/(.+)\/blobs\/uploads\/?$/, methods: { POST: startUpload } },
  {
    name: "upload",
    pattern: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/,
    methods: { GET: getUploadStatus, PATCH: patchUpload, PUT: completeUpload, DELETE: cancelUpload },
  },
  { name: "blob", pattern: /^\/v2\/(.+)\/blobs\/([^/]+)$/, methods: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob } },
  { name: "referrers", pattern: /^\/v2\/(.+)\/referrers\/([^/]+)$/, methods: { GET: getReferrers } },
  // Outside /v2/: distribution's health endpoint. It needs no credentials (src/auth/required-access.ts).
  { name: "health", pattern: /^\/debug\/health$/, methods: { GET: getHealth, HEAD: getHealth } },
  // berth's liveness and readiness, beside it and as public (docs/configuration.md, health).
  { name: "live", pattern: /^\/debug\/health\/live$/, methods: { GET: getLive, HEAD: getLive } },
  { name: "ready", pattern: /^\/debug\/health\/ready$/, methods: { GET: getReady, HEAD: getReady } },
  { name: "status", pattern: /^\/debug\/status$/, methods: { GET: getStatus } },
];

export interface RouteMatch {
  route: string;
  handler: Handler;
  params: { name: string; reference: string };
}

/**
 * Finds the handler for a request path (without its query). NOT_FOUND for a path that is no API
 * endpoint, UNSUPPORTED for a method the endpoint does not have, NAME_INVALID when a parameter
 * cannot be percent-decoded. Parameters are decoded here and validated by their handlers.
 */
export function route(method: string, path: string): RouteMatch {
  for (const candidate of ROUTES) {
    const match = candidate.pattern.exec(path);
    if (!match) continue;
    const handler = candidate.methods[method as Method];
    if (!handler) throw new RegistryError("UNSUPPORTED", `${method} is not supported on this endpoint`);
    return {
      route: candidate.name,
      handler,
      params: { name: decode(match[1] ?? ""), reference: decode(match[2] ?? "") },
    };
  }
  throw new RegistryError("NOT_FOUND");
}

function decode(value: string): string {
  if (!value.includes("%")) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    throw new RegistryError("NAME_INVALID", "malformed percent-encoding in the path");
  }
}
