import type { CopyRetry } from "./copy-settle.js";
/** The azure driver's options (distribution's keys) and the SDK client they make. */
import type { TokenCredential } from "@azure/core-auth";
import { ContainerClient, StorageSharedKeyCredential } from "@azure/storage-blob";

export const MiB = 1024 * 1024;

/** distribution's default `realm`: the public Azure cloud. */
export const DEFAULT_REALM = "core.windows.net";

/**
 * How the driver signs its requests: the account key (Shared Key; it also signs redirect URLs
 * without a request to the service), an Entra ID token credential (@azure/identity; redirect URLs
 * are signed with a user delegation key), or a connection string (its endpoint, and its key or SAS).
 */
export type AzureDriverCredentials =
  | { type: "shared_key"; accountKey: string }
  | { type: "token"; credential: TokenCredential }
  | { type: "connection_string"; connectionString: string };

/** distribution's parameters, by its key names. */
export interface AzureDriverOptions {
  accountname: string;
  container: string;
  credentials: AzureDriverCredentials;
  /** Domain suffix of the service: `https://<accountname>.blob.<realm>`. Default core.windows.net. */
  realm?: string;
  /** The blob service's URL, in place of the one made from accountname and realm (Azurite, Azure Stack, private endpoints). */
  serviceurl?: string;
  /** Prefix of every blob name: `<rootdirectory>/docker/registry/v2/…`. */
  rootdirectory?: string;
  /** How long a pending server-side copy is waited for (max_retries, retry_delay); distribution's 5 and 100 ms without it. */
  copyRetry?: CopyRetry;
}

/** Not configuration keys: sizes the tests make small to reach several blocks and pages cheaply. */
export interface AzureDriverTuning {
  /** Bytes a writer gathers before staging them as one block. Default 10 MiB. */
  blockSize?: number;
  /** Blob names per listing page (the service's maximum is 5000). */
  listPageSize?: number;
}

export interface AzureResolvedOptions {
  serviceUrl: string;
  container: string;
  /** rootdirectory without leading or trailing slashes ("" for none). */
  root: string;
  blockSize: number;
  listPageSize: number;
}

/** The largest block the service accepts (API version 2019-12-12 and later). */
export const MAX_BLOCK_SIZE = 4000 * MiB;

export function resolveOptions(options: AzureDriverOptions, tuning: AzureDriverTuning = {}): AzureResolvedOptions {
  const realm = options.realm === undefined || options.realm === "" ? DEFAULT_REALM : options.realm;
  const serviceUrl = (options.serviceurl ?? `https://${options.accountname}.blob.${realm}`).replace(/\/+$/, "");
  const blockSize = tuning.blockSize ?? 10 * MiB;
  if (!Number.isSafeInteger(blockSize) || blockSize < 1 || blockSize > MAX_BLOCK_SIZE) throw new RangeError(`azure: invalid block size ${blockSize}`);
  return {
    serviceUrl,
    container: options.container,
    root: (options.rootdirectory ?? "").replace(/^\/+|\/+$/g, ""),
    blockSize,
    listPageSize: tuning.listPageSize ?? 5000,
  };
}

/**
 * The SDK's client of the container. With a connection string, its endpoint replaces the service
 * URL made from accountname, realm and serviceurl (set in `resolved`).
 */
export function createContainerClient(options: AzureDriverOptions, resolved: AzureResolvedOptions): ContainerClient {
  const credentials = options.credentials;
  const url = `${resolved.serviceUrl}/${encodeURIComponent(resolved.container)}`;
  switch (credentials.type) {
    case "shared_key":
      return new ContainerClient(url, new StorageSharedKeyCredential(options.accountname, credentials.accountKey));
    case "token":
      return new ContainerClient(url, credentials.credential);
    case "connection_string": {
      const client = new ContainerClient(credentials.connectionString, options.container);
      const endpoint = new URL(client.url);
      endpoint.search = "";
      resolved.serviceUrl = endpoint.toString().replace(/\/+$/, "").slice(0, -(encodeURIComponent(options.container).length + 1));
      return client;
    }
  }
}
