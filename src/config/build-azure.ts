// storage.azure, with distribution's keys and defaults (2.8's, plus 3's credentials and serviceurl).
import type { AzureCredentialsConfig, AzureStorage } from "./config.js";
import { child, fail, readDuration, readEnum, readOptionalString, readSection } from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

const DEFAULT_REALM = "core.windows.net";
const CREDENTIAL_TYPES = ["shared_key", "client_secret", "default_credentials"] as const;
/** Azure's rule for container names: 3–63 of a-z, 0-9 and single hyphens, starting and ending with a letter or digit. */
const CONTAINER_NAME = /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$/;
/** Storage account names: 3–24 lowercase letters and digits. */
const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** distribution 3's defaults for polling a pending copy. */
const DEFAULT_MAX_RETRIES = 5;
const DEFAULT_RETRY_DELAY_MS = 100;

export function buildAzure(azure: RawMap | undefined, node: Raw | undefined, warnings: string[]): AzureStorage {
  const at = "storage.azure";
  const str = (key: string): string | undefined => readOptionalString(child(azure, key), `${at}.${key}`);

  const connectionString = str("connectionstring");
  const accountName = str("accountname") ?? (connectionString === undefined ? undefined : connectionStringAccount(connectionString));
  if (accountName === undefined) throw fail(`${at}.accountname`, child(azure, "accountname") ?? node, "required");
  if (!ACCOUNT_NAME.test(accountName)) {
    throw fail(`${at}.accountname`, child(azure, "accountname"), `expected 3 to 24 lowercase letters and digits (an Azure storage account name), got ${JSON.stringify(accountName)}`);
  }
  const container = str("container");
  if (container === undefined) throw fail(`${at}.container`, child(azure, "container") ?? node, "required: the container that holds the registry's blobs");
  if (!CONTAINER_NAME.test(container)) {
    throw fail(
      `${at}.container`,
      child(azure, "container"),
      `expected 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit (an Azure container name), got ${JSON.stringify(container)}`,
    );
  }
  const credentials = connectionString === undefined ? readCredentials(azure, node) : readConnectionString(azure, connectionString);
  const realm = str("realm") ?? DEFAULT_REALM;
  if (!/^[a-z0-9.-]+$/i.test(realm)) throw fail(`${at}.realm`, child(azure, "realm"), `expected a domain name such as core.windows.net, got ${JSON.stringify(realm)}`);
  const serviceUrl = str("serviceurl");
  if (serviceUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(serviceUrl);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== "https:" && url.protocol !== "http:") || url.search !== "" || url.hash !== "") {
      throw fail(`${at}.serviceurl`, child(azure, "serviceurl"), `expected an http(s) URL of the blob service, got ${JSON.stringify(serviceUrl)}`);
    }
  }
  return {
    kind: "azure",
    accountName,
    credentials,
    container,
    realm,
    serviceUrl: serviceUrl?.replace(/\/+$/, ""),
    rootDirectory: str("rootdirectory") ?? "",
    ...readCopyRetry(azure, warnings),
  };
}

/**
 * max_retries and retry_delay (distribution 3.0), or copy_status_poll_max_retry and
 * copy_status_poll_delay (its release candidates' names, warned about). 0 and "" keep the
 * default, as in distribution.
 */
function readCopyRetry(azure: RawMap | undefined, warnings: string[]): { maxRetries: number; retryDelayMs: number } {
  const at = "storage.azure";
  const pick = (key: string, old: string): [string, Raw | undefined] => {
    const [current, previous] = [child(azure, key), child(azure, old)];
    if (current !== undefined && previous !== undefined) throw fail(`${at}.${old}`, previous, `${old} is distribution's earlier name of ${key}: set one`);
    if (previous !== undefined) warnings.push(`${at}.${old} is read as ${at}.${key}, its name since distribution 3.0`);
    return previous !== undefined ? [`${at}.${old}`, previous] : [`${at}.${key}`, current];
  };
  const [retriesKey, retriesNode] = pick("max_retries", "copy_status_poll_max_retry");
  const retriesText = readOptionalString(retriesNode, retriesKey);
  if (retriesText !== undefined && !/^(-1|\+?\d{1,9})$/.test(retriesText)) throw fail(retriesKey, retriesNode, `expected -1 or a non-negative integer, got ${JSON.stringify(retriesText)}`);
  const retries = retriesText === undefined ? 0 : Number(retriesText);
  const [delayKey, delayNode] = pick("retry_delay", "copy_status_poll_delay");
  const delay = readOptionalString(delayNode, delayKey) === undefined ? undefined : readDuration(delayNode, delayKey);
  return { maxRetries: retries === 0 ? DEFAULT_MAX_RETRIES : retries, retryDelayMs: delay === undefined || delay === 0 ? DEFAULT_RETRY_DELAY_MS : delay };
}

/** credentials.type and the keys it needs (distribution 3's, plus berth's authorityhost). */
function readCredentials(azure: RawMap | undefined, node: Raw | undefined): AzureCredentialsConfig {
  const at = "storage.azure";
  const str = (key: string): string | undefined => readOptionalString(child(azure, key), `${at}.${key}`);
  const section = readSection(child(azure, "credentials"), `${at}.credentials`);
  const cred = (key: string): string | undefined => readOptionalString(child(section, key), `${at}.credentials.${key}`) || undefined;
  const type = readEnum(child(section, "type"), `${at}.credentials.type`, CREDENTIAL_TYPES) ?? "shared_key";
  if (type === "shared_key") {
    const accountKey = str("accountkey");
    if (accountKey === undefined) throw fail(`${at}.accountkey`, child(azure, "accountkey") ?? node, "required with credentials.type shared_key (the default)");
    if (!BASE64.test(accountKey) || Buffer.from(accountKey, "base64").length === 0) {
      // Checked here: the SDK would only fail at the first request, with a message about HMAC.
      throw fail(`${at}.accountkey`, child(azure, "accountkey"), "expected the storage account's access key, in base64 as the Azure portal shows it");
    }
    return { type, accountKey };
  }
  if (str("accountkey") !== undefined) {
    throw fail(`${at}.accountkey`, child(azure, "accountkey"), `is not used with credentials.type ${type}: remove it, or use shared_key`);
  }
  const authorityHost = readAuthorityHost(section);
  if (type === "default_credentials") return { type, authorityHost };
  const need = (key: string, what: string): string => {
    const value = cred(key);
    if (value === undefined) throw fail(`${at}.credentials.${key}`, child(section, key) ?? child(azure, "credentials"), `required with credentials.type client_secret: ${what}`);
    return value;
  };
  return {
    type,
    tenantId: need("tenantid", "the directory (tenant) ID of the app registration"),
    clientId: need("clientid", "the application (client) ID"),
    secret: need("secret", "the client secret's value"),
    authorityHost,
  };
}

/**
 * berth's credentials.authorityhost: the Entra ID endpoint tokens come from (a sovereign cloud's,
 * https://login.microsoftonline.us; or a token service of one's own). distribution has no key for
 * it; its SDK, like berth's, reads AZURE_AUTHORITY_HOST from the environment instead.
 */
function readAuthorityHost(section: RawMap | undefined): string | undefined {
  const key = "storage.azure.credentials.authorityhost";
  const value = readOptionalString(child(section, "authorityhost"), key) || undefined;
  if (value === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || url.protocol !== "https:" || url.search !== "" || url.hash !== "") {
    throw fail(key, child(section, "authorityhost"), `expected an https:// URL such as https://login.microsoftonline.us, got ${JSON.stringify(value)}`);
  }
  return value.replace(/\/+$/, "");
}

/**
 * connectionstring: the endpoint and the key or SAS in one string, as the Azure portal shows it.
 * It names everything accountkey, serviceurl, realm and credentials would: refused beside them.
 */
function readConnectionString(azure: RawMap | undefined, connectionString: string): AzureCredentialsConfig {
  const at = "storage.azure";
  for (const key of ["accountkey", "serviceurl", "realm", "credentials"]) {
    if (child(azure, key) !== undefined) {
      throw fail(`${at}.${key}`, child(azure, key), "is not used with connectionstring, which names the endpoint and the key itself: remove one of the two");
    }
  }
  const fields = connectionStringFields(connectionString);
  const development = fields.get("usedevelopmentstorage") === "true";
  const hasEndpoint = development || fields.has("blobendpoint") || fields.has("accountname");
  const hasSecret = development || fields.has("accountkey") || fields.has("sharedaccesssignature");
  if (!hasEndpoint || !hasSecret) {
    // The string itself is never repeated: it holds the key.
    throw fail(`${at}.connectionstring`, child(azure, "connectionstring"), "expected an Azure Storage connection string (AccountName=…;AccountKey=… or BlobEndpoint=…;SharedAccessSignature=…)");
  }
  return { type: "connection_string", connectionString };
}

function connectionStringFields(connectionString: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const part of connectionString.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0) fields.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  return fields;
}

/** The account a connection string names (AccountName=, or the development account). */
function connectionStringAccount(connectionString: string): string | undefined {
  const fields = connectionStringFields(connectionString);
  if (fields.get("usedevelopmentstorage") === "true") return "devstoreaccount1";
  return fields.get("accountname");
}
