/**
 * The token credential of storage.azure's credentials types client_secret and default_credentials
 * (distribution 3's), from the official @azure/identity: ClientSecretCredential, and
 * DefaultAzureCredential (the environment's AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET or
 * certificate, workload identity, managed identity, the Azure CLI, …), as distribution's azidentity.
 *
 * With berth's authorityhost the tokens come from that host instead of Entra ID's public one; its
 * instance discovery (a request to login.microsoftonline.com that knows only Microsoft's hosts) is
 * then skipped, as the SDK asks for private clouds.
 */
import type { TokenCredential } from "@azure/core-auth";
import { ClientSecretCredential, DefaultAzureCredential } from "@azure/identity";

export type EntraCredentialConfig =
  | { type: "client_secret"; tenantId: string; clientId: string; secret: string; authorityHost: string | undefined }
  | { type: "default_credentials"; authorityHost: string | undefined };

export function entraCredential(config: EntraCredentialConfig): TokenCredential {
  const options = config.authorityHost === undefined ? {} : { authorityHost: config.authorityHost, disableInstanceDiscovery: true };
  if (config.type === "client_secret") return new ClientSecretCredential(config.tenantId, config.clientId, config.secret, options);
  return new DefaultAzureCredential(options);
}

/**
 * A failure to get a token, in words for the operator, never with a secret: the SDK's errors
 * carry the token service's error code (invalid_client, unauthorized_client, …) and status.
 * Undefined when `err` is not a credential's error.
 */
export function describeCredentialFailure(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  if (err.name === "CredentialUnavailableError" || err.name === "AggregateAuthenticationError") {
    return "no credential of DefaultAzureCredential could get a token (set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET, or run where a managed identity is available)";
  }
  // @azure/identity's AuthenticationError, or MSAL's ServerError passed through it.
  if (err.name === "AuthenticationError" || err.name === "ServerError") {
    const { statusCode, status, errorResponse, errorCode } = err as Error & { statusCode?: number; status?: number; errorResponse?: { error?: string }; errorCode?: string };
    const code = errorResponse?.error ?? errorCode;
    const httpStatus = statusCode ?? status;
    const detail = [httpStatus, code].filter((part) => part !== undefined && part !== "").join(" ");
    return `the token service refused the credentials${detail === "" ? "" : ` (${detail})`}`;
  }
  // What ClientSecretCredential throws for a refused secret: MSAL's message, no fields.
  // "invalid_client: Error(s): 7000215 - … - Description: AADSTS7000215: Invalid client secret provided. - …"
  if (err.name === "AuthenticationRequiredError") {
    const code = /^([a-z_]+):/.exec(err.message)?.[1];
    const description = / - Description: (.*?)(?: - (?:Correlation|Trace) ID|$)/s.exec(err.message)?.[1]?.trim();
    const detail = [code, description].filter((part) => part !== undefined && part !== "").join(": ");
    return `the token service refused the credentials${detail === "" ? "" : ` (${detail})`}`;
  }
  return undefined;
}
