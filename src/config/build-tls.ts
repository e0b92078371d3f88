/**
 * TLS (http.tls, http.http2). Files are only named here; they are read at start
 * (src/server/tls-server.ts), through src/cli/start-checks.ts, by serve and by `config check`.
 */
import { domainToASCII } from "node:url";
import type { Config, LetsEncryptConfig } from "./config.js";
import { absolutePath, child, fail, fromEnv, readBool, readOptionalString, readSection, readString, readStringList } from "./raw-values.js";
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
  const letsEncrypt = buildLetsEncrypt(tls, certificate, key);
  if (certificate === "" && letsEncrypt === undefined) {
    // distribution serves plain HTTP when no certificate is set; anything that only makes sense
    // with TLS would then be silently dropped, so it is refused instead.
    if (key !== "") throw fail(`${K}.certificate`, child(tls, "key"), "required when http.tls.key is set");
    if (clientCAs.length > 0) throw fail(`${K}.certificate`, child(tls, "clientcas"), "required when http.tls.clientcas is set (client certificates need TLS)");
    return { tls: undefined, http2Disabled };
  }
  // distribution's h2c applies to the cleartext listener only; over TLS, ALPN offers h2 (http.http2).
  if (readBool(child(readSection(child(http, "h2c"), "http.h2c"), "enabled"), "http.h2c.enabled") === true) {
    warnings.push("http.h2c.enabled has no effect with http.tls: there is no cleartext listener (HTTP/2 over TLS is http.http2)");
  }
  if (key === "" && letsEncrypt === undefined) throw fail(`${K}.key`, child(tls, "key") ?? tlsNode, "required when http.tls.certificate is set");

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
      certificate: letsEncrypt === undefined ? absolutePath(certificate) : "",
      key: letsEncrypt === undefined ? absolutePath(key) : "",
      ...(letsEncrypt === undefined ? {} : { letsEncrypt }),
      clientCAs: clientCAs.map(absolutePath),
      minimumVersion,
      cipherSuites,
    },
    http2Disabled,
  };
}

/** Let's Encrypt's production directory: distribution's default (autocert.DefaultACMEDirectory). */
export const DEFAULT_ACME_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory";

const DNS_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * http.tls.letsencrypt (distribution 3's keys). distribution turns it on by `cachefile` alone and
 * silently drops the other keys without it, then serves plain HTTP if no certificate is set:
 * berth refuses that instead, like the other TLS-only keys. It also refuses an empty `hosts`:
 * distribution 3 then refuses every handshake (autocert.HostWhitelist()), 2.8 ordered for any
 * name a client sent, and neither is what anyone meant.
 */
function buildLetsEncrypt(tls: RawMap | undefined, certificate: string, key: string): LetsEncryptConfig | undefined {
  const K = "http.tls.letsencrypt";
  const node = child(tls, "letsencrypt");
  const section = readSection(node, K);
  const cacheNode = child(section, "cachefile");
  const cacheFile = readOptionalString(cacheNode, `${K}.cachefile`);
  const email = readOptionalString(child(section, "email"), `${K}.email`);
  const hostsNode = child(section, "hosts");
  const hosts = readStringList(hostsNode, `${K}.hosts`);
  const directoryNode = child(section, "directoryurl");
  const directory = readOptionalString(directoryNode, `${K}.directoryurl`);
  if (cacheFile === undefined) {
    if (email !== undefined || hosts.length > 0 || directory !== undefined) {
      throw fail(`${K}.cachefile`, cacheNode ?? node, "required when http.tls.letsencrypt is set: distribution ignores letsencrypt without it (and serves plain HTTP when no certificate is set)");
    }
    return undefined;
  }
  // distribution's own message for this case (registry.go).
  if (certificate !== "") throw fail(K, node, "cannot specify both certificate and Let's Encrypt: set http.tls.certificate and http.tls.key, or http.tls.letsencrypt, not both");
  if (key !== "") throw fail(K, node, "cannot specify both http.tls.key and Let's Encrypt: the key of a Let's Encrypt certificate is made by berth");
  if (hosts.length === 0) {
    throw fail(`${K}.hosts`, hostsNode ?? node, "required: the host names berth may order certificates for (any other server name fails the TLS handshake)");
  }
  const names = hosts.map((host) => {
    // Handshakes carry ASCII names; an IDN is configured in either form (autocert converts it too).
    const ascii = domainToASCII(host.trim().replace(/\.$/, "")).toLowerCase();
    if (!DNS_NAME.test(ascii) || /^[0-9.]+$/.test(ascii)) {
      throw fail(`${K}.hosts`, hostsNode, `${JSON.stringify(host)} is not a DNS host name (IP addresses and wildcards cannot be ordered through TLS-ALPN-01)`);
    }
    return ascii;
  });
  if (email !== undefined && !/^[^\s@]+@[^\s@]+$/.test(email)) throw fail(`${K}.email`, child(section, "email"), `expected an email address, got ${JSON.stringify(email)}`);
  let directoryURL = DEFAULT_ACME_DIRECTORY;
  if (directory !== undefined) {
    let url: URL;
    try {
      url = new URL(directory);
    } catch {
      throw fail(`${K}.directoryurl`, directoryNode, `expected an https:// URL, got ${JSON.stringify(directory)}`);
    }
    // RFC 8555 (6.1): ACME is spoken over HTTPS only.
    if (url.protocol !== "https:") throw fail(`${K}.directoryurl`, directoryNode, `expected an https:// URL (ACME runs over HTTPS only), got ${JSON.stringify(directory)}`);
    directoryURL = url.href;
  }
  return { cacheDirectory: absolutePath(cacheFile), email, hosts: [...new Set(names)], directoryURL };
}
