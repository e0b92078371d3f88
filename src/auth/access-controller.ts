/**
 * Access control: who may do what. An access controller looks at a request's credentials and the
 * access the request needs (src/auth/required-access.ts) and either grants it or throws the
 * RegistryError the client must see, carrying the `WWW-Authenticate` challenge that tells it how
 * to authenticate. The server calls it in one place (src/server/app.ts), after routing and before
 * any handler runs; the composition root (src/cli/compose.ts) chooses the implementation from
 * the `auth` section: htpasswd.ts, token.ts, silly.ts, or none (an open registry).
 *
 * Controllers never read request bodies and never touch storage, so they can answer before a large
 * upload is read. They are safe to call concurrently.
 */
import type { IncomingHttpHeaders } from "node:http";
import { RegistryError } from "../errcode/registry-error.js";

/** One action on one resource, as the Docker token specification names them. */
export interface Access {
  /** "repository" for repository content, "registry" for registry-wide resources (the catalog). */
  type: "repository" | "registry";
  /** A repository name ("team/app"), or "catalog". */
  name: string;
  /** "pull", "push", "delete", or "*" (the catalog). */
  action: string;
}

/** What a successful authorization established. */
export interface Grant {
  /** The authenticated identity, for logs; undefined when the registry is open. */
  user: string | undefined;
}

/** The part of a request an access controller reads: its headers only. */
export interface AuthRequest {
  headers: IncomingHttpHeaders;
}

export interface AccessController {
  /**
   * Grants `needed` (possibly empty: `GET /v2/` only asks "who are you?") or throws a RegistryError:
   * UNAUTHORIZED (401) with a `WWW-Authenticate` challenge in `headers` when credentials are
   * missing, wrong, or do not cover `needed`; DENIED (403) when retrying with other credentials
   * cannot help. Any other thrown error is an internal failure (500).
   */
  authorize(req: AuthRequest, needed: readonly Access[]): Promise<Grant>;
}

/** No `auth` section: everyone may do everything, as with distribution. */
export const OPEN_ACCESS: AccessController = {
  authorize: () => Promise.resolve({ user: undefined }),
};

/**
 * The 401 every controller answers with: UNAUTHORIZED whose detail lists the access the request
 * needed, in distribution's shape (`[{"Type","Class","Name","Action"}]`; none for `GET /v2/`),
 * and the controller's challenge.
 */
export function unauthorized(needed: readonly Access[], challenge: string): RegistryError {
  const detail = needed.length === 0 ? undefined : needed.map((a) => ({ Type: a.type, Class: "", Name: a.name, Action: a.action }));
  return new RegistryError("UNAUTHORIZED", undefined, detail, { "WWW-Authenticate": challenge });
}

/**
 * The `scope` challenge parameter: one `type:name:actions` item per resource, in the order first
 * needed, actions joined with "," ("repository:team/app:pull,push repository:base:pull").
 */
export function scopeParam(needed: readonly Access[]): string {
  const resources = new Map<string, string[]>();
  for (const access of needed) {
    const key = `${access.type}:${access.name}`;
    const actions = resources.get(key) ?? [];
    if (!actions.includes(access.action)) actions.push(access.action);
    resources.set(key, actions);
  }
  return [...resources].map(([resource, actions]) => `${resource}:${actions.join(",")}`).join(" ");
}

/** A quoted-string challenge parameter value (RFC 9110 §5.6.4), as Go's %q writes ASCII. */
export function quoted(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** The Authorization header, or undefined when absent (repeated headers are joined by Node). */
export function authorizationHeader(req: AuthRequest): string | undefined {
  const value = req.headers.authorization;
  return value === undefined || value === "" ? undefined : value;
}

/**
 * Splits `Authorization: <scheme> <credentials>`; the scheme compares case-insensitively.
 * Undefined when the header is absent or has another scheme.
 */
export function credentialsFor(req: AuthRequest, scheme: "basic" | "bearer"): string | undefined {
  const header = authorizationHeader(req);
  if (header === undefined) return undefined;
  const space = header.indexOf(" ");
  if (space <= 0 || header.slice(0, space).toLowerCase() !== scheme) return undefined;
  const credentials = header.slice(space + 1).trim();
  return credentials === "" ? undefined : credentials;
}
