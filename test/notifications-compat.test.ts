/**
 * Webhook notifications, compared with the real thing: distribution 2.8 (Debian's
 * `docker-registry`) and berth get the same `notifications:` section (each pointed at its own
 * receiver), the same operations with the same bytes, repository names and User-Agent, and must
 * send the same events: same actions, targets, references, request records, one event per POST,
 * the same Content-Type and headers, and bodies laid out byte for byte as Go's
 * `json.MarshalIndent(envelope, "", "   ")` writes them.
 *
 * What distribution 2.8.2 sends for each operation is written down in STEPS below, and the first
 * test pins it (so a Debian update that changes it shows up here, not in berth's tests).
 * Findings, checked against distribution 2.8.2+ds1:
 *   - a finished upload sends one `push` (mediaType "application/octet-stream", `size` and
 *     `length` both set), whether it was monolithic or chunked; POST and PATCH send nothing;
 *   - a manifest PUT sends `push` with the manifest's media type, size/length, digest, a `url`
 *     by digest, `tag` only when put by tag, and with `includereferences` the descriptors it
 *     references: config then layers, or an index's children, each as {mediaType, size, digest}
 *     plus `annotations` when present; no `platform`, no `artifactType`, no `subject`;
 *   - manifest GET and HEAD both send `pull` (with `tag` when asked by tag); so do blob GET and
 *     HEAD (and a Range GET); a request answered 404 sends nothing;
 *   - NOT used here: a manifest GET whose Accept lacks the OCI type is answered 404 MANIFEST_UNKNOWN
 *     by distribution, yet it still sends a `pull` event (the listener fires in `Get`, before
 *     the Accept check). Every GET here sends an Accept listing all manifest types;
 *   - a cross-repository mount sends one `mount` with `fromRepository` (no `push`);
 *   - DELETE /manifests/<tag> is refused (400 DIGEST_INVALID) and sends nothing. berth deletes
 *     the tag (202, the OCI 1.1 behaviour) and must then send what distribution sends when a tag
 *     goes away: `delete` with target {repository, tag};
 *   - DELETE /manifests/<digest> sends `delete` {digest, repository}, then one `delete`
 *     {repository, tag} per tag that pointed at it, in directory order (compared here sorted);
 *   - DELETE /blobs/<digest> sends `delete` {digest, repository};
 *   - every event has `"actor": {}` (no auth), `request` {id, addr, host, method, useragent},
 *     `source` {addr: "<hostname>:<port>", instanceID}; ids are UUID v4, timestamps Go's
 *     RFC 3339 with nanoseconds (trailing zeros cut), in local time (UTC here: "Z");
 *   - Go's encoder escapes <, > and & in strings as \u003c, \u003e, \u0026: the User-Agent and
 *     an annotation here contain them on purpose;
 *   - the POST carries Content-Type application/vnd.docker.distribution.events.v1+json, the
 *     configured headers, User-Agent Go-http-client/1.1 (not compared), and no trailing newline.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { after, before, describe, it } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { requireDistribution, startDistribution, type DistributionProcess } from "./support/distribution-process.js";
import { normalizeEvent, startEventReceiver, type Delivery, type EventReceiver } from "./support/event-receiver.js";
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_INDEX,
  OCI_MANIFEST,
  descriptorOf,
  digestOf,
  indexOf,
  json,
  randomImage,
  RegistryClient,
  uniqueName,
  withQuery,
  type Descriptor,
} from "./support/registry-client.js";

const distribution = requireDistribution();

type Event = Record<string, unknown>;

const EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json";
const AUTHORIZATION = "Bearer s3cret";
/** Fixed, so `request.useragent` compares; <, & and > are what Go's encoder escapes (\u003c…). */
const USER_AGENT = "berth-notifications-test/1.0 (<&>)";
const ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(", ");
/** After the expected count arrived: how long to keep listening for events that should not come. */
const SETTLE_MS = 500;

/** The same section for every registry here; only the URL (each its own receiver) differs. */
function notificationsSection(url: string, endpointExtra = ""): string {
  return `notifications:
  events:
    includereferences: true
  endpoints:
    - name: compat
      url: ${url}
      headers:
        Authorization: [${AUTHORIZATION}]
      timeout: 1s
      threshold: 3
      backoff: 200ms
${endpointExtra}`;
}

// --- the content: one set of bytes and names for every registry

const NAME = uniqueName("notify");
const MOUNT_TARGET = uniqueName("notify-mount");

/** An OCI image whose layer descriptor carries an annotation (with "&") and an artifactType. */
const IMAGE = (() => {
  const image = randomImage();
  const layers = image.manifest.layers as Descriptor[];
  layers[0] = { ...layers[0]!, artifactType: "application/vnd.example.layer", annotations: { "org.opencontainers.image.title": "a&b.txt" } };
  const bytes = json(image.manifest);
  return { ...image, bytes, digest: digestOf(bytes) };
})();
const CONFIG_DIGEST = digestOf(IMAGE.config);
const LAYER = IMAGE.layers[0]!;
const LAYER_DIGEST = digestOf(LAYER);
const INDEX = indexOf([descriptorOf(OCI_MANIFEST, IMAGE.bytes)]);

// --- the events distribution 2.8 sends, normalized (see normalizeEvent)

function request(method: string): Event {
  return { method, useragent: USER_AGENT };
}

function blobEvent(action: "push" | "pull", method: string, repository: string, bytes: Buffer): Event {
  const digest = digestOf(bytes);
  return {
    action,
    target: { mediaType: "application/octet-stream", size: bytes.length, digest, length: bytes.length, repository, url: `<registry>/v2/${repository}/blobs/${digest}` },
    request: request(method),
    actor: {},
  };
}

function mountEvent(repository: string, from: string, bytes: Buffer): Event {
  const event = blobEvent("push", "POST", repository, bytes);
  return { ...event, action: "mount", target: { ...(event.target as Event), fromRepository: from } };
}

/** A manifest's references as 2.8 reports them: {mediaType, size, digest, annotations?}, nothing else. */
function reference(descriptor: Descriptor): Event {
  const { mediaType, size, digest, annotations } = descriptor;
  return { mediaType, size, digest, ...(annotations !== undefined ? { annotations } : {}) };
}

function manifestEvent(action: "push" | "pull", method: string, manifest: { mediaType: string; bytes: Buffer; references: Descriptor[] }, tag?: string): Event {
  const digest = digestOf(manifest.bytes);
  return {
    action,
    target: {
      mediaType: manifest.mediaType,
      size: manifest.bytes.length,
      digest,
      length: manifest.bytes.length,
      repository: NAME,
      url: `<registry>/v2/${NAME}/manifests/${digest}`,
      ...(tag !== undefined ? { tag } : {}),
      references: manifest.references.map(reference),
    },
    request: request(method),
    actor: {},
  };
}

const IMAGE_MANIFEST = {
  mediaType: OCI_MANIFEST,
  bytes: IMAGE.bytes,
  references: [IMAGE.manifest.config as Descriptor, ...(IMAGE.manifest.layers as Descriptor[])],
};
const INDEX_MANIFEST = { mediaType: OCI_INDEX, bytes: INDEX.bytes, references: INDEX.manifest.manifests as Descriptor[] };

function deleteEvent(target: { digest?: string; tag?: string }): Event {
  return {
    action: "delete",
    target: { ...(target.digest !== undefined ? { digest: target.digest } : {}), repository: NAME, ...(target.tag !== undefined ? { tag: target.tag } : {}) },
    request: request("DELETE"),
    actor: {},
  };
}

// --- the operations

interface Step {
  label: string;
  run(client: RegistryClient): Promise<Response>;
  /** distribution 2.8's answer */
  status: number;
  /** what distribution 2.8 sends for it, normalized, in order */
  events: Event[];
  /** where berth answers otherwise on purpose: its status and events */
  berth?: { status: number; events: Event[] };
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  return { "User-Agent": USER_AGENT, ...extra };
}

/** POST to start an upload (expects 202), returning the Location to continue at. */
async function startUpload(client: RegistryClient, name: string): Promise<string> {
  const response = await client.send(`/v2/${name}/blobs/uploads/`, { method: "POST", headers: headers() });
  assert.equal(response.status, 202, `POST /v2/${name}/blobs/uploads/`);
  return client.url(response.headers.get("location")!);
}

const STEPS: Step[] = [
  {
    // distribution 2.8 ignores a body on POST ?digest=, so a monolithic upload is POST then PUT.
    label: "monolithic upload of the config (POST, PUT ?digest= with the bytes)",
    async run(client) {
      const location = await startUpload(client, NAME);
      return client.send(withQuery(location, { digest: CONFIG_DIGEST }), {
        method: "PUT",
        headers: headers({ "Content-Type": "application/octet-stream" }),
        body: IMAGE.config,
      });
    },
    status: 201,
    events: [blobEvent("push", "PUT", NAME, IMAGE.config)],
  },
  {
    label: "chunked upload of the layer (POST, PATCH, PATCH, PUT ?digest=)",
    async run(client) {
      let location = await startUpload(client, NAME);
      const half = Math.floor(LAYER.length / 2);
      for (const [start, chunk] of [[0, LAYER.subarray(0, half)], [half, LAYER.subarray(half)]] as const) {
        const response = await client.send(location, {
          method: "PATCH",
          headers: headers({ "Content-Type": "application/octet-stream", "Content-Range": `${start}-${start + chunk.length - 1}` }),
          body: chunk,
        });
        assert.equal(response.status, 202, `PATCH at ${start}`);
        location = client.url(response.headers.get("location")!);
      }
      return client.send(withQuery(location, { digest: LAYER_DIGEST }), { method: "PUT", headers: headers() });
    },
    status: 201,
    events: [blobEvent("push", "PUT", NAME, LAYER)],
  },
  {
    label: "PUT the manifest by tag v1",
    run: (client) => client.send(`/v2/${NAME}/manifests/v1`, { method: "PUT", headers: headers({ "Content-Type": OCI_MANIFEST }), body: IMAGE.bytes }),
    status: 201,
    events: [manifestEvent("push", "PUT", IMAGE_MANIFEST, "v1")],
  },
  {
    label: "PUT the same manifest by digest",
    run: (client) => client.send(`/v2/${NAME}/manifests/${IMAGE.digest}`, { method: "PUT", headers: headers({ "Content-Type": OCI_MANIFEST }), body: IMAGE.bytes }),
    status: 201,
    events: [manifestEvent("push", "PUT", IMAGE_MANIFEST)],
  },
  {
    label: "PUT the same manifest by tag v2",
    run: (client) => client.send(`/v2/${NAME}/manifests/v2`, { method: "PUT", headers: headers({ "Content-Type": OCI_MANIFEST }), body: IMAGE.bytes }),
    status: 201,
    events: [manifestEvent("push", "PUT", IMAGE_MANIFEST, "v2")],
  },
  {
    label: "GET the manifest by tag",
    run: (client) => client.send(`/v2/${NAME}/manifests/v1`, { headers: headers({ Accept: ACCEPT }) }),
    status: 200,
    events: [manifestEvent("pull", "GET", IMAGE_MANIFEST, "v1")],
  },
  {
    label: "GET the manifest by digest",
    run: (client) => client.send(`/v2/${NAME}/manifests/${IMAGE.digest}`, { headers: headers({ Accept: ACCEPT }) }),
    status: 200,
    events: [manifestEvent("pull", "GET", IMAGE_MANIFEST)],
  },
  {
    label: "HEAD the manifest by tag",
    run: (client) => client.send(`/v2/${NAME}/manifests/v1`, { method: "HEAD", headers: headers({ Accept: ACCEPT }) }),
    status: 200,
    events: [manifestEvent("pull", "HEAD", IMAGE_MANIFEST, "v1")],
  },
  {
    label: "GET the layer",
    run: (client) => client.send(`/v2/${NAME}/blobs/${LAYER_DIGEST}`, { headers: headers() }),
    status: 200,
    events: [blobEvent("pull", "GET", NAME, LAYER)],
  },
  {
    label: "HEAD the layer",
    run: (client) => client.send(`/v2/${NAME}/blobs/${LAYER_DIGEST}`, { method: "HEAD", headers: headers() }),
    status: 200,
    events: [blobEvent("pull", "HEAD", NAME, LAYER)],
  },
  {
    label: "GET a blob the repository does not have",
    run: (client) => client.send(`/v2/${NAME}/blobs/${digestOf("never pushed")}`, { headers: headers() }),
    status: 404,
    events: [],
  },
  {
    label: "mount the layer into another repository",
    run: (client) => client.send(`/v2/${MOUNT_TARGET}/blobs/uploads/?mount=${LAYER_DIGEST}&from=${NAME}`, { method: "POST", headers: headers() }),
    status: 201,
    events: [mountEvent(MOUNT_TARGET, NAME, LAYER)],
  },
  {
    label: "PUT an OCI index by tag multi",
    run: (client) => client.send(`/v2/${NAME}/manifests/multi`, { method: "PUT", headers: headers({ "Content-Type": OCI_INDEX }), body: INDEX.bytes }),
    status: 201,
    events: [manifestEvent("push", "PUT", INDEX_MANIFEST, "multi")],
  },
  {
    // distribution 2.8 parses the tag as a digest and refuses it (400 DIGEST_INVALID); berth
    // deletes the tag and sends the event distribution sends when a tag goes away.
    label: "DELETE the tag multi",
    run: (client) => client.send(`/v2/${NAME}/manifests/multi`, { method: "DELETE", headers: headers() }),
    status: 400,
    events: [],
    berth: { status: 202, events: [deleteEvent({ tag: "multi" })] },
  },
  {
    label: "DELETE the manifest by digest while tags v1 and v2 point at it",
    run: (client) => client.send(`/v2/${NAME}/manifests/${IMAGE.digest}`, { method: "DELETE", headers: headers() }),
    status: 202,
    events: [deleteEvent({ digest: IMAGE.digest }), deleteEvent({ tag: "v1" }), deleteEvent({ tag: "v2" })],
  },
  {
    label: "DELETE the config blob",
    run: (client) => client.send(`/v2/${NAME}/blobs/${CONFIG_DIGEST}`, { method: "DELETE", headers: headers() }),
    status: 202,
    events: [deleteEvent({ digest: CONFIG_DIGEST })],
  },
];

/** The events each step is expected to send, distribution's or (with `forBerth`) berth's. */
function expectedEvents(forBerth: boolean): Event[] {
  return STEPS.flatMap((step) => (forBerth && step.berth ? step.berth.events : step.events));
}

/**
 * distribution's events as berth must send them: distribution's own (not the documented ones, so
 * berth is compared with what distribution really did), with berth's documented deviations
 * spliced in at their steps.
 */
function berthExpectation(distributionEvents: Event[]): Event[] {
  const result: Event[] = [];
  let offset = 0;
  for (const step of STEPS) {
    const own = distributionEvents.slice(offset, offset + step.events.length);
    offset += step.events.length;
    result.push(...(step.berth ? step.berth.events : own));
  }
  result.push(...distributionEvents.slice(offset)); // any surplus, so it shows in the diff
  return result;
}

function isTagDelete(event: Event): boolean {
  const target = event.target as Event | undefined;
  return event.action === "delete" && target?.tag !== undefined && target.digest === undefined;
}

/**
 * Sorts each run of consecutive tag deletes by tag: after a manifest delete distribution untags in
 * the order its filesystem driver lists the tags directory (unsorted), which no client can rely on.
 */
function canonicalOrder(events: Event[]): Event[] {
  const result = [...events];
  for (let start = 0; start < result.length; start++) {
    if (!isTagDelete(result[start]!)) continue;
    let end = start;
    while (end < result.length && isTagDelete(result[end]!)) end++;
    const run = result.slice(start, end).sort((a, b) => String((a.target as Event).tag).localeCompare(String((b.target as Event).tag)));
    result.splice(start, run.length, ...run);
    start = end;
  }
  return result;
}

/** One short line per event, for failure messages. */
function summary(event: Event): string {
  const target = (event.target ?? {}) as Event;
  const request = (event.request ?? {}) as Event;
  const parts = [String(event.action), String(request.method), String(target.repository)];
  if (target.tag !== undefined) parts.push(`tag=${String(target.tag)}`);
  if (target.digest !== undefined) parts.push(String(target.digest).slice(0, 19));
  if (target.mediaType !== undefined) parts.push(String(target.mediaType));
  if (target.fromRepository !== undefined) parts.push(`from=${String(target.fromRepository)}`);
  return parts.join(" ");
}

/** The paths where two JSON values differ, with both values ("target.tag: expected …, actual …"). */
function differences(expected: unknown, actual: unknown, path: string): string[] {
  if (isDeepStrictEqual(expected, actual)) return [];
  const bothObjects = typeof expected === "object" && expected !== null && typeof actual === "object" && actual !== null;
  if (!bothObjects || Array.isArray(expected) !== Array.isArray(actual)) {
    return [`${path || "(event)"}: expected ${JSON.stringify(expected)}, actual ${JSON.stringify(actual)}`];
  }
  const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  return [...keys].flatMap((key) =>
    differences((expected as Record<string, unknown>)[key], (actual as Record<string, unknown>)[key], path === "" ? key : `${path}.${key}`),
  );
}

/** Fails with both sequences and the first event that differs, each with its step. */
function assertSameEvents(actual: Event[], expected: Event[], what: string, options: { forBerth: boolean; keep?: (event: Event) => boolean }): void {
  const a = canonicalOrder(actual);
  const e = canonicalOrder(expected);
  if (isDeepStrictEqual(a, e)) return;
  const keep = options.keep ?? (() => true);
  const stepOf: string[] = STEPS.flatMap((step) => (options.forBerth && step.berth ? step.berth.events : step.events).filter(keep).map(() => step.label));
  const lines: string[] = [`${what}: ${a.length} events, expected ${e.length}`];
  const first = Array.from({ length: Math.max(a.length, e.length) }, (_, i) => i).find((i) => !isDeepStrictEqual(a[i], e[i]));
  for (let i = 0; i < Math.max(a.length, e.length); i++) {
    const mark = isDeepStrictEqual(a[i], e[i]) ? "  " : "✗ ";
    lines.push(`${mark}#${i} [${stepOf[i] ?? "beyond the documented steps"}]`);
    lines.push(`     expected: ${e[i] ? summary(e[i]!) : "(none)"}`);
    lines.push(`     actual:   ${a[i] ? summary(a[i]!) : "(none)"}`);
  }
  if (first !== undefined) {
    lines.push(`first difference, #${first}:`, ...differences(e[first], a[first], "").map((line) => `  ${line}`));
    lines.push(`expected ${JSON.stringify(e[first], null, 2)}`);
    lines.push(`actual   ${JSON.stringify(a[first], null, 2)}`);
  }
  assert.fail(lines.join("\n"));
}

/** Replaces the values that differ between registries and runs in a raw body, keeping its layout. */
function canonicalBody(body: string): string {
  return body
    .replace(/"(id|timestamp|addr|host|instanceID)": "[^"]*"/g, '"$1": "<$1>"')
    .replace(/"url": "https?:\/\/[^/"]+/g, '"url": "<registry>');
}

// --- the registries

interface Side {
  kind: string;
  hostPort: string;
  receiver: EventReceiver;
  statuses: number[];
  log(): string;
  stop(): Promise<unknown>;
}

async function runSteps(url: string): Promise<number[]> {
  const client = new RegistryClient(url);
  const statuses: number[] = [];
  for (const step of STEPS) {
    const response = await step.run(client);
    statuses.push(response.status);
  }
  return statuses;
}

/** Waits for `count` accepted events, then SETTLE_MS more for any surplus; returns them normalized. */
async function collect(side: Side, count: number): Promise<Event[]> {
  try {
    await side.receiver.waitForEvents(count, 15_000);
  } catch (err) {
    if (err instanceof Error) err.message += `\n--- ${side.kind} log (tail) ---\n${side.log().slice(-4000)}`;
    throw err;
  }
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  return side.receiver.events().map(normalizeEvent);
}

const sides: Side[] = [];
let work: string;

/** A side that failed to start or to run the steps keeps its error for the tests that need it. */
type Started = { side: Side } | { error: unknown };
let distributionSide: Started;
let berthSide: Started;
let berthIgnoringPulls: Started;

function ready(started: Started): Side {
  if ("error" in started) throw started.error;
  return started.side;
}

async function startSide(kind: string, start: (receiverURL: string) => Promise<BerthProcess | DistributionProcess>): Promise<Started> {
  const receiver = await startEventReceiver();
  let registry: BerthProcess | DistributionProcess;
  try {
    registry = await start(receiver.url);
  } catch (error) {
    await receiver.close();
    return { error };
  }
  // From here on after() stops the registry and closes its receiver.
  const side: Side = { kind, hostPort: registry.hostPort, receiver, statuses: [], log: registry.log, stop: registry.stop };
  sides.push(side);
  try {
    side.statuses = await runSteps(registry.url);
    return { side };
  } catch (error) {
    if (error instanceof Error) error.message += `\n--- ${kind} log (tail) ---\n${registry.log().slice(-4000)}`;
    return { error };
  }
}

describe("notifications: the same webhook events as distribution 2.8", { skip: distribution.skip }, () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-notifications-"));
    distributionSide = await startSide("distribution", (url) => startDistribution({ root: join(work, "distribution"), extraYaml: notificationsSection(url) }));
    berthSide = await startSide("berth", (url) => startBerth({ configYaml: testConfig({ sections: notificationsSection(url) }) }));
    // distribution 2.8 has no equivalent to check against: its ignoredSink applies `ignore.actions`
    // only when media types are ignored too (newIgnoredSink returns the sink unfiltered when the
    // media-type list is empty), so with this section it still sends every pull (checked with
    // 2.8.2). berth applies the action filter on its own.
    berthIgnoringPulls = await startSide("berth (ignore pull)", (url) =>
      startBerth({ configYaml: testConfig({ sections: notificationsSection(url, "      ignore:\n        actions: [pull]\n") }) }),
    );
  });

  after(async () => {
    await Promise.all(sides.map((side) => Promise.all([side.stop(), side.receiver.close()])));
    if (work) await rm(work, { recursive: true, force: true });
  });

  let distributionEvents: Promise<Event[]> | undefined;
  let berthEvents: Promise<Event[]> | undefined;
  const fromDistribution = (): Promise<Event[]> => (distributionEvents ??= collect(ready(distributionSide), expectedEvents(false).length));
  const fromBerth = (): Promise<Event[]> => (berthEvents ??= collect(ready(berthSide), expectedEvents(true).length));

  it("distribution 2.8 answers and sends, per operation, what this file documents", async () => {
    const side = ready(distributionSide);
    assert.deepEqual(side.statuses, STEPS.map((step) => step.status), "distribution's statuses, step by step");
    assertSameEvents(await fromDistribution(), expectedEvents(false), "distribution's events", { forBerth: false });
  });

  it("berth answers every operation as distribution does, except DELETE by tag (berth deletes the tag)", () => {
    const expected = ready(distributionSide).statuses.map((status, i) => STEPS[i]!.berth?.status ?? status);
    const actual = ready(berthSide).statuses;
    assert.deepEqual(
      STEPS.map((step, i) => `${step.label}: ${actual[i]}`),
      STEPS.map((step, i) => `${step.label}: ${expected[i]}`),
    );
  });

  it("berth sends distribution's events, in distribution's order (tag deletes after a manifest delete: sorted)", async () => {
    const expected = berthExpectation(await fromDistribution());
    assertSameEvents(await fromBerth(), expected, "berth's events compared with distribution's", { forBerth: true });
  });

  it("each delivery is a POST of one event, with distribution's Content-Type and the configured Authorization header", async () => {
    await fromDistribution();
    await fromBerth();
    for (const side of [ready(distributionSide), ready(berthSide)]) {
      assert.ok(side.receiver.deliveries.length > 0, `${side.kind}: no delivery`);
      for (const [i, delivery] of side.receiver.deliveries.entries()) {
        const where = `${side.kind} delivery #${i}`;
        assert.equal(delivery.method, "POST", where);
        assert.equal(delivery.path, "/events", where);
        assert.equal(delivery.headers["content-type"], EVENTS_MEDIA_TYPE, `${where}: Content-Type`);
        assert.equal(delivery.headers.authorization, AUTHORIZATION, `${where}: Authorization`);
        const envelope = JSON.parse(delivery.body) as Record<string, unknown>;
        assert.deepEqual(Object.keys(envelope), ["events"], `${where}: the envelope holds only "events"`);
        assert.equal(delivery.events.length, 1, `${where}: one event per POST`);
      }
    }
  });

  it("each body is laid out byte for byte as distribution's: 3-space indent, Go's key order and escaping, no trailing newline", async () => {
    await fromDistribution();
    await fromBerth();
    const theirs = ready(distributionSide).receiver.deliveries.filter((delivery) => delivery.status === 200);
    const ours = ready(berthSide).receiver.deliveries.filter((delivery) => delivery.status === 200);
    const normalized = (delivery: Delivery): Event => normalizeEvent(delivery.events[0] as Event);
    const used = new Set<Delivery>();
    /** distribution's body for the same event, or for berth's own tag delete the one of tag v1 with the tag renamed. */
    function counterpart(event: Event): string | undefined {
      const same = theirs.find((delivery) => !used.has(delivery) && isDeepStrictEqual(normalized(delivery), event));
      if (same) {
        used.add(same);
        return canonicalBody(same.body);
      }
      const tag = (event.target as Event | undefined)?.tag;
      if (!isTagDelete(event) || typeof tag !== "string") return undefined;
      const v1 = theirs.find((delivery) => isDeepStrictEqual(normalized(delivery), deleteEvent({ tag: "v1" })));
      return v1 && canonicalBody(v1.body).replace('"tag": "v1"', `"tag": ${JSON.stringify(tag)}`);
    }
    assert.equal(ours.length, expectedEvents(true).length, "berth's accepted deliveries");
    for (const [i, delivery] of ours.entries()) {
      const expected = counterpart(normalized(delivery));
      assert.ok(expected !== undefined, `berth delivery #${i} (${summary(normalized(delivery))}) has no counterpart at distribution:\n${delivery.body}`);
      assert.equal(canonicalBody(delivery.body), expected, `berth delivery #${i} (${summary(normalized(delivery))}), ids, times and addresses replaced`);
    }
  });

  it("ids, timestamps, request and source records have distribution's formats", async () => {
    await fromDistribution();
    await fromBerth();
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    // Go's time.RFC3339Nano: nanoseconds at most, trailing zeros (and a bare ".") cut.
    const timestamp = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{0,8}[1-9])?(Z|[+-]\d{2}:\d{2})$/;
    const source = new RegExp(`^${hostname().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\d+$`);
    for (const side of [ready(distributionSide), ready(berthSide)]) {
      const events = side.receiver.events();
      const instances = new Set<unknown>();
      for (const [i, event] of events.entries()) {
        const where = `${side.kind} event #${i} (${summary(normalizeEvent(event))})`;
        const request = event.request as Event;
        const src = event.source as Event;
        assert.match(String(event.id), uuid, `${where}: id`);
        assert.match(String(event.timestamp), timestamp, `${where}: timestamp`);
        assert.match(String(request.id), uuid, `${where}: request.id`);
        assert.match(String(request.addr), /^127\.0\.0\.1:\d+$/, `${where}: request.addr`);
        assert.equal(request.host, side.hostPort, `${where}: request.host`);
        assert.match(String(src.addr), source, `${where}: source.addr`);
        assert.match(String(src.instanceID), uuid, `${where}: source.instanceID`);
        instances.add(src.instanceID);
      }
      assert.equal(new Set(events.map((event) => event.id)).size, events.length, `${side.kind}: event ids are unique`);
      assert.equal(instances.size, 1, `${side.kind}: one instanceID per process`);
    }
  });

  it("ignore.actions [pull] without a media-type filter: berth sends every event but the pulls", async () => {
    const notPull = (event: Event): boolean => event.action !== "pull";
    const expected = berthExpectation(await fromDistribution()).filter(notPull);
    const side = ready(berthIgnoringPulls);
    const events = await collect(side, expected.length);
    assert.deepEqual(
      side.receiver.deliveries.flatMap((delivery) => delivery.events as Event[]).filter((event) => event.action === "pull").map(summary),
      [],
      "no pull was sent",
    );
    assertSameEvents(events, expected, "berth's events with pulls ignored", { forBerth: true, keep: notPull });
  });
});
