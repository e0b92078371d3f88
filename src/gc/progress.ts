/**
 * What the collector tells the person running it. On a terminal: one line, redrawn in place, with
 * the running counts (warnings print above it). Elsewhere (a pipe, a log file, CI): plain lines,
 * one per repository scanned and per item deleted, that read well in a log.
 */

export interface GcCounts {
  phase: "mark" | "scan blobs" | "sweep" | "done";
  repositories: number;
  manifests: number;
  blobsMarked: number;
  blobsToDelete: number;
  bytesToFree: number;
  blobsDeleted: number;
  bytesDeleted: number;
}

export interface GcProgress {
  /** Updates the running counts (the live line on a terminal; nothing in plain output). */
  update(counts: Partial<GcCounts>): void;
  /** A line about one item: a repository scanned, a blob deleted. Plain output only. */
  item(line: string): void;
  /** A line always shown: what was decided, where. */
  info(line: string): void;
  /** A problem worth a person's attention; counted for the summary. */
  warn(line: string): void;
  /** Clears the live line so that what follows starts on a clean line. */
  finish(): void;
  readonly warnings: number;
}

/** The stream's own idea of whether it is a terminal decides the style. */
export function createProgress(stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }): GcProgress {
  return stream.isTTY ? new TerminalProgress(stream) : new PlainProgress(stream);
}

export class PlainProgress implements GcProgress {
  warnings = 0;
  constructor(private readonly out: NodeJS.WritableStream) {}
  update(_counts: Partial<GcCounts>): void {}
  item(line: string): void {
    this.out.write(`${line}\n`);
  }
  info(line: string): void {
    this.out.write(`${line}\n`);
  }
  warn(line: string): void {
    this.warnings++;
    this.out.write(`warning: ${line}\n`);
  }
  finish(): void {}
}

const REDRAW_MS = 100;

export class TerminalProgress implements GcProgress {
  warnings = 0;
  private counts: GcCounts = {
    phase: "mark",
    repositories: 0,
    manifests: 0,
    blobsMarked: 0,
    blobsToDelete: 0,
    bytesToFree: 0,
    blobsDeleted: 0,
    bytesDeleted: 0,
  };
  private shown = false;
  private lastDraw = 0;

  constructor(private readonly out: NodeJS.WritableStream & { columns?: number }) {}

  update(counts: Partial<GcCounts>): void {
    const phaseChanged = counts.phase !== undefined && counts.phase !== this.counts.phase;
    Object.assign(this.counts, counts);
    const now = Date.now();
    if (phaseChanged || now - this.lastDraw >= REDRAW_MS) this.draw(now);
  }

  item(_line: string): void {}

  info(line: string): void {
    this.above(line);
  }

  warn(line: string): void {
    this.warnings++;
    this.above(`warning: ${line}`);
  }

  finish(): void {
    if (this.shown) this.out.write("\r\x1b[2K");
    this.shown = false;
  }

  /** The live line's text, for tests and for the final redraw. */
  line(): string {
    const c = this.counts;
    switch (c.phase) {
      case "mark":
        return `mark: ${c.repositories} repositories scanned, ${c.manifests} manifests, ${c.blobsMarked} blobs marked`;
      case "scan blobs":
        return `scan blobs: ${c.blobsMarked} blobs marked, ${c.blobsToDelete} to delete (${formatBytes(c.bytesToFree)} to free)`;
      default:
        return (
          `${c.phase}: deleted ${c.blobsDeleted} of ${c.blobsToDelete} blobs ` +
          `(${formatBytes(c.bytesDeleted)} of ${formatBytes(c.bytesToFree)} freed)`
        );
    }
  }

  private above(line: string): void {
    this.finish();
    this.out.write(`${line}\n`);
    this.draw(Date.now());
  }

  private draw(now: number): void {
    this.lastDraw = now;
    const width = this.out.columns && this.out.columns > 10 ? this.out.columns - 1 : 200;
    this.out.write(`\r\x1b[2K${this.line().slice(0, width)}`);
    this.shown = true;
  }
}

/** "12.3 MiB": binary units, one decimal, for people. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
