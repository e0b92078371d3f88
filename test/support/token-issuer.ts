/**
 * A small Docker token service for the tests (not a product feature): the "realm" a registry with
 * `auth.token` sends clients to. `GET /token?service=…&scope=…` with optional Basic credentials
 * answers `{token, access_token, expires_in, issued_at}`, a JWT signed by a certificate of the
 * test PKI whose `access` claim holds what the ACL grants of what was asked. Real clients (skopeo)
 * go through the whole flow against it; tests also mint tokens directly, valid or broken on purpose.
 */
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SignJWT, type JWTHeaderParameters } from "jose";
import { jwkThumbprint, libtrustKeyID } from "../../src/auth/token-keys.js";
import { x5cEntry, type CertFiles } from "./test-pki.js";

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/** Decides what `user` (undefined: anonymous) gets of `requested` actions on a resource. */
export type Acl = (user: string | undefined, type: string, name: string, requested: string[]) => string[];

export interface MintOptions {
  sub?: string;
  access?: AccessEntry[];
  /** Default: the issuer's service. A list is sent as a JSON array. */
  aud?: string | string[];
  iss?: string;
  /** Seconds since the epoch. Default: now + 300. */
  exp?: number | undefined;
  nbf?: number;
  iat?: number;
  /** How the token names its key (default "x5c"). */
  keyHeader?: "x5c" | "kid" | "kid-thumbprint" | "jwk" | "jwk-x5c" | "none";
  /** Override or add header fields (alg, kid, …). */
  header?: Partial<JWTHeaderParameters>;
  /** Sign with another key than the issuer's (an attacker's). */
  signWith?: { key: KeyObject; alg: string; x5c?: string[] };
}

export interface TokenIssuer {
  /** http://127.0.0.1:<port>/token */
  realm: string;
  service: string;
  issuer: string;
  alg: string;
  signingKey: KeyObject;
  publicKey: KeyObject;
  /** The x5c header value: the signing certificate (and intermediates, when any). */
  x5c: string[];
  /** Tokens issued by the endpoint so far (for "the client used the token flow" checks). */
  issued: { user: string | undefined; scopes: string[]; access: AccessEntry[] }[];
  mint(options?: MintOptions): Promise<string>;
  /** Lets pages of `origin` call the endpoint (see TokenIssuerOptions.allowOrigin), once it is known. */
  allowOrigin(origin: string): void;
  close(): Promise<void>;
}

export interface TokenIssuerOptions {
  signing: CertFiles;
  /** Certificates between the signing certificate and the root, leaf side first. */
  intermediates?: CertFiles[];
  service: string;
  issuer: string;
  /** user → password for Basic authentication at the token endpoint. */
  users: Record<string, string>;
  acl: Acl;
  alg?: string;
  /**
   * An origin whose pages may call the endpoint (CORS), as a token service a browser UI uses must
   * allow (berth's web UI: the registry's own origin). None by default, like docker's token servers.
   */
  allowOrigin?: string;
  /**
   * A token service that filters the catalog for berth's web UI: what it adds to a token asked for
   * `registry:catalog:*` (the repositories `user` may pull, by name or `prefix*`). None by default,
   * like docker's token servers.
   */
  catalogGrants?: (user: string | undefined) => AccessEntry[];
}

export async function startTokenIssuer(options: TokenIssuerOptions): Promise<TokenIssuer> {
  const signingKey = createPrivateKey(await readFile(options.signing.key));
  const publicKey = createPublicKey(signingKey);
  const alg = options.alg ?? (signingKey.asymmetricKeyType === "ec" ? "ES256" : "RS256");
  const x5c = [await x5cEntry(options.signing.cert), ...(await Promise.all((options.intermediates ?? []).map((c) => x5cEntry(c.cert))))];
  const issued: TokenIssuer["issued"] = [];
  let corsOrigin = options.allowOrigin;

  async function mint(m: MintOptions = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const key = m.signWith?.key ?? signingKey;
    const header: JWTHeaderParameters = { alg: m.signWith?.alg ?? alg, typ: "JWT" };
    const pub = createPublicKey(key);
    switch (m.keyHeader ?? "x5c") {
      case "x5c":
        header.x5c = m.signWith?.x5c ?? x5c;
        break;
      case "kid":
        header.kid = libtrustKeyID(pub);
        break;
      case "kid-thumbprint":
        header.kid = jwkThumbprint(pub);
        break;
      case "jwk":
        header.jwk = pub.export({ format: "jwk" }) as JWTHeaderParameters["jwk"];
        break;
      case "jwk-x5c":
        header.jwk = { ...(pub.export({ format: "jwk" }) as object), x5c: m.signWith?.x5c ?? x5c } as JWTHeaderParameters["jwk"];
        break;
      case "none":
        break;
    }
    Object.assign(header, m.header ?? {});
    const payload: Record<string, unknown> = {
      iss: m.iss ?? options.issuer,
      sub: m.sub ?? "",
      aud: m.aud ?? options.service,
      iat: m.iat ?? now,
      nbf: m.nbf ?? now - 5,
      jti: randomBytes(8).toString("hex"),
      access: m.access ?? [],
    };
    if (!("exp" in m) || m.exp !== undefined) payload["exp"] = m.exp ?? now + 300;
    return new SignJWT(payload).setProtectedHeader(header).sign(key);
  }

  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://issuer");
      if (corsOrigin !== undefined && req.headers.origin === corsOrigin) {
        res.setHeader("Access-Control-Allow-Origin", corsOrigin);
        res.setHeader("Vary", "Origin");
        if (req.method === "OPTIONS") {
          res.writeHead(204, { "Access-Control-Allow-Methods": "GET", "Access-Control-Allow-Headers": "Authorization", "Access-Control-Max-Age": "600" }).end();
          return;
        }
      }
      if (url.pathname !== "/token" || req.method !== "GET") {
        res.writeHead(404).end();
        return;
      }
      let user: string | undefined;
      const authorization = req.headers.authorization;
      if (authorization !== undefined) {
        const [scheme, credentials] = authorization.split(" ");
        const decoded = Buffer.from(credentials ?? "", "base64").toString("utf8");
        const colon = decoded.indexOf(":");
        const name = decoded.slice(0, colon);
        if (scheme?.toLowerCase() !== "basic" || colon < 0 || options.users[name] !== decoded.slice(colon + 1)) {
          res.writeHead(401, { "Content-Type": "application/json", "WWW-Authenticate": 'Basic realm="test-token-issuer"' });
          res.end(JSON.stringify({ details: "incorrect username or password" }));
          return;
        }
        user = name;
      }
      if (url.searchParams.get("service") !== options.service) {
        res.writeHead(400, { "Content-Type": "application/json" }).end(JSON.stringify({ details: "unknown service" }));
        return;
      }
      const scopes = url.searchParams.getAll("scope").flatMap((s) => s.split(" ")).filter((s) => s !== "");
      const access: AccessEntry[] = [];
      for (const scope of scopes) {
        const first = scope.indexOf(":");
        const last = scope.lastIndexOf(":");
        if (first < 0 || last <= first) continue;
        const type = scope.slice(0, first);
        const name = scope.slice(first + 1, last);
        const actions = options.acl(user, type, name, scope.slice(last + 1).split(","));
        if (actions.length > 0) access.push({ type, name, actions });
      }
      if (options.catalogGrants !== undefined && scopes.includes("registry:catalog:*")) access.push(...options.catalogGrants(user));
      issued.push({ user, scopes, access });
      const token = await mint({ sub: user ?? "", access });
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
    })().catch((err: unknown) => {
      res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service: options.service,
    issuer: options.issuer,
    alg,
    signingKey,
    publicKey,
    x5c,
    issued,
    mint,
    allowOrigin: (origin) => {
      corsOrigin = origin;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Parses a `WWW-Authenticate: Bearer k="v",…` challenge into its parameters. */
export function parseChallenge(header: string | null): { scheme: string; params: Record<string, string> } {
  const value = header ?? "";
  const space = value.indexOf(" ");
  const scheme = space < 0 ? value : value.slice(0, space);
  const params: Record<string, string> = {};
  const re = /([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(value.slice(space + 1)); m !== null; m = re.exec(value.slice(space + 1))) {
    params[m[1]!] = m[2]!.replace(/\\(.)/g, "$1");
  }
  return { scheme, params };
}
