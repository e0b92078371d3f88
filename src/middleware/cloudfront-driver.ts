import type { RedirectClient, StorageDriver } from "../driver/storage-driver.js";
import type { Logger } from "../log/logger.js";
import type { AwsIpRanges } from "./aws-ip-ranges.js";
import type { CloudFrontSigner } from "./cloudfront-signer.js";
import { RedirectWrappingDriver } from "./redirect-wrapping-driver.js";

/** A driver that can name the bucket key of a path (the s3 driver): what CloudFront serves it as. */
interface BucketKeyed {
  bucketKey(path: string): string;
}

function isBucketKeyed(driver: StorageDriver): driver is StorageDriver & BucketKeyed {
  return typeof (driver as Partial<BucketKeyed>).bucketKey === "function";
}

/**
 * distribution's `cloudfront` storage middleware: a blob GET is redirected to a signed CloudFront
 * URL for the object's bucket key, valid for `durationMs`. With an AWS IP filter, clients whose
 * address is in the filter's ranges get the driver's own (S3 presigned) URL instead: inside AWS,
 * S3 is nearer and free of CloudFront charges. On a driver without bucket keys (not s3) it gives the
 * driver's own URL, as distribution does, having warned once at start.
 */
export class CloudFrontDriver extends RedirectWrappingDriver {
  constructor(
    inner: StorageDriver,
    private readonly options: {
      /** Ends with "/": the bucket key is appended. */
      baseURL: string;
      signer: CloudFrontSigner;
      durationMs: number;
      /** undefined: ipfilteredby none. */
      awsRanges: AwsIpRanges | undefined;
      log: Logger;
    },
  ) {
    super(inner);
    if (!isBucketKeyed(inner)) options.log.warn(`middleware.storage cloudfront: the ${inner.name} driver has no bucket keys; blob downloads are not redirected to CloudFront`);
  }

  async redirectURL(path: string, method: "GET" | "HEAD", client?: RedirectClient): Promise<string | undefined> {
    const inner = this.inner;
    if (!isBucketKeyed(inner)) return inner.redirectURL(path, method, client);
    const ip = client?.ip;
    if (ip !== undefined && this.options.awsRanges?.contains(ip) === true) return inner.redirectURL(path, method, client);
    return this.options.signer.sign(this.options.baseURL + inner.bucketKey(path), new Date(Date.now() + this.options.durationMs));
  }
}
