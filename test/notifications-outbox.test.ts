// The outbox's queue logic on both kinds of storage: the in-memory driver (an object store's way:
// one object per append) and the filesystem driver (one append log), both product drivers: group
// commit, the bounded window, refills from storage while appends land, removal, the cursor, and
// what a crash or a failed write leaves.
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { after, describe, it } from "node:test";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { InMemoryDriver } from "../src/driver/inmemory-driver.js";
import type { AppendLog, StorageDriver } from "../src/driver/storage-driver.js";
import { EndpointOutbox } from "../src/notifications/endpoint-outbox.js";
import { GroupWriteBuffers } from "../src/notifications/group-write-buffers.js";
import { endpointKey, parseSegment, readRecords, segmentFormat, segmentName, segmentSeq } from "../src/notifications/outbox-files.js";
import { chunkOfRecords, decodeRecord, encodeRecord, envelopeOf, piece, RECORD_END, storedLength, writesAsBytes, writeStored, type RecordRun } from "../src/notifications/event-record.js";
import { randomUuid } from "../src/notifications/random-uuid.js";
import { adoptOrphanedOutboxes } from "../src/notifications/outbox-adoption.js";
import { memoryLogger } from "./support/memory-logger.js";
import { envelopeFor, type EnvelopeBody } from "../src/notifications/event-envelope.js";
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

/** The body a receiver gets: the parts as they are written, one after the other. */
function bodyText(envelope: EnvelopeBody): string {
  const body = Buffer.concat(envelope.parts);
  assert.equal(body.length, envelope.length);
  return body.toString("utf8");
}

/** The ids of the events a run of v1 records holds, read the way a receiver reads them. */
function idsOf(run: RecordRun): string[] {
  const events = JSON.parse(bodyText(envelopeOf(run, "v1"))) as { events: RegistryEvent[] };
  assert.equal(events.events.length, run.count);
  assert.equal(run.times.length, run.count);
  return events.events.map((e) => e.id);
}

/** Takes everything from the head, in order, the way the dispatcher does. */
async function drain(outbox: EndpointOutbox, max = 100): Promise<string[]> {
  const ids: string[] = [];
  for (;;) {
    const run = await outbox.peek(max);
    if (run.count === 0) return ids;
    ids.push(...idsOf(run));
    await outbox.consume(run.count);
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
      const outbox = new EndpointOutbox(driver, DIR, "v1");
      const events = Array.from({ length: 50 }, () => event());
      await Promise.all(events.map((e) => outbox.append([e], true)));
      const stored = await listed(driver);
      // The 50 appends of one turn of the event loop share one write: one segment either way.
      assert.deepEqual(stored, [`${DIR}/${segmentName(0, "v1")}`], "one segment");
      assert.equal(parseSegment(await driver.getContent(stored[0]!), stored[0]!).events.length, 50);
      assert.equal(outbox.pendingEvents, 50);
      assert.deepEqual(await drain(outbox), events.map((e) => e.id));
      assert.equal(outbox.pendingEvents, 0);
      await outbox.close();
      assert.deepEqual(await listed(driver), [], "no segment and no cursor left");
    });

    it("while its endpoint fails, keeps only the head's events in memory and retries only them; hands out all in order once it answers", async () => {
      const driver = store.make();
      const outbox = new EndpointOutbox(driver, DIR, "v1");
      const events = Array.from({ length: 3_000 }, () => event());
      await outbox.append(events.slice(0, 5), false);
      assert.equal(outbox.eventsInMemory, 5);
      outbox.holdOnlyHead(true);
      for (let i = 5; i < events.length; i += 100) await outbox.append(events.slice(i, i + 100), false);
      assert.equal(outbox.pendingEvents, 3_000);
      assert.equal(outbox.eventsInMemory, 5, "the 2,995 after the head are stored, not held");
      const retry = await outbox.peek(500);
      assert.equal(retry.count, 5, "a retry sends the head's events again, nothing read back for it");
      outbox.letGo(retry);
      assert.equal(outbox.eventsInMemory, 5);
      outbox.holdOnlyHead(false);
      assert.deepEqual(await drain(outbox, 500), events.map((e) => e.id));
      assert.equal(outbox.pendingEvents, 0);
      await outbox.close();
    });

    it("hands out every write's events intact whatever its size: small, past the scratch buffer's growth, past its limit", async () => {
      const driver = store.make();
      const outbox = new EndpointOutbox(driver, DIR, "v1");
      const ids: string[] = [];
      // Each group write is encoded into one reused buffer (16 KiB, growing to 1 MiB) unless it is
      // larger: the events a write left held for delivery must not change with the writes after it.
      for (const [count, repository] of [
        [3, "team/app"],
        [40, `team/${"a".repeat(300)}`],
        [700, `team/${"b".repeat(600)}`],
        [2, "team/app"],
      ] as const) {
        const batch = Array.from({ length: count }, () => event(repository));
        ids.push(...batch.map((e) => e.id));
        await outbox.append(batch, false);
      }
      const run = await outbox.peek(10_000);
      const delivered = JSON.parse(bodyText(envelopeOf(run, "v1"))) as { events: RegistryEvent[] };
      assert.deepEqual(
        delivered.events.map((e) => e.id),
        ids,
      );
      assert.deepEqual(
        delivered.events.map((e) => e.target.repository!.length),
        [...Array(3).fill(8), ...Array(40).fill(305), ...Array(700).fill(605), ...Array(2).fill(8)],
      );
      const stored: string[] = [];
      for (const path of (await listed(driver)).filter((p) => segmentSeq(p) !== undefined).sort((a, b) => segmentSeq(a)! - segmentSeq(b)!)) {
        stored.push(...parseSegment(await driver.getContent(path), path).events.map((e) => e.id));
      }
      assert.deepEqual(stored, ids, "storage holds the same events");
      await outbox.close();
    });

    it("past the memory budget, writes to a head segment still being appended to are held intact", async () => {
      const driver = store.make();
      const outbox = new EndpointOutbox(driver, DIR, "v1");
      const ids: string[] = [];
      // Small events, so that 2,100 of them (more than the 2,000 held in memory) fit in the head
      // segment (1 MiB): writes past the budget go through a reused buffer, yet the head keeps them.
      for (let i = 0; i < 2_100; i++) {
        const e: RegistryEvent = { id: `small-${i}`, timestamp: goTimestamp(), action: "pull", target: { repository: "r" }, request: { id: "r", method: "GET", useragent: "t" }, actor: {}, source: {} };
        ids.push(e.id);
        await outbox.append([e], false);
      }
      assert.equal((await listed(driver)).filter((p) => segmentSeq(p) !== undefined).length, store.name.startsWith("filesystem") ? 1 : 2_100);
      assert.deepEqual(await drain(outbox, 500), ids);
      await outbox.close();
    });

    it("keeps a bounded window and reads the rest back from storage, appends during refills included", async () => {
      const driver = store.make();
      const outbox = new EndpointOutbox(driver, DIR, "v1");
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
        const run = await outbox.peek(7);
        if (run.count === 0) break;
        seen.push(...idsOf(run));
        await outbox.consume(run.count);
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
      const outbox = new EndpointOutbox(driver, DIR, "v1");
      const events = Array.from({ length: 5 }, () => event());
      await outbox.append(events, true);
      assert.deepEqual(idsOf(await outbox.peek(2)), events.slice(0, 2).map((e) => e.id));
      await outbox.consume(2);
      assert.equal(outbox.pendingEvents, 3);
      await outbox.close();
      assert.deepEqual(JSON.parse((await driver.getContent(`${DIR}/cursor`)).toString()), { seq: 0, consumed: 2 });

      // Another process adopts it (no lease: a process that is gone) and gets the other three, once.
      const adopter = new EndpointOutbox(driver, "/berth/notifications/n2/ep", "v1");
      const adopted = await adoptOrphanedOutboxes(driver, "n2", new Map([["ep", adopter]]), memoryLogger().log);
      assert.equal(adopted, 3);
      assert.deepEqual(await drain(adopter), events.slice(2).map((e) => e.id));
      assert.deepEqual(await listed(driver, "/berth/notifications/n1"), [], "the orphan's outbox is removed");
      await adopter.close();
    });
  });
}

describe("notification outbox: a backlog read back from its own segments", () => {
  it("keeps every record's bytes and time, and reads a segment damaged since it was written as any stored one", async () => {
    const { driver, root } = filesystem();
    const outbox = new EndpointOutbox(driver, DIR, "v1");
    // Records of about 1 KB: 3,700 fill four append logs (1 MiB each), and past the 2,000 events
    // held in memory the segments after the head are let go of and read back.
    const events: RegistryEvent[] = [];
    for (let i = 0; i < 3_700; i++) {
      const e = event(`team/${"x".repeat(400)}`, "GET", "pull");
      // Times apart, so that a time read back from the wrong record would show.
      e.timestamp = new Date(Date.UTC(2026, 0, 1) + i * 1_001).toISOString().replace("Z", "123456Z");
      events.push(e);
      await outbox.append([e], false);
    }
    const dir = join(root, DIR);
    const segments = (await readdir(dir)).filter((name) => segmentSeq(name) !== undefined).sort();
    assert.equal(segments.length, 4);
    // One record of the second segment (let go of, so read back; the third is read back whole) loses its timestamp's name: JSON
    // still, but not an event.
    const second = join(dir, segments[1]!);
    const bytes = await readFile(second);
    const at = bytes.indexOf('"timestamp"');
    bytes.write('"timestampX', at, "latin1");
    await writeFile(second, bytes);

    const ids: string[] = [];
    const times: number[] = [];
    for (;;) {
      const run = await outbox.peek(100);
      if (run.count === 0) break;
      ids.push(...idsOf(run));
      times.push(...run.times);
      await outbox.consume(run.count);
    }
    // The first place the ids part from the events is where the damaged one was.
    const damaged = ids.findIndex((id, i) => id !== events[i]!.id);
    assert.ok(damaged > 0, "the damaged record is the one left out");
    const expected = events.filter((_, i) => i !== damaged);
    assert.deepEqual(ids, expected.map((e) => e.id));
    assert.deepEqual(times, expected.map((e) => Date.parse(e.timestamp)));
    assert.equal(outbox.unreadableEvents, 1);
    assert.equal(outbox.pendingEvents, 0);
    await outbox.close();
  });
});

describe("notification outbox: the group writes' slabs are reused only once nothing reads them", () => {
  it("a slab comes back for reuse when its last hold (a chunk's or a delivery's) is dropped, and not before", () => {
    const buffers = new GroupWriteBuffers();
    // 512 KiB slabs: four writes of 128 KiB fill one.
    const size = 128 * 1024;
    const slab = (): Buffer[] => Array.from({ length: 4 }, () => buffers.held(size));
    const first = slab();
    assert.ok(first.every((bytes) => buffers.isSlab(bytes) && bytes.buffer === first[0]!.buffer), "laid one after the other in one slab");
    const piece = first[1]!.subarray(10, 20);
    buffers.hold(piece); // a delivery writing part of a chunk
    for (const bytes of first) buffers.drop(bytes);
    const second = slab();
    assert.notEqual(second[0]!.buffer, first[0]!.buffer, "the first slab is full: the next write starts another");
    // The first slab is still held by the piece: filling the second does not bring it back.
    const third = slab();
    assert.ok(![first[0]!.buffer, second[0]!.buffer].includes(third[0]!.buffer), "not reused while a delivery still writes from it");
    buffers.drop(piece);
    for (const bytes of second) buffers.drop(bytes);
    // Both are free now: the next two slabs are those, not new memory.
    const fourth = slab();
    const fifth = slab();
    assert.deepEqual(new Set([fourth[0]!.buffer, fifth[0]!.buffer]), new Set([first[0]!.buffer, second[0]!.buffer]));
    // Scratch bytes and large writes are no slab's: holds on them change nothing.
    const scratch = buffers.transient(64);
    const large = buffers.held(300 * 1024);
    assert.ok(!buffers.isSlab(scratch) && !buffers.isSlab(large));
    buffers.hold(large);
    buffers.drop(large);
    buffers.drop(scratch);
  });

  it("free slabs are forgotten when told (an endpoint that fails), left to the collector, and later writes take new ones", async () => {
    setFlagsFromString("--expose-gc");
    const collect = runInNewContext("gc") as () => void;
    const buffers = new GroupWriteBuffers();
    const size = 128 * 1024;
    // In a function of its own: a loop variable left in this suspended async function's frame
    // would keep the last slab it saw.
    const fill = (): { memory: Array<WeakRef<ArrayBufferLike>>; current: Buffer } => {
      // Three slabs filled (four writes each), a fourth current; the three come free as their
      // holds are dropped, and two of them are kept for reuse.
      const filled = Array.from({ length: 12 }, () => buffers.held(size));
      const current = buffers.held(size);
      for (const bytes of filled) buffers.drop(bytes);
      return { memory: [new WeakRef(filled[0]!.buffer), new WeakRef(filled[4]!.buffer)], current };
    };
    const { memory, current } = fill();
    assert.equal(buffers.freeSlabs, 2);
    buffers.forgetFree();
    assert.equal(buffers.freeSlabs, 0);
    await new Promise((resolve) => setImmediate(resolve));
    collect();
    assert.deepEqual(
      memory.map((ref) => ref.deref() === undefined),
      [true, true],
      "their memory was collected",
    );
    const next = Array.from({ length: 4 }, () => buffers.held(size)).at(-1)!;
    assert.notEqual(next.buffer, current.buffer, "past the current slab, a new one");
    assert.ok(buffers.isSlab(next));
  });

  it("a slab whose holds are not all given back (a delivery cut before its body was written) is left to the collector, not kept", async () => {
    setFlagsFromString("--expose-gc");
    const collect = runInNewContext("gc") as () => void;
    const buffers = new GroupWriteBuffers();
    let bytes: Buffer | undefined = buffers.held(128 * 1024);
    buffers.hold(bytes.subarray(0, 10));
    const memory = new WeakRef(bytes.buffer);
    // Three more fill that slab and four the next: the first is neither current nor free.
    for (let i = 0; i < 7; i++) buffers.held(128 * 1024);
    bytes = undefined;
    await new Promise((resolve) => setImmediate(resolve));
    collect();
    assert.equal(memory.deref(), undefined, "the slab's memory was collected");
  });

  it("a delivery's bytes stay as they were while written, though their events were consumed and later writes reuse slabs", async () => {
    const { driver } = filesystem();
    const outbox = new EndpointOutbox(driver, DIR, "v1");
    const events: RegistryEvent[] = [];
    const delivered: string[] = [];
    // Runs peeked and consumed at once, given back 30 writes later (a receiver that answers before
    // the whole body is written): ~1 KB records, 40 per write, 12,000 in all, so that an append log
    // (1 MiB) is sealed and consumed and a 512 KiB slab filled while a run is still "written".
    const inFlight: Array<{ run: RecordRun; text: string }> = [];
    for (let turn = 0; turn < 300; turn++) {
      const batch = Array.from({ length: 40 }, () => event(`team/${"x".repeat(400)}-${turn % 7}`, "GET", "pull"));
      events.push(...batch);
      await Promise.all(batch.map((e) => outbox.append([e], false)));
      const run = await outbox.peek(100);
      const text = bodyText(envelopeOf(run, "v1"));
      await outbox.consume(run.count);
      inFlight.push({ run, text });
      if (inFlight.length > 30) {
        const done = inFlight.shift()!;
        assert.equal(bodyText(envelopeOf(done.run, "v1")), done.text, `turn ${turn}: bytes written over while held`);
        delivered.push(...idsOf(done.run));
        outbox.letGo(done.run);
      }
    }
    for (const done of inFlight) {
      assert.equal(bodyText(envelopeOf(done.run, "v1")), done.text);
      delivered.push(...idsOf(done.run));
      outbox.letGo(done.run);
    }
    delivered.push(...(await drain(outbox)));
    assert.deepEqual(delivered, events.map((e) => e.id));
    await outbox.close();
  });
});

describe("notification outbox: failures and crashes", () => {
  it("a failed write rejects its waiters and the next append still goes through (an object per append)", async () => {
    const driver = new FailingOnceDriver();
    const outbox = new EndpointOutbox(driver, DIR, "v1");
    await assert.rejects(outbox.append([event()], true), /disk full/);
    const ok = event();
    await outbox.append([ok], true);
    assert.deepEqual(await drain(outbox), [ok.id]);
  });

  it("an append log cut short by a failed write is trimmed back: the next append follows the last whole event", async () => {
    const { root } = filesystem();
    const driver = new TornAppendDriver(root);
    const outbox = new EndpointOutbox(driver, DIR, "v1");
    await assert.rejects(outbox.append([event(), event()], true), /disk full/);
    const ok = event();
    await outbox.append([ok], true);
    const files = (await readdir(join(root, DIR))).filter((name) => segmentSeq(`/${name}`) !== undefined);
    const content = Buffer.concat(await Promise.all(files.sort().map((name) => readFile(join(root, DIR, name)))));
    assert.equal(files.length, 1);
    assert.deepEqual(parseSegment(content, `/${files[0]}`), { events: [ok], unreadable: 0 }, "only the acknowledged event is stored");
    assert.deepEqual(await drain(outbox), [ok.id]);
    await outbox.close();
  });

  it("reads segments the way a crash leaves them: a torn last record is not an event, a damaged whole one is counted", () => {
    const a = event();
    const b = event();
    const path = `/${segmentName(3, "v1")}`;
    const record = (e: RegistryEvent): string => `${encodeRecord(e, "v1")}\x1e\n`;
    const whole = record(a) + record(b);
    assert.deepEqual(parseSegment(Buffer.from(whole + encodeRecord(event(), "v1").slice(0, 40)), path), { events: [a, b], unreadable: 0 });
    assert.deepEqual(parseSegment(Buffer.from(`${record(a)}{"not":"an event"}\x1e\nnot json\x1e\n${record(b)}`), path), { events: [a, b], unreadable: 2 });
    assert.deepEqual(parseSegment(Buffer.alloc(0), path), { events: [], unreadable: 0 });
  });

  it("delivers what an older berth left (one event per line) and records of another format, each in the endpoint's format", () => {
    const a = event();
    const b = event();
    const legacy = Buffer.from(`${JSON.stringify(a)}\n${JSON.stringify(b)}\n${JSON.stringify(event()).slice(0, 30)}`);
    assert.equal(segmentFormat("/x/000000000007.events"), "legacy");
    const fromLegacy = readRecords(legacy, "legacy", "v2");
    assert.equal(fromLegacy.unreadable, 0);
    assert.deepEqual(fromLegacy.records.map((r) => r.text), [encodeRecord(a, "v2"), encodeRecord(b, "v2")]);
    assert.deepEqual(fromLegacy.records.map((r) => r.time), [Date.parse(a.timestamp), Date.parse(b.timestamp)]);
    const v2 = Buffer.from(`${encodeRecord(a, "v2")}\x1e\n`);
    assert.deepEqual(readRecords(v2, "v2", "cloudevents").records.map((r) => r.text), [encodeRecord(a, "cloudevents")]);
    assert.deepEqual(readRecords(v2, "v2", "v2").records.map((r) => r.text), [encodeRecord(a, "v2")]);
    // Stored by the berth of 2026-12-04, before records carried their indentation: they get it.
    const unindented = Buffer.from(`${encodeRecord(a, "v1").trimStart()}\x1e\n`);
    assert.deepEqual(readRecords(unindented, "v1", "v1").records.map((r) => r.text), [encodeRecord(a, "v1")]);
  });

  it("an idle append log is sealed and deleted a second after everything in it was consumed", async () => {
    const { driver } = filesystem();
    const outbox = new EndpointOutbox(driver, DIR, "v1");
    await outbox.append([event(), event()], false);
    await outbox.consume(1);
    const until = async (count: number): Promise<string[]> => {
      const deadline = Date.now() + 5_000;
      while ((await listed(driver)).length !== count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      return listed(driver);
    };
    // The cursor is saved within 100 ms of the consumption.
    assert.deepEqual(await until(2), [`${DIR}/${segmentName(0, "v1")}`, `${DIR}/cursor`].sort());
    await outbox.consume(1);
    assert.deepEqual(await until(0), [], "segment and cursor gone");
    // Appends after that start a new segment.
    const next = event();
    await outbox.append([next], false);
    assert.deepEqual(await listed(driver), [`${DIR}/${segmentName(1, "v1")}`]);
    assert.deepEqual(await drain(outbox), [next.id]);
    await outbox.close();
  });

  it("names segments so a listing tells their order, and endpoints so names never share a queue", () => {
    assert.equal(segmentName(42, "v2"), "000000000042.v2.events");
    assert.equal(segmentSeq("/berth/notifications/n/ep/000000000042.v2.events"), 42);
    assert.equal(segmentFormat("/berth/notifications/n/ep/000000000042.cloudevents.events"), "cloudevents");
    assert.equal(segmentSeq("/berth/notifications/n/ep/000000000042.events"), 42, "an older berth's segment");
    assert.equal(segmentSeq("/berth/notifications/n/ep/000000000042.v3.events"), undefined);
    assert.equal(segmentSeq("/berth/notifications/n/ep/cursor"), undefined);
    assert.equal(endpointKey("ci-hook"), "ci-hook");
    assert.notEqual(endpointKey("a_b"), endpointKey("a.b"));
    assert.equal(endpointKey("a b/ü"), "a_20b_2f_c3_bc");
  });
});

/** Texts that need Go's escapes, multibyte text, or nothing at all, for the fields of odd events. */
const ODD_TEXTS = ["", "plain", 'quo"te\\back', "a<b>&c", "line\u2028sep\u2029", "tab\tnew\nline\u0001", "ünï 漢字 🐳", "x".repeat(300)];
const pick = (i: number): string => ODD_TEXTS[i % ODD_TEXTS.length]!;

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

  it("joins records into the very bytes Go's MarshalIndent writes for the envelope, in every format and for odd events", () => {
    const events: RegistryEvent[] = [];
    for (let i = 0; i < 64; i++) {
      const e = event(`team/${i}`, i % 3 === 0 ? "HEAD" : "GET", (["pull", "push", "mount", "delete"] as const)[i % 4]);
      e.target = i % 5 === 0 ? { repository: pick(i), tag: pick(i + 1) } : { ...e.target, size: i % 7, length: i % 7, url: `http://h/${pick(i)}`, fromRepository: i % 2 ? pick(i + 2) : undefined, tag: i % 3 ? pick(i + 3) : undefined };
      if (i % 4 === 1) {
        e.target.references = [
          { mediaType: "application/vnd.oci.image.config.v1+json", digest: "sha256:1", size: 2 },
          { mediaType: pick(i), size: 0, urls: ["http://a<b"], annotations: { z: pick(i + 4), a: "1" }, platform: { os: "linux", architecture: "arm64", variant: "v8" }, artifactType: pick(i + 5), data: "e30=" },
        ];
      }
      e.request = { id: pick(i + 6) || "r", addr: i % 2 ? "10.0.0.1" : undefined, host: i % 3 ? pick(i) : undefined, method: "GET", useragent: pick(i + 7) };
      e.actor = i % 2 ? { name: pick(i + 1) } : {};
      e.source = i % 6 === 0 ? {} : { addr: "host:5000", instanceID: i % 4 ? "id" : undefined };
      events.push(JSON.parse(JSON.stringify(e)) as RegistryEvent);
    }
    for (const format of ["v1", "v2", "cloudevents"] as const) {
      const batches = format === "cloudevents" ? events.map((e) => [e]) : [events.slice(0, 1), events];
      for (const batch of batches) {
        const chunk = chunkOfRecords(batch.map((e) => ({ text: encodeRecord(e, format), time: 0 })));
        const joined = envelopeOf({ count: batch.length, pieces: [piece(chunk, 0, batch.length)], times: chunk.times }, format);
        const reference = envelopeFor(batch, format);
        assert.equal(joined.contentType, reference.contentType);
        assert.equal(bodyText(joined), bodyText(reference), `${format}, ${batch.length} events`);
        if (batch.length < 3) continue;
        // A run taken from two writes, starting and ending inside them: the same bytes.
        const [front, back] = [batch.slice(0, 20), batch.slice(20)].map((part) => chunkOfRecords(part.map((e) => ({ text: encodeRecord(e, format), time: 0 }))));
        const split = envelopeOf({ count: batch.length - 2, pieces: [piece(front!, 1, 19), piece(back!, 0, batch.length - 21)], times: [] }, format);
        assert.equal(bodyText(split), bodyText(envelopeFor(batch.slice(1, -1), format)), `${format}, two pieces`);
      }
    }
  });

  it("writes the record of an event made in this process straight as bytes: the bytes its text has, and the envelope Go writes", async () => {
    const events: RegistryEvent[] = [];
    for (let i = 0; i < 40; i++) {
      const time = Date.UTC(2026, 11, 5) + i * 37;
      const e: RegistryEvent = {
        id: randomUuid(),
        timestamp: goTimestamp(time),
        time,
        action: (["pull", "push", "mount", "delete"] as const)[i % 4]!,
        target: { mediaType: pick(i), size: i, digest: `sha256:${i}`, length: i, repository: `team/${i}`, url: `http://h/${pick(i + 1)}`, tag: i % 3 ? pick(i + 2) : undefined },
        request: { id: randomUuid(), addr: i % 2 ? "10.0.0.1:5" : undefined, host: pick(i + 3), method: i % 3 ? "GET" : "HEAD", useragent: pick(i + 4) },
        actor: i % 2 ? { name: pick(i + 5) } : {},
        source: { addr: "host:5000", instanceID: "id" },
      };
      if (i % 5 === 1) e.target.references = [{ mediaType: pick(i), size: 0, digest: "sha256:1", annotations: { a: pick(i + 6) } }];
      events.push(e);
    }
    for (const format of ["v1", "v2"] as const) {
      for (const e of events) {
        assert.ok(writesAsBytes(e, format));
        const bytes = Buffer.alloc(storedLength(e, format));
        assert.equal(writeStored(e, format, bytes, 0), bytes.length);
        assert.equal(bytes.toString("utf8"), encodeRecord(e, format) + RECORD_END, `${format}: ${e.id}`);
      }
      for (const store of stores) {
        const outbox = new EndpointOutbox(store.make(), DIR, format);
        await Promise.all(events.map((e) => outbox.append([e], false)));
        const run = await outbox.peek(events.length);
        assert.equal(bodyText(envelopeOf(run, format)), bodyText(envelopeFor(events, format)), `${format}, ${store.name}`);
        assert.deepEqual(run.times, events.map((e) => e.time));
        await outbox.close();
      }
    }
    assert.ok(!writesAsBytes(events[0]!, "cloudevents"), "CloudEvents are written as text");
    assert.ok(!writesAsBytes({ ...events[0]!, time: undefined }, "v1"), "an event read back is written as text");
    // A stored record that says it has a time is still an event read back: its ids are not trusted.
    const stored = JSON.stringify({ ...JSON.parse(encodeRecord(events[0]!, "v1")), time: 1, id: 'x"y' });
    assert.ok(!writesAsBytes(decodeRecord(stored, "v1")!, "v1"));
  });

  it("escapes as Go does and writes each format's content type", () => {
    const e = event();
    e.request.useragent = "a<b>&c\u2028";
    const v1 = envelopeFor([e], "v1");
    assert.equal(v1.contentType, "application/vnd.docker.distribution.events.v1+json");
    assert.ok(bodyText(v1).includes('"useragent": "a\\u003cb\\u003e\\u0026c\\u2028"'));
    assert.deepEqual(JSON.parse(bodyText(v1)).events[0].request.useragent, "a<b>&c\u2028");
    const v2 = JSON.parse(bodyText(envelopeFor([{ ...e, target: { repository: "r", tag: "t" }, action: "delete" }], "v2")));
    assert.deepEqual(Object.keys(v2.events[0].target), ["mediaType", "digest", "size", "repository", "tag"]);
    const cloud = envelopeFor([e], "cloudevents");
    assert.equal(cloud.contentType, "application/cloudevents+json");
    const parsed = JSON.parse(bodyText(cloud));
    assert.equal(parsed.specversion, "1.0");
    assert.equal(parsed.type, "io.berth.registry.push");
    assert.equal(parsed.source, "/team/app");
    assert.equal(parsed.data.id, e.id);
  });
});
