/**
 * Notification delivery against real berth processes and real webhook receivers: what reaches an
 * endpoint that is down, hangs, resets or floods; how two endpoints stay independent; signing and
 * configured headers (and that their secrets stay out of logs and /debug/status); the v2 and
 * CloudEvents formats; the per-endpoint filters; the maxevents and maxage bounds; the outbox across
 * a SIGTERM or SIGKILL restart; and refused endpoint URLs.
 *
 * Nothing here asserts how long something took: tests wait for a state (an event arrived, the
 * status says so) and then assert what happened and in which order. Where a test must show that
 * nothing more arrives, it pushes a last event every endpoint wants and relies on per-endpoint
 * ordering: once that one arrived, everything before it did or never will.
 *
 * Delivery knobs are kept small (timeout 200ms, threshold 2, backoff 100ms) so retries happen
 * quickly; the waits' own limits only keep a broken build from hanging the run.
 *
 * One test runs in-process (a dispatcher over an in-memory outbox with slow deletes): it pins down
 * deterministically why the SIGTERM drain test before it fails now and then.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import type { EndpointConfig } from "../src/config/config.js";
import { InMemoryDriver } from "../src/driver/inmemory-driver.js";
import { EndpointDispatcher, type EndpointStatus } from "../src/notifications/endpoint-dispatcher.js";
import { EndpointOutbox } from "../src/notifications/endpoint-outbox.js";
import type { RegistryEvent } from "../src/notifications/registry-event.js";
import type { WebhookSender } from "../src/notifications/webhook-sender.js";
import { BERTH_CLI, startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { startEventReceiver, type EventReceiver } from "./support/event-receiver.js";
import { memoryLogger } from "./support/memory-logger.js";
import { readOutboxes } from "./support/outbox-on-disk.js";
import { OCI_MANIFEST, RegistryClient, digestOf, randomBlob, randomImage, uniqueName, type ImageParts } from "./support/registry-client.js";

type Event = Record<string, unknown>;

/** How long a wait for a state goes on before it fails with what it saw (liveness only, never asserted). */
const WAIT_MS = 15_000;

// --- configuration

interface EndpointSpec {
  name: string;
  url: string;
  timeout?: string;
  threshold?: number;
  backoff?: string;
  /** More keys of the endpoint, each line as it sits under `- name:` (no indentation). */
  lines?: string[];
}

function notificationsSection(endpoints: EndpointSpec[], includeReferences = false): string {
  const out = ["notifications:", ...(includeReferences ? ["  events:", "    includereferences: true"] : []), "  endpoints:"];
  for (const endpoint of endpoints) {
    out.push(`    - name: ${endpoint.name}`);
    out.push(`      url: ${endpoint.url}`);
    out.push(`      timeout: ${endpoint.timeout ?? "200ms"}`);
    out.push(`      threshold: ${endpoint.threshold ?? 2}`);
    out.push(`      backoff: ${endpoint.backoff ?? "100ms"}`);
    for (const line of endpoint.lines ?? []) out.push(`      ${line}`);
  }
  return `${out.join("\n")}\n`;
}

interface RegistryOptions {
  /** Reuse this storage root (kept after stop). */
  root?: string;
  /** http.draintimeout (default 300ms). */
  drain?: string;
  /** Lines under `log:`. */
  log?: string;
  /** notifications.events.includereferences */
  includeReferences?: boolean;
}

/** A berth process with these endpoints, stopped after the test. */
async function startRegistry(t: TestContext, endpoints: EndpointSpec[], options: RegistryOptions = {}): Promise<BerthProcess> {
  const configYaml = testConfig({
    http: `  draintimeout: ${options.drain ?? "300ms"}`,
    sections: notificationsSection(endpoints, options.includeReferences),
    ...(options.log !== undefined ? { log: options.log } : {}),
  });
  const berth = await startBerth({ configYaml, ...(options.root !== undefined ? { root: options.root } : {}) });
  t.after(() => berth.stop("SIGKILL"));
  return berth;
}

/** A receiver closed after the test. */
async function receiver(t: TestContext, port?: number): Promise<EventReceiver> {
  const started = await startEventReceiver(port === undefined ? {} : { port });
  t.after(() => started.close());
  return started;
}

/** A loopback port nothing listens on (connection refused), free to listen on later. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function urlAt(port: number): string {
  return `http://127.0.0.1:${port}/events`;
}

// --- /debug/status

const STATUS_KEYS = new Set(["name", "pending", "events", "delivered", "failures", "errors", "dropped", "statuses", "lastError", "lastErrorAt", "lastDeliveredAt"]);

async function statusText(berth: BerthProcess): Promise<string> {
  const response = await fetch(`${berth.url}/debug/status`);
  const text = await response.text();
  assert.equal(response.status, 200, `GET /debug/status: ${text}`);
  return text;
}

async function statusOf(berth: BerthProcess, name: string): Promise<EndpointStatus> {
  const body = JSON.parse(await statusText(berth)) as { notifications?: { endpoints?: EndpointStatus[] } };
  const endpoint = body.notifications?.endpoints?.find((e) => e.name === name);
  assert.ok(endpoint, `/debug/status has no endpoint ${name}: ${JSON.stringify(body)}`);
  const unknown = Object.keys(endpoint).filter((key) => !STATUS_KEYS.has(key));
  assert.deepEqual(unknown, [], `endpoint ${name}'s status has only the documented keys`);
  return endpoint;
}

/** Polls /debug/status until `check` holds for the endpoint; fails with the last status and the log's tail. */
async function waitForStatus(berth: BerthProcess, name: string, what: string, check: (status: EndpointStatus) => boolean): Promise<EndpointStatus> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const status = await statusOf(berth, name);
    if (check(status)) return status;
    if (Date.now() > deadline) {
      assert.fail(`endpoint ${name}: still not ${what}; last status ${JSON.stringify(status)}\n--- berth log (tail) ---\n${berth.log().slice(-3000)}`);
    }
    await sleep(25);
  }
}

async function waitUntil(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- events

function target(event: unknown): Event {
  return ((event as Event).target ?? {}) as Event;
}

function digests(events: unknown[]): unknown[] {
  return events.map((event) => target(event).digest);
}

function ids(events: unknown[]): unknown[] {
  return events.map((event) => (event as Event).id);
}

/** One line per event (action, method, repository, tag, media type, digest): sequences compare readably. */
function describeEvent(event: unknown): string {
  const e = event as Event;
  const t = target(e);
  const request = (e.request ?? {}) as Event;
  return [e.action, request.method, t.repository, t.tag !== undefined ? `tag=${String(t.tag)}` : undefined, t.mediaType, t.digest]
    .filter((part) => part !== undefined)
    .join(" ");
}

/** Pushes `count` random blobs, one request (and one event) each; returns their digests in order. */
async function pushBlobs(client: RegistryClient, name: string, count: number): Promise<string[]> {
  const pushed: string[] = [];
  for (let i = 0; i < count; i++) pushed.push(await client.pushBlob(name, randomBlob(32)));
  return pushed;
}

// --- the tests

describe("notifications: an endpoint that is down, then up", () => {
  it("answering 500: pushes get 201 meanwhile, the first event is retried alone, then every event arrives in order and /debug/status counts it all", async (t) => {
    const events = await receiver(t);
    events.respondWith({ status: 500 });
    const berth = await startRegistry(t, [{ name: "flaky", url: events.url }]);
    const client = new RegistryClient(berth.url);
    const name = uniqueName("down-up");

    const pushed = await pushBlobs(client, name, 5); // each asserts its 201
    // Past the threshold (2), into the backoff, before the receiver recovers.
    const failing = await waitForStatus(berth, "flaky", "failing past its threshold", (s) => (s.statuses["500"] ?? 0) >= 3);
    assert.ok(failing.failures >= 3, `failures counted: ${JSON.stringify(failing)}`);
    assert.equal(failing.lastError, "answered 500");
    assert.equal(failing.delivered, 0);
    assert.deepEqual(events.events(), [], "nothing accepted while the receiver answers 500");

    events.respondWith("ok");
    const received = await events.waitForEvents(5, WAIT_MS);
    const done = await waitForStatus(berth, "flaky", "drained", (s) => s.pending === 0 && s.delivered === 5);

    assert.deepEqual(digests(received), pushed, "every push, in push order");
    assert.deepEqual(received.map((e) => e.action), ["push", "push", "push", "push", "push"]);
    assert.equal(new Set(ids(received)).size, 5, "each event accepted once");
    const refused = events.deliveries.filter((d) => d.status === 500);
    assert.deepEqual(
      [...new Set(refused.map((d) => target(d.events[0]).digest))],
      [pushed[0]],
      "while refused, only the oldest event was attempted (in order, one at a time)",
    );
    assert.equal(done.failures, refused.length, "each refused attempt is one failure");
    assert.deepEqual(done.statuses, { "500": refused.length, "200": 5 });
    assert.equal(done.dropped, 0);
    assert.equal(done.lastError, "answered 500", "lastError keeps the last failure");
    assert.ok(done.lastDeliveredAt !== undefined && !Number.isNaN(Date.parse(done.lastDeliveredAt)), `lastDeliveredAt: ${done.lastDeliveredAt}`);
    assert.ok(done.lastErrorAt !== undefined && !Number.isNaN(Date.parse(done.lastErrorAt)), `lastErrorAt: ${done.lastErrorAt}`);
  });

  it("closed, then listening again on the same port: refused meanwhile, then every event arrives in order", async (t) => {
    const port = await closedPort();
    const berth = await startRegistry(t, [{ name: "restarted", url: urlAt(port) }]);
    const client = new RegistryClient(berth.url);
    const name = uniqueName("closed-port");

    const pushed = await pushBlobs(client, name, 4);
    const refused = await waitForStatus(berth, "restarted", "refused past its threshold", (s) => s.failures >= 3);
    assert.equal(refused.lastError, "connection refused");
    assert.equal(refused.pending, 4);
    assert.deepEqual(refused.statuses, {}, "no answer, so no status counted");

    const events = await receiver(t, port);
    const received = await events.waitForEvents(4, WAIT_MS);
    assert.deepEqual(digests(received), pushed);
    const done = await waitForStatus(berth, "restarted", "drained", (s) => s.pending === 0);
    assert.equal(done.delivered, 4);
    assert.deepEqual(done.statuses, { "200": 4 });
    assert.equal(events.deliveries.length, 4, "each event posted once to the receiver that came back");
  });
});

describe("notifications: events that pile up share requests", () => {
  it("40 concurrent pulls while the receiver answers 500: stored together, then sent in envelopes of up to maxbatch (10), each event once and in order; maxbatch 1 sends them one by one", async (t) => {
    const batched = await receiver(t);
    const single = await receiver(t);
    batched.respondWith({ status: 500 });
    single.respondWith({ status: 500 });
    const berth = await startRegistry(t, [
      { name: "batched", url: batched.url, lines: ["maxbatch: 10"] },
      { name: "single", url: single.url, lines: ["maxbatch: 1"] },
    ]);
    const client = new RegistryClient(berth.url);
    const name = uniqueName("batch");
    const [digest] = await pushBlobs(client, name, 1);
    await waitForStatus(berth, "batched", "failing", (s) => s.failures >= 2);
    // Concurrent requests' events are group-committed: a handful of stored batches hold all 40.
    const pulls = await Promise.all(Array.from({ length: 40 }, () => client.fetch(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })));
    assert.deepEqual([...new Set(pulls.map((r) => r.status))], [200]);
    batched.respondWith("ok");
    single.respondWith("ok");
    const fromBatched = await batched.waitForEvents(41, WAIT_MS);
    const fromSingle = await single.waitForEvents(41, WAIT_MS);

    for (const [label, received] of [["batched", fromBatched], ["single", fromSingle]] as const) {
      assert.equal(received.length, 41, `${label}: every event once`);
      assert.equal(new Set(ids(received)).size, 41, `${label}: no event twice`);
      assert.deepEqual(received.map((e) => e.action), ["push", ...Array.from({ length: 40 }, () => "pull")], `${label}: in order`);
    }
    const sizes = batched.deliveries.filter((d) => d.status === 200).map((d) => d.events.length);
    assert.ok(Math.max(...sizes) > 1, `some envelope held several events: ${sizes.join(",")}`);
    assert.ok(Math.max(...sizes) <= 10, `no envelope beyond maxbatch: ${sizes.join(",")}`);
    assert.deepEqual([...new Set(single.deliveries.map((d) => d.events.length))], [1], "maxbatch 1: one event per request");
  });
});

describe("notifications: what counts as delivered, and when berth retries", () => {
  it("3xx answers count as delivered (no retry); a 4xx is a failure and is retried until accepted", async (t) => {
    const events = await receiver(t);
    events.respondWith({ status: 302 });
    const berth = await startRegistry(t, [{ name: "codes", url: events.url }]);
    const client = new RegistryClient(berth.url);
    const name = uniqueName("codes");

    const [redirected] = await pushBlobs(client, name, 1);
    const afterRedirect = await waitForStatus(berth, "codes", "past the first event", (s) => s.delivered + s.failures >= 1);
    assert.deepEqual(afterRedirect.statuses, { "302": 1 });
    assert.equal(afterRedirect.delivered, 1, "a 302 is a delivery");
    assert.equal(afterRedirect.failures, 0);

    events.respondWith({ status: 404 });
    const [refused] = await pushBlobs(client, name, 1);
    const failing = await waitForStatus(berth, "codes", "failing on 404", (s) => (s.statuses["404"] ?? 0) >= 2);
    assert.equal(failing.lastError, "answered 404");
    assert.equal(failing.pending, 1);
    events.respondWith("ok");
    await waitForStatus(berth, "codes", "drained", (s) => s.pending === 0);
    assert.deepEqual(digests(events.events()), [redirected, refused], "the 302 once, the 404'd event once accepted");
    assert.deepEqual(
      events.deliveries.map((d) => `${d.status} ${String(target(d.events[0]).digest)}`).filter((line) => line.startsWith("302")),
      [`302 ${redirected}`],
      "the 302'd event was not sent again",
    );
  });

  it("threshold 3, backoff 60s: three attempts in a row, then none until the backoff passed; the log says so", async (t) => {
    const events = await receiver(t);
    events.respondWith({ status: 503 });
    const berth = await startRegistry(t, [{ name: "patient", url: events.url, threshold: 3, backoff: "60s" }]);
    const client = new RegistryClient(berth.url);
    await pushBlobs(client, uniqueName("threshold"), 1);

    // The three attempts come without waiting for the backoff (else this wait would not end).
    await waitUntil(() => /failed 3 times in a row; retrying every 60000 ms/.test(berth.log()), "the threshold warning");
    const status = await statusOf(berth, "patient");
    assert.equal(status.failures, 3, "exactly threshold attempts before the backoff");
    assert.deepEqual(status.statuses, { "503": 3 });
    assert.equal(events.deliveries.length, 3);
    assert.equal(await berth.stop("SIGTERM"), 0, "SIGTERM ends a backoff wait");
  });
});

describe("notifications: each endpoint has its own queue", () => {
  it("a healthy endpoint receives every event while one is refused (closed port) and one hangs (timeout 200ms)", async (t) => {
    const healthy = await receiver(t);
    const hanging = await receiver(t);
    hanging.respondWith("hang");
    const dead = urlAt(await closedPort());
    const berth = await startRegistry(t, [
      { name: "dead", url: dead },
      { name: "hanging", url: hanging.url },
      { name: "healthy", url: healthy.url },
    ]);
    const client = new RegistryClient(berth.url);
    const name = uniqueName("independent");

    const pushed = await pushBlobs(client, name, 4);
    const received = await healthy.waitForEvents(4, WAIT_MS);
    assert.deepEqual(digests(received), pushed, "the healthy endpoint: every event, in order");

    const deadStatus = await waitForStatus(berth, "dead", "retrying", (s) => s.failures >= 2);
    const hangingStatus = await waitForStatus(berth, "hanging", "retrying", (s) => s.failures >= 2);
    for (const [status, error] of [
      [deadStatus, "connection refused"],
      [hangingStatus, "no answer within 200 ms"],
    ] as const) {
      assert.equal(status.pending, 4, `${status.name}: every event waits`);
      assert.equal(status.delivered, 0, `${status.name}: nothing delivered`);
      assert.equal(status.lastError, error, `${status.name}: lastError`);
      assert.deepEqual(status.statuses, {}, `${status.name}: no answer, no status`);
    }
    const healthyStatus = await waitForStatus(berth, "healthy", "drained", (s) => s.pending === 0);
    assert.equal(healthyStatus.delivered, 4);
    assert.equal(healthyStatus.failures, 0);
    assert.deepEqual(
      [...new Set(hanging.deliveries.map((d) => target(d.events[0]).digest))],
      [pushed[0]],
      "the hanging endpoint is only ever sent its oldest event",
    );
  });

  it("a receiver that never answers: pushes get 201 while the first delivery is still unanswered", async (t) => {
    const events = await receiver(t);
    events.respondWith("hang");
    // A long timeout: the first attempt stays in flight for the whole test.
    const berth = await startRegistry(t, [{ name: "hang", url: events.url, timeout: "60s" }]);
    const client = new RegistryClient(berth.url);
    const name = uniqueName("hang");

    const first = await client.pushBlob(name, randomBlob(32));
    await waitUntil(() => events.deliveries.length === 1, "the first delivery to reach the receiver");
    const image = await client.pushImage(name, "v1", randomImage());
    const last = await client.pushBlob(name, randomBlob(32));

    // Every push above answered 201 (pushBlob/pushImage assert it); the receiver has still answered nothing.
    assert.equal(events.deliveries.length, 1, "one attempt in flight, nothing else sent");
    assert.equal(events.deliveries[0]!.status, 0, "the receiver has not answered");
    assert.equal(target(events.deliveries[0]!.events[0]).digest, first);
    const status = await statusOf(berth, "hang");
    assert.equal(status.failures, 0, "the first attempt has not even failed yet");
    assert.equal(status.delivered, 0);
    assert.equal(status.pending, 1 + 3 + 1, "the blob, the image's config, layer and manifest, and the last blob wait");
    assert.notEqual(last, first);

    assert.equal(await berth.stop("SIGTERM"), 0, "berth stops cleanly with an attempt in flight");
  });
});

describe("notifications: odd receivers", () => {
  it("a 50 MiB answer with 200: delivered, and the next event is delivered too", async (t) => {
    const events = await receiver(t);
    events.respondWith({ hugeBody: 50 * 1024 * 1024 });
    const berth = await startRegistry(t, [{ name: "huge", url: events.url, timeout: "5s" }]);
    const client = new RegistryClient(berth.url);
    const name = uniqueName("huge");

    const [first] = await pushBlobs(client, name, 1);
    const afterHuge = await waitForStatus(berth, "huge", "delivered the first event", (s) => s.delivered === 1 || s.failures > 0);
    assert.equal(afterHuge.failures, 0, `a 200 with a huge body is a delivery: ${JSON.stringify(afterHuge)}`);
    assert.deepEqual(afterHuge.statuses, { "200": 1 });

    events.respondWith("ok");
    const [second] = await pushBlobs(client, name, 1);
    const received = await events.waitForEvents(2, WAIT_MS);
    assert.deepEqual(digests(received), [first, second]);
    const done = await waitForStatus(berth, "huge", "drained", (s) => s.pending === 0);
    assert.equal(done.delivered, 2);
    assert.equal(done.failures, 0);
    assert.equal((await fetch(`${berth.url}/debug/health`)).status, 200, "berth stays healthy");
  });

  it("a reset connection: counted as a failure, retried, then delivered with the same event id", async (t) => {
    const events = await receiver(t);
    events.respondWith("reset");
    const berth = await startRegistry(t, [{ name: "reset", url: events.url }]);
    const client = new RegistryClient(berth.url);
    const name = uniqueName("reset");

    const [pushed] = await pushBlobs(client, name, 1);
    const failing = await waitForStatus(berth, "reset", "failing", (s) => s.failures >= 1);
    assert.equal(failing.lastError, "connection reset");
    assert.equal(failing.delivered, 0);

    events.respondWith("ok");
    const [event] = await events.waitForEvents(1, WAIT_MS);
    assert.equal(target(event).digest, pushed);
    const resetOnes = events.deliveries.filter((d) => d.status === 0);
    assert.ok(resetOnes.length >= 1);
    for (const delivery of resetOnes) assert.equal((delivery.events[0] as Event).id, event!.id, "the retry carries the same id");
    const done = await waitForStatus(berth, "reset", "drained", (s) => s.pending === 0);
    assert.equal(done.delivered, 1);
    assert.equal(done.failures, resetOnes.length);
  });

  it("an unresolvable host: retried with lastError 'host not found', pushes unaffected", async (t) => {
    const berth = await startRegistry(t, [{ name: "nowhere", url: "http://nonexistent.invalid/events" }]);
    const client = new RegistryClient(berth.url);
    const name = uniqueName("nowhere");

    await pushBlobs(client, name, 3);
    await client.pushImage(name, "v1", randomImage());
    const status = await waitForStatus(berth, "nowhere", "retrying", (s) => s.failures >= 3);
    assert.equal(status.lastError, "host not found");
    assert.equal(status.pending, 6, "3 blobs, then the image's config, layer and manifest");
    assert.equal(status.delivered, 0);
  });
});

describe("notifications: signing and headers", () => {
  it("X-Berth-Signature-256 is the HMAC-SHA256 of the raw body; configured headers arrive; neither the values nor the key show in the log or /debug/status", async (t) => {
    const events = await receiver(t);
    const token = `tok-${randomBytes(12).toString("hex")}`;
    const key = `key-${randomBytes(12).toString("hex")}`;
    const multi = [`one-${randomBytes(6).toString("hex")}`, `two-${randomBytes(6).toString("hex")}`];
    const password = `pw-${randomBytes(12).toString("hex")}`;
    // Refuse at first, so failures are logged too (threshold 2 → a warning naming the endpoint).
    events.respondWith({ status: 500 });
    const berth = await startRegistry(
      t,
      [
        {
          name: "signed",
          url: events.url,
          lines: ["headers:", `  Authorization: [Bearer ${token}]`, `  X-Multi: [${multi.join(", ")}]`, `signingkey: ${key}`],
        },
        // Credentials in the URL are sent as Basic auth; the password is a secret too.
        { name: "basic", url: events.url.replace("http://", `http://hook:${password}@`).replace("/events", "/basic") },
      ],
      { log: "  level: debug\n  formatter: json\n  accesslog:\n    disabled: false" },
    );
    const client = new RegistryClient(berth.url);
    const name = uniqueName("signed");

    await pushBlobs(client, name, 1);
    await client.pushImage(name, "v1", randomImage());
    await waitForStatus(berth, "signed", "past its threshold", (s) => s.failures >= 3);
    events.respondWith("ok");
    await events.waitForEvents(8, WAIT_MS);
    await waitForStatus(berth, "signed", "drained", (s) => s.pending === 0);
    await waitForStatus(berth, "basic", "drained", (s) => s.pending === 0);

    const signed = events.deliveries.filter((d) => d.path === "/events");
    const basic = events.deliveries.filter((d) => d.path === "/basic");
    assert.ok(signed.length > 4, "4 events, some attempts refused");
    assert.ok(basic.length > 4);
    for (const [i, delivery] of basic.entries()) {
      assert.equal(delivery.headers.authorization, `Basic ${Buffer.from(`hook:${password}`).toString("base64")}`, `basic delivery #${i}: Authorization`);
      assert.equal(delivery.headers["x-berth-signature-256"], undefined, `basic delivery #${i}: not signed (no signingkey)`);
    }
    for (const [i, delivery] of signed.entries()) {
      const where = `delivery #${i}`;
      const expected = `sha256=${createHmac("sha256", key).update(Buffer.from(delivery.body, "utf8")).digest("hex")}`;
      assert.equal(delivery.headers["x-berth-signature-256"], expected, `${where}: signature of the body`);
      assert.equal(delivery.headers.authorization, `Bearer ${token}`, `${where}: Authorization`);
      const sent: string[] = [];
      for (let h = 0; h < delivery.rawHeaders.length; h += 2) {
        if (delivery.rawHeaders[h]!.toLowerCase() === "x-multi") sent.push(delivery.rawHeaders[h + 1]!);
      }
      assert.deepEqual(sent, multi, `${where}: a multi-valued header is sent as one line per value, in order`);
    }

    const status = await statusText(berth);
    const log = berth.log();
    assert.ok(log.length > 0);
    const port = new URL(events.url).port;
    for (const secret of [token, key, password, ...multi]) {
      assert.ok(!log.includes(secret), `the log does not contain ${secret}`);
      assert.ok(!status.includes(secret), `/debug/status does not contain ${secret}`);
    }
    assert.ok(!status.includes(events.url) && !status.includes(`127.0.0.1:${port}`), `/debug/status names no URL: ${status}`);
  });
});

describe("notifications: formats", () => {
  it("v2: its Content-Type, and every target starts with mediaType, digest, size; cloudevents: one structured CloudEvent per request whose data is the v1 event", async (t) => {
    const v1 = await receiver(t);
    const v2 = await receiver(t);
    const ce = await receiver(t);
    const berth = await startRegistry(t, [
      { name: "v1", url: v1.url },
      { name: "v2", url: v2.url, lines: ["format: v2"] },
      { name: "ce", url: ce.url, lines: ["format: cloudevents"] },
    ], { includeReferences: true });
    const client = new RegistryClient(berth.url);
    const name = uniqueName("formats");
    const image = await client.pushImage(name, "v1", randomImage());
    const deleted = await client.send(`/v2/${name}/manifests/v1`, { method: "DELETE" });
    assert.equal(deleted.status, 202, "DELETE the tag");

    const expected = 4; // config, layer, manifest (tag v1), tag delete
    const fromV1 = await v1.waitForEvents(expected, WAIT_MS);
    const fromV2 = await v2.waitForEvents(expected, WAIT_MS);
    await waitUntil(() => ce.deliveries.filter((d) => d.status === 200).length >= expected, `${expected} CloudEvents`);
    assert.deepEqual(fromV1.map(describeEvent), [...pushLines(name, image), `delete DELETE ${name} tag=v1`]);

    // v2
    assert.deepEqual(ids(fromV2), ids(fromV1), "v2: the same events, in the same order");
    for (const [i, delivery] of v2.deliveries.entries()) {
      assert.equal(delivery.headers["content-type"], "application/vnd.docker.distribution.events.v2+json", `v2 delivery #${i}: Content-Type`);
      assert.equal(delivery.events.length, 1, `v2 delivery #${i}: one event`);
      const t2 = target(delivery.events[0]);
      assert.deepEqual(Object.keys(t2).slice(0, 3), ["mediaType", "digest", "size"], `v2 delivery #${i}: target starts with mediaType, digest, size: ${JSON.stringify(t2)}`);
      for (const [r, reference] of ((t2.references ?? []) as Event[]).entries()) {
        assert.deepEqual(Object.keys(reference).slice(0, 3), ["mediaType", "digest", "size"], `v2 delivery #${i} reference #${r}: OCI descriptor order`);
      }
    }
    const manifestReferences = (events: Event[]): unknown => (target(events[2]).references as Event[] | undefined)?.map((d) => [d.mediaType, d.digest, d.size]);
    const layers = image.manifest.layers as Event[];
    const config = image.manifest.config as Event;
    const expectedReferences = [config, ...layers].map((d) => [d.mediaType, d.digest, d.size]);
    assert.deepEqual(manifestReferences(fromV1), expectedReferences, "v1: the manifest push lists config and layers (includereferences)");
    assert.deepEqual(manifestReferences(fromV2), expectedReferences, "v2: the same references");
    for (const [i, event] of fromV2.entries()) {
      const t1 = target(fromV1[i]);
      const t2 = target(event);
      assert.equal(t2.mediaType, t1.mediaType ?? "", `v2 #${i}: mediaType`);
      assert.equal(t2.digest, t1.digest ?? "", `v2 #${i}: digest`);
      assert.equal(t2.size, t1.size ?? 0, `v2 #${i}: size`);
      assert.equal(t2.repository, name);
    }

    // cloudevents
    const cloud = ce.deliveries.filter((d) => d.status === 200);
    assert.equal(cloud.length, expected);
    for (const [i, delivery] of cloud.entries()) {
      const where = `CloudEvent #${i}`;
      assert.equal(delivery.headers["content-type"], "application/cloudevents+json", `${where}: Content-Type`);
      const body = JSON.parse(delivery.body) as Event;
      assert.ok(!Array.isArray(body), `${where}: a single structured event, not a batch`);
      const event = fromV1[i]!;
      const t1 = target(event);
      assert.deepEqual(body, {
        specversion: "1.0",
        id: event.id,
        source: `/${name}`,
        type: `io.berth.registry.${String(event.action)}`,
        time: event.timestamp,
        subject: t1.tag ?? t1.digest,
        datacontenttype: "application/json",
        data: event,
      }, where);
    }
    assert.deepEqual(
      cloud.map((d) => (JSON.parse(d.body) as Event).subject),
      [target(fromV1[0]).digest, target(fromV1[1]).digest, "v1", "v1"],
      "subject: the tag when there is one, else the digest",
    );
  });
});

describe("notifications: pulls of one manifest", () => {
  it("each pull's event names its own repository, tag, URL, user agent and ids, in both formats, though pulls of a cached manifest share their target", async (t) => {
    const v1 = await receiver(t);
    const v2 = await receiver(t);
    const berth = await startRegistry(t, [
      { name: "v1", url: v1.url },
      { name: "v2", url: v2.url, lines: ["format: v2"] },
    ]);
    const client = new RegistryClient(berth.url);
    const a = uniqueName("shared-a");
    const b = uniqueName("shared-b");
    const image = await client.pushImage(a, "one", randomImage());
    await client.pushManifest(a, "two", image.bytes, image.mediaType);
    await client.pushImage(b, "one", image);

    // Pulls that differ in one thing each from the one before; the first one twice (cached).
    const pulls: Array<{ name: string; reference: string; host?: string; agent: string }> = [
      { name: a, reference: "one", agent: "agent-1" },
      { name: a, reference: "one", agent: "agent-1" },
      { name: a, reference: "two", agent: "agent-1" },
      { name: a, reference: image.digest, agent: "agent-1" },
      { name: b, reference: "one", agent: "agent-1" },
      { name: a, reference: "one", host: "mirror.example:8443", agent: "agent-1" },
      { name: a, reference: "one", agent: "agent-2 \"quoted\" <&>" },
      { name: a, reference: "one", agent: "agent-1" },
    ];
    for (const pull of pulls) {
      const headers: Record<string, string> = { Accept: image.mediaType, "User-Agent": pull.agent };
      if (pull.host) headers["X-Forwarded-Host"] = pull.host;
      const response = await client.send(`/v2/${pull.name}/manifests/${pull.reference}`, { headers });
      assert.equal(response.status, 200, `GET ${pull.name}:${pull.reference}`);
    }

    const pullsOf = (events: Array<Record<string, unknown>>): Array<Record<string, unknown>> => events.filter((event) => event.action === "pull");
    await waitUntil(() => pullsOf(v1.events()).length >= pulls.length && pullsOf(v2.events()).length >= pulls.length, `${pulls.length} pull events at each endpoint`);
    const fromV1 = pullsOf(v1.events());
    const fromV2 = pullsOf(v2.events());
    assert.equal(fromV1.length, pulls.length, "v1: one event per pull");
    assert.equal(fromV2.length, pulls.length, "v2: one event per pull");
    const host = new URL(berth.url).host;
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    for (const [i, pull] of pulls.entries()) {
      for (const [format, event] of [["v1", fromV1[i]!], ["v2", fromV2[i]!]] as const) {
        const where = `${format} pull #${i} (${pull.name}:${pull.reference}, ${pull.host ?? host}, ${pull.agent})`;
        const t1 = target(event);
        const request = event.request as Event;
        assert.equal(t1.repository, pull.name, `${where}: repository`);
        assert.equal(t1.tag, pull.reference === image.digest ? undefined : pull.reference, `${where}: tag`);
        assert.equal(t1.digest, image.digest, `${where}: digest`);
        assert.equal(t1.mediaType, image.mediaType, `${where}: mediaType`);
        assert.equal(t1.url, `http://${pull.host ?? host}/v2/${pull.name}/manifests/${image.digest}`, `${where}: url`);
        assert.equal(request.useragent, pull.agent, `${where}: user agent`);
        assert.equal(request.method, "GET", `${where}: method`);
        assert.match(String(event.id), uuid, `${where}: id is a version 4 UUID`);
        assert.match(String(request.id), uuid, `${where}: request id is a version 4 UUID`);
      }
      assert.deepEqual(ids([fromV2[i]]), ids([fromV1[i]]), `pull #${i}: one event, the same id at both endpoints`);
    }
    const eventIds = new Set(fromV1.map((event) => event.id));
    const requestIds = new Set(fromV1.map((event) => (event.request as Event).id));
    assert.equal(eventIds.size, pulls.length, "every pull has an event id of its own");
    assert.equal(requestIds.size, pulls.length, "every pull has a request id of its own");
    // The quoted user agent, as Go escapes it, byte for byte.
    const quoted = v1.deliveries.find((delivery) => delivery.body.includes("agent-2"));
    assert.ok(quoted?.body.includes('"useragent": "agent-2 \\"quoted\\" \\u003c\\u0026\\u003e"'), `Go's escaping of the user agent in: ${quoted?.body}`);
  });
});

describe("notifications: filters", () => {
  it("repositories, ignore.headpulls, ignore.mediatypes and ignore.actions each keep exactly the events they should", async (t) => {
    const all = await receiver(t);
    const team = await receiver(t);
    const noHead = await receiver(t);
    const noManifest = await receiver(t);
    const noPull = await receiver(t);
    const oneLevel = await receiver(t);
    const oldKey = await receiver(t);
    const disabled = await receiver(t);
    const berth = await startRegistry(t, [
      { name: "all", url: all.url },
      { name: "team", url: team.url, lines: ['repositories: ["team/**"]'] },
      { name: "nohead", url: noHead.url, lines: ["ignore:", "  headpulls: true"] },
      { name: "nomanifest", url: noManifest.url, lines: ["ignore:", `  mediatypes: [${OCI_MANIFEST}]`] },
      { name: "nopull", url: noPull.url, lines: ["ignore:", "  actions: [pull]"] },
      { name: "onelevel", url: oneLevel.url, lines: ['repositories: ["team/*"]'] },
      { name: "oldkey", url: oldKey.url, lines: [`ignoredmediatypes: [${OCI_MANIFEST}]`] },
      { name: "off", url: disabled.url, lines: ["disabled: true"] },
    ]);
    const client = new RegistryClient(berth.url);
    const teamRepo = `team/${uniqueName("filters")}`;
    const otherRepo = uniqueName("other");
    const teamxRepo = uniqueName("teamx");

    const image = await client.pushImage(teamRepo, "v1", randomImage());
    const other = await client.pushImage(otherRepo, "v1", randomImage());
    const teamxBlob = await client.pushBlob(teamxRepo, randomBlob(32));
    const layer = image.manifest.layers as Array<{ digest: string }>;
    const accept = { Accept: OCI_MANIFEST };
    const pulls: Array<[string, string]> = [
      ["GET", `/v2/${teamRepo}/manifests/v1`],
      ["HEAD", `/v2/${teamRepo}/manifests/v1`],
      ["GET", `/v2/${teamRepo}/blobs/${layer[0]!.digest}`],
      ["HEAD", `/v2/${teamRepo}/blobs/${layer[0]!.digest}`],
      ["GET", `/v2/${otherRepo}/manifests/v1`],
    ];
    for (const [method, path] of pulls) {
      const response = await client.send(path, { method, headers: accept });
      assert.equal(response.status, 200, `${method} ${path}`);
    }
    // Last, an event every endpoint wants (team/<one component> matches team/** and team/*): once
    // it arrived, everything before it did or never will.
    const sentinelRepo = `team/last-${randomBytes(4).toString("hex")}`;
    const sentinel = await client.pushBlob(sentinelRepo, randomBlob(32));

    const arrivedThrough = async (events: EventReceiver, label: string): Promise<Event[]> => {
      await waitUntil(() => events.events().some((e) => target(e).digest === sentinel), `${label}: the last event`);
      return events.events();
    };
    const reference = await arrivedThrough(all, "all");
    assert.deepEqual(reference.map(describeEvent), [
      ...pushLines(teamRepo, image),
      ...pushLines(otherRepo, other),
      `push POST ${teamxRepo} application/octet-stream ${teamxBlob}`,
      `pull GET ${teamRepo} tag=v1 ${OCI_MANIFEST} ${image.digest}`,
      `pull HEAD ${teamRepo} tag=v1 ${OCI_MANIFEST} ${image.digest}`,
      `pull GET ${teamRepo} application/octet-stream ${layer[0]!.digest}`,
      `pull HEAD ${teamRepo} application/octet-stream ${layer[0]!.digest}`,
      `pull GET ${otherRepo} tag=v1 ${OCI_MANIFEST} ${other.digest}`,
      `push POST ${sentinelRepo} application/octet-stream ${sentinel}`,
    ], "the unfiltered endpoint: every event");

    const method = (e: Event): unknown => ((e.request ?? {}) as Event).method;
    const expectations: Array<[EventReceiver, string, (e: Event) => boolean]> = [
      [team, "repositories [team/**]", (e) => String(target(e).repository).startsWith("team/")],
      [noHead, "ignore.headpulls", (e) => !(e.action === "pull" && method(e) === "HEAD")],
      [noManifest, `ignore.mediatypes [${OCI_MANIFEST}]`, (e) => target(e).mediaType !== OCI_MANIFEST],
      [noPull, "ignore.actions [pull]", (e) => e.action !== "pull"],
      [oneLevel, "repositories [team/*]", (e) => target(e).repository === sentinelRepo],
      [oldKey, `ignoredmediatypes [${OCI_MANIFEST}]`, (e) => target(e).mediaType !== OCI_MANIFEST],
    ];
    for (const [events, label, keep] of expectations) {
      const got = await arrivedThrough(events, label);
      assert.deepEqual(got.map(describeEvent), reference.filter(keep).map(describeEvent), label);
      assert.deepEqual(ids(got), ids(reference.filter(keep)), `${label}: the same event ids`);
    }
    // The filters did filter something each (the expectations above are not vacuous).
    assert.equal(team.events().length, 3 + 4 + 1);
    assert.deepEqual(noHead.events().filter((e) => e.action === "pull").map(method), ["GET", "GET", "GET"]);
    assert.equal(noManifest.events().length, reference.length - 5);
    assert.equal(noPull.events().length, reference.length - 5);
    assert.equal(oneLevel.events().length, 1, "team/* matches within one component only");
    assert.equal(disabled.deliveries.length, 0, "a disabled endpoint receives nothing");
    const listed = (JSON.parse(await statusText(berth)) as { notifications: { endpoints: EndpointStatus[] } }).notifications.endpoints.map((e) => e.name);
    assert.deepEqual(listed, ["all", "team", "nohead", "nomanifest", "nopull", "onelevel", "oldkey"], "/debug/status lists the enabled endpoints, in configuration order");
  });
});

/** The events of pushImage(repository, "v1", image) as describeEvent writes them: config, layers (monolithic POSTs), manifest. */
function pushLines(repository: string, image: ImageParts): string[] {
  return [
    ...imageBlobDigests(image).map((digest) => `push POST ${repository} application/octet-stream ${digest}`),
    `push PUT ${repository} tag=v1 ${image.mediaType} ${image.digest}`,
  ];
}

function imageBlobDigests(image: ImageParts): string[] {
  return [digestOf(image.config), ...image.layers.map((layer) => digestOf(layer))];
}

describe("notifications: queue bounds", () => {
  it("maxevents 5 with a dead endpoint and 12 events: the 7 oldest are dropped (counted, logged), the last 5 arrive once it is back", async (t) => {
    const port = await closedPort();
    const berth = await startRegistry(t, [{ name: "bounded", url: urlAt(port), threshold: 1, lines: ["maxevents: 5"] }]);
    const client = new RegistryClient(berth.url);
    const name = uniqueName("maxevents");

    const pushed = await pushBlobs(client, name, 12);
    // pending + dropped = 12 also waits out a drop in progress: its batch leaves `pending` before
    // it is added to `dropped` (the same ordering as in the drain bug below).
    const settled = await waitForStatus(berth, "bounded", "down to maxevents", (s) => s.pending <= 5 && s.pending + s.dropped === 12);
    assert.equal(settled.pending, 5);
    assert.equal(settled.dropped, 7);
    assert.equal(settled.delivered, 0);
    assert.match(berth.log(), /notification events dropped undelivered/);
    assert.match(berth.log(), /maxevents/);

    const events = await receiver(t, port);
    await events.waitForEvents(5, WAIT_MS);
    const done = await waitForStatus(berth, "bounded", "drained", (s) => s.pending === 0);
    // Ordered delivery: an older event arriving would have come first and shifted this list.
    assert.deepEqual(digests(events.events()), pushed.slice(7), "exactly the 5 newest, in order");
    assert.equal(done.delivered, 5);
    assert.equal(done.dropped, 7);
  });

  it("maxevents 5 when the oldest events were stored together (a manifest delete untagging 2 tags): only the oldest one beyond 5 is dropped", async (t) => {
    const port = await closedPort();
    // Pushes ignored: the queue holds the delete's 3 events (one request, stored as one batch), then 3 pulls.
    const berth = await startRegistry(t, [{ name: "grouped", url: urlAt(port), threshold: 1, lines: ["maxevents: 5", "ignore:", "  actions: [push]"] }]);
    const client = new RegistryClient(berth.url);
    const name = uniqueName("maxevents-grouped");
    const image = await client.pushImage(name, "a", randomImage());
    await client.pushManifest(name, "b", image.bytes, image.mediaType);
    const deleted = await client.send(`/v2/${name}/manifests/${image.digest}`, { method: "DELETE" });
    assert.equal(deleted.status, 202, "DELETE the manifest by digest");
    const layer = digestOf(image.layers[0]!);
    for (let i = 0; i < 3; i++) assert.equal((await client.get(`/v2/${name}/blobs/${layer}`)).response.status, 200, "GET the layer");

    // 6 events queued, maxevents 5: the oldest (the manifest's delete) goes, the two tag deletes stay.
    const settled = await waitForStatus(berth, "grouped", "down to maxevents", (s) => s.pending <= 5 && s.pending + s.dropped === 6);
    const events = await receiver(t, port);
    await waitForStatus(berth, "grouped", "drained", (s) => s.pending === 0 && s.delivered + s.dropped === 6);
    const received = events.events().map(describeEvent);
    assert.deepEqual(
      { pending: settled.pending, dropped: settled.dropped, received },
      {
        pending: 5,
        dropped: 1,
        received: [
          `delete DELETE ${name} tag=a`,
          `delete DELETE ${name} tag=b`,
          ...Array.from({ length: 3 }, () => `pull GET ${name} application/octet-stream ${layer}`),
        ],
      },
      // The delete's 3 events share one stored batch: only its oldest event may go, not the batch.
      "maxevents keeps the newest 5 events, even when the oldest were stored together",
    );
  });

  it("maxage 1s with a dead endpoint: events older than that are dropped, newer ones arrive once it is back", async (t) => {
    const port = await closedPort();
    const berth = await startRegistry(t, [{ name: "aging", url: urlAt(port), lines: ["maxage: 1s"] }]);
    const client = new RegistryClient(berth.url);
    const name = uniqueName("maxage");

    const old = await pushBlobs(client, name, 3);
    const expired = await waitForStatus(berth, "aging", "past maxage", (s) => s.dropped === 3);
    assert.equal(expired.pending, 0);
    assert.equal(expired.delivered, 0);
    assert.match(berth.log(), /notification events dropped undelivered/);
    assert.match(berth.log(), /maxage/);

    const events = await receiver(t, port);
    const fresh = await pushBlobs(client, name, 2);
    await events.waitForEvents(2, WAIT_MS);
    assert.deepEqual(digests(events.events()), fresh, "only the fresh events");
    assert.ok(!events.deliveries.some((d) => old.includes(String(target(d.events[0]).digest))), "no expired event was posted");
  });
});

/** Every outbox batch file under the root, in (node, endpoint, seq) order, with its events. */
/** Stops berth with SIGTERM; fails (after killing it) when it is still running after WAIT_MS. */
async function stopWithin(berth: BerthProcess, what: string): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<"stuck">((resolve) => (timer = setTimeout(() => resolve("stuck"), WAIT_MS)));
  const result = await Promise.race([berth.stop("SIGTERM"), stuck]);
  clearTimeout(timer);
  if (result === "stuck") {
    await berth.stop("SIGKILL");
    assert.fail(`berth still running after SIGTERM: ${what}\n--- berth log (tail) ---\n${berth.log().slice(-3000)}`);
  }
  return result;
}

describe("notifications: SIGTERM with http.draintimeout 10m", () => {
  it("a slow but healthy endpoint receives every stored event before berth exits; nothing is left in the outbox", async (t) => {
    const work = await mkdtemp(join(tmpdir(), "berth-drain-"));
    t.after(() => rm(work, { recursive: true, force: true }));
    const root = join(work, "data");
    const events = await receiver(t);
    events.respondWith({ delayMs: 100 });
    const berth = await startRegistry(t, [{ name: "slow", url: events.url, timeout: "5s" }], { root, drain: "10m" });
    const client = new RegistryClient(berth.url);
    const pushed = await pushBlobs(client, uniqueName("drain"), 5);
    assert.ok((await statusOf(berth, "slow")).pending > 0, "events still queued when SIGTERM is sent");

    assert.equal(await stopWithin(berth, "draining a healthy endpoint"), 0);
    const left = (await readOutboxes(root)).flatMap((o) => o.undelivered);
    // A pending count that dipped to 0 while a delivered batch was being deleted once ended the
    // drain early now and then; the next test pins that down deterministically.
    assert.deepEqual(
      { delivered: digests(events.events()), left: digests(left) },
      { delivered: pushed, left: [] },
      `every event must be delivered before exit, none left in the outbox\n--- berth log (tail) ---\n${berth.log().slice(-1500)}`,
    );
  });

  it("the pending count the drain waits on never reads 0 while an event is queued (in-process: dispatcher over an outbox whose deletes are slow)", async () => {
    // Notifier.close() drains while some endpoint has `pending > 0` and is not failing. The pending
    // count must not dip to 0 between delivering one batch and removing it from storage, or a
    // SIGTERM ends the drain early and leaves the last event behind (the test above, now and then).
    const driver = new InMemoryDriver();
    const observed: string[] = [];
    let dispatcher: EndpointDispatcher | undefined;
    const realDelete = driver.delete.bind(driver);
    driver.delete = async (path: string): Promise<void> => {
      observed.push(`while removing ${path.slice(path.lastIndexOf("/") + 1)}: pending ${dispatcher!.pending}`);
      await sleep(30);
      return realDelete(path);
    };
    const outbox = new EndpointOutbox(driver, "/berth/notifications/probe/ep", "v1");
    const sent: string[] = [];
    const sender = {
      send: async (envelope: { parts: Buffer[] }) => {
        sent.push(String(((JSON.parse(Buffer.concat(envelope.parts).toString("utf8")) as { events: Event[] }).events[0] ?? {}).id));
        return { delivered: true as const, status: 200 };
      },
      close: () => undefined,
    } as unknown as WebhookSender;
    const config: EndpointConfig = {
      name: "ep",
      url: "http://127.0.0.1:1/",
      headers: {},
      timeoutMs: 200,
      threshold: 2,
      backoffMs: 100,
      ignoredMediaTypes: [],
      ignoredActions: [],
      repositories: [],
      ignoreHeadPulls: false,
      format: "v1",
      signingKey: undefined,
      maxEvents: 100,
      maxBatch: 100,
      maxAgeMs: 3_600_000,
    };
    dispatcher = new EndpointDispatcher(config, outbox, sender, memoryLogger().log);
    const event = (id: string): RegistryEvent => ({
      id,
      timestamp: new Date().toISOString(),
      action: "push",
      target: { repository: "probe" },
      request: { id: "r", method: "PUT", useragent: "" },
      actor: {},
      source: {},
    });
    await outbox.append([event("first")], true);
    await outbox.append([event("second")], true);
    dispatcher.start();
    try {
      await waitUntil(() => observed.length === 2, "both batches removed");
    } finally {
      await dispatcher.close();
    }
    assert.deepEqual(sent, ["first", "second"]);
    // pending = the outbox's events - those of the head batch already delivered: both must drop in
    // one step when the head batch is removed, or the delivered batch is counted out twice.
    assert.deepEqual(
      observed,
      ["while removing 000000000000.v1.events: pending 1", "while removing 000000000001.v1.events: pending 0"],
      "while the first segment (delivered) is removed, the second event is still pending",
    );
  });

  it("an endpoint that is failing is not waited for: berth exits and leaves its events in the outbox", async (t) => {
    const work = await mkdtemp(join(tmpdir(), "berth-drain-"));
    t.after(() => rm(work, { recursive: true, force: true }));
    const root = join(work, "data");
    const berth = await startRegistry(t, [{ name: "dead", url: urlAt(await closedPort()) }], { root, drain: "10m" });
    const client = new RegistryClient(berth.url);
    await pushBlobs(client, uniqueName("drain-dead"), 3);
    await waitForStatus(berth, "dead", "failing", (s) => s.failures >= 1);

    assert.equal(await stopWithin(berth, "waiting for a failing endpoint (it should not)"), 0);
    assert.equal((await readOutboxes(root)).flatMap((o) => o.undelivered).length, 3);
    assert.match(berth.log(), /notification events left undelivered in the outbox at shutdown/);
  });
});

describe("notifications: the outbox across a restart", () => {
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    it(`stopped with ${signal} while its endpoint is down: the events stay in <root>/berth/notifications, and the next berth on that root delivers them with the same ids`, async (t) => {
      const work = await mkdtemp(join(tmpdir(), "berth-outbox-"));
      t.after(() => rm(work, { recursive: true, force: true }));
      const root = join(work, "data");
      const port = await closedPort();
      const endpoints = [{ name: "durable", url: urlAt(port) }];

      const first = await startRegistry(t, endpoints, { root });
      const client = new RegistryClient(first.url);
      const name = uniqueName(`restart-${signal.toLowerCase()}`);
      const blobs = await pushBlobs(client, name, 2);
      const image = await client.pushImage(name, "v1", randomImage());
      await waitForStatus(first, "durable", "failing", (s) => s.failures >= 1);
      const code = await first.stop(signal);
      if (signal === "SIGTERM") {
        assert.equal(code, 0, "a clean exit");
        assert.match(first.log(), /notification events left undelivered in the outbox at shutdown/);
      }

      const outboxes = await readOutboxes(root);
      assert.equal(outboxes.length, 1, "one outbox: this process's, of endpoint durable");
      assert.match(outboxes[0]!.dir, /^[^/]+\/durable$/, "<node id>/<endpoint>");
      assert.ok(outboxes[0]!.segments.length > 0, "segments remain");
      for (const name of outboxes[0]!.segments) assert.match(name, /^\d{12}\.v1\.events$/, "<12-digit seq>.v1.events");
      assert.equal(outboxes[0]!.unreadable, 0);
      const stored = outboxes[0]!.undelivered;
      assert.deepEqual(digests(stored), [...blobs, ...imageBlobDigests(image), image.digest], "2 blobs, then the image's config, layer and manifest");

      const events = await receiver(t, port);
      const second = await startRegistry(t, endpoints, { root });
      const received = await events.waitForEvents(stored.length, WAIT_MS);
      assert.deepEqual(ids(received), ids(stored), "every stored event, in order, with its original id");
      // Logged once the adopted batches are re-queued and the old ones removed, which may be after delivery.
      await waitUntil(() => /adopted the undelivered notification events of a registry process that is gone/.test(second.log()), "the adoption to be logged");
      const left = await (async () => {
        const deadline = Date.now() + WAIT_MS;
        for (;;) {
          const remaining = (await readOutboxes(root)).filter((o) => o.segments.length > 0);
          if (remaining.length === 0 || Date.now() > deadline) return remaining;
          await sleep(25);
        }
      })();
      assert.deepEqual(left.map((o) => `${o.dir}: ${o.segments.join(", ")}`), [], "no segment is left once everything is delivered");
      assert.equal(events.events().length, stored.length, "each event delivered once");
    });
  }
});

describe("notifications: refused endpoint URLs", () => {
  for (const url of ["ftp://x", "localhost:8080"]) {
    it(`berth serve with endpoint url ${url}: exits non-zero naming notifications.endpoints[0].url`, async (t) => {
      const work = await mkdtemp(join(tmpdir(), "berth-badurl-"));
      t.after(() => rm(work, { recursive: true, force: true }));
      const configPath = join(work, "config.yml");
      const yaml = testConfig({ sections: notificationsSection([{ name: "bad", url }]) }).replaceAll("{{root}}", join(work, "data"));
      await writeFile(configPath, yaml);
      const child = spawn(process.execPath, [BERTH_CLI, "serve", configPath], { stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
      const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
      assert.ok(!/listening on/.test(output), `berth did not start:\n${output}`);
      assert.notEqual(code, 0, `exit code (output:\n${output})`);
      assert.notEqual(code, null, "exited on its own, not by a signal");
      assert.match(output, /notifications\.endpoints\[0\]\.url/);
      assert.match(output, /http or https/);
    });
  }
});
