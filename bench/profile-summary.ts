/**
 * Where a V8 CPU profile's time went (a `.cpuprofile` from `node --cpu-prof`, e.g. berth run with
 * BENCH_BERTH_NODE_FLAGS="--max-semi-space-size=2 --cpu-prof --cpu-prof-dir=DIR"): self time
 * grouped (AWS SDK, hashing, HTTP and sockets, streams, our code, GC, …) and the top functions.
 *
 *   node dist/bench/profile-summary.js FILE.cpuprofile [--top N] [--from S] [--to S] [--timeline MS]
 *
 * --from/--to keep the samples between S seconds after the profile's start (the timed part of a
 * case, found with --timeline: busy milliseconds per slice of MS).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The group of a function, by where its code lives. */
function groupOf(frame: CallFrame): string {
  const { url, functionName: fn } = frame;
  if (fn === "(idle)") return "idle";
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(program)") return "V8 / native (program)";
  if (/@aws-sdk|@smithy|@aws-crypto|fast-xml-parser|strnum/.test(url)) return "AWS SDK";
  if (/crypto|sha256|hash/i.test(url) || /^(update|digest|hash|Hash|Hmac|createHash|createHmac)$/.test(fn)) return "hashing";
  if (/\/dist\/src\//.test(url)) return "berth";
  if (/node:_http|node:http|_http_|internal\/http|node:net|node:tls|stream_base_commons|node:dns/.test(url) || fn === "writev" || fn === "writeBuffer" || fn === "writeUtf8String" || fn === "writeLatin1String") return "HTTP and sockets";
  if (/stream|node:buffer|node:string_decoder|node:events|internal\/streams/.test(url)) return "streams, buffers, events";
  if (url.startsWith("node:") || url.includes("internal/")) return "other Node.js";
  if (url === "") return `native: ${fn || "(anonymous)"}`;
  if (url.includes("node_modules")) return `node_modules: ${url.split("node_modules/").pop()!.split("/")[0]}`;
  return "other";
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: "string", default: "30" }, from: { type: "string" }, to: { type: "string" }, timeline: { type: "string" } },
  });
  const file = positionals[0];
  if (!file) throw new Error("usage: profile-summary FILE.cpuprofile [--top N] [--from S] [--to S] [--timeline MS]");
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Node.js code called (synchronously) by the SDK is the SDK's: its signing hashes, its socket writes.
  const underSdk = (id: number): boolean => {
    for (let p = parent.get(id); p !== undefined; p = parent.get(p)) if (groupOf(byId.get(p)!.callFrame) === "AWS SDK") return true;
    return false;
  };
  const groupWithCaller = (node: ProfileNode): string => {
    const g = groupOf(node.callFrame);
    return g === "AWS SDK" || g === "idle" || g === "berth" || !underSdk(node.id) ? g : `${g} (called by the AWS SDK)`;
  };
  const from = values.from !== undefined ? Number(values.from) * 1e6 : -Infinity;
  const to = values.to !== undefined ? Number(values.to) * 1e6 : Infinity;

  const selfUs = new Map<number, number>();
  const timeline = new Map<number, number>();
  const slice = values.timeline !== undefined ? Number(values.timeline) * 1000 : undefined;
  let t = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    const dt = profile.timeDeltas[i + 1] ?? 0; // a sample stands for the time until the next one
    const node = byId.get(profile.samples[i]!)!;
    if (slice !== undefined && node.callFrame.functionName !== "(idle)") {
      const k = Math.floor(t / slice);
      timeline.set(k, (timeline.get(k) ?? 0) + dt);
    }
    if (t < from || t > to) continue;
    selfUs.set(node.id, (selfUs.get(node.id) ?? 0) + dt);
  }
  if (slice !== undefined) {
    process.stdout.write(`busy ms per ${slice / 1000} ms slice (from the profile's start):\n`);
    for (const [k, us] of [...timeline].sort((a, b) => a[0] - b[0])) {
      process.stdout.write(`  ${((k * slice) / 1e6).toFixed(2).padStart(8)} s  ${(us / 1000).toFixed(0).padStart(5)}  ${"#".repeat(Math.round((us / slice) * 40))}\n`);
    }
  }

  let busy = 0;
  const groups = new Map<string, number>();
  const fns = new Map<string, { us: number; group: string }>();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    const group = groupWithCaller(byId.get(id)!);
    if (group === "idle") continue;
    busy += us;
    groups.set(group, (groups.get(group) ?? 0) + us);
    const where = frame.url ? `${frame.url.replace(/^.*\/(node_modules|dist)\//, "$1/")}:${frame.lineNumber + 1}` : "";
    const key = `${frame.functionName || "(anonymous)"} ${where}`;
    const f = fns.get(key) ?? { us: 0, group };
    f.us += us;
    fns.set(key, f);
  }
  const pct = (us: number): string => `${((us / busy) * 100).toFixed(1).padStart(5)}%`;
  process.stdout.write(`${file}\nbusy (not idle) CPU in the window: ${(busy / 1e6).toFixed(2)} s\n\nself time by group:\n`);
  let rest = 0;
  for (const [g, us] of [...groups].sort((a, b) => b[1] - a[1])) {
    if (us < busy * 0.005) rest += us;
    else process.stdout.write(`  ${pct(us)}  ${(us / 1e6).toFixed(3).padStart(7)} s  ${g}\n`);
  }
  if (rest > 0) process.stdout.write(`  ${pct(rest)}  ${(rest / 1e6).toFixed(3).padStart(7)} s  (groups under 0.5% each)\n`);
  process.stdout.write(`\ntop ${values.top} functions by self time:\n`);
  for (const [k, f] of [...fns].sort((a, b) => b[1].us - a[1].us).slice(0, Number(values.top))) {
    process.stdout.write(`  ${pct(f.us)}  ${(f.us / 1e6).toFixed(3).padStart(7)} s  [${f.group}] ${k}\n`);
  }
}

process.stdout.on("error", () => process.exit(0)); // output piped into head
main();
