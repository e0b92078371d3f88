/**
 * distribution's "token" access controller: the Docker token authentication specification. A
 * client without a token is answered 401 with a Bearer challenge naming the token service (realm),
 * this registry (service) and the scope the request needs; it fetches a token there and retries
 * with `Authorization: Bearer <JWT>`. The JWT must be signed by a key this registry trusts, be
 * issued by `issuer` for `service` (aud), be current (exp, nbf, with a minute of leeway for clock
 * skew), and its `access` claim must grant every action the request needs.
 *
 * Trusted signing keys (src/auth/token-keys.ts):
 * - `x5c` header: a certificate chain that must lead to a certificate of `rootcertbundle`;
 * - `jwk` header: a key with its own `x5c` chain (as above), or one of the trusted keys;
 * - `kid` header: names a trusted key — a root certificate's key by its libtrust key ID (what
 *   distribution 2.x and docker_auth put there) or its RFC 7638 thumbprint, or a `jwks` key by its
 *   `kid` or thumbprint.
 */
import type { KeyObject, X509Certificate } from "node:crypto";
import { errors as joseErrors, jwtVerify, type JWTHeaderParameters, type JWTPayload } from "jose";
import { readFileSync } from "node:fs";
import { ConfigError, type TokenAuthConfig, type TokenSigningAlgorithm } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import { quoted, scopeParam, unauthorized, credentialsFor, type Access, type AccessController, type AuthRequest, type Grant } from "./access-controller.js";
import { CATALOG_ACCESS, type PullableRepositories, type RepositoryFilter } from "./pullable-repositories.js";
import { keyForJWK, parseCertificateBundle, parseJWKS, TokenKeyError, trustedKeysOf, verifyCertificateChain, type TrustedKeys } from "./token-keys.js";


/** distribution's leeway for exp and nbf (token.Leeway). */
const LEEWAY_SECONDS = 60;

export interface TokenOptions {
  realm: string;
  service: string;
  issuer: string;
  /** Certificates tokens may chain to (x5c), and keys `kid` may name. */
  roots: X509Certificate[];
  trustedKeys: TrustedKeys;
  algorithms: readonly TokenSigningAlgorithm[];
  /** Challenge with `<scheme>://<request host><autoRedirectPath>` instead of realm. */
  autoRedirect: boolean;
  autoRedirectPath: string;
}

/** One entry of the `access` claim. */
interface ResourceActions {
  type?: unknown;
  name?: unknown;
  actions?: unknown;
}

type Failure = "token_required" | "invalid_token" | "insufficient_scope";

export class TokenAccessController implements AccessController, PullableRepositories {
  constructor(
    private readonly options: TokenOptions,
    private readonly log: Logger,
  ) {}

  async authorize(req: AuthRequest, needed: readonly Access[]): Promise<Grant> {
    const payload = await this.verify(req, needed);
    const granted = grantedActions(payload["access"]);
    for (const access of needed) {
      const actions = granted.get(`${access.type}:${access.name}`);
      if (!actions || !(actions.has(access.action) || actions.has("*"))) {
        throw this.challenge(req, needed, "insufficient_scope");
      }
    }
    return { user: typeof payload.sub === "string" && payload.sub !== "" ? payload.sub : undefined };
  }

  /**
   * The repositories the token's `access` claim grants pull on: the token service decides, once,
   * in the token it issues for the catalog scope (README, "The web UI"). An entry names one
   * repository, or ends in `*` to grant every name that starts with what precedes it (`team/*`,
   * `*`), so that a user of thousands of repositories gets a token that fits in a header. A token
   * that grants pull on nothing is answered like a request without the catalog scope: 401.
   */
  async pullable(req: AuthRequest): Promise<RepositoryFilter> {
    const payload = await this.verify(req, CATALOG_ACCESS);
    const exact = new Set<string>();
    const prefixes: string[] = [];
    for (const [resource, actions] of grantedActions(payload["access"])) {
      if (!resource.startsWith("repository:") || !(actions.has("pull") || actions.has("*"))) continue;
      const name = resource.slice("repository:".length);
      if (name.endsWith("*")) prefixes.push(name.slice(0, -1));
      else exact.add(name);
    }
    if (prefixes.includes("")) return "every";
    if (exact.size === 0 && prefixes.length === 0) throw this.challenge(req, CATALOG_ACCESS, "insufficient_scope");
    return (name) => exact.has(name) || prefixes.some((prefix) => name.startsWith(prefix));
  }

  /** The claims of the request's token when it is valid; the challenge for `needed` otherwise. */
  private async verify(req: AuthRequest, needed: readonly Access[]): Promise<JWTPayload> {
    const token = credentialsFor(req, "bearer");
    if (token === undefined) throw this.challenge(req, needed, "token_required");
    try {
      const { payload } = await jwtVerify(token, (header) => this.signingKey(header), {
        algorithms: [...this.options.algorithms],
        issuer: this.options.issuer,
        audience: this.options.service,
        clockTolerance: LEEWAY_SECONDS,
        requiredClaims: ["exp"],
      });
      return payload;
    } catch (err) {
      if (!isTokenError(err)) throw err;
      this.log.info({ reason: err.message }, "token auth: invalid token");
      throw this.challenge(req, needed, "invalid_token");
    }
  }

  /** The key the token says signed it, if this registry trusts it; jose then checks the signature. */
  private signingKey(header: JWTHeaderParameters): KeyObject {
    if (Array.isArray(header.x5c) && header.x5c.length > 0) {
      return verifyCertificateChain(header.x5c, this.options.roots, new Date());
    }
    if (header.jwk !== undefined) return keyForJWK(header.jwk, this.options.roots, this.options.trustedKeys, new Date());
    if (typeof header.kid === "string" && header.kid !== "") {
      const key = this.options.trustedKeys.get(header.kid);
      if (key === undefined) throw new TokenKeyError(`token signed by an untrusted key (kid ${JSON.stringify(header.kid)})`);
      return key;
    }
    throw new TokenKeyError("the token names no signing key (x5c, jwk or kid)");
  }

  /**
   * distribution's challenge: `Bearer realm="…",service="…",scope="…"` plus `error="invalid_token"`
   * or `error="insufficient_scope"` (RFC 6750 §3). Always 401, never 403: clients (docker,
   * containerd, containers/image) answer a 401 by fetching a token for the scope it names.
   */
  private challenge(req: AuthRequest, needed: readonly Access[], failure: Failure): Error {
    let value = `Bearer realm=${quoted(this.realm(req))},service=${quoted(this.options.service)}`;
    const scope = scopeParam(needed);
    if (scope !== "") value += `,scope=${quoted(scope)}`;
    if (failure !== "token_required") value += `,error=${quoted(failure)}`;
    return unauthorized(needed, value);
  }

  private realm(req: AuthRequest): string {
    if (!this.options.autoRedirect) return this.options.realm;
    const forwarded = firstHeader(req.headers["x-forwarded-proto"]);
    const host = firstHeader(req.headers.host) ?? firstHeader(req.headers[":authority"]) ?? "";
    return `${forwarded ?? "https"}://${host}${this.options.autoRedirectPath}`;
  }
}

/**
 * Reads `rootcertbundle` and `jwks` and builds the controller. A file that is missing, unreadable,
 * or holds no usable certificate or key is a ConfigError naming its key.
 */
export function loadTokenAccessController(config: TokenAuthConfig, log: Logger): TokenAccessController {
  const load = <T>(key: string, file: string, parse: (text: string) => T): T => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new ConfigError(key, `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    try {
      return parse(text);
    } catch (err) {
      throw new ConfigError(key, `${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const roots = config.rootCertBundle === undefined ? [] : load("auth.token.rootcertbundle", config.rootCertBundle, parseCertificateBundle);
  const jwks = config.jwks === undefined ? [] : load("auth.token.jwks", config.jwks, parseJWKS);
  if (roots.length === 0 && jwks.length === 0) throw new ConfigError("auth.token.jwks", "holds no key, and there is no rootcertbundle: no token could ever be verified");
  const now = Date.now();
  for (const cert of roots) {
    if (Date.parse(cert.validTo) < now) log.warn({ subject: cert.subject, validTo: cert.validTo }, "auth.token.rootcertbundle: a certificate has expired; tokens chaining to it are refused");
  }
  return new TokenAccessController(
    {
      realm: config.realm,
      service: config.service,
      issuer: config.issuer,
      roots,
      trustedKeys: trustedKeysOf(roots, jwks),
      algorithms: config.signingAlgorithms,
      autoRedirect: config.autoRedirect,
      autoRedirectPath: config.autoRedirectPath,
    },
    log,
  );
}

/** The `access` claim as resource → granted actions. Malformed entries grant nothing. */
function grantedActions(claim: unknown): Map<string, Set<string>> {
  const granted = new Map<string, Set<string>>();
  if (!Array.isArray(claim)) return granted;
  for (const entry of claim as ResourceActions[]) {
    if (typeof entry !== "object" || entry === null) continue;
    if (typeof entry.type !== "string" || typeof entry.name !== "string" || !Array.isArray(entry.actions)) continue;
    const key = `${entry.type}:${entry.name}`;
    const actions = granted.get(key) ?? new Set<string>();
    for (const action of entry.actions) if (typeof action === "string") actions.add(action);
    granted.set(key, actions);
  }
  return granted;
}

/** jose's verification failures, and our key-resolution failures, are the client's problem. */
function isTokenError(err: unknown): err is Error {
  return err instanceof joseErrors.JOSEError || err instanceof TokenKeyError || err instanceof SyntaxError || err instanceof TypeError;
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  const trimmed = first?.split(",")[0]?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
}
