import assert from "node:assert/strict";
import { it } from "node:test";
import { EventTargets } from "../src/notifications/event-targets.js";
import type { EventTarget } from "../src/notifications/registry-event.js";

type Fields = Pick<EventTarget, "repository" | "tag" | "url" | "mediaType">;

function fields(repository: string, tag?: string): Fields {
  return { repository, tag, url: `http://registry.example/v2/${repository}/manifests/sha256:0`, mediaType: "application/vnd.oci.image.manifest.v1+json" };
}

function find(targets: EventTargets, key: object, f: Fields): EventTarget | undefined {
  return targets.find(key, f.repository!, f.tag, f.url!, f.mediaType!);
}

/** As a pull does it: the kept target, or a new one kept. */
function get(targets: EventTargets, key: object, f: Fields): EventTarget {
  return find(targets, key, f) ?? targets.keep(key, { ...f, digest: "sha256:0", size: 1, length: 1 });
}

it("EventTargets: one target per key and fields, made once; another repository, tag, URL or media type gets its own", () => {
  const targets = new EventTargets();
  const key = {};
  const a = get(targets, key, fields("a", "one"));
  assert.equal(find(targets, key, fields("a", "one")), a);
  const others = [fields("b", "one"), fields("a", "two"), fields("a"), { ...fields("a", "one"), url: "http://other.example/x" }, { ...fields("a", "one"), mediaType: "application/json" }];
  const made = others.map((f) => get(targets, key, f));
  for (const [i, target] of made.entries()) {
    assert.notEqual(target, a, `fields #${i}`);
    assert.equal(target.repository, others[i]!.repository);
    assert.equal(target.tag, others[i]!.tag);
  }
  assert.notEqual(get(targets, {}, fields("a", "one")), a, "another key: another target");
});

it("EventTargets: at most 8 per key (the newest), and all let go of once 4,096 were made", () => {
  const targets = new EventTargets();
  const key = {};
  const first = get(targets, key, fields("r", "t0"));
  for (let i = 1; i <= 8; i++) get(targets, key, fields("r", `t${i}`));
  assert.notEqual(get(targets, key, fields("r", "t0")), first, "the ninth pushed the oldest out");

  const fresh = new EventTargets();
  const keys = Array.from({ length: 4096 }, () => ({}));
  const kept = keys.map((k, i) => get(fresh, k, fields(`r${i}`)));
  assert.equal(find(fresh, keys[0]!, fields("r0")), kept[0], "4,096 are kept");
  get(fresh, {}, fields("one-more"));
  assert.notEqual(get(fresh, keys[4095]!, fields("r4095")), kept[4095], "the 4,097th let the others go");
});
