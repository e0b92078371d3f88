import type { StorageDriver } from "../driver/storage-driver.js";
import { deleteIfPresent } from "../driver/storage-driver.js";

/** How often the delivery cursor is saved while it moves: what a crash can make a receiver see twice. */
export const CURSOR_SAVE_MS = 100;

/**
 * An outbox's delivery cursor in storage: saved within CURSOR_SAVE_MS of a move rather than on
 * every delivery (on an object store, a save is a PUT), and not synced, since a cursor lost in a
 * power cut only means events delivered again. `wanted` says what the cursor is now: "" while the
 * head segment is not partly consumed, when none is kept.
 */
export class CursorWriter {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The cursor in storage; "" for none. */
  private saved = "";
  /** Writes one after the other, so that an older one never lands last. */
  private writes: Promise<void> = Promise.resolve();

  constructor(
    private readonly driver: StorageDriver,
    private readonly path: string,
    private readonly wanted: () => string,
  ) {}

  /** The cursor moved: saved within CURSOR_SAVE_MS, unless stopped. */
  schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.save().catch(() => undefined);
    }, CURSOR_SAVE_MS);
    this.timer.unref();
  }

  /** No more scheduled saves (the outbox is closing; it saves once more at its end). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Saves the cursor now, after any save in progress. */
  save(): Promise<void> {
    this.writes = this.writes.catch(() => undefined).then(() => this.write());
    return this.writes;
  }

  private async write(): Promise<void> {
    const wanted = this.wanted();
    if (wanted === this.saved) return;
    if (wanted === "") await deleteIfPresent(this.driver, this.path);
    else await this.driver.putContent(this.path, Buffer.from(wanted), { durable: false });
    this.saved = wanted;
  }
}
