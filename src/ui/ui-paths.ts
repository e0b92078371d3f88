/**
 * The route name of a UI path for metrics and tracing (src/metrics/handler-label.ts,
 * src/tracing/request-tracing.ts): the page and its assets, or one route of the JSON view.
 */
export function uiRoute(path: string): string {
  if (!path.startsWith("/ui/api/")) return "ui";
  if (path === "/ui/api/catalog") return "ui_api_catalog";
  if (path === "/ui/api/settings") return "ui_api_settings";
  if (path.startsWith("/ui/api/repositories/") && path.endsWith("/tags")) return "ui_api_tags";
  if (path.startsWith("/ui/api/repositories/") && path.includes("/configs/")) return "ui_api_config";
  return "ui_api";
}

/** The paths the web UI answers: `/` and `/ui` (redirects), and everything under `/ui/`. */
export function isUiPath(path: string): boolean {
  return path === "/" || path === "/ui" || path.startsWith("/ui/");
}
