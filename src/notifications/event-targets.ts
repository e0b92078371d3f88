import type { EventTarget } from "./registry-event.js";

/** Targets kept per manifest or blob: one per repository, tag, URL and media type it was seen with, the newest first. */
const TARGETS_PER_KEY = 8;
/**
 * Targets kept in all, with their texts about 1.5 KB each: the manifest cache holds up to 32 MiB of
 * manifests, tens of thousands of small ones, and a target and its text weigh more than a small
 * manifest. Past this many, all are let go of and the pulls that follow keep theirs again.
 */
const TARGETS_MAX = 4096;

/**
 * The targets of events about one manifest or blob, shared by the events of every request that
 * pulls it. A pull of a cached manifest used to make its target object, URL and (with
 * includereferences) parsed references again each time, and the record its text: most of what an
 * event cost. A target is never changed once made, so the record written for it is kept with it
 * (src/notifications/event-record.ts).
 *
 * Keyed weakly by the object the target describes (a cached manifest's content, a cached blob
 * descriptor): the targets go when it does, and all of them once TARGETS_MAX were made.
 */
export class EventTargets {
  private byKey = new WeakMap<object, EventTarget[]>();
  /** Targets made since byKey was last emptied (some may be gone with their keys). */
  private made = 0;

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
    if (++this.made > TARGETS_MAX) {
      this.byKey = new WeakMap();
      this.made = 1;
      this.byKey.set(key, (kept = []));
    }
    kept.unshift(target);
    if (kept.length > TARGETS_PER_KEY) kept.pop();
    return target;
  }
}
