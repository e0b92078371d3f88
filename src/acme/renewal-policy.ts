/**
 * When a certificate is renewed: autocert's rule (distribution's), the lesser of 30 days and a
 * third of the certificate's lifetime before it expires. Let's Encrypt's 90-day certificates are
 * renewed 30 days early; a CA issuing six-day certificates sees them renewed after four.
 */
import type { CertificateEntry } from "./certificate-entry.js";

const THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000;

/** Tests only: a fixed margin before expiry (berth's own tests; not a configuration key). */
export interface RenewalPolicy {
  renewBeforeMs: number;
}

/** The moment (ms since the epoch) to renew `entry`. */
export function renewalTime(entry: Pick<CertificateEntry, "notBefore" | "notAfter">, policy?: RenewalPolicy): number {
  const notAfter = entry.notAfter.getTime();
  const lifetime = notAfter - entry.notBefore.getTime();
  const before = policy?.renewBeforeMs ?? Math.min(THIRTY_DAYS_MS, lifetime / 3);
  return notAfter - before;
}
