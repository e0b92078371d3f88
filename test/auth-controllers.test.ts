/**
 * Every access controller joins the shared suite (test/access-controller-suite.ts): htpasswd,
 * token with each way a token names its key (x5c chain, libtrust kid, JWKS), and silly.
 */
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import bcrypt from "bcryptjs";
import type { Access } from "../src/auth/access-controller.js";
import { HtpasswdAccessController } from "../src/auth/htpasswd.js";
import { SillyAccessController } from "../src/auth/silly.js";
import { loadTokenAccessController } from "../src/auth/token.js";
import { TOKEN_SIGNING_ALGORITHMS } from "../src/config/config.js";
import { runAccessControllerSuite, type AccessControllerHarness } from "./access-controller-suite.js";
import { requireProgram } from "./support/external-program.js";
import { memoryLogger } from "./support/memory-logger.js";
import { createTestPki, x5cEntry, type TestPki } from "./support/test-pki.js";
import { startTokenIssuer, type AccessEntry, type MintOptions } from "./support/token-issuer.js";

const openssl = requireProgram("openssl");

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

/** The `access` claim granting exactly `needed`. */
function claimFor(needed: readonly Access[]): AccessEntry[] {
  const byResource = new Map<string, AccessEntry>();
  for (const a of needed) {
    const key = `${a.type}:${a.name}`;
    const entry = byResource.get(key) ?? { type: a.type, name: a.name, actions: [] };
    entry.actions.push(a.action);
    byResource.set(key, entry);
  }
  return [...byResource.values()];
}

runAccessControllerSuite(
  "htpasswd",
  async (): Promise<AccessControllerHarness> => {
    const dir = await mkdtemp(join(tmpdir(), "berth-htpasswd-"));
    const path = join(dir, "htpasswd");
    const lines = [
      `alice:${await bcrypt.hash("alice-secret", 4)}`,
      `bob:${(await bcrypt.hash("bob-secret", 4)).replace(/^\$2b\$/, "$2y$")}`,
      "# a comment",
      "",
      "md5user:$apr1$abcdefgh$0123456789abcdefghijkl",
    ];
    await writeFile(path, `${lines.join("\n")}\n`);
    const controller = await HtpasswdAccessController.open({ realm: "berth-basic", path }, memoryLogger().log);
    return {
      controller,
      scheme: "Basic",
      realm: "berth-basic",
      validAuthorization: () => Promise.resolve(basic("alice", "alice-secret")),
      invalidAuthorizations: () =>
        Promise.resolve([
          ["wrong password", basic("alice", "wrong")],
          ["another user's password", basic("alice", "bob-secret")],
          ["unknown user", basic("mallory", "alice-secret")],
          ["user without a bcrypt hash", basic("md5user", "anything")],
          ["empty user and password", basic("", "")],
          ["password with a trailing newline", basic("alice", "alice-secret\n")],
          ["user name differing in case", basic("Alice", "alice-secret")],
        ]),
      close: () => rm(dir, { recursive: true, force: true }),
    };
  },
  { skip: { "refuses-insufficient-scope": "htpasswd authenticates; any authenticated user may do anything, as in distribution" } },
);

runAccessControllerSuite(
  "silly",
  () =>
    Promise.resolve({
      controller: new SillyAccessController({ realm: "https://auth.example/token", service: "berth-test" }),
      scheme: "Bearer",
      realm: "https://auth.example/token",
      service: "berth-test",
      validAuthorization: () => Promise.resolve("Bearer anything-at-all"),
      invalidAuthorizations: () => Promise.resolve([]),
    }),
  {
    skip: {
      "refuses-invalid-credentials": "silly accepts any non-empty Authorization header by design",
      "refuses-other-scheme": "silly accepts any non-empty Authorization header by design",
      "refuses-insufficient-scope": "silly grants everything to any Authorization header",
    },
  },
);

/** Token auth, one harness per way of naming the signing key. */
function tokenHarness(keyHeader: NonNullable<MintOptions["keyHeader"]>, trust: "rootcertbundle" | "jwks"): () => Promise<AccessControllerHarness> {
  return async () => {
    const pki: TestPki = await createTestPki(openssl.path);
    const signing = await pki.issue("token-signer", { keyType: keyHeader === "x5c" ? "rsa" : "ec" });
    const issuer = await startTokenIssuer({ signing, service: "berth-test", issuer: "test-issuer", users: {}, acl: () => [] });
    const jwksFile = join(pki.dir, "jwks.json");
    // kid names a key of the bundle itself (docker_auth's set-up: the signing certificate is the
    // bundle); x5c chains from the signing certificate up to the CA.
    const bundle = join(pki.dir, "bundle.pem");
    await writeFile(bundle, keyHeader === "kid" ? await readText(signing.cert) : await readText(pki.ca.cert));
    const jwk = issuer.publicKey.export({ format: "jwk" });
    await writeFile(jwksFile, JSON.stringify({ keys: [{ ...jwk, kid: "key-1", use: "sig" }] }));
    const controller = loadTokenAccessController(
      {
        kind: "token",
        realm: issuer.realm,
        service: "berth-test",
        issuer: "test-issuer",
        rootCertBundle: trust === "rootcertbundle" ? bundle : undefined,
        jwks: trust === "jwks" ? jwksFile : undefined,
        signingAlgorithms: [...TOKEN_SIGNING_ALGORITHMS],
        autoRedirect: false,
        autoRedirectPath: "/auth/token",
      },
      memoryLogger().log,
    );
    const header = trust === "jwks" ? { kid: "key-1" } : {};
    const mint = (needed: readonly Access[], extra: MintOptions = {}): Promise<string> =>
      issuer.mint({ sub: "alice", access: claimFor(needed), keyHeader: trust === "jwks" ? "none" : keyHeader, header, ...extra });
    const attacker = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const otherRoot = await pki.newRoot("other-root");
    const otherSigner = await pki.issue("other-signer", { issuer: otherRoot });
    const now = Math.floor(Date.now() / 1000);
    return {
      controller,
      scheme: "Bearer",
      realm: issuer.realm,
      service: "berth-test",
      validAuthorization: async (needed) => `Bearer ${await mint(needed)}`,
      scopedAuthorization: async (granted) => `Bearer ${await mint(granted)}`,
      invalidAuthorizations: async (needed) => [
        ["expired beyond the leeway", `Bearer ${await mint(needed, { exp: now - 120 })}`],
        ["not yet valid beyond the leeway", `Bearer ${await mint(needed, { nbf: now + 120 })}`],
        ["without exp", `Bearer ${await mint(needed, { exp: undefined })}`],
        ["for another service", `Bearer ${await mint(needed, { aud: "other-registry" })}`],
        ["from another issuer", `Bearer ${await mint(needed, { iss: "someone-else" })}`],
        ["signed by an untrusted key under a trusted kid", `Bearer ${await mint(needed, { signWith: { key: attacker, alg: "RS256" }, keyHeader: "none", header: { kid: trust === "jwks" ? "key-1" : "unknown" } })}`],
        [
          "x5c chaining to another root",
          `Bearer ${await mint(needed, { signWith: { key: createPrivateKey(await readText(otherSigner.key)), alg: "RS256", x5c: [await x5cEntry(otherSigner.cert)] }, keyHeader: "x5c" })}`,
        ],
        ["naming no key", `Bearer ${await issuer.mint({ access: claimFor(needed), keyHeader: "none" })}`],
        ["with a tampered payload", `Bearer ${tamper(await mint(needed))}`],
        ["with alg none", `Bearer ${unsigned(claimFor(needed))}`],
        ["granting nothing", `Bearer ${await mint([])}`],
        ["granting another repository", `Bearer ${await mint(needed.map((a) => ({ ...a, name: `${a.name}-other` })))}`],
      ],
      close: async () => {
        await issuer.close();
        await pki.cleanup();
      },
    };
  };
}

function readText(file: string): Promise<string> {
  return readFile(file, "utf8");
}

/** Swaps the payload for one granting everything, keeping the signature. */
function tamper(token: string): string {
  const [header, , signature] = token.split(".");
  const payload = Buffer.from(JSON.stringify({ iss: "test-issuer", aud: "berth-test", exp: 4102444800, access: [{ type: "repository", name: "team/app", actions: ["*"] }] })).toString("base64url");
  return `${header}.${payload}.${signature}`;
}

function unsigned(access: AccessEntry[]): string {
  const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
  const payload = Buffer.from(JSON.stringify({ iss: "test-issuer", aud: "berth-test", exp: 4102444800, access })).toString("base64url");
  return `${header}.${payload}.`;
}

const tokenOptions = { skip: openssl.skip ? { "refuses-invalid-credentials": openssl.skip } : {} };
if (openssl.skip) {
  // Without openssl there is no PKI: the token harnesses cannot be built.
  it("token access controller suite", { skip: openssl.skip }, () => undefined);
} else {
  runAccessControllerSuite("token (x5c chain to rootcertbundle)", tokenHarness("x5c", "rootcertbundle"), tokenOptions);
  runAccessControllerSuite("token (kid = libtrust key ID of a rootcertbundle key)", tokenHarness("kid", "rootcertbundle"), tokenOptions);
  runAccessControllerSuite("token (kid of a JWKS key)", tokenHarness("none", "jwks"), tokenOptions);
}
