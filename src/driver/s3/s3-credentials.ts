/**
 * Where the S3 driver's credentials come from: `accesskey`/`secretkey` (and `sessiontoken`) of the
 * configuration, or else the AWS SDK's default provider chain (environment, shared config and
 * credentials files, SSO, web identity / IRSA, ECS and EC2 instance metadata). The chain caches
 * what it found and refreshes temporary credentials before they expire, so asking it before every
 * request costs a resolved promise; it is loaded only when the configuration has no keys.
 */
import type { Credentials } from "./sigv4.js";

export type CredentialSource = () => Promise<Credentials>;

export interface StaticKeys {
  accesskey?: string;
  secretkey?: string;
  sessiontoken?: string;
}

export function credentialSource(keys: StaticKeys): CredentialSource {
  if (keys.accesskey !== undefined && keys.accesskey !== "") {
    const credentials: Credentials = { accessKeyId: keys.accesskey, secretAccessKey: keys.secretkey ?? "", sessionToken: keys.sessiontoken || undefined };
    return () => Promise.resolve(credentials);
  }
  let chain: Promise<() => Promise<Credentials>> | undefined;
  return async () => {
    // berth pins SDK releases that support its Node versions; the SDK's warning that later releases
    // will not (printed by the STS/SSO clients the chain may create) is for whoever upgrades them.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
    chain ??= import("@aws-sdk/credential-provider-node").then(({ defaultProvider }) => defaultProvider());
    const found = await (await chain)();
    return { accessKeyId: found.accessKeyId, secretAccessKey: found.secretAccessKey, sessionToken: found.sessionToken };
  };
}
