/**
 * The token access controller beyond the shared suite: how a token names its key (x5c through an
 * intermediate, jwk, kid forms), the claims (leeway, audience lists, wildcard actions), the
 * configured algorithms, the exact challenges, and loading rootcertbundle and jwks at start.
 */
import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync, X509Certificate } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { calculateJwkThumbprint, type JWK } from "jose";
import type { Access } from "../src/auth/access-controller.js";
import { loadTokenAccessController, type TokenAccessController } from "../src/auth/token.js";
import { jwkThumbprint, libtrustKeyID, parseCertificateBundle, verifyCertificateChain, TokenKeyError } from "../src/auth/token-keys.js";
import { ConfigError, TOKEN_SIGNING_ALGORITHMS, type TokenAuthConfig } from "../src/config/config.js";
import { RegistryError } from "../src/errcode/registry-error.js";
import { requireProgram } from "./support/external-program.js";
import { memoryLogger } from "./support/memory-logger.js";
import { createTestPki, x5cEntry, type CertFiles, type TestPki } from "./support/test-pki.js";
import { parseChallenge, startTokenIssuer, type MintOptions, type TokenIssuer } from "./support/token-issuer.js";

const openssl = requireProgram("openssl");
const PULL: Access[] = [{ type: "repository", name: "team/app", action: "pull" }];
const PUSH: Access[] = [...PULL, { type: "repository", name: "team/app", action: "push" }];

describe("key identifiers", () => {
  it("jwkThumbprint is RFC 7638's, for RSA, EC and Ed25519 keys", async () => {
    for (const key of [
      generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey,
      generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey,
      generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey,
      generateKeyPairSync("ed25519").publicKey,
    ]) {
      assert.equal(jwkThumbprint(key), await calculateJwkThumbprint(key.export({ format: "jwk" }) as JWK, "sha256"));
    }
  });

  it("libtrustKeyID has libtrust's shape: twelve groups of four base32 characters", () => {
    const id = libtrustKeyID(generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey);
    assert.match(id, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
  });
});

describe("token access controller", { skip: openssl.skip }, () => {
  let pki: TestPki;
  let intermediate: CertFiles;
  let issuer: TokenIssuer;
  let viaIntermediate: TokenIssuer;
  let controller: TokenAccessController;
  let bundleFile: string;

  function load(overrides: Partial<TokenAuthConfig> = {}, log = memoryLogger().log): TokenAccessController {
    return loadTokenAccessController(
      {
        kind: "token",
        realm: issuer.realm,
        service: "berth-test",
        issuer: "test-issuer",
        rootCertBundle: bundleFile,
        jwks: undefined,
        signingAlgorithms: [...TOKEN_SIGNING_ALGORITHMS],
        autoRedirect: false,
        autoRedirectPath: "/auth/token",
        ...overrides,
      },
      log,
    );
  }

  async function outcome(c: TokenAccessController, token: string | Promise<string>, needed: readonly Access[] = PULL, headers: Record<string, string> = {}) {
    try {
      const grant = await c.authorize({ headers: { authorization: `Bearer ${await token}`, ...headers } }, needed);
      return { ok: true as const, user: grant.user };
    } catch (err) {
      assert.ok(err instanceof RegistryError, String(err));
      assert.equal(err.status, 401);
      return { ok: false as const, challenge: parseChallenge(err.headers["WWW-Authenticate"] ?? null) };
    }
  }

  const mint = (options: MintOptions = {}) => issuer.mint({ sub: "alice", access: [{ type: "repository", name: "team/app", actions: ["pull"] }], ...options });

  before(async () => {
    pki = await createTestPki(openssl.path);
    intermediate = await pki.issue("intermediate-ca", { ca: true });
    const signing = await pki.issue("token-signer", { keyType: "ec" });
    const deepSigning = await pki.issue("deep-signer", { issuer: intermediate });
    bundleFile = join(pki.dir, "bundle.pem");
    await writeFile(bundleFile, await readFile(pki.ca.cert, "utf8"));
    const common = { service: "berth-test", issuer: "test-issuer", users: {}, acl: () => [] };
    issuer = await startTokenIssuer({ signing, ...common });
    viaIntermediate = await startTokenIssuer({ signing: deepSigning, intermediates: [intermediate], ...common });
    controller = load();
  });

  after(async () => {
    await issuer?.close();
    await viaIntermediate?.close();
    await pki?.cleanup();
  });

  it("a valid token grants what its access claim lists, and names the user", async () => {
    assert.deepEqual(await outcome(controller, mint()), { ok: true, user: "alice" });
  });

  it("an x5c chain through an intermediate CA leads to the root", async () => {
    const token = viaIntermediate.mint({ access: [{ type: "repository", name: "team/app", actions: ["pull"] }] });
    assert.equal((await outcome(controller, token)).ok, true);
  });

  it("an x5c chain missing its intermediate is refused", async () => {
    const token = viaIntermediate.mint({ access: [{ type: "repository", name: "team/app", actions: ["pull"] }], header: { x5c: [viaIntermediate.x5c[0]!] } });
    assert.equal((await outcome(controller, token)).ok, false);
  });

  it("an intermediate that is no CA cannot vouch for a leaf", async () => {
    const notCA = await pki.issue("not-a-ca");
    const leaf = await pki.issue("leaf-under-not-ca", { issuer: notCA });
    const token = issuer.mint({
      access: [{ type: "repository", name: "team/app", actions: ["pull"] }],
      signWith: { key: createPrivateKey(await readFile(leaf.key)), alg: "RS256", x5c: [await x5cEntry(leaf.cert), await x5cEntry(notCA.cert)] },
    });
    assert.equal((await outcome(controller, token)).ok, false);
  });

  it("certificates outside their validity period break the chain", async () => {
    const roots = parseCertificateBundle(await readFile(pki.ca.cert, "utf8"));
    assert.ok(verifyCertificateChain(issuer.x5c, roots, new Date()));
    assert.throws(() => verifyCertificateChain(issuer.x5c, roots, new Date(Date.now() + 30 * 86_400_000)), TokenKeyError);
    assert.throws(() => verifyCertificateChain(issuer.x5c, roots, new Date(Date.now() - 86_400_000)), TokenKeyError);
  });

  it("exp and nbf have a minute of leeway, as in distribution", async () => {
    const now = Math.floor(Date.now() / 1000);
    assert.equal((await outcome(controller, mint({ exp: now - 30 }))).ok, true, "expired 30 s ago");
    assert.equal((await outcome(controller, mint({ nbf: now + 30 }))).ok, true, "valid in 30 s");
    assert.equal((await outcome(controller, mint({ exp: now - 90 }))).ok, false, "expired 90 s ago");
    assert.equal((await outcome(controller, mint({ nbf: now + 90 }))).ok, false, "valid in 90 s");
  });

  it("aud may be a list that contains the service", async () => {
    assert.equal((await outcome(controller, mint({ aud: ["other", "berth-test"] }))).ok, true);
    assert.equal((await outcome(controller, mint({ aud: ["other", "another"] }))).ok, false);
  });

  it('the "*" action grants every action on its resource, and only there', async () => {
    const star = mint({ access: [{ type: "repository", name: "team/app", actions: ["*"] }] });
    assert.equal((await outcome(controller, star, [...PUSH, { type: "repository", name: "team/app", action: "delete" }])).ok, true);
    assert.equal((await outcome(controller, star, [{ type: "repository", name: "team/other", action: "pull" }])).ok, false);
  });

  it("registry:catalog:* grants the catalog; a repository grant does not", async () => {
    const catalog: Access[] = [{ type: "registry", name: "catalog", action: "*" }];
    assert.equal((await outcome(controller, mint({ access: [{ type: "registry", name: "catalog", actions: ["*"] }] }), catalog)).ok, true);
    assert.equal((await outcome(controller, mint(), catalog)).ok, false);
  });

  it("malformed access claims grant nothing and break nothing", async () => {
    const token = issuer.mint({ access: [null, "x", { type: "repository" }, { type: "repository", name: "team/app", actions: "pull" }] as unknown as MintOptions["access"] });
    const result = await outcome(controller, token);
    assert.equal(result.ok, false);
    assert.equal(result.ok === false && result.challenge.params["error"], "insufficient_scope");
  });

  it("challenges are distribution's: no error without a token, invalid_token for a bad one, insufficient_scope for too little", async () => {
    const none = await controller.authorize({ headers: {} }, PUSH).catch((err: RegistryError) => err);
    assert.ok(none instanceof RegistryError);
    assert.equal(none.headers["WWW-Authenticate"], `Bearer realm="${issuer.realm}",service="berth-test",scope="repository:team/app:pull,push"`);
    const bad = await outcome(controller, mint({ iss: "nobody" }), PUSH);
    assert.deepEqual(bad.ok === false && bad.challenge.params, { realm: issuer.realm, service: "berth-test", scope: "repository:team/app:pull,push", error: "invalid_token" });
    const scant = await outcome(controller, mint(), PUSH);
    assert.deepEqual(scant.ok === false && scant.challenge.params, { realm: issuer.realm, service: "berth-test", scope: "repository:team/app:pull,push", error: "insufficient_scope" });
    const base = await controller.authorize({ headers: {} }, []).catch((err: RegistryError) => err);
    assert.ok(base instanceof RegistryError);
    assert.equal(base.headers["WWW-Authenticate"], `Bearer realm="${issuer.realm}",service="berth-test"`, "GET /v2/ names no scope");
  });

  it("signingalgorithms limits the accepted algorithms", async () => {
    const rsaOnly = load({ signingAlgorithms: ["RS256"] });
    assert.equal((await outcome(rsaOnly, mint())).ok, false, "an ES256 token");
    assert.equal((await outcome(controller, mint())).ok, true);
  });

  it("a jwk header is trusted when it carries a chain to the root, or is a trusted key; not otherwise", async () => {
    assert.equal((await outcome(controller, mint({ keyHeader: "jwk-x5c" }))).ok, true, "jwk with x5c");
    assert.equal((await outcome(controller, mint({ keyHeader: "jwk" }))).ok, false, "bare jwk of a key the bundle does not hold");
    const attacker = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const forged = mint({ signWith: { key: attacker, alg: "ES256", x5c: issuer.x5c }, keyHeader: "jwk-x5c" });
    assert.equal((await outcome(controller, forged)).ok, false, "jwk of another key than its certificate's");
  });

  it("kid may be the libtrust key ID or the RFC 7638 thumbprint of a bundle certificate's key", async () => {
    const selfSignedBundle = join(pki.dir, "signer-bundle.pem");
    await writeFile(selfSignedBundle, await readFile(join(pki.dir, "token-signer.crt"), "utf8"));
    const byKid = load({ rootCertBundle: selfSignedBundle });
    assert.equal((await outcome(byKid, mint({ keyHeader: "kid" }))).ok, true, "libtrust key ID");
    assert.equal((await outcome(byKid, mint({ keyHeader: "kid-thumbprint" }))).ok, true, "thumbprint");
    assert.equal((await outcome(byKid, mint({ keyHeader: "none", header: { kid: "AAAA:BBBB" } }))).ok, false, "unknown kid");
  });

  it("a JWKS key is found by its kid or by its thumbprint", async () => {
    const jwksFile = join(pki.dir, "keys.json");
    await writeFile(jwksFile, JSON.stringify({ keys: [{ ...issuer.publicKey.export({ format: "jwk" }), kid: "k1" }] }));
    const byJwks = load({ rootCertBundle: undefined, jwks: jwksFile });
    assert.equal((await outcome(byJwks, mint({ keyHeader: "none", header: { kid: "k1" } }))).ok, true);
    assert.equal((await outcome(byJwks, mint({ keyHeader: "kid-thumbprint" }))).ok, true);
    assert.equal((await outcome(byJwks, mint({ keyHeader: "jwk", header: {} }))).ok, true, "a bare jwk header that is a trusted key");
    assert.equal((await outcome(byJwks, mint({ keyHeader: "x5c" }))).ok, false, "no rootcertbundle: x5c chains lead nowhere");
  });

  it("EdDSA tokens verify against an Ed25519 JWKS key", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const jwksFile = join(pki.dir, "ed.json");
    await writeFile(jwksFile, JSON.stringify({ keys: [{ ...publicKey.export({ format: "jwk" }), kid: "ed" }] }));
    const ed = load({ rootCertBundle: undefined, jwks: jwksFile });
    const token = mint({ signWith: { key: privateKey, alg: "EdDSA" }, keyHeader: "none", header: { kid: "ed" } });
    assert.equal((await outcome(ed, token)).ok, true);
  });

  it("autoredirect sends clients to the registry's own host", async () => {
    const redirecting = load({ autoRedirect: true, autoRedirectPath: "/auth/token" });
    const plain = await redirecting.authorize({ headers: { host: "registry.example.com:5000" } }, PULL).catch((err: RegistryError) => err);
    assert.ok(plain instanceof RegistryError);
    assert.equal(parseChallenge(plain.headers["WWW-Authenticate"] ?? null).params["realm"], "https://registry.example.com:5000/auth/token");
    const forwarded = await redirecting.authorize({ headers: { host: "r.example", "x-forwarded-proto": "http" } }, PULL).catch((err: RegistryError) => err);
    assert.ok(forwarded instanceof RegistryError);
    assert.equal(parseChallenge(forwarded.headers["WWW-Authenticate"] ?? null).params["realm"], "http://r.example/auth/token");
  });

  it("loading: a missing or empty rootcertbundle, and an unusable jwks, are ConfigErrors naming the key", async () => {
    const expectKey = (run: () => unknown, key: string, fragment: RegExp) =>
      assert.throws(run, (err: unknown) => err instanceof ConfigError && err.key === key && fragment.test(err.message));
    expectKey(() => load({ rootCertBundle: join(pki.dir, "nope.pem") }), "auth.token.rootcertbundle", /cannot read/);
    const empty = join(pki.dir, "empty.pem");
    await writeFile(empty, "nothing here\n");
    expectKey(() => load({ rootCertBundle: empty }), "auth.token.rootcertbundle", /no PEM certificate/);
    const badJwks = join(pki.dir, "bad.json");
    await writeFile(badJwks, "{not json");
    expectKey(() => load({ rootCertBundle: undefined, jwks: badJwks }), "auth.token.jwks", /not JSON/);
    await writeFile(badJwks, JSON.stringify({ keys: [] }));
    expectKey(() => load({ rootCertBundle: undefined, jwks: badJwks }), "auth.token.jwks", /holds no key/);
    await writeFile(badJwks, JSON.stringify({ keys: [{ kty: "oct", k: "c2VjcmV0" }] }));
    expectKey(() => load({ rootCertBundle: undefined, jwks: badJwks }), "auth.token.jwks", /key 1 cannot be used/);
  });

  it("the bundle may hold several certificates, each a root", async () => {
    const other = await pki.newRoot("second-root", "ec");
    const two = join(pki.dir, "two.pem");
    await writeFile(two, (await readFile(other.cert, "utf8")) + (await readFile(pki.ca.cert, "utf8")));
    assert.equal(parseCertificateBundle(await readFile(two, "utf8")).length, 2);
    assert.ok(new X509Certificate(await readFile(other.cert)).ca);
    assert.equal((await outcome(load({ rootCertBundle: two }), mint())).ok, true);
  });
});
