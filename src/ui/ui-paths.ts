/** The paths the web UI answers: `/` and `/ui` (redirects), and everything under `/ui/`. */
export function isUiPath(path: string): boolean {
  return path === "/" || path === "/ui" || path.startsWith("/ui/");
}
