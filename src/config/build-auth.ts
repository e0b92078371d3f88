/**
 * Access control (auth). Files are only named here; the server reads them at start
 * (src/cli/compose.ts), so `config check` works on another machine.
 */
import { SUPPORTED_AUTH } from "./config-schema.js";
import { TOKEN_SIGNING_ALGORITHMS, type Config, type TokenSigningAlgorithm } from "./config.js";
import { absolutePath, child, fail, fromEnv, readBool, readOptionalString, readSection, readStringList } from "./raw-values.js";
import type { RawMap } from "./raw-yaml.js";

export function buildAuth(root: RawMap, warnings: string[]): Config["auth"] {
  const authNode = child(root, "auth");
  const auth = readSection(authNode, "auth");
  const types = [...(auth?.entries.keys() ?? [])];
  const type = types[0];
  if (type === undefined) return undefined;
  if (types.length > 1) throw fail("auth", authNode, `exactly one auth type must be configured, found ${types.join(" and ")}`);
  const at = `auth.${type}`;
  const params = readSection(child(auth, type), at);
  const optional = (key: string): string | undefined => readOptionalString(child(params, key), `${at}.${key}`);
  const required = (key: string, what: string): string => {
    const value = optional(key);
    if (value === undefined) throw fail(`${at}.${key}`, child(params, key) ?? child(auth, type), `required: ${what}`);
    return value;
  };
  switch (type) {
    case "htpasswd":
      return {
        kind: "htpasswd",
        realm: required("realm", "the realm named in the Basic challenge"),
        path: absolutePath(required("path", "the htpasswd file (htpasswd -B) to check passwords against")),
      };
    case "silly":
      return { kind: "silly", realm: required("realm", "the token realm named in the challenge"), service: required("service", "the service named in the challenge") };
    case "token": {
      const realm = required("realm", "the URL of the token service clients are sent to");
      const service = required("service", "this registry's name, which tokens must have as audience (aud)");
      const issuer = required("issuer", "the token issuer's name, which tokens must carry as iss");
      const rootCertBundle = optional("rootcertbundle");
      const jwks = optional("jwks");
      if (rootCertBundle === undefined && jwks === undefined) {
        throw fail(`${at}.rootcertbundle`, child(auth, type), "required: the certificates (or auth.token.jwks, the keys) that token signatures are checked with");
      }
      const algorithmsNode = child(params, "signingalgorithms");
      let signingAlgorithms: TokenSigningAlgorithm[] = [...TOKEN_SIGNING_ALGORITHMS];
      const listed = readStringList(algorithmsNode, `${at}.signingalgorithms`);
      if (listed.length > 0) {
        signingAlgorithms = [];
        for (const alg of listed) {
          const known = TOKEN_SIGNING_ALGORITHMS.find((a) => a === alg);
          if (known !== undefined) signingAlgorithms.push(known);
          else if (/^HS(256|384|512)$/.test(alg)) {
            warnings.push(`${at}.signingalgorithms: ${alg} needs a shared secret, which token auth never has; ignored${fromEnv(algorithmsNode)}`);
          } else {
            throw fail(`${at}.signingalgorithms`, algorithmsNode, `unsupported signing algorithm ${JSON.stringify(alg)}; use ${TOKEN_SIGNING_ALGORITHMS.join(", ")}`);
          }
        }
        if (signingAlgorithms.length === 0) throw fail(`${at}.signingalgorithms`, algorithmsNode, "no usable signing algorithm left");
      }
      const autoRedirect = readBool(child(params, "autoredirect"), `${at}.autoredirect`) ?? false;
      const autoRedirectPath = optional("autoredirectpath") ?? "/auth/token";
      if (!autoRedirectPath.startsWith("/")) throw fail(`${at}.autoredirectpath`, child(params, "autoredirectpath"), "must start with /");
      return {
        kind: "token",
        realm,
        service,
        issuer,
        rootCertBundle: rootCertBundle === undefined ? undefined : absolutePath(rootCertBundle),
        jwks: jwks === undefined ? undefined : absolutePath(jwks),
        signingAlgorithms,
        autoRedirect,
        autoRedirectPath,
      };
    }
    default:
      throw fail(at, child(auth, type), `unknown auth type; ${SUPPORTED_AUTH}`);
  }
}
