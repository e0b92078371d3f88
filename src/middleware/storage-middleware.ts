import { createPrivateKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { ConfigError, type StorageMiddlewareConfig } from "../config/config.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import type { Logger } from "../log/logger.js";
import { AwsIpRanges } from "./aws-ip-ranges.js";
import { CloudFrontDriver } from "./cloudfront-driver.js";
import { CloudFrontSigner } from "./cloudfront-signer.js";
import { RedirectDriver } from "./redirect-driver.js";

/** The driver with middleware.storage applied, and what stops the middleware's timers. */
export interface MiddlewareDriver {
  driver: StorageDriver;
  close(): void;
}

/**
 * Wraps `driver` in each configured storage middleware, in order (each wraps the previous, as in
 * distribution's applyStorageMiddleware). A CloudFront private key that cannot be read is a
 * ConfigError naming its key; the AWS IP ranges are downloaded once before this resolves.
 */
export async function applyStorageMiddleware(driver: StorageDriver, middleware: readonly StorageMiddlewareConfig[], log: Logger): Promise<MiddlewareDriver> {
  const closers: Array<() => void> = [];
  let wrapped = driver;
  for (const [i, entry] of middleware.entries()) {
    if (entry.name === "redirect") {
      wrapped = new RedirectDriver(wrapped, new URL(entry.baseURL));
      continue;
    }
    const privateKey = await readRsaPrivateKey(entry.privateKey, `middleware.storage[${i}].options.privatekey`);
    let awsRanges: AwsIpRanges | undefined;
    if (entry.ipFilteredBy !== "none") {
      awsRanges = new AwsIpRanges(entry.ipRangesURL, entry.ipFilteredBy === "awsregion" ? entry.awsRegions : [], log);
      await awsRanges.start(entry.updateFrequencyMs);
      const ranges = awsRanges;
      closers.push(() => ranges.stop());
    }
    wrapped = new CloudFrontDriver(wrapped, {
      baseURL: entry.baseURL,
      signer: new CloudFrontSigner(entry.keyPairId, privateKey),
      durationMs: entry.durationMs,
      awsRanges,
      log,
    });
  }
  return { driver: wrapped, close: () => closers.forEach((close) => close()) };
}

async function readRsaPrivateKey(path: string, key: string): Promise<KeyObject> {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new ConfigError(key, `${path} is not a PEM private key`);
  }
  // CloudFront signs with RSA only.
  if (privateKey.asymmetricKeyType !== "rsa") throw new ConfigError(key, `${path} is a ${privateKey.asymmetricKeyType ?? "non-RSA"} key; CloudFront key pairs are RSA`);
  return privateKey;
}
