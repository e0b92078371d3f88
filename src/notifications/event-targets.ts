import type { EventTarget } from "./registry-event.js";

/** Targets kept per manifest or blob: one per repository, tag, URL and media type it was pulled as, the newest first. */
const TARGETS_PER_KEY = 8;
/**
 * Targets kept in all, with their texts about 1.5 KB each: the manifest cache holds up to 32 MiB of
 * manifests, tens of thousands of small ones, and a target and its text weigh more than a small
 * manifest. Past this many, all are let go of and the pulls that follow keep theirs again.
 */
const TARGETS_MAX = 4096;

/**
 * The targets of pull events about one manifest or blob, shared by every request that pulls it. A
 * pull of a cached manifest used to make its target object, URL and (with includereferences)
 * parsed references again each time, and the record its text: most of what an event cost. A
 * target is never changed once made, so the record written for it is kept with it
 * (src/notifications/event-record.ts).
 *
 * Keyed weakly by the object the target describes (a cached manifest's content, a cached blob
 * descriptor): the targets go when it does, and all of them once TARGETS_MAX were kept.
 */
export class EventTargets {
  private byKey = new WeakMap<object, EventTarget[]>();
  /** Targets kept since byKey was last emptied (some may be gone with their keys). */
  private kept = 0;

  /** The target kept for `key` with this repository, tag, URL and media type, if any. */
  find(key: object, repository: string, tag: string | undefined, url: string, mediaType: string): EventTarget | undefined {
    const targets = this.byKey.get(key);
    if (targets === undefined) return undefined;
    for (const target of targets) {
      if (target.repository === repository && target.tag === tag && target.url === url && target.mediaType === mediaType) return target;
    }
    return undefined;
  }

  /** Keeps `target` for `key` (found from then on by its own fields), and returns it. */
  keep(key: object, target: EventTarget): EventTarget {
    if (++this.kept > TARGETS_MAX) {
      this.byKey = new WeakMap();
      this.kept = 1;
    }
    let targets = this.byKey.get(key);
    if (targets === undefined) this.byKey.set(key, (targets = []));
    targets.unshift(target);
    if (targets.length > TARGETS_PER_KEY) targets.pop();
    return target;
  }
}
