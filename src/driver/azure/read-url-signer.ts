/**
 * Read-only SAS URLs of blobs, for redirects. With the account key (shared key, or a connection
 * string that holds one) a URL is signed locally. With an Entra ID token there is no key: as in
 * distribution 3, the service hands out a user delegation key (Get User Delegation Key, valid 48
 * hours, renewed 30 minutes before it ends) that signs URLs until it expires. A client without
 * either (a connection string with a SAS of its own) signs nothing: blobs are then served, not
 * redirected.
 */
import {
  BlobSASPermissions,
  BlobServiceClient,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
  type ContainerClient,
  type UserDelegationKey,
} from "@azure/storage-blob";
import type { TokenCredential } from "@azure/core-auth";

export interface ReadUrlSigner {
  /** A URL that reads `blob` of `container` until `expiresOn`. */
  sign(container: ContainerClient, blob: string, expiresOn: Date): Promise<string>;
}

/** distribution's figures: a key valid 48 hours, replaced when less than 30 minutes are left. */
const DELEGATION_KEY_LIFETIME_MS = 48 * 3600_000;
const DELEGATION_KEY_GRACE_MS = 30 * 60_000;
/**
 * The SAS version of user delegation URLs. Fixed rather than the SDK's newest: a version fixes the
 * string to sign, and 2026-04-06's adds request header and query fields berth does not use, which
 * Azurite (3.35) cannot verify yet; the service accepts every version since 2020-12-06.
 */
const USER_DELEGATION_SAS_VERSION = "2025-07-05";
/** Clocks differ: a URL valid from a little before now. */
const CLOCK_SKEW_MS = 10_000;

export function readUrlSigner(container: ContainerClient, serviceUrl: string, token: TokenCredential | undefined): ReadUrlSigner | undefined {
  if (container.credential instanceof StorageSharedKeyCredential) {
    return {
      sign: (client, blob, expiresOn) => client.getBlobClient(blob).generateSasUrl({ permissions: BlobSASPermissions.parse("r"), expiresOn }),
    };
  }
  if (token !== undefined) return new UserDelegationSigner(new BlobServiceClient(serviceUrl, token));
  return undefined;
}

class UserDelegationSigner implements ReadUrlSigner {
  #key: { value: UserDelegationKey; expiresOn: number } | undefined;
  #pending: Promise<UserDelegationKey> | undefined;

  constructor(private readonly service: BlobServiceClient) {}

  async sign(container: ContainerClient, blob: string, expiresOn: Date): Promise<string> {
    const key = await this.key();
    const startsOn = new Date(Date.now() - CLOCK_SKEW_MS);
    // A URL outliving its key would be refused: it ends with the key at the latest.
    const ends = new Date(Math.min(expiresOn.getTime(), key.signedExpiresOn.getTime()));
    const sas = generateBlobSASQueryParameters(
      { containerName: container.containerName, blobName: blob, permissions: BlobSASPermissions.parse("r"), startsOn, expiresOn: ends, version: USER_DELEGATION_SAS_VERSION },
      key,
      container.accountName,
    );
    return `${container.getBlobClient(blob).url}?${sas.toString()}`;
  }

  /** The current key; one request at a time renews it. */
  private key(): Promise<UserDelegationKey> {
    const now = Date.now();
    if (this.#key !== undefined && this.#key.expiresOn - now > DELEGATION_KEY_GRACE_MS) return Promise.resolve(this.#key.value);
    this.#pending ??= (async () => {
      try {
        const startsOn = new Date(now - CLOCK_SKEW_MS);
        const expiresOn = new Date(startsOn.getTime() + DELEGATION_KEY_LIFETIME_MS);
        const value = await this.service.getUserDelegationKey(startsOn, expiresOn);
        this.#key = { value, expiresOn: expiresOn.getTime() };
        return value;
      } finally {
        this.#pending = undefined;
      }
    })();
    return this.#pending;
  }
}
