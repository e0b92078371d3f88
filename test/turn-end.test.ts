import assert from "node:assert/strict";
import { it } from "node:test";
import { lastOnTheirConnections, servedAtTurnEnd } from "../src/server/turn-end.js";

it("servedAtTurnEnd: the requests of one turn share one wait, which ends after the turn's callbacks queued before it; the next turn waits anew", async () => {
  const order: string[] = [];
  setImmediate(() => order.push("queued before"));
  const first = servedAtTurnEnd();
  const second = servedAtTurnEnd();
  assert.equal(first, second, "one setImmediate a turn, not one per request");
  void first.then(() => order.push("first"));
  void second.then(() => order.push("second"));
  await first;
  await Promise.resolve();
  assert.deepEqual(order, ["queued before", "first", "second"]);
  const next = servedAtTurnEnd();
  assert.notEqual(next, first, "a turn after it ended waits again");
  await next;
});

it("lastOnTheirConnections: at shutdown the requests still waiting for the turn's end close their connections; those already started are left alone", async () => {
  const started = await servedAtTurnEnd();
  const waiting = [servedAtTurnEnd(), servedAtTurnEnd()];
  lastOnTheirConnections();
  assert.deepEqual(await Promise.all(waiting), [true, true]);
  assert.equal(started, false);
  // Shutdown with nothing waiting marks nothing: a later turn's requests keep their connections.
  lastOnTheirConnections();
  assert.equal(await servedAtTurnEnd(), false, "a turn that ended holds nothing");
});
