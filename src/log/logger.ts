import { pino, type Logger, type DestinationStream } from "pino";

export type { Logger };

export interface LoggerOptions {
  level: "error" | "warn" | "info" | "debug";
  formatter: "text" | "json" | "logstash";
  fields?: Record<string, string>;
  /** Where lines go; standard error by default (standard output stays free for command output). */
  destination?: NodeJS.WritableStream;
  /** log.reportcaller: each line names the function and file that logged it, as distribution's `func` and `file`. */
  reportCaller?: boolean;
}

/**
 * One logger for the process. json and logstash are pino's own line format (logstash adds the
 * "@timestamp" and "@version" fields logstash expects); text is a readable single line per entry
 * for people watching a terminal, like distribution's default formatter.
 */
export function createLogger(options: LoggerOptions): Logger {
  const out = options.destination ?? process.stderr;
  const base = { ...(options.fields ?? {}) };
  const mixin = options.reportCaller ? callerFields : undefined;
  if (options.formatter === "text") {
    return pino({ level: options.level, base, mixin }, textStream(out));
  }
  if (options.formatter === "logstash") {
    return pino(
      {
        level: options.level,
        mixin,
        base: { ...base, "@version": "1" },
        timestamp: () => `,"@timestamp":"${new Date().toISOString()}"`,
        formatters: { level: (label) => ({ level: label }) },
      },
      out as DestinationStream,
    );
  }
  return pino(
    { level: options.level, base, mixin, formatters: { level: (label) => ({ level: label }) } },
    out as DestinationStream,
  );
}

const THIS_FILE = new URL(import.meta.url).pathname;
const FRAME = /^\s*at (?:(.*?) \()?(?:file:\/\/)?(.+?):(\d+):\d+\)?$/;

/**
 * The first stack frame outside pino and this file: who called the logger. Costs a stack capture
 * per line (some microseconds), which is why it is off unless log.reportcaller asks for it.
 */
function callerFields(): Record<string, string> {
  const stack = new Error().stack ?? "";
  for (const line of stack.split("\n").slice(1)) {
    const frame = FRAME.exec(line);
    if (!frame) continue;
    const [, func, file, lineNumber] = frame as unknown as [string, string | undefined, string, string];
    if (file === THIS_FILE || file.includes("/node_modules/pino/") || file.startsWith("node:")) continue;
    return { func: func ?? "(anonymous)", file: `${file}:${lineNumber}` };
  }
  return {};
}

const LEVEL_NAMES: Record<number, string> = { 10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal" };

function textStream(out: NodeJS.WritableStream): DestinationStream {
  return {
    write(line: string): void {
      const entry = JSON.parse(line) as Record<string, unknown>;
      const { time, level, msg, ...rest } = entry;
      const fields = Object.entries(rest)
        .map(([key, value]) => `${key}=${typeof value === "string" ? quoteIfNeeded(value) : JSON.stringify(value)}`)
        .join(" ");
      const when = new Date(typeof time === "number" ? time : Date.now()).toISOString();
      const levelName = LEVEL_NAMES[Number(level)] ?? String(level);
      out.write(`time="${when}" level=${levelName} msg=${quoteIfNeeded(String(msg ?? ""))}${fields ? " " + fields : ""}\n`);
    },
  };
}

function quoteIfNeeded(value: string): string {
  return /^[A-Za-z0-9._:/@-]+$/.test(value) ? value : JSON.stringify(value);
}
