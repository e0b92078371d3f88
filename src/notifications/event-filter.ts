import type { EndpointConfig } from "../config/config.js";
import type { RegistryEvent } from "./registry-event.js";

/**
 * Which events an endpoint wants. Each filter stands on its own: distribution 2.8 skips
 * `ignore.actions` when no media type is ignored, berth does not.
 */
export class EventFilter {
  private readonly mediaTypes: Set<string>;
  private readonly actions: Set<string>;
  private readonly repositories: RegExp[];

  constructor(private readonly config: Pick<EndpointConfig, "ignoredMediaTypes" | "ignoredActions" | "repositories" | "ignoreHeadPulls">) {
    this.mediaTypes = new Set(config.ignoredMediaTypes);
    this.actions = new Set(config.ignoredActions);
    this.repositories = config.repositories.map(globToRegExp);
  }

  /** Whether any event of `action` for a request with `method` can pass (the other filters need the event). */
  mayAccept(action: string, method: string | undefined): boolean {
    if (this.actions.has(action)) return false;
    return !(this.config.ignoreHeadPulls && action === "pull" && method === "HEAD");
  }

  accepts(event: RegistryEvent): boolean {
    if (event.target.mediaType !== undefined && this.mediaTypes.has(event.target.mediaType)) return false;
    if (this.actions.has(event.action)) return false;
    if (this.config.ignoreHeadPulls && event.action === "pull" && event.request.method === "HEAD") return false;
    if (this.repositories.length > 0) {
      const name = event.target.repository ?? "";
      if (!this.repositories.some((pattern) => pattern.test(name))) return false;
    }
    return true;
  }
}

/** `*` matches within one path component, `**` across components, `?` one character. */
export function globToRegExp(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] ?? "";
    if (c === "*" && glob[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else source += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}
