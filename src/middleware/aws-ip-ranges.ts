import { BlockList, isIPv4, isIPv6 } from "node:net";
import type { Logger } from "../log/logger.js";

/** AWS's ip-ranges.json is ~2 MB; anything far larger is not that file. */
const MAX_IP_RANGES_BYTES = 64 * 1024 * 1024;

/**
 * The address ranges AWS publishes (ip-ranges.json), optionally only some regions', refreshed every
 * `updateFrequencyMs` as distribution's cloudfront middleware does. Until a download succeeds it
 * contains nothing, so every client goes through CloudFront; a failed refresh keeps the ranges it
 * had. A prefix that does not parse is skipped (distribution logs and skips it too).
 */
export class AwsIpRanges {
  #ranges: BlockList | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: string,
    /** Lower-case region names; empty: every region. */
    private readonly regions: readonly string[],
    private readonly log: Logger,
  ) {}

  /**
   * Downloads the ranges once (a failure is logged, not thrown), then refreshes them on a timer.
   * The first download holds start-up at most 10 s: without the ranges every client goes through
   * CloudFront, which works, only at a higher cost.
   */
  async start(updateFrequencyMs: number): Promise<void> {
    await this.refresh(10_000);
    // Never keeps the process alive: a stopping registry does not wait for the next refresh.
    this.#timer = setInterval(() => void this.refresh(), Math.min(updateFrequencyMs, 2 ** 31 - 1)).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Whether `ip` (v4, v6 or v4-mapped v6) is in a range downloaded last. */
  contains(ip: string): boolean {
    const ranges = this.#ranges;
    if (ranges === undefined) return false;
    // Go's net.IP treats ::ffff:a.b.c.d as IPv4: so does the check against the IPv4 prefixes.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
    if (mapped !== undefined) return ranges.check(mapped, "ipv4");
    if (isIPv4(ip)) return ranges.check(ip, "ipv4");
    if (isIPv6(ip)) return ranges.check(ip, "ipv6");
    return false;
  }

  /** Downloads and replaces the ranges; on failure logs and keeps the previous ones. */
  async refresh(timeoutMs = 60_000): Promise<void> {
    try {
      this.#ranges = this.#parse(await this.#download(timeoutMs));
    } catch (err) {
      this.log.warn({ url: this.url, err }, "could not update the AWS IP ranges: clients keep being sent by the previous ranges (CloudFront for all until a first download succeeds)");
    }
  }

  async #download(timeoutMs: number): Promise<unknown> {
    const response = await fetch(this.url, { signal: AbortSignal.timeout(timeoutMs) });
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new Error(`GET ${this.url} answered ${response.status}`);
    }
    const declared = Number(response.headers.get("content-length") ?? "0");
    if (declared > MAX_IP_RANGES_BYTES) {
      await response.body?.cancel();
      throw new Error(`GET ${this.url}: ${declared} bytes is not an ip-ranges.json`);
    }
    const text = await response.text();
    if (text.length > MAX_IP_RANGES_BYTES) throw new Error(`GET ${this.url}: too large for an ip-ranges.json`);
    return JSON.parse(text) as unknown;
  }

  #parse(document: unknown): BlockList {
    if (typeof document !== "object" || document === null) throw new Error("ip-ranges.json is not a JSON object");
    const ranges = new BlockList();
    const add = (list: unknown, field: "ip_prefix" | "ipv6_prefix", type: "ipv4" | "ipv6"): void => {
      if (list === undefined) return;
      if (!Array.isArray(list)) throw new Error(`ip-ranges.json: ${field === "ip_prefix" ? "prefixes" : "ipv6_prefixes"} is not a list`);
      for (const entry of list as unknown[]) {
        if (typeof entry !== "object" || entry === null) continue;
        const { [field]: prefix, region } = entry as Record<string, unknown>;
        if (typeof prefix !== "string") continue;
        if (this.regions.length > 0 && (typeof region !== "string" || !this.regions.includes(region.toLowerCase()))) continue;
        const slash = prefix.indexOf("/");
        const length = Number(prefix.slice(slash + 1));
        try {
          if (slash < 0 || !/^\d{1,3}$/.test(prefix.slice(slash + 1))) throw new Error("no prefix length");
          ranges.addSubnet(prefix.slice(0, slash), length, type);
        } catch {
          this.log.warn({ cidr: prefix }, "unparseable CIDR in the AWS IP ranges, skipped");
        }
      }
    };
    const { prefixes, ipv6_prefixes: v6 } = document as Record<string, unknown>;
    add(prefixes, "ip_prefix", "ipv4");
    add(v6, "ipv6_prefix", "ipv6");
    return ranges;
  }
}
