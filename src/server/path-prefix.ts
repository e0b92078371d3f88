/**
 * http.prefix, the one place berth's public paths are mapped to the paths it routes: requests
 * arrive as "<prefix>v2/…" and are routed as "/v2/…"; every URL berth generates goes the other
 * way. Handlers, mounts and the URL builder see only prefix-free paths.
 */
export class PathPrefix {
  /** "" for no prefix, else the prefix without its trailing slash ("/registry"). */
  private readonly head: string;

  /** `prefix` as config normalises it: "/" or "/<path>/". */
  constructor(prefix: string) {
    this.head = prefix.replace(/\/+$/, "");
  }

  /**
   * The routed path for a request path, or undefined for one outside the prefix (distribution
   * answers those 404: its router only has routes under the prefix). "/" itself is kept as "/":
   * the web UI's redirect answers it, and without the UI it is a 404 like any unknown path.
   */
  strip(path: string): string | undefined {
    if (this.head === "" || path === "/") return path;
    if (path === this.head) return "/";
    return path.startsWith(this.head) && path.charCodeAt(this.head.length) === 0x2f ? path.slice(this.head.length) : undefined;
  }

  /** The public path for a routed one: "/v2/x" becomes "/registry/v2/x". */
  apply(path: string): string {
    return this.head + path;
  }
}

/** No prefix: paths are routed as they come. */
export const ROOT_PREFIX = new PathPrefix("/");
