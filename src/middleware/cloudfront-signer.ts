import { sign, type KeyObject } from "node:crypto";

/**
 * CloudFront signed URLs with a canned policy (what distribution's cloudfront middleware makes with
 * the AWS SDK's sign.URLSigner): the policy is rebuilt by CloudFront from the URL and `Expires`, so
 * only `Expires`, `Signature` and `Key-Pair-Id` travel. The signature is RSA-SHA1 over the policy's
 * exact bytes, in CloudFront's URL-safe base64 ('+' → '-', '=' → '_', '/' → '~').
 */
export class CloudFrontSigner {
  constructor(
    private readonly keyPairId: string,
    private readonly privateKey: KeyObject,
  ) {}

  /** `url` signed to be valid until `expires` (whole seconds: CloudFront's epoch time). */
  sign(url: string, expires: Date): string {
    const epoch = Math.floor(expires.getTime() / 1000);
    const signature = sign("RSA-SHA1", Buffer.from(cannedPolicy(url, epoch)), this.privateKey);
    const separator = url.includes("?") ? "&" : "?";
    return `${url}${separator}Expires=${epoch}&Signature=${cloudFrontBase64(signature)}&Key-Pair-Id=${encodeURIComponent(this.keyPairId)}`;
  }
}

/** The canned policy CloudFront checks a signature against: no whitespace, this key order. */
export function cannedPolicy(url: string, epochSeconds: number): string {
  return JSON.stringify({ Statement: [{ Resource: url, Condition: { DateLessThan: { "AWS:EpochTime": epochSeconds } } }] });
}

function cloudFrontBase64(bytes: Buffer): string {
  return bytes.toString("base64").replaceAll("+", "-").replaceAll("=", "_").replaceAll("/", "~");
}
