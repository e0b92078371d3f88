import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/log/logger.js";

/** A JSON logger whose lines are kept in memory, for tests that check what was logged. */
export function memoryLogger(): { log: Logger; entries(): Array<Record<string, unknown>>; text(): string } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString("utf8").split("\n").filter((l) => l !== ""));
      callback();
    },
  });
  const log = createLogger({ level: "debug", formatter: "json", destination });
  return {
    log,
    entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    text: () => lines.join("\n"),
  };
}
