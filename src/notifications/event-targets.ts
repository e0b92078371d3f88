import type { EventTarget } from "./registry-event.js";

/** Targets kept per manifest or blob: one per repository, tag, URL and media type it was seen with, the newest first. */
const TARGETS_PER_KEY = 8;

/**
 * The targets of events about one manifest or blob, shared by the events of every request that
 * pulls it. A pull of a cached manifest used to make its target object, URL and (with
 * includereferences) parsed references again each time, and the record its text: most of what an
 * event cost. A target is never changed once made, so the record written for it is kept with it
 * (src/notifications/event-record.ts).
 *
 * Keyed weakly by the object the target describes (a cached manifest's content, a cached blob
 * descriptor): the targets go when it does.
 */
export class EventTargets {
  private readonly byKey = new WeakMap<object, EventTarget[]>();

  /**
   * The target kept for `key` with these fields, or `make()`'s, kept from then on. `make` must fill
   * them in as given.
   */
  get(key: object, fields: Pick<EventTarget, "repository" | "tag" | "url" | "mediaType">, make: () => EventTarget): EventTarget {
    let kept = this.byKey.get(key);
    if (kept === undefined) this.byKey.set(key, (kept = []));
    for (const target of kept) {
      if (target.repository === fields.repository && target.tag === fields.tag && target.url === fields.url && target.mediaType === fields.mediaType) return target;
    }
    const target = make();
    kept.unshift(target);
    if (kept.length > TARGETS_PER_KEY) kept.pop();
    return target;
  }
}
