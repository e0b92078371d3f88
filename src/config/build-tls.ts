/**
 * TLS (http.tls, http.http2). Files are only named here; they are read at start
 * (src/server/tls-server.ts), through src/cli/start-checks.ts, by serve and by `config check`.
 */
import type { Config } from "./config.js";
import { absolutePath, child, fail, fromEnv, readBool, readSection, readString, readStringList } from "./raw-values.js";
import type { RawMap } from "./raw-yaml.js";

/** distribution's (Go's) TLS 1.2 cipher suite names → OpenSSL's. */
export const TLS12_CIPHER_SUITES: Readonly<Record<string, string>> = {
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
  TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
  TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
  TLS_RSA_WITH_AES_128_CBC_SHA: "AES128-SHA",
  TLS_RSA_WITH_AES_256_CBC_SHA: "AES256-SHA",
};
/** Go always enables every TLS 1.3 suite whatever the list says; naming one is accepted and changes nothing. */
const TLS13_CIPHER_SUITES = new Set(["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]);

export function buildTls(root: RawMap, warnings: string[]): Pick<Config["http"], "tls" | "http2Disabled"> {
  const http = readSection(child(root, "http"), "http");
  const http2 = readSection(child(http, "http2"), "http.http2");
  const http2Disabled = readBool(child(http2, "disabled"), "http.http2.disabled") ?? false;
  const tlsNode = child(http, "tls");
  const tls = readSection(tlsNode, "http.tls");
  const K = "http.tls";
  const certificate = readString(child(tls, "certificate"), `${K}.certificate`) ?? "";
  const key = readString(child(tls, "key"), `${K}.key`) ?? "";
  const clientCAs = readStringList(child(tls, "clientcas"), `${K}.clientcas`);
  if (certificate === "") {
    // distribution serves plain HTTP when no certificate is set; anything that only makes sense
    // with TLS would then be silently dropped, so it is refused instead.
    if (key !== "") throw fail(`${K}.certificate`, child(tls, "key"), "required when http.tls.key is set");
    if (clientCAs.length > 0) throw fail(`${K}.certificate`, child(tls, "clientcas"), "required when http.tls.clientcas is set (client certificates need TLS)");
    return { tls: undefined, http2Disabled };
  }
  if (key === "") throw fail(`${K}.key`, child(tls, "key") ?? tlsNode, "required when http.tls.certificate is set");

  const versionNode = child(tls, "minimumtls");
  const versionText = (readString(versionNode, `${K}.minimumtls`) ?? "").toLowerCase();
  let minimumVersion: "TLSv1.2" | "TLSv1.3";
  if (versionText === "" || versionText === "tls1.2") minimumVersion = "TLSv1.2";
  else if (versionText === "tls1.3") minimumVersion = "TLSv1.3";
  else if (versionText === "tls1.0" || versionText === "tls1.1") {
    warnings.push(`${K}.minimumtls: ${versionText} is insecure and not offered; berth uses tls1.2${fromEnv(versionNode)}`);
    minimumVersion = "TLSv1.2";
  } else {
    throw fail(`${K}.minimumtls`, versionNode, `expected tls1.2 or tls1.3, got ${JSON.stringify(versionText)}`);
  }

  const suitesNode = child(tls, "ciphersuites");
  const cipherSuites: string[] = [];
  for (const name of readStringList(suitesNode, `${K}.ciphersuites`)) {
    const openssl = TLS12_CIPHER_SUITES[name];
    if (openssl !== undefined) cipherSuites.push(openssl);
    else if (!TLS13_CIPHER_SUITES.has(name)) {
      const reason = name.includes("3DES") ? "3DES suites are insecure and not supported" : "unknown cipher suite";
      throw fail(`${K}.ciphersuites`, suitesNode, `${reason}: ${JSON.stringify(name)}`);
    }
  }
  if (cipherSuites.length > 0 && minimumVersion === "TLSv1.3") {
    warnings.push(`${K}.ciphersuites is ignored with minimumtls tls1.3 (TLS 1.3 suites are not configurable)${fromEnv(suitesNode)}`);
    cipherSuites.length = 0;
  }
  return {
    tls: {
      certificate: absolutePath(certificate),
      key: absolutePath(key),
      clientCAs: clientCAs.map(absolutePath),
      minimumVersion,
      cipherSuites,
    },
    http2Disabled,
  };
}
