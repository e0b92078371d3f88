import assert from "node:assert/strict";
import { it } from "node:test";
import { EventTargets } from "../src/notifications/event-targets.js";
import type { EventTarget } from "../src/notifications/registry-event.js";

function fields(repository: string, tag?: string): Pick<EventTarget, "repository" | "tag" | "url" | "mediaType"> {
  return { repository, tag, url: `http://registry.example/v2/${repository}/manifests/sha256:0`, mediaType: "application/vnd.oci.image.manifest.v1+json" };
}

function make(f: ReturnType<typeof fields>): () => EventTarget {
  return () => ({ ...f, digest: "sha256:0", size: 1, length: 1 });
}

it("EventTargets: one target per key and fields, made once; another repository, tag, URL or media type gets its own", () => {
  const targets = new EventTargets();
  const key = {};
  const a = targets.get(key, fields("a", "one"), make(fields("a", "one")));
  assert.equal(targets.get(key, fields("a", "one"), () => assert.fail("made again")), a);
  const others = [fields("b", "one"), fields("a", "two"), fields("a"), { ...fields("a", "one"), url: "http://other.example/x" }, { ...fields("a", "one"), mediaType: "application/json" }];
  const made = others.map((f) => targets.get(key, f, make(f)));
  for (const [i, target] of made.entries()) {
    assert.notEqual(target, a, `fields #${i}`);
    assert.equal(target.repository, others[i]!.repository);
    assert.equal(target.tag, others[i]!.tag);
  }
  assert.notEqual(targets.get({}, fields("a", "one"), make(fields("a", "one"))), a, "another key: another target");
});

it("EventTargets: at most 8 per key (the newest), and all let go of once 4,096 were made", () => {
  const targets = new EventTargets();
  const key = {};
  const first = targets.get(key, fields("r", "t0"), make(fields("r", "t0")));
  for (let i = 1; i <= 8; i++) targets.get(key, fields("r", `t${i}`), make(fields("r", `t${i}`)));
  assert.notEqual(targets.get(key, fields("r", "t0"), make(fields("r", "t0"))), first, "the ninth pushed the oldest out");

  const fresh = new EventTargets();
  const keys = Array.from({ length: 4096 }, () => ({}));
  const kept = keys.map((k, i) => fresh.get(k, fields(`r${i}`), make(fields(`r${i}`))));
  assert.equal(fresh.get(keys[0]!, fields("r0"), () => assert.fail("made again")), kept[0], "4,096 are kept");
  fresh.get({}, fields("one-more"), make(fields("one-more")));
  assert.notEqual(fresh.get(keys[4095]!, fields("r4095"), make(fields("r4095"))), kept[4095], "the 4,097th let the others go");
});
