/**
 * One certificate for one host name from an ACME CA (RFC 8555) through acme-client: a new order,
 * each pending authorization proved by TLS-ALPN-01 (RFC 8737) on the registry's own TLS port,
 * then a CSR for a new ECDSA P-256 key and the issued chain. The protocol (JWS, nonces, retries
 * on badNonce, polling) is acme-client's; this module only decides what to order and how to prove
 * it, as Go's autocert does for distribution.
 *
 * Why acme-client: it implements all of RFC 8555 (account, orders, authorizations, finalization,
 * alternate chains, EAB), is maintained (publishlab/node-acme-client, 5.x, widely installed),
 * has TypeScript types, no native code, and a helper for the RFC 8737 challenge certificate.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import type { Authorization, Client } from "acme-client";
import * as acme from "acme-client";

/** Where TLS-ALPN-01 answers are published while the CA validates them (tls-alpn-responder.ts). */
export interface ChallengeAnswers {
  publish(host: string, answer: { keyPem: Buffer; certPem: Buffer }): void;
  withdraw(host: string): void;
}

export class AcmeOrderError extends Error {
  constructor(readonly host: string, message: string, options?: { cause?: unknown }) {
    super(`ACME order for ${host}: ${message}`, options);
    this.name = "AcmeOrderError";
  }
}

export interface IssuedCertificate {
  key: KeyObject;
  /** PEM, leaf first. */
  chainPem: string;
}

/** Orders, proves and fetches a certificate for `host`. Rejects with an AcmeOrderError. */
export async function orderCertificate(client: Client, host: string, answers: ChallengeAnswers): Promise<IssuedCertificate> {
  try {
    let order = await client.createOrder({ identifiers: [{ type: "dns", value: host }] });
    const authorizations = await client.getAuthorizations(order);
    for (const authorization of authorizations) {
      // A CA may reuse an authorization it already validated (RFC 8555 7.1.3).
      if (authorization.status === "valid") continue;
      await proveAuthorization(client, host, authorization, answers);
    }
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const [, csr] = await acme.crypto.createCsr({ commonName: host, altNames: [host] }, privateKey.export({ type: "pkcs8", format: "pem" }).toString());
    order = await client.finalizeOrder(order, csr);
    const chainPem = await client.getCertificate(order);
    return { key: privateKey, chainPem };
  } catch (err) {
    if (err instanceof AcmeOrderError) throw err;
    throw new AcmeOrderError(host, err instanceof Error ? err.message : String(err), { cause: err });
  }
}

async function proveAuthorization(client: Client, host: string, authorization: Authorization, answers: ChallengeAnswers): Promise<void> {
  // acme-client's types list http-01 and dns-01 only; RFC 8737 adds tls-alpn-01.
  const challenge = authorization.challenges.find((candidate) => (candidate.type as string) === "tls-alpn-01");
  if (challenge === undefined) {
    const offered = authorization.challenges.map((candidate) => candidate.type).join(", ");
    throw new AcmeOrderError(host, `the CA offers no tls-alpn-01 challenge (offered: ${offered}); berth answers TLS-ALPN-01 only, on its TLS port`);
  }
  const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const [keyPem, certPem] = await acme.crypto.createAlpnCertificate(authorization, keyAuthorization, privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  answers.publish(host, { keyPem, certPem });
  try {
    await client.completeChallenge(challenge);
    await client.waitForValidStatus(authorization);
  } catch (err) {
    // Leave nothing pending at the CA (it counts against rate limits); failing to is not worse.
    await client.deactivateAuthorization(authorization).catch(() => undefined);
    throw err;
  } finally {
    answers.withdraw(host);
  }
}
