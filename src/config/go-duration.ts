// Go durations (time.ParseDuration), the format distribution's config uses.

const UNIT_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  "\u00b5s": 1_000n, // µ MICRO SIGN
  "\u03bcs": 1_000n, // μ GREEK SMALL LETTER MU
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const MAX_DURATION_NS = (1n << 63n) - 1n;

/**
 * Parses a Go duration ("168h", "24h0m0s", "1h30m", "1.5h", "500ms", "0") into milliseconds.
 * Throws an Error saying what is wrong; the caller adds the key.
 */
export function parseGoDuration(text: string): number {
  let rest = text;
  let negative = false;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    negative = rest.startsWith("-");
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") throw new Error("empty duration");
  let totalNs = 0n;
  while (rest !== "") {
    const number = /^(\d*)(?:\.(\d*))?/.exec(rest);
    const whole = number?.[1] ?? "";
    const fraction = number?.[2];
    if (whole === "" && (fraction === undefined || fraction === "")) throw new Error(`expected a number at ${JSON.stringify(rest)}`);
    rest = rest.slice(number?.[0].length ?? 0);
    const unit = /^[^\d.]*/.exec(rest)?.[0] ?? "";
    if (unit === "") throw new Error(`missing unit after ${whole}${fraction === undefined ? "" : "." + fraction} (use ns, us, ms, s, m or h)`);
    const unitNs = UNIT_NS[unit];
    if (unitNs === undefined) throw new Error(`unknown unit ${JSON.stringify(unit)} (use ns, us, ms, s, m or h)`);
    rest = rest.slice(unit.length);
    let ns = BigInt(whole === "" ? "0" : whole) * unitNs;
    if (fraction !== undefined && fraction !== "") ns += (BigInt(fraction) * unitNs) / 10n ** BigInt(fraction.length);
    totalNs += ns;
    if (totalNs > MAX_DURATION_NS) throw new Error("duration too large");
  }
  const ms = Number(totalNs) / 1e6;
  return negative && ms !== 0 ? -ms : ms;
}

/** Formats milliseconds the way Go's time.Duration.String does ("168h0m0s", "1.5s", "500ms"). */
export function formatGoDuration(ms: number): string {
  let ns = BigInt(Math.round(ms * 1e6));
  const sign = ns < 0n ? "-" : "";
  if (ns < 0n) ns = -ns;
  if (ns === 0n) return "0s";
  if (ns < 1_000n) return `${sign}${ns}ns`;
  if (ns < 1_000_000n) return `${sign}${decimal(ns, 3)}\u00b5s`;
  if (ns < 1_000_000_000n) return `${sign}${decimal(ns, 6)}ms`;
  const hours = ns / 3_600_000_000_000n;
  const minutes = (ns / 60_000_000_000n) % 60n;
  const seconds = decimal(ns % 60_000_000_000n, 9);
  if (hours > 0n) return `${sign}${hours}h${minutes}m${seconds}s`;
  if (minutes > 0n) return `${sign}${minutes}m${seconds}s`;
  return `${sign}${seconds}s`;
}

function decimal(value: bigint, scaleDigits: number): string {
  const scale = 10n ** BigInt(scaleDigits);
  const frac = (value % scale).toString().padStart(scaleDigits, "0").replace(/0+$/, "");
  return frac === "" ? `${value / scale}` : `${value / scale}.${frac}`;
}
