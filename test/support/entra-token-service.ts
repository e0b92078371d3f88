/**
 * A stand-in for Entra ID (Azure AD) in the tests: there is no real Entra ID here. An HTTPS server
 * (a certificate of the test PKI; MSAL refuses an authority that is not https) answering what
 * @azure/identity's ClientSecretCredential asks of its authority host:
 *
 * - `GET /<tenant>/v2.0/.well-known/openid-configuration`: the OpenID discovery document MSAL
 *   reads for the token endpoint;
 * - `POST /<tenant>/oauth2/v2.0/token` with the client credentials grant: checks the tenant,
 *   client_id and client_secret, answers 401 `invalid_client` when they are wrong, and otherwise a
 *   JWT with the claims Azurite's `--oauth basic` checks (issuer `https://sts.windows.net/<tenant>/`,
 *   audience `https://storage.azure.com`, nbf/exp; oid and tid for user delegation keys). Azurite
 *   does not check the signature; it is signed with a random HS256 key all the same.
 *
 * It runs in the test process; stop() closes it. Every token request is counted, without secrets.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { SignJWT } from "jose";
import type { CertFiles } from "./test-pki.js";

export interface EntraClient {
  tenantId: string;
  clientId: string;
  secret: string;
}

export interface EntraTokenService {
  /** `https://127.0.0.1:<port>`: the credential's authorityHost. */
  authorityHost: string;
  /** Token requests answered: `granted` or `refused`, by client id. */
  requests: Array<{ clientId: string; outcome: "granted" | "refused" }>;
  stop(): Promise<void>;
}

export async function startEntraTokenService(tls: CertFiles, clients: EntraClient[]): Promise<EntraTokenService> {
  const key = randomBytes(32);
  const requests: EntraTokenService["requests"] = [];
  const [cert, privateKey] = await Promise.all([readFile(tls.cert), readFile(tls.key)]);
  let base = "";
  const server: Server = createServer({ cert, key: privateKey }, (req, res) => {
    const url = new URL(req.url ?? "/", base);
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const discovery = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(url.pathname);
    if (req.method === "GET" && discovery !== null) {
      const tenant = discovery[1]!;
      json(200, {
        issuer: `${base}/${tenant}/v2.0`,
        authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/authorize`,
        token_endpoint: `${base}/${tenant}/oauth2/v2.0/token`,
        end_session_endpoint: `${base}/${tenant}/oauth2/v2.0/logout`,
        jwks_uri: `${base}/${tenant}/discovery/v2.0/keys`,
        response_types_supported: ["code", "id_token", "token"],
        subject_types_supported: ["pairwise"],
        id_token_signing_alg_values_supported: ["RS256"],
      });
      return;
    }
    const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname);
    if (req.method === "POST" && token !== null) {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
        const tenant = token[1]!;
        const clientId = form.get("client_id") ?? "";
        const client = clients.find((c) => c.tenantId === tenant && c.clientId === clientId);
        if (form.get("grant_type") !== "client_credentials" || client === undefined || form.get("client_secret") !== client.secret) {
          requests.push({ clientId, outcome: "refused" });
          json(401, { error: "invalid_client", error_description: "AADSTS7000215: Invalid client secret provided.", error_codes: [7000215] });
          return;
        }
        if (!(form.get("scope") ?? "").split(" ").includes("https://storage.azure.com/.default")) {
          json(400, { error: "invalid_scope", error_description: "AADSTS70011: The provided scope is not valid." });
          return;
        }
        requests.push({ clientId, outcome: "granted" });
        const now = Math.floor(Date.now() / 1000);
        void new SignJWT({ oid: randomUUID(), tid: tenant, appid: clientId, ver: "1.0" })
          .setProtectedHeader({ alg: "HS256", typ: "JWT" })
          .setIssuer(`https://sts.windows.net/${tenant}/`)
          .setAudience("https://storage.azure.com")
          .setSubject(clientId)
          .setNotBefore(now - 60)
          .setIssuedAt(now - 60)
          .setExpirationTime(now + 3600)
          .sign(key)
          .then((jwt) => json(200, { token_type: "Bearer", expires_in: 3599, ext_expires_in: 3599, access_token: jwt }));
      });
      return;
    }
    json(404, { error: "not_found" });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    authorityHost: base,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
