import assert from "node:assert/strict";
import { it } from "node:test";
import { endOfTurn } from "../src/server/turn-end.js";

it("endOfTurn: every wait begun in one turn is one wait, ending after the turn's callbacks queued before it; the next turn waits anew", async () => {
  const order: string[] = [];
  setImmediate(() => order.push("queued before"));
  const first = endOfTurn();
  const second = endOfTurn();
  assert.equal(first, second, "one setImmediate a turn, not one per request");
  void first.then(() => order.push("first"));
  void second.then(() => order.push("second"));
  await first;
  await Promise.resolve();
  assert.deepEqual(order, ["queued before", "first", "second"]);
  const next = endOfTurn();
  assert.notEqual(next, first, "a turn after it ended waits again");
  await next;
});
