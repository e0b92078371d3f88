// storage.azure, with distribution's keys and defaults (2.8's, plus 3's credentials and serviceurl).
import type { AzureStorage } from "./config.js";
import { child, fail, readEnum, readOptionalString, readSection } from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

const DEFAULT_REALM = "core.windows.net";
const CREDENTIAL_TYPES = ["shared_key", "client_secret", "default_credentials"] as const;
/** Azure's rule for container names: 3–63 of a-z, 0-9 and single hyphens, starting and ending with a letter or digit. */
const CONTAINER_NAME = /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$/;
/** Storage account names: 3–24 lowercase letters and digits. */
const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function buildAzure(azure: RawMap | undefined, node: Raw | undefined): AzureStorage {
  const at = "storage.azure";
  const str = (key: string): string | undefined => readOptionalString(child(azure, key), `${at}.${key}`);

  const accountName = str("accountname");
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
  if (str("connectionstring") !== undefined) {
    throw fail(`${at}.connectionstring`, child(azure, "connectionstring"), "not supported by berth yet; give accountname, accountkey and, for an endpoint of your own, serviceurl");
  }

  const credentialsNode = child(azure, "credentials");
  const credentials = readSection(credentialsNode, `${at}.credentials`);
  const type = readEnum(child(credentials, "type"), `${at}.credentials.type`, CREDENTIAL_TYPES) ?? "shared_key";
  if (type !== "shared_key") {
    throw fail(`${at}.credentials.type`, child(credentials, "type"), `${type} (Azure AD) is not supported by berth yet; use shared_key with accountkey`);
  }
  const accountKey = str("accountkey");
  if (accountKey === undefined) throw fail(`${at}.accountkey`, child(azure, "accountkey") ?? node, "required with credentials.type shared_key (the default)");
  if (!BASE64.test(accountKey) || Buffer.from(accountKey, "base64").length === 0) {
    // Checked here: the SDK would only fail at the first request, with a message about HMAC.
    throw fail(`${at}.accountkey`, child(azure, "accountkey"), "expected the storage account's access key, in base64 as the Azure portal shows it");
  }

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
    accountKey,
    container,
    realm,
    serviceUrl: serviceUrl?.replace(/\/+$/, ""),
    rootDirectory: str("rootdirectory") ?? "",
  };
}
