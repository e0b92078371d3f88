import type { Logger } from "../../log/logger.js";
import type { GcCounts, GcProgress } from "../progress.js";

/** GcProgress into the registry's log: a scheduled collection reports where the server does. */
export class LogProgress implements GcProgress {
  warnings = 0;

  constructor(private readonly log: Pick<Logger, "info" | "warn" | "debug">) {}

  update(_counts: Partial<GcCounts>): void {}

  item(line: string): void {
    this.log.debug(line);
  }

  info(line: string): void {
    this.log.info(line);
  }

  warn(line: string): void {
    this.warnings++;
    this.log.warn(line);
  }

  finish(): void {}
}
