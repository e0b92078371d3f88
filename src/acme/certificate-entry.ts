/**
 * One certificate cache entry in autocert's format: the private key as PEM, then the chain
 * (leaf first) as PEM certificates. Reading it checks what autocert checks: a private key that
 * matches the leaf, a leaf valid for the host and not expired; anything else reads as "no
 * certificate", so a corrupt or foreign entry leads to a new order rather than a broken handshake.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";

export interface CertificateEntry {
  /** PEM private key, PKCS#8 (what Node's TLS and acme-client take). */
  keyPem: string;
  /** PEM chain, leaf first. */
  chainPem: string;
  notBefore: Date;
  notAfter: Date;
}

const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----\r?\n[\s\S]*?-----END \1-----\r?\n?/g;

/** The entry's bytes for the cache: SEC1 for EC keys, as Go's x509.MarshalECPrivateKey writes. */
export function encodeCertificateEntry(key: KeyObject, chainPem: string): string {
  const keyPem = key.asymmetricKeyType === "ec" ? key.export({ type: "sec1", format: "pem" }) : key.export({ type: "pkcs1", format: "pem" });
  return `${keyPem.toString()}${chainPem.trim()}\n`;
}

/** Parses and checks an entry for `host` at time `now`; undefined when it cannot serve that host now. */
export function decodeCertificateEntry(data: Buffer, host: string, now: Date): CertificateEntry | undefined {
  const blocks = data.toString("latin1").match(PEM_BLOCK) ?? [];
  const [keyBlock, ...certBlocks] = blocks;
  if (keyBlock === undefined || !/PRIVATE KEY/.test(keyBlock.split("\n")[0]!) || certBlocks.length === 0) return undefined;
  if (!certBlocks.every((block) => block.startsWith("-----BEGIN CERTIFICATE-----"))) return undefined;
  try {
    const key = createPrivateKey(keyBlock);
    const leaf = new X509Certificate(certBlocks[0]!);
    if (!leaf.checkPrivateKey(key)) return undefined;
    if (leaf.checkHost(host, { wildcards: false }) === undefined) return undefined;
    const notBefore = new Date(leaf.validFrom);
    const notAfter = new Date(leaf.validTo);
    if (!(notBefore <= now && now < notAfter)) return undefined;
    return { keyPem: key.export({ type: "pkcs8", format: "pem" }).toString(), chainPem: certBlocks.join(""), notBefore, notAfter };
  } catch {
    return undefined;
  }
}
