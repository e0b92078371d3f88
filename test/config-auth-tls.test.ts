/**
 * The `auth` and `http.tls` sections: distribution's keys, typed, with errors naming the key.
 * (Reading the files they name happens at start: test/auth-*.test.ts and test/tls.test.ts.)
 */
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { ConfigError, TOKEN_SIGNING_ALGORITHMS, type Config } from "../src/config/config.js";
import { describeConfig, parseConfig } from "../src/config/load-config.js";

const MINIMAL = "version: 0.1\nstorage:\n  inmemory:\n";

function parse(yaml: string, env: NodeJS.ProcessEnv = {}): { config: Config; warnings: string[] } {
  return parseConfig(yaml, env, "test.yml");
}

function assertConfigError(run: () => unknown, key: string, fragment: string): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.key, key, err.message);
    assert.ok(err.message.includes(fragment), `${JSON.stringify(err.message)} lacks ${JSON.stringify(fragment)}`);
    return true;
  });
}

describe("auth configuration", () => {
  it("no auth section, or an empty one, is an open registry", () => {
    assert.equal(parse(MINIMAL).config.auth, undefined);
    assert.equal(parse(`${MINIMAL}auth:\n`).config.auth, undefined);
    assert.equal(parse(`${MINIMAL}auth: {}\n`).config.auth, undefined);
  });

  it("auth.htpasswd reads realm and path; a relative path is resolved against the working directory", () => {
    const { config, warnings } = parse(`${MINIMAL}auth:\n  htpasswd:\n    realm: basic-realm\n    path: auth/htpasswd\n`);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.auth, { kind: "htpasswd", realm: "basic-realm", path: path.resolve("auth/htpasswd") });
  });

  it("auth.htpasswd without path or realm names the missing key", () => {
    assertConfigError(() => parse(`${MINIMAL}auth:\n  htpasswd:\n    realm: r\n`), "auth.htpasswd.path", "required");
    assertConfigError(() => parse(`${MINIMAL}auth:\n  htpasswd:\n    path: /etc/htpasswd\n`), "auth.htpasswd.realm", "required");
    assertConfigError(() => parse(`${MINIMAL}auth:\n  htpasswd:\n`), "auth.htpasswd.realm", "required");
    assertConfigError(() => parse(`${MINIMAL}auth:\n  htpasswd:\n    realm: r\n    path: ""\n`), "auth.htpasswd.path", "required");
  });

  it("two auth types at once are refused", () => {
    assertConfigError(
      () => parse(`${MINIMAL}auth:\n  htpasswd:\n    realm: r\n    path: /p\n  silly:\n    realm: r\n    service: s\n`),
      "auth",
      "exactly one auth type must be configured, found htpasswd and silly",
    );
  });

  it("an auth type berth does not know stops start-up, as in distribution", () => {
    assertConfigError(() => parse(`${MINIMAL}auth:\n  ldap:\n    url: ldap://x\n`), "auth.ldap", "unknown auth type; berth supports htpasswd, token and silly");
  });

  it("auth.silly needs realm and service; `auth: silly` alone names the missing realm", () => {
    assert.deepEqual(parse(`${MINIMAL}auth:\n  silly:\n    realm: r\n    service: s\n`).config.auth, { kind: "silly", realm: "r", service: "s" });
    assertConfigError(() => parse(`${MINIMAL}auth: silly\n`), "auth.silly.realm", "required");
    assertConfigError(() => parse(`${MINIMAL}auth:\n  silly:\n    realm: r\n`), "auth.silly.service", "required");
  });

  it("auth.token reads every distribution key", () => {
    const { config, warnings } = parse(`${MINIMAL}auth:
  token:
    realm: https://auth.example.com/token
    service: registry.example.com
    issuer: auth.example.com
    rootcertbundle: /etc/registry/token-ca.pem
    jwks: /etc/registry/jwks.json
    signingalgorithms: [RS256, ES256]
    autoredirect: true
    autoredirectpath: /token
`);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.auth, {
      kind: "token",
      realm: "https://auth.example.com/token",
      service: "registry.example.com",
      issuer: "auth.example.com",
      rootCertBundle: "/etc/registry/token-ca.pem",
      jwks: "/etc/registry/jwks.json",
      signingAlgorithms: ["RS256", "ES256"],
      autoRedirect: true,
      autoRedirectPath: "/token",
    });
  });

  it("auth.token defaults: every asymmetric algorithm, no autoredirect, /auth/token", () => {
    const { config } = parse(`${MINIMAL}auth:\n  token:\n    realm: r\n    service: s\n    issuer: i\n    rootcertbundle: /ca.pem\n`);
    assert.ok(config.auth?.kind === "token");
    assert.deepEqual(config.auth.signingAlgorithms, [...TOKEN_SIGNING_ALGORITHMS]);
    assert.equal(config.auth.jwks, undefined);
    assert.equal(config.auth.autoRedirect, false);
    assert.equal(config.auth.autoRedirectPath, "/auth/token");
  });

  it("auth.token names each missing key", () => {
    const base = { realm: "r", service: "s", issuer: "i", rootcertbundle: "/ca.pem" };
    for (const missing of ["realm", "service", "issuer"] as const) {
      const params = Object.entries(base).filter(([k]) => k !== missing).map(([k, v]) => `    ${k}: ${v}\n`).join("");
      assertConfigError(() => parse(`${MINIMAL}auth:\n  token:\n${params}`), `auth.token.${missing}`, "required");
    }
    assertConfigError(() => parse(`${MINIMAL}auth:\n  token:\n    realm: r\n    service: s\n    issuer: i\n`), "auth.token.rootcertbundle", "required");
  });

  it("auth.token signingalgorithms: HMAC is dropped with a warning, an unknown name is refused", () => {
    const { config, warnings } = parse(`${MINIMAL}auth:\n  token:\n    realm: r\n    service: s\n    issuer: i\n    jwks: /k.json\n    signingalgorithms: [HS256, ES256]\n`);
    assert.ok(config.auth?.kind === "token");
    assert.deepEqual(config.auth.signingAlgorithms, ["ES256"]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /HS256 needs a shared secret/);
    assertConfigError(
      () => parse(`${MINIMAL}auth:\n  token:\n    realm: r\n    service: s\n    issuer: i\n    jwks: /k.json\n    signingalgorithms: [XS999]\n`),
      "auth.token.signingalgorithms",
      'unsupported signing algorithm "XS999"',
    );
    assertConfigError(
      () => parse(`${MINIMAL}auth:\n  token:\n    realm: r\n    service: s\n    issuer: i\n    jwks: /k.json\n    signingalgorithms: [HS256]\n`),
      "auth.token.signingalgorithms",
      "no usable signing algorithm",
    );
  });

  it("auth can be configured from the environment alone", () => {
    const { config } = parse(MINIMAL, { REGISTRY_AUTH_HTPASSWD_REALM: "basic", REGISTRY_AUTH_HTPASSWD_PATH: "/etc/registry/htpasswd" });
    assert.deepEqual(config.auth, { kind: "htpasswd", realm: "basic", path: "/etc/registry/htpasswd" });
    const token = parse(MINIMAL, {
      REGISTRY_AUTH_TOKEN_REALM: "https://a/token",
      REGISTRY_AUTH_TOKEN_SERVICE: "reg",
      REGISTRY_AUTH_TOKEN_ISSUER: "iss",
      REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE: "/ca.pem",
      REGISTRY_AUTH_TOKEN_SIGNINGALGORITHMS: "[ES256]",
    }).config.auth;
    assert.ok(token?.kind === "token");
    assert.deepEqual(token.signingAlgorithms, ["ES256"]);
  });

  it("describeConfig shows the auth section (it holds no secret: the secrets are in the files)", () => {
    const { config } = parse(`${MINIMAL}auth:\n  htpasswd:\n    realm: basic-realm\n    path: /etc/htpasswd\n`);
    assert.deepEqual(describeConfig(config)["auth"], { htpasswd: { realm: "basic-realm", path: "/etc/htpasswd" } });
    assert.equal(describeConfig(parse(MINIMAL).config)["auth"], undefined);
  });
});

describe("http.tls configuration", () => {
  it("certificate and key turn TLS on, at tls1.2 with the default suites, HTTP/2 offered", () => {
    const { config, warnings } = parse(`${MINIMAL}http:\n  tls:\n    certificate: /etc/certs/domain.crt\n    key: certs/domain.key\n`);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.http.tls, {
      certificate: "/etc/certs/domain.crt",
      key: path.resolve("certs/domain.key"),
      clientCAs: [],
      minimumVersion: "TLSv1.2",
      cipherSuites: [],
    });
    assert.equal(config.http.http2Disabled, false);
  });

  it("no certificate means plain HTTP, as in distribution; empty values count as absent", () => {
    assert.equal(parse(MINIMAL).config.http.tls, undefined);
    assert.equal(parse(`${MINIMAL}http:\n  tls:\n    certificate: ""\n    key: ""\n`).config.http.tls, undefined);
  });

  it("a key, or client CAs, without a certificate are refused rather than silently serving plain HTTP", () => {
    assertConfigError(() => parse(`${MINIMAL}http:\n  tls:\n    key: /k.pem\n`), "http.tls.certificate", "required when http.tls.key is set");
    assertConfigError(() => parse(`${MINIMAL}http:\n  tls:\n    clientcas: [/ca.pem]\n`), "http.tls.certificate", "required when http.tls.clientcas is set");
    assertConfigError(() => parse(`${MINIMAL}http:\n  tls:\n    certificate: /c.pem\n`), "http.tls.key", "required when http.tls.certificate is set");
  });

  it("clientcas is a list of files (a single string is one file)", () => {
    const list = parse(`${MINIMAL}http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n    clientcas:\n      - /ca1.pem\n      - /ca2.pem\n`).config.http.tls;
    assert.deepEqual(list?.clientCAs, ["/ca1.pem", "/ca2.pem"]);
    const single = parse(`${MINIMAL}http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n    clientcas: /ca.pem\n`).config.http.tls;
    assert.deepEqual(single?.clientCAs, ["/ca.pem"]);
  });

  it("minimumtls: tls1.2 or tls1.3; tls1.0 and tls1.1 are raised to tls1.2 with a warning; anything else is refused", () => {
    const tls = (v: string) => parse(`${MINIMAL}http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n    minimumtls: ${v}\n`);
    assert.equal(tls("tls1.3").config.http.tls?.minimumVersion, "TLSv1.3");
    assert.equal(tls("TLS1.2").config.http.tls?.minimumVersion, "TLSv1.2");
    const old = tls("tls1.0");
    assert.equal(old.config.http.tls?.minimumVersion, "TLSv1.2");
    assert.match(old.warnings[0] ?? "", /http\.tls\.minimumtls: tls1\.0 is insecure/);
    assertConfigError(() => tls("ssl3"), "http.tls.minimumtls", 'expected tls1.2 or tls1.3, got "ssl3"');
  });

  it("ciphersuites: distribution's Go names map to OpenSSL's; TLS 1.3 names change nothing; 3DES and unknown names are refused", () => {
    const tls = (list: string, version = "tls1.2") =>
      parse(`${MINIMAL}http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n    minimumtls: ${version}\n    ciphersuites: ${list}\n`);
    assert.deepEqual(
      tls("[TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256]").config.http.tls?.cipherSuites,
      ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"],
    );
    assertConfigError(() => tls("[TLS_RSA_WITH_3DES_EDE_CBC_SHA]"), "http.tls.ciphersuites", "3DES suites are insecure");
    assertConfigError(() => tls("[TLS_FANCY]"), "http.tls.ciphersuites", 'unknown cipher suite: "TLS_FANCY"');
    const v13 = tls("[TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]", "tls1.3");
    assert.deepEqual(v13.config.http.tls?.cipherSuites, []);
    assert.match(v13.warnings[0] ?? "", /ciphersuites is ignored with minimumtls tls1\.3/);
  });

  const LE = (lines: string) => parse(`${MINIMAL}http:\n  tls:\n    letsencrypt:\n${lines}`);

  it("http.tls.letsencrypt reads cachefile, email, hosts and directoryurl (default: Let's Encrypt production)", () => {
    const { config } = LE("      cachefile: le-cache\n      email: ops@example.com\n      hosts: [Registry.Example.com., bücher.example]\n");
    assert.deepEqual(config.http.tls?.letsEncrypt, {
      cacheDirectory: path.resolve("le-cache"),
      email: "ops@example.com",
      hosts: ["registry.example.com", "xn--bcher-kva.example"],
      directoryURL: "https://acme-v02.api.letsencrypt.org/directory",
    });
    assert.equal(config.http.tls?.certificate, "");
    const custom = LE("      cachefile: /c\n      hosts: [a.example]\n      directoryurl: https://ca.internal:14000/dir\n").config.http.tls?.letsEncrypt;
    assert.equal(custom?.directoryURL, "https://ca.internal:14000/dir");
    assert.equal(custom?.email, undefined);
    const described = describeConfig(LE("      cachefile: /c\n      hosts: [a.example]\n").config) as { http: { tls: Record<string, unknown> } };
    assert.deepEqual(described.http.tls["letsencrypt"], { cachefile: "/c", hosts: ["a.example"], directoryurl: "https://acme-v02.api.letsencrypt.org/directory" });
    assert.equal(described.http.tls["certificate"], undefined);
  });

  it("http.tls.letsencrypt with a certificate or a key is refused, as distribution refuses it", () => {
    assertConfigError(
      () => parse(`${MINIMAL}http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n    letsencrypt:\n      cachefile: /c\n      hosts: [a.example]\n`),
      "http.tls.letsencrypt",
      "cannot specify both certificate and Let's Encrypt",
    );
    assertConfigError(() => parse(`${MINIMAL}http:\n  tls:\n    key: /k.pem\n    letsencrypt:\n      cachefile: /c\n      hosts: [a.example]\n`), "http.tls.letsencrypt", "cannot specify both http.tls.key");
  });

  it("http.tls.letsencrypt without cachefile, without hosts, or with bad values names the key", () => {
    assertConfigError(() => LE("      email: a@b.example\n      hosts: [a.example]\n"), "http.tls.letsencrypt.cachefile", "required when http.tls.letsencrypt is set");
    assertConfigError(() => LE("      cachefile: /c\n"), "http.tls.letsencrypt.hosts", "required");
    assertConfigError(() => LE("      cachefile: /c\n      hosts: [10.0.0.1]\n"), "http.tls.letsencrypt.hosts", "is not a DNS host name");
    assertConfigError(() => LE("      cachefile: /c\n      hosts: ['*.example.com']\n"), "http.tls.letsencrypt.hosts", "is not a DNS host name");
    assertConfigError(() => LE("      cachefile: /c\n      hosts: [a.example]\n      directoryurl: http://ca/dir\n"), "http.tls.letsencrypt.directoryurl", "https:// URL");
    assertConfigError(() => LE("      cachefile: /c\n      hosts: [a.example]\n      directoryurl: not a url\n"), "http.tls.letsencrypt.directoryurl", "https:// URL");
    assertConfigError(() => LE("      cachefile: /c\n      hosts: [a.example]\n      email: nobody\n"), "http.tls.letsencrypt.email", "email address");
    // An empty section changes nothing: plain HTTP, as distribution.
    assert.equal(LE("      {}\n").config.http.tls, undefined);
  });

  it("http.tls.letsencrypt can be set from the environment", () => {
    const { config } = parse(MINIMAL, {
      REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE: "/var/lib/berth/acme",
      REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS: "[a.example, b.example]",
      REGISTRY_HTTP_TLS_LETSENCRYPT_DIRECTORYURL: "https://ca.internal/dir",
    });
    assert.deepEqual(config.http.tls?.letsEncrypt?.hosts, ["a.example", "b.example"]);
    assert.equal(config.http.tls?.letsEncrypt?.cacheDirectory, "/var/lib/berth/acme");
    assertConfigError(() => parse(MINIMAL, { REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE: "/c" }), "http.tls.letsencrypt.hosts", "REGISTRY_HTTP_TLS_LETSENCRYPT");
  });

  it("http.http2.disabled turns HTTP/2 off", () => {
    assert.equal(parse(`${MINIMAL}http:\n  http2:\n    disabled: true\n`).config.http.http2Disabled, true);
  });

  it("TLS can be configured from the environment, clientcas as a YAML list", () => {
    const { config } = parse(MINIMAL, {
      REGISTRY_HTTP_TLS_CERTIFICATE: "/c.pem",
      REGISTRY_HTTP_TLS_KEY: "/k.pem",
      REGISTRY_HTTP_TLS_CLIENTCAS: "[/ca1.pem, /ca2.pem]",
      REGISTRY_HTTP_TLS_MINIMUMTLS: "tls1.3",
    });
    assert.deepEqual(config.http.tls, { certificate: "/c.pem", key: "/k.pem", clientCAs: ["/ca1.pem", "/ca2.pem"], minimumVersion: "TLSv1.3", cipherSuites: [] });
  });

  it("describeConfig shows the tls section with distribution's names (file paths, no key material)", () => {
    const { config } = parse(
      `${MINIMAL}http:\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n    clientcas: [/ca.pem]\n    ciphersuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n`,
    );
    const http = describeConfig(config)["http"] as Record<string, unknown>;
    assert.deepEqual(http["tls"], {
      certificate: "/c.pem",
      key: "/k.pem",
      clientcas: ["/ca.pem"],
      minimumtls: "tls1.2",
      ciphersuites: ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
    });
    assert.deepEqual(http["http2"], { disabled: false });
  });
});
