/** The azure driver's options (distribution's keys) and the SDK client they make. */
import { ContainerClient, StorageSharedKeyCredential } from "@azure/storage-blob";

export const MiB = 1024 * 1024;

/** distribution's default `realm`: the public Azure cloud. */
export const DEFAULT_REALM = "core.windows.net";

/**
 * How the driver signs its requests. Only the account key (Shared Key) for now: it also signs the
 * SAS URLs of redirects without a request to the service.
 */
export interface SharedKeyCredentials {
  type: "shared_key";
  accountKey: string;
}

/** distribution's parameters, by its key names. */
export interface AzureDriverOptions {
  accountname: string;
  container: string;
  credentials: SharedKeyCredentials;
  /** Domain suffix of the service: `https://<accountname>.blob.<realm>`. Default core.windows.net. */
  realm?: string;
  /** The blob service's URL, in place of the one made from accountname and realm (Azurite, Azure Stack, private endpoints). */
  serviceurl?: string;
  /** Prefix of every blob name: `<rootdirectory>/docker/registry/v2/…`. */
  rootdirectory?: string;
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

export function createContainerClient(options: AzureDriverOptions, resolved: AzureResolvedOptions): ContainerClient {
  const credential = new StorageSharedKeyCredential(options.accountname, options.credentials.accountKey);
  return new ContainerClient(`${resolved.serviceUrl}/${encodeURIComponent(resolved.container)}`, credential);
}
