// storage.gcs, with distribution's defaults and limits.
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import type { GcsServiceAccount, GcsStorage } from "./config.js";
import { absolutePath, child, fail, readOptionalString, readPositiveInt, readSection, readString } from "./raw-values.js";
import type { Raw, RawMap } from "./raw-yaml.js";

const KiB = 1024;
/** GCS takes the bytes of a resumable session in multiples of 256 KiB (all but the last request). */
export const GCS_CHUNK_QUANTUM = 256 * KiB;
/** distribution 2.8's default; 3.x raised it to 16 MiB. */
const DEFAULT_CHUNK_SIZE = 5 * KiB * KiB;
/** A bound so that one misplaced digit does not hold gigabytes per upload in memory. */
const MAX_CHUNK_SIZE = 1024 * KiB * KiB;
/** distribution 3's maxconcurrency default and floor (a lower value is raised to it). */
const DEFAULT_MAX_CONCURRENCY = 50;
const MIN_CONCURRENCY = 25;

/** storage.gcs, with distribution's defaults and limits. */
export function buildGcs(gcs: RawMap | undefined, node: Raw | undefined, warnings: string[]): GcsStorage {
  const at = "storage.gcs";
  const bucket = readOptionalString(child(gcs, "bucket"), `${at}.bucket`);
  if (bucket === undefined) throw fail(`${at}.bucket`, child(gcs, "bucket") ?? node, "required");
  // Bucket names: 3 to 222 characters of lower-case letters, digits, "-", "_" and ".".
  if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket)) {
    throw fail(`${at}.bucket`, child(gcs, "bucket"), `not a Cloud Storage bucket name: ${JSON.stringify(bucket)}`);
  }

  const chunkNode = child(gcs, "chunksize");
  const chunkSize = readPositiveInt(chunkNode, `${at}.chunksize`) ?? DEFAULT_CHUNK_SIZE;
  if (chunkSize % GCS_CHUNK_QUANTUM !== 0 || chunkSize > MAX_CHUNK_SIZE) {
    throw fail(`${at}.chunksize`, chunkNode, `must be a multiple of ${GCS_CHUNK_QUANTUM} (256 KiB) up to ${MAX_CHUNK_SIZE} bytes, got ${chunkSize}`);
  }

  const keyFileNode = child(gcs, "keyfile");
  const keyFile = readOptionalString(keyFileNode, `${at}.keyfile`);
  const credentialsNode = child(gcs, "credentials");
  const inline = readSection(credentialsNode, `${at}.credentials`);
  let serviceAccount: GcsServiceAccount | undefined;
  if (keyFile !== undefined && inline !== undefined && inline.entries.size > 0) {
    throw fail(`${at}.credentials`, credentialsNode, "set either keyfile or credentials, not both");
  }
  if (keyFile !== undefined) {
    serviceAccount = readKeyFile(absolutePath(keyFile), `${at}.keyfile`, keyFileNode);
  } else if (inline !== undefined && inline.entries.size > 0) {
    const fields: Record<string, string> = {};
    for (const [name, value] of inline.entries) {
      const text = readString(value, `${at}.credentials.${name}`);
      if (text !== undefined) fields[name] = text;
    }
    serviceAccount = validateServiceAccount(fields, (problem) => fail(`${at}.credentials`, credentialsNode, problem));
  }

  const endpointNode = child(gcs, "apiendpoint");
  const apiEndpoint = readOptionalString(endpointNode, `${at}.apiendpoint`);
  if (apiEndpoint !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(apiEndpoint);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:") || url.search !== "" || url.hash !== "") {
      throw fail(`${at}.apiendpoint`, endpointNode, `expected an http or https URL, got ${JSON.stringify(apiEndpoint)}`);
    }
  }

  const concurrencyNode = child(gcs, "maxconcurrency");
  let maxConcurrency = readPositiveInt(concurrencyNode, `${at}.maxconcurrency`) ?? DEFAULT_MAX_CONCURRENCY;
  if (maxConcurrency < MIN_CONCURRENCY) {
    warnings.push(`${at}.maxconcurrency ${maxConcurrency} is raised to ${MIN_CONCURRENCY}, distribution's least`);
    maxConcurrency = MIN_CONCURRENCY;
  }

  return {
    kind: "gcs",
    bucket,
    serviceAccount,
    keyFile,
    rootDirectory: readOptionalString(child(gcs, "rootdirectory"), `${at}.rootdirectory`) ?? "",
    chunkSize,
    apiEndpoint: apiEndpoint?.replace(/\/+$/, ""),
    userAgent: readOptionalString(child(gcs, "useragent"), `${at}.useragent`),
    maxConcurrency,
  };
}

function readKeyFile(file: string, key: string, node: Raw | undefined): GcsServiceAccount {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw fail(key, node, `cannot read the service account key ${file}: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw fail(key, node, `${file} is not a JSON object`);
  const fields: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (typeof value === "string") fields[name] = value;
  }
  return validateServiceAccount(fields, (problem) => fail(key, node, `${file}: ${problem}`));
}

/**
 * A service account key, as distribution requires one (google.JWTConfigFromJSON): type
 * "service_account", a client e-mail and a private key that parses, so a bad key is refused at
 * start rather than at the first request.
 */
function validateServiceAccount(fields: Record<string, string>, refuse: (problem: string) => Error): GcsServiceAccount {
  if (fields["type"] !== "service_account") throw refuse(`type must be "service_account", got ${JSON.stringify(fields["type"] ?? null)}`);
  const email = fields["client_email"];
  const privateKey = fields["private_key"];
  if (email === undefined || email === "") throw refuse("client_email is required");
  if (privateKey === undefined || privateKey === "") throw refuse("private_key is required");
  try {
    createPrivateKey(privateKey);
  } catch (err) {
    throw refuse(`private_key is not a PEM private key: ${(err as Error).message}`);
  }
  return { ...fields, client_email: email, private_key: privateKey };
}
