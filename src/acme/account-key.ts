/**
 * The ACME account key, kept in the cache directory under autocert's name (an ECDSA P-256 key in
 * SEC1 PEM, as distribution 3 writes it), so both registries use the same account at the CA.
 * Created on first use; a key that cannot be parsed is an error at start, never replaced (a new
 * key is a new account, and certificates ordered by the old one could no longer be revoked by it).
 */
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { ConfigError } from "../config/config.js";
import { ACCOUNT_KEY_ENTRY, LEGACY_ACCOUNT_KEY_ENTRY, type AcmeCacheDirectory } from "./acme-cache-directory.js";

/** The account key as PKCS#8 PEM (what acme-client takes). */
export async function loadAccountKey(cache: AcmeCacheDirectory): Promise<string> {
  const stored = (await cache.get(ACCOUNT_KEY_ENTRY)) ?? (await cache.get(LEGACY_ACCOUNT_KEY_ENTRY));
  if (stored === undefined) {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await cache.put(ACCOUNT_KEY_ENTRY, privateKey.export({ type: "sec1", format: "pem" }));
    return privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  }
  try {
    return createPrivateKey(stored).export({ type: "pkcs8", format: "pem" }).toString();
  } catch (err) {
    throw new ConfigError("http.tls.letsencrypt.cachefile", `the ACME account key in ${cache.path} cannot be read: ${err instanceof Error ? err.message : String(err)}`);
  }
}
