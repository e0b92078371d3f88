/**
 * One GET of the ACME directory at start, before anything else talks to the CA. acme-client
 * retries a failed request for over a minute (right for a CA that hiccups while serving), which
 * would make a wrong or unreachable directoryurl look like a hung start; this answers at once,
 * and says whether what answered is an ACME directory at all (RFC 8555 7.1.1).
 */
import { get } from "node:https";

const PROBE_TIMEOUT_MS = 15_000;
const MAX_DIRECTORY_BYTES = 64 * 1024;

/** Resolves when `url` serves an ACME directory; rejects with the reason otherwise. */
export function probeAcmeDirectory(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { accept: "application/json" }, timeout: PROBE_TIMEOUT_MS }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
        if (body.length > MAX_DIRECTORY_BYTES) req.destroy(new Error(`the directory is larger than ${MAX_DIRECTORY_BYTES} bytes`));
      });
      res.on("end", () => {
        if (res.statusCode !== 200) return reject(new Error(`GET answered ${res.statusCode}`));
        let directory: unknown;
        try {
          directory = JSON.parse(body);
        } catch {
          return reject(new Error("the answer is not JSON"));
        }
        const fields = directory !== null && typeof directory === "object" ? (directory as Record<string, unknown>) : {};
        if (typeof fields["newAccount"] !== "string" || typeof fields["newOrder"] !== "string" || typeof fields["newNonce"] !== "string") {
          return reject(new Error("the answer is not an ACME directory (no newAccount, newOrder and newNonce URLs)"));
        }
        resolve();
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`)));
    req.on("error", reject);
  });
}
