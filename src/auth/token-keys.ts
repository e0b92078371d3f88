/**
 * The keys token authentication trusts, and how a token's header leads to one of them. Pure
 * functions over Node's crypto: certificate chains are checked with X509Certificate, key IDs are
 * computed from the public key.
 */
import { createHash, createPublicKey, X509Certificate, type JsonWebKey, type KeyObject } from "node:crypto";

/** Key ID (libtrust key ID, RFC 7638 thumbprint, or a JWKS `kid`) → public key. */
export type TrustedKeys = Map<string, KeyObject>;

/** A token's signing key cannot be trusted. The message is for the log, never for the client. */
export class TokenKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TokenKeyError";
  }
}

/** Chains longer than this are refused outright (Go's x509 has no smaller practical bound). */
const MAX_CHAIN = 10;

/**
 * The libtrust key ID distribution 2.x computes for a public key, and that token servers
 * (docker_auth, GitLab, Harbor) put in `kid`: SHA-256 of the DER SubjectPublicKeyInfo, first 240
 * bits, base32 without padding, in twelve groups of four joined by ":".
 */
export function libtrustKeyID(key: KeyObject): string {
  const sum = createHash("sha256").update(key.export({ type: "spki", format: "der" })).digest().subarray(0, 30);
  const b32 = base32(sum);
  const groups: string[] = [];
  for (let i = 0; i < b32.length; i += 4) groups.push(b32.slice(i, i + 4));
  return groups.join(":");
}

function base32(bytes: Uint8Array): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key: the required members in
 * lexicographic order. (distribution 3 computes it for RSA correctly but, for EC keys, from the
 * curve's generator point instead of the key; berth uses the RFC's definition.)
 */
export function jwkThumbprint(key: KeyObject): string | undefined {
  const jwk = key.export({ format: "jwk" });
  let members: string;
  switch (jwk.kty) {
    case "RSA":
      members = `{"e":"${jwk.e}","kty":"RSA","n":"${jwk.n}"}`;
      break;
    case "EC":
      members = `{"crv":"${jwk.crv}","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`;
      break;
    case "OKP":
      members = `{"crv":"${jwk.crv}","kty":"OKP","x":"${jwk.x}"}`;
      break;
    default:
      return undefined;
  }
  return createHash("sha256").update(members).digest("base64url");
}

/** Every PEM CERTIFICATE block of a bundle. Throws when the text holds none or a broken one. */
export function parseCertificateBundle(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error("no PEM certificate found");
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new Error(`certificate ${i + 1} cannot be parsed: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
}

/** The public keys of a JWKS document (`{"keys":[…]}`), by `kid` when they have one. */
export function parseJWKS(text: string): { kid: string | undefined; key: KeyObject }[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new Error('expected a JSON object with a "keys" list');
  return keys.map((jwk: unknown, i) => {
    if (typeof jwk !== "object" || jwk === null) throw new Error(`key ${i + 1} is not an object`);
    const { kid } = jwk as { kid?: unknown };
    try {
      return { kid: typeof kid === "string" && kid !== "" ? kid : undefined, key: publicKeyOf(jwk as JsonWebKey) };
    } catch (err) {
      throw new Error(`key ${i + 1} cannot be used: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
}

/** Only the public part of a JWK, even when the document carries a private key. */
function publicKeyOf(jwk: JsonWebKey): KeyObject {
  const key = createPublicKey({ key: jwk, format: "jwk" });
  if (key.asymmetricKeyType === undefined) throw new Error("not an asymmetric key");
  return key;
}

/**
 * The trusted keys of a configuration: each root certificate's key under its libtrust key ID and
 * its thumbprint, and each JWKS key under its `kid` and its thumbprint.
 */
export function trustedKeysOf(roots: readonly X509Certificate[], jwks: readonly { kid: string | undefined; key: KeyObject }[]): TrustedKeys {
  const keys: TrustedKeys = new Map();
  const add = (id: string | undefined, key: KeyObject): void => {
    if (id !== undefined && id !== "" && !keys.has(id)) keys.set(id, key);
  };
  for (const cert of roots) {
    add(libtrustKeyID(cert.publicKey), cert.publicKey);
    add(jwkThumbprint(cert.publicKey), cert.publicKey);
  }
  for (const { kid, key } of jwks) {
    add(kid, key);
    add(jwkThumbprint(key), key);
  }
  return keys;
}

/**
 * Verifies an `x5c` chain (standard base64 DER, leaf first) up to one of `roots` and returns the
 * leaf's public key, as Go's x509 Verify does for distribution: every certificate on the path must
 * be within its validity period; intermediates must be CAs; a leaf that is itself a root is
 * trusted. Throws TokenKeyError otherwise.
 */
export function verifyCertificateChain(x5c: readonly unknown[], roots: readonly X509Certificate[], now: Date): KeyObject {
  if (x5c.length > MAX_CHAIN) throw new TokenKeyError(`certificate chain longer than ${MAX_CHAIN}`);
  const chain = x5c.map((item, i) => {
    if (typeof item !== "string" || !/^[A-Za-z0-9+/]+={0,2}$/.test(item)) throw new TokenKeyError(`x5c[${i}] is not base64`);
    try {
      return new X509Certificate(Buffer.from(item, "base64"));
    } catch {
      throw new TokenKeyError(`x5c[${i}] is not a certificate`);
    }
  });
  const [leaf, ...intermediates] = chain;
  if (leaf === undefined) throw new TokenKeyError("empty certificate chain");
  let current = leaf;
  const used = new Set<X509Certificate>();
  for (;;) {
    if (!isCurrent(current, now)) throw new TokenKeyError(`certificate ${JSON.stringify(current.subject)} is expired or not yet valid`);
    const fingerprint = current.fingerprint256;
    if (roots.some((root) => root.fingerprint256 === fingerprint)) return leaf.publicKey;
    const root = roots.find((r) => isCurrent(r, now) && issuedBy(current, r));
    if (root !== undefined) return leaf.publicKey;
    const next = intermediates.find((c) => !used.has(c) && c.ca && issuedBy(current, c));
    if (next === undefined) throw new TokenKeyError("certificate chain does not lead to a trusted root (rootcertbundle)");
    used.add(next);
    current = next;
  }
}

/**
 * The key of a `jwk` header: with an `x5c` chain of its own, the chain is verified and must
 * certify this very key; without one the key must be a trusted key (by `kid` or thumbprint), and
 * the trusted copy is used.
 */
export function keyForJWK(jwk: unknown, roots: readonly X509Certificate[], trusted: TrustedKeys, now: Date): KeyObject {
  if (typeof jwk !== "object" || jwk === null) throw new TokenKeyError("jwk header is not an object");
  let key: KeyObject;
  try {
    key = publicKeyOf(jwk as JsonWebKey);
  } catch {
    throw new TokenKeyError("jwk header is not a usable public key");
  }
  const { x5c, kid } = jwk as { x5c?: unknown; kid?: unknown };
  if (Array.isArray(x5c) && x5c.length > 0) {
    const leafKey = verifyCertificateChain(x5c, roots, now);
    if (!leafKey.equals(key)) throw new TokenKeyError("jwk header key differs from its certificate's key");
    return leafKey;
  }
  const byKid = typeof kid === "string" ? trusted.get(kid) : undefined;
  if (byKid !== undefined && byKid.equals(key)) return byKid;
  const thumbprint = jwkThumbprint(key);
  const byThumbprint = thumbprint === undefined ? undefined : trusted.get(thumbprint);
  if (byThumbprint !== undefined && byThumbprint.equals(key)) return byThumbprint;
  throw new TokenKeyError("untrusted jwk header without a certificate chain");
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function isCurrent(cert: X509Certificate, now: Date): boolean {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  return Number.isFinite(from) && Number.isFinite(to) && from <= now.getTime() && now.getTime() <= to;
}
