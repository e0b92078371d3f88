import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { it } from "node:test";
import { lastOnTheirConnections, servedAtTurnEnd } from "../src/server/turn-end.js";

const response = (): ServerResponse => ({ shouldKeepAlive: true }) as ServerResponse;

it("servedAtTurnEnd: the requests of one turn share one wait, which ends after the turn's callbacks queued before it; the next turn waits anew", async () => {
  const order: string[] = [];
  setImmediate(() => order.push("queued before"));
  const first = servedAtTurnEnd(response());
  const second = servedAtTurnEnd(response());
  assert.equal(first, second, "one setImmediate a turn, not one per request");
  void first.then(() => order.push("first"));
  void second.then(() => order.push("second"));
  await first;
  await Promise.resolve();
  assert.deepEqual(order, ["queued before", "first", "second"]);
  const next = servedAtTurnEnd(response());
  assert.notEqual(next, first, "a turn after it ended waits again");
  await next;
});

it("lastOnTheirConnections: at shutdown the requests still waiting for the turn's end close their connections; those already started are left alone", async () => {
  const started = response();
  await servedAtTurnEnd(started);
  const waiting = [response(), response()];
  const done = Promise.all(waiting.map((res) => servedAtTurnEnd(res)));
  lastOnTheirConnections();
  assert.deepEqual(waiting.map((res) => res.shouldKeepAlive), [false, false]);
  assert.equal(started.shouldKeepAlive, true);
  await done;
  const later = response();
  const wait = servedAtTurnEnd(later);
  await wait;
  lastOnTheirConnections();
  assert.equal(later.shouldKeepAlive, true, "a turn that ended holds nothing");
});
