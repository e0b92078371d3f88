/**
 * distribution's `handler` label values (its route names, registry/api/v2/routes.go, with "-"
 * written "_" as registry/handlers/app.go registers them), by berth route name. referrers is
 * berth's (distribution 2.8 has no such route). Routes absent here (health, status) are not
 * instrumented, as distribution instruments only its API routes.
 */
export const HANDLER_BY_ROUTE: Readonly<Record<string, string>> = {
  base: "base",
  manifest: "manifest",
  tags: "tags",
  blob: "blob",
  uploads: "blob_upload",
  upload: "blob_upload_chunk",
  catalog: "catalog",
  referrers: "referrers",
};

/**
 * berth's own handlers, for the web UI's paths (src/server/path-mount.ts): the page and its assets,
 * and its JSON view. distribution has no UI, so its dashboards never match these values; their
 * series appear with the first UI request, not at start.
 */
export const UI_HANDLER_BY_ROUTE: Readonly<Record<string, string>> = {
  ui: "ui",
  ui_api: "ui_api",
  ui_api_catalog: "ui_api",
  ui_api_settings: "ui_api",
  ui_api_tags: "ui_api",
  ui_api_config: "ui_api",
};

/** Every handler value, so each handler's in-flight gauge exists from the start (as in distribution). */
export const HANDLERS: readonly string[] = [...new Set(Object.values(HANDLER_BY_ROUTE))];

const METHOD_LABELS: Readonly<Record<string, string>> = {
  GET: "get",
  HEAD: "head",
  PUT: "put",
  POST: "post",
  PATCH: "patch",
  DELETE: "delete",
};

/** The `method` label as Go's promhttp writes it: lower case. */
export function methodLabel(method: string): string {
  return METHOD_LABELS[method] ?? method.toLowerCase();
}
