/**
 * The push crash campaign's ledger (tools/push-crash/ledger.ts): what a key may be after each kind
 * of answer. The campaign's audit is only as strict as these rules are right.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ABSENT, Ledger, PRESENT } from "../tools/push-crash/ledger.js";

const repo = "crash/c0/a";
const D = `sha256:${"d".repeat(64)}`;
const E = `sha256:${"e".repeat(64)}`;

function values(ledger: Ledger, kind: "blob" | "manifest" | "tag", name: string): string[] {
  return [...(ledger.get(kind, repo, name) ?? [])].sort();
}

test("an acknowledged push makes the blob present, whatever it may have been", () => {
  const ledger = new Ledger();
  ledger.record("push", [{ kind: "blob", repository: repo, name: D, value: PRESENT }], "unanswered");
  ledger.record("push", [{ kind: "blob", repository: repo, name: D, value: PRESENT }], "acknowledged");
  assert.deepEqual(values(ledger, "blob", D), [PRESENT]);
  assert.equal(ledger.is("blob", repo, D, PRESENT), true);
});

test("a push cut by the kill, or answered 5xx, may or may not have happened", () => {
  const ledger = new Ledger();
  ledger.record("push", [{ kind: "blob", repository: repo, name: D, value: PRESENT }], "unanswered");
  ledger.record("push", [{ kind: "blob", repository: repo, name: E, value: PRESENT }], "server-error");
  assert.deepEqual(values(ledger, "blob", D), [ABSENT, PRESENT]);
  assert.deepEqual(values(ledger, "blob", E), [ABSENT, PRESENT]);
  assert.deepEqual(ledger.namesWith("blob", repo, PRESENT), []);
});

test("a refused operation changes nothing", () => {
  const ledger = new Ledger();
  ledger.record("push", [{ kind: "blob", repository: repo, name: D, value: PRESENT }], "acknowledged");
  ledger.record("delete", [{ kind: "blob", repository: repo, name: D, value: ABSENT }], "refused");
  assert.deepEqual(values(ledger, "blob", D), [PRESENT]);
});

test("an acknowledged manifest delete untags the tags that pointed at it, and only those", () => {
  const ledger = new Ledger();
  ledger.record("put", [{ kind: "manifest", repository: repo, name: D, value: PRESENT }, { kind: "tag", repository: repo, name: "on-d", value: D }], "acknowledged");
  ledger.record("put", [{ kind: "manifest", repository: repo, name: E, value: PRESENT }, { kind: "tag", repository: repo, name: "on-e", value: E }], "acknowledged");
  // A move of "maybe" from E to D, cut by the kill: it points at one of them.
  ledger.record("put", [{ kind: "tag", repository: repo, name: "maybe", value: E }], "acknowledged");
  ledger.record("put", [{ kind: "tag", repository: repo, name: "maybe", value: D }], "unanswered");
  ledger.record("delete", ledger.manifestDeleteEffects(repo, D), "acknowledged");
  assert.deepEqual(values(ledger, "manifest", D), [ABSENT]);
  assert.deepEqual(values(ledger, "tag", "on-d"), [ABSENT]);
  assert.deepEqual(values(ledger, "tag", "on-e"), [E]);
  // Untagged if it pointed at D, still at E otherwise.
  assert.deepEqual(values(ledger, "tag", "maybe"), [ABSENT, E].sort());
});

test("a manifest delete cut by the kill leaves its tags possibly gone", () => {
  const ledger = new Ledger();
  ledger.record("put", [{ kind: "manifest", repository: repo, name: D, value: PRESENT }, { kind: "tag", repository: repo, name: "t", value: D }], "acknowledged");
  ledger.record("delete", ledger.manifestDeleteEffects(repo, D), "unanswered");
  assert.deepEqual(values(ledger, "manifest", D), [ABSENT, PRESENT]);
  assert.deepEqual(values(ledger, "tag", "t"), [ABSENT, D].sort());
});

test("what the audit observes is all a key may be from then on, and it is no longer touched", () => {
  const ledger = new Ledger();
  ledger.record("push", [{ kind: "blob", repository: repo, name: D, value: PRESENT }], "unanswered");
  assert.equal([...ledger.keys()][0]!.touched, true);
  ledger.observe("blob", repo, D, PRESENT);
  ledger.audited();
  assert.deepEqual(values(ledger, "blob", D), [PRESENT]);
  assert.equal([...ledger.keys()][0]!.touched, false);
});

test("a round's counts are taken once", () => {
  const ledger = new Ledger();
  ledger.record("push", [{ kind: "blob", repository: repo, name: D, value: PRESENT }], "acknowledged");
  ledger.record("push", [{ kind: "blob", repository: repo, name: E, value: PRESENT }], "unanswered");
  const { counts, acknowledgedByKind } = ledger.takeRoundCounts();
  assert.deepEqual(counts, { sent: 2, acknowledged: 1, refused: 0, unanswered: 1, "server-error": 0 });
  assert.deepEqual(acknowledgedByKind, { push: 1 });
  assert.equal(ledger.takeRoundCounts().counts.sent, 0);
});
