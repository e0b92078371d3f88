// The outbox's queue logic on both kinds of storage: the in-memory driver (an object store's way:
// one object per append) and the filesystem driver (one append log), both product drivers: group
// commit, the bounded window, refills from storage while appends land, removal, the cursor, and
// what a crash or a failed write leaves.
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { InMemoryDriver } from "../src/driver/inmemory-driver.js";
import type { AppendLog, StorageDriver } from "../src/driver/storage-driver.js";
import { EndpointOutbox, endpointKey, parseSegment, segmentName, segmentSeq } from "../src/notifications/endpoint-outbox.js";
import { adoptOrphanedOutboxes } from "../src/notifications/outbox-adoption.js";
import { memoryLogger } from "./support/memory-logger.js";
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

/** A fault-injecting filesystem driver: its first append writes half the bytes, then fails as a full disk would. */
class TornAppendDriver extends FilesystemDriver {
  private failed = false;
  override async appendLog(path: string): Promise<AppendLog> {
    const log = await super.appendLog(path);
    return {
      get size() {
        return log.size;
      },
      append: async (data, sync) => {
        if (this.failed) return log.append(data, sync);
        this.failed = true;
        await log.append(data.subarray(0, Math.floor(data.length / 2)), sync);
        throw new Error("disk full");
      },
      truncate: (size) => log.truncate(size),
      close: () => log.close(),
    };
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
async function drain(outbox: EndpointOutbox, max = 100): Promise<string[]> {
  const ids: string[] = [];
  for (;;) {
    const events = await outbox.peek(max);
    if (events.length === 0) return ids;
    for (const e of events) ids.push(e.id);
    await outbox.consume(events.length);
  }
}

const work = await mkdtemp(join(tmpdir(), "berth-outbox-"));
after(() => rm(work, { recursive: true, force: true }));
let roots = 0;
function filesystem(): { driver: FilesystemDriver; root: string } {
  const root = join(work, `root-${roots++}`);
  return { driver: new FilesystemDriver(root), root };
}

const DIR = "/berth/notifications/n1/ep";
const stores: Array<{ name: string; make: () => StorageDriver }> = [
  { name: "in memory (an object per append)", make: () => new InMemoryDriver() },
  { name: "filesystem (an append log)", make: () => filesystem().driver },
];

const listed = (driver: StorageDriver, dir = DIR): Promise<string[]> => driver.list(dir).catch(() => []);

for (const store of stores) {
  describe(`notification outbox, ${store.name}`, () => {
    it("group-commits concurrent appends and hands them out in order; nothing stays once all is consumed", async () => {
      const driver = store.make();
      const outbox = new EndpointOutbox(driver, DIR);
      const events = Array.from({ length: 50 }, () => event());
      await Promise.all(events.map((e) => outbox.append([e], true)));
      const stored = await listed(driver);
      // The 50 appends of one turn of the event loop share one write: one segment either way.
      assert.deepEqual(stored, [`${DIR}/${segmentName(0)}`], "one segment");
      assert.equal(parseSegment(await driver.getContent(stored[0]!)).events.length, 50);
      assert.equal(outbox.pendingEvents, 50);
      assert.deepEqual(await drain(outbox), events.map((e) => e.id));
      assert.equal(outbox.pendingEvents, 0);
      await outbox.close();
      assert.deepEqual(await listed(driver), [], "no segment and no cursor left");
    });

    it("keeps a bounded window and reads the rest back from storage, appends during refills included", async () => {
      const driver = store.make();
      const outbox = new EndpointOutbox(driver, DIR);
      const ids: string[] = [];
      // 2,500 appends of one event: more segments than the window holds (objects), more events than memory keeps.
      for (let i = 0; i < 2_500; i++) {
        const e = event();
        ids.push(e.id);
        await outbox.append([e], false);
      }
      assert.equal(outbox.pendingEvents, 2_500);
      const seen: string[] = [];
      let appendedDuring = 0;
      for (;;) {
        const events = await outbox.peek(7);
        if (events.length === 0) break;
        for (const e of events) seen.push(e.id);
        await outbox.consume(events.length);
        // Keep appending while the consumer works through refills.
        if (appendedDuring < 300) {
          const e = event();
          ids.push(e.id);
          appendedDuring++;
          void outbox.append([e], false);
        }
      }
      // The last appends may still be in flight: wait for them and take the rest.
      await outbox.append([event()], false);
      seen.push(...(await drain(outbox)));
      assert.deepEqual(seen.slice(0, ids.length), ids);
      assert.equal(seen.length, ids.length + 1);
      assert.equal(outbox.pendingEvents, 0);
      await outbox.close();
    });

    it("consuming part of a batch keeps the rest, and a cursor tells a later reader where delivery stopped", async () => {
      const driver = store.make();
      const outbox = new EndpointOutbox(driver, DIR);
      const events = Array.from({ length: 5 }, () => event());
      await outbox.append(events, true);
      assert.deepEqual((await outbox.peek(2)).map((e) => e.id), events.slice(0, 2).map((e) => e.id));
      await outbox.consume(2);
      assert.equal(outbox.pendingEvents, 3);
      await outbox.close();
      assert.deepEqual(JSON.parse((await driver.getContent(`${DIR}/cursor`)).toString()), { seq: 0, consumed: 2 });

      // Another process adopts it (no lease: a process that is gone) and gets the other three, once.
      const adopter = new EndpointOutbox(driver, "/berth/notifications/n2/ep");
      const adopted = await adoptOrphanedOutboxes(driver, "n2", new Map([["ep", adopter]]), memoryLogger().log);
      assert.equal(adopted, 3);
      assert.deepEqual(await drain(adopter), events.slice(2).map((e) => e.id));
      assert.deepEqual(await listed(driver, "/berth/notifications/n1"), [], "the orphan's outbox is removed");
      await adopter.close();
    });
  });
}

describe("notification outbox: failures and crashes", () => {
  it("a failed write rejects its waiters and the next append still goes through (an object per append)", async () => {
    const driver = new FailingOnceDriver();
    const outbox = new EndpointOutbox(driver, DIR);
    await assert.rejects(outbox.append([event()], true), /disk full/);
    const ok = event();
    await outbox.append([ok], true);
    assert.deepEqual(await drain(outbox), [ok.id]);
  });

  it("an append log cut short by a failed write is trimmed back: the next append follows the last whole event", async () => {
    const { root } = filesystem();
    const driver = new TornAppendDriver(root);
    const outbox = new EndpointOutbox(driver, DIR);
    await assert.rejects(outbox.append([event(), event()], true), /disk full/);
    const ok = event();
    await outbox.append([ok], true);
    const files = (await readdir(join(root, DIR))).filter((name) => segmentSeq(`/${name}`) !== undefined);
    const content = Buffer.concat(await Promise.all(files.sort().map((name) => readFile(join(root, DIR, name)))));
    assert.deepEqual(parseSegment(content), { events: [ok], unreadable: 0 }, "only the acknowledged event is stored");
    assert.deepEqual(await drain(outbox), [ok.id]);
    await outbox.close();
  });

  it("reads segments the way a crash leaves them: a torn last line is not an event, a damaged whole line is counted", () => {
    const a = event();
    const b = event();
    const whole = `${JSON.stringify(a)}\n${JSON.stringify(b)}\n`;
    assert.deepEqual(parseSegment(Buffer.from(whole + JSON.stringify(event()).slice(0, 40))), { events: [a, b], unreadable: 0 });
    assert.deepEqual(parseSegment(Buffer.from(`${JSON.stringify(a)}\n{"not":"an event"}\nnot json\n${JSON.stringify(b)}\n`)), { events: [a, b], unreadable: 2 });
    assert.deepEqual(parseSegment(Buffer.alloc(0)), { events: [], unreadable: 0 });
  });

  it("an idle append log is sealed and deleted a second after everything in it was consumed", async () => {
    const { driver } = filesystem();
    const outbox = new EndpointOutbox(driver, DIR);
    await outbox.append([event(), event()], false);
    await outbox.consume(1);
    const until = async (count: number): Promise<string[]> => {
      const deadline = Date.now() + 5_000;
      while ((await listed(driver)).length !== count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      return listed(driver);
    };
    // The cursor is saved within 100 ms of the consumption.
    assert.deepEqual(await until(2), [`${DIR}/${segmentName(0)}`, `${DIR}/cursor`].sort());
    await outbox.consume(1);
    assert.deepEqual(await until(0), [], "segment and cursor gone");
    // Appends after that start a new segment.
    const next = event();
    await outbox.append([next], false);
    assert.deepEqual(await listed(driver), [`${DIR}/${segmentName(1)}`]);
    assert.deepEqual(await drain(outbox), [next.id]);
    await outbox.close();
  });

  it("names segments so a listing tells their order, and endpoints so names never share a queue", () => {
    assert.equal(segmentName(42), "000000000042.events");
    assert.equal(segmentSeq("/berth/notifications/n/ep/000000000042.events"), 42);
    assert.equal(segmentSeq("/berth/notifications/n/ep/cursor"), undefined);
    assert.equal(endpointKey("ci-hook"), "ci-hook");
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

  it("tells before an event is built whether its action can pass (so ignored pulls cost nothing)", () => {
    const noPulls = new EventFilter({ ignoredMediaTypes: [], ignoredActions: ["pull"], repositories: [], ignoreHeadPulls: false });
    assert.equal(noPulls.mayAccept("pull", "GET"), false);
    assert.equal(noPulls.mayAccept("push", "PUT"), true);
    const noHeads = new EventFilter({ ignoredMediaTypes: [], ignoredActions: [], repositories: ["team/**"], ignoreHeadPulls: true });
    assert.equal(noHeads.mayAccept("pull", "HEAD"), false);
    // The repository filter needs the event: a GET may pass.
    assert.equal(noHeads.mayAccept("pull", "GET"), true);
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
