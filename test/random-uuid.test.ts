import assert from "node:assert/strict";
import { it } from "node:test";
import { randomUuid } from "../src/notifications/random-uuid.js";

it("randomUuid: version 4 RFC 4122 UUIDs, all different, across many refills of its pool", () => {
  const seen = new Set<string>();
  const variants = new Set<string>();
  const hexAt = new Array<Set<string>>(36).fill(new Set()).map(() => new Set<string>());
  for (let i = 0; i < 20_000; i++) {
    const id = randomUuid();
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    seen.add(id);
    variants.add(id[19]!);
    for (let c = 0; c < 36; c++) hexAt[c]!.add(id[c]!);
  }
  assert.equal(seen.size, 20_000, "no UUID twice");
  assert.deepEqual([...variants].sort(), ["8", "9", "a", "b"], "the variant's free bits vary");
  // Every random position takes all 16 digits: no byte of the pool is skipped or repeated in place.
  for (let c = 0; c < 36; c++) {
    if ([8, 13, 14, 18, 19, 23].includes(c)) continue;
    assert.equal(hexAt[c]!.size, 16, `position ${c} takes every hex digit`);
  }
});
