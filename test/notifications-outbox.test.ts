// The outbox's queue logic on the in-memory driver (a product driver, not a double): group commit,
// the bounded window, refills from storage while appends land, and removal.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InMemoryDriver } from "../src/driver/inmemory-driver.js";
import { EndpointOutbox, endpointKey, parseBatchName } from "../src/notifications/endpoint-outbox.js";
import { envelopeFor } from "../src/notifications/event-envelope.js";
import { EventFilter, globToRegExp } from "../src/notifications/event-filter.js";
import { goTimestamp, type RegistryEvent } from "../src/notifications/registry-event.js";

/** A fault-injecting in-memory driver: its first putContent fails as a full disk would. */
class FailingOnceDriver extends InMemoryDriver {
  private failed = false;
  override async putContent(path: string, content: Uint8Array): Promise<void> {
    if (!this.failed) {
      this.failed = true;
      throw new Error("disk full");
    }
    return super.putContent(path, content);
  }
}

let counter = 0;
function event(repository = "team/app", method = "PUT", action: RegistryEvent["action"] = "push"): RegistryEvent {
  counter++;
  return {
    id: `event-${counter}`,
    timestamp: goTimestamp(),
    action,
    target: { mediaType: "application/octet-stream", size: 1, digest: `sha256:${String(counter).padStart(64, "0")}`, repository },
    request: { id: "r", method, useragent: "test" },
    actor: {},
    source: {},
  };
}

/** Takes everything from the head, in order, the way the dispatcher does. */
async function drain(outbox: EndpointOutbox): Promise<string[]> {
  const ids: string[] = [];
  for (;;) {
    const head = await outbox.head();
    if (head === undefined) return ids;
    for (const e of await outbox.load(head)) ids.push(e.id);
    await outbox.remove(head);
  }
}

describe("notification outbox", () => {
  it("group-commits concurrent appends and hands them out in order", async () => {
    const driver = new InMemoryDriver();
    const outbox = new EndpointOutbox(driver, "/berth/notifications/n1/ep");
    const events = Array.from({ length: 50 }, () => event());
    await Promise.all(events.map((e) => outbox.append([e], true)));
    const stored = await driver.list("/berth/notifications/n1/ep");
    // The first append is written alone; the 49 that arrived while it was written share one batch.
    assert.equal(stored.length, 2);
    assert.equal(outbox.pendingEvents, 50);
    assert.deepEqual(await drain(outbox), events.map((e) => e.id));
    assert.equal(outbox.pendingEvents, 0);
    assert.deepEqual(await driver.list("/berth/notifications/n1/ep").catch(() => []), []);
  });

  it("keeps a bounded window and reads the rest back from storage, appends during refills included", async () => {
    const driver = new InMemoryDriver();
    const outbox = new EndpointOutbox(driver, "/berth/notifications/n1/ep");
    const ids: string[] = [];
    // 2,500 batches of one event: more than the window holds.
    for (let i = 0; i < 2_500; i++) {
      const e = event();
      ids.push(e.id);
      await outbox.append([e], false);
    }
    assert.equal(outbox.pendingEvents, 2_500);
    const seen: string[] = [];
    let appendedDuring = 0;
    for (;;) {
      const head = await outbox.head();
      if (head === undefined) break;
      for (const e of await outbox.load(head)) seen.push(e.id);
      await outbox.remove(head);
      // Keep appending while the consumer works through refills.
      if (appendedDuring < 300) {
        const e = event();
        ids.push(e.id);
        appendedDuring++;
        void outbox.append([e], false);
      }
    }
    // The last appends may still be in flight: wait for them and take the rest.
    await outbox.append([event()], false).then(() => undefined);
    seen.push(...(await drain(outbox)));
    assert.deepEqual(seen.slice(0, ids.length), ids);
    assert.equal(seen.length, ids.length + 1);
    assert.equal(outbox.pendingEvents, 0);
  });

  it("a failed write rejects its waiters and the next batch still goes through", async () => {
    const driver = new FailingOnceDriver();
    const outbox = new EndpointOutbox(driver, "/berth/notifications/n1/ep");
    await assert.rejects(outbox.append([event()], true), /disk full/);
    const ok = event();
    await outbox.append([ok], true);
    assert.deepEqual(await drain(outbox), [ok.id]);
  });

  it("names batches so a listing tells their order, size and age", () => {
    assert.deepEqual(parseBatchName("/berth/notifications/n/ep/000000000042-3-1764680000000"), {
      seq: 42,
      count: 3,
      at: 1764680000000,
      path: "/berth/notifications/n/ep/000000000042-3-1764680000000",
    });
    assert.equal(parseBatchName("/berth/notifications/n/ep/garbage"), undefined);
    assert.equal(endpointKey("ci-hook"), "ci-hook");
    // Distinct names never share a queue.
    assert.notEqual(endpointKey("a_b"), endpointKey("a.b"));
    assert.equal(endpointKey("a b/ü"), "a_20b_2f_c3_bc");
  });
});

describe("event filters and envelopes", () => {
  it("matches repository globs per path component", () => {
    assert.ok(globToRegExp("team/**").test("team/a/b"));
    assert.ok(!globToRegExp("team/*").test("team/a/b"));
    assert.ok(globToRegExp("*/base").test("x/base"));
    assert.ok(!globToRegExp("*/base").test("x/y/base"));
    assert.ok(!globToRegExp("team.x/*").test("teamyx/a"));
  });

  it("applies each filter on its own", () => {
    const filter = new EventFilter({ ignoredMediaTypes: [], ignoredActions: ["pull"], repositories: [], ignoreHeadPulls: false });
    assert.equal(filter.accepts(event("a", "GET", "pull")), false);
    assert.equal(filter.accepts(event("a", "PUT", "push")), true);
    const heads = new EventFilter({ ignoredMediaTypes: [], ignoredActions: [], repositories: ["team/**"], ignoreHeadPulls: true });
    assert.equal(heads.accepts(event("team/a", "HEAD", "pull")), false);
    assert.equal(heads.accepts(event("team/a", "GET", "pull")), true);
    assert.equal(heads.accepts(event("other/a", "GET", "pull")), false);
  });

  it("escapes as Go does and writes each format's content type", () => {
    const e = event();
    e.request.useragent = "a<b>&c\u2028";
    const v1 = envelopeFor([e], "v1");
    assert.equal(v1.contentType, "application/vnd.docker.distribution.events.v1+json");
    assert.ok(v1.body.toString().includes('"useragent": "a\\u003cb\\u003e\\u0026c\\u2028"'));
    assert.deepEqual(JSON.parse(v1.body.toString()).events[0].request.useragent, "a<b>&c\u2028");
    const v2 = JSON.parse(envelopeFor([{ ...e, target: { repository: "r", tag: "t" }, action: "delete" }], "v2").body.toString());
    assert.deepEqual(Object.keys(v2.events[0].target), ["mediaType", "digest", "size", "repository", "tag"]);
    const cloud = envelopeFor([e], "cloudevents");
    assert.equal(cloud.contentType, "application/cloudevents+json");
    const parsed = JSON.parse(cloud.body.toString());
    assert.equal(parsed.specversion, "1.0");
    assert.equal(parsed.type, "io.berth.registry.push");
    assert.equal(parsed.source, "/team/app");
    assert.equal(parsed.data.id, e.id);
  });
});
