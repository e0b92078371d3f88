/**
 * Notifications of several nodes on one S3 bucket (a real Ceph radosgw, started here). Two `berth
 * serve` processes, A and B, share the bucket, one root directory in it and the same
 * `notifications:` section, pointing at one receiver:
 *
 * - both pushing while the receiver is up: each node delivers its own events, every event once,
 *   and both outboxes end empty;
 * - the receiver down: what A acknowledged is stored in A's outbox in the bucket
 *   (`<root>/berth/notifications/<A's lease id>/…`); A is killed with SIGKILL and never comes back;
 *   with the receiver up again, B adopts A's outbox at its next adoption pass (A's lease is still
 *   fresh, but it names a process on this host that no longer exists) and delivers every event
 *   that was in it, with its original id, once; A's outbox objects are gone afterwards.
 *
 * Needs Ceph (ceph-mon ceph-osd radosgw ceph-common): missing, the tests are skipped on a
 * developer's machine and fail in CI (CI=true).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { parseSegment } from "../src/notifications/outbox-files.js";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { cephSkipReason, listKeys as listBucketKeys, s3DriverConfig, startCephS3, type CephS3 } from "./support/ceph-s3.js";
import { startEventReceiver, type EventReceiver } from "./support/event-receiver.js";
import { OCI_MANIFEST, RegistryClient, digestOf, randomImage, uniqueName, waitFor, type ImageParts } from "./support/registry-client.js";

// Throws when CI=true and Ceph is missing: a CI run never skips these silently.
const skip = cephSkipReason();

/**
 * How long B may take to adopt and deliver a dead node's outbox: its adoption pass runs every
 * 30 s, then each event is one POST. A bound against hanging, not a performance figure.
 */
const ADOPTED_WITHIN_MS = 90_000;
/** How long a live node may take to deliver its own events (one POST each). */
const DELIVERED_WITHIN_MS = 30_000;

interface Node {
  berth: BerthProcess;
  client: RegistryClient;
}

interface StoredEvent {
  id: string;
  action: string;
  target: { repository?: string; digest?: string; tag?: string };
  source: { instanceID?: string };
}

describe("notifications on two berth nodes sharing one S3 bucket", { skip }, () => {
  let ceph: CephS3 | undefined;
  let s3: S3Client | undefined;
  let receiver: EventReceiver | undefined;
  const nodes: Node[] = [];
  const rootdirectory = `/notify-${randomBytes(4).toString("hex")}`;
  const secret = randomBytes(24).toString("hex");
  /** The bucket's key prefix of the root directory. */
  const prefix = rootdirectory.slice(1);

  before(async () => {
    const started = Date.now();
    [ceph, receiver] = await Promise.all([startCephS3(), startEventReceiver()]);
    s3 = ceph.client();
    process.stderr.write(`# notifications multi-node: Ceph and the receiver up in ${Date.now() - started} ms\n`);
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.berth.stop()));
    await receiver?.close();
    s3?.destroy();
    await ceph?.stop();
  });

  async function startNode(): Promise<Node> {
    assert.ok(ceph && receiver);
    const configYaml = testConfig({
      driver: s3DriverConfig(ceph, rootdirectory),
      secret,
      sections: [
        "notifications:",
        "  endpoints:",
        "    - name: hook",
        `      url: ${receiver.url}`,
        "      timeout: 1s",
        "      threshold: 3",
        "      backoff: 200ms",
      ].join("\n"),
    });
    const berth = await startBerth({ configYaml });
    const node = { berth, client: new RegistryClient(berth.url) };
    nodes.push(node);
    return node;
  }

  function logs(): string {
    return nodes.map((node, i) => `--- node ${i + 1} ${node.berth.hostPort} (tail) ---\n${node.berth.log().slice(-3000)}`).join("\n");
  }

  const listKeys = (keyPrefix: string): Promise<string[]> => listBucketKeys(s3!, ceph!.bucket, keyPrefix);

  async function readObject(key: string): Promise<string> {
    const out = await s3!.send(new GetObjectCommand({ Bucket: ceph!.bucket, Key: key }));
    return out.Body!.transformToString("utf8");
  }

  /** The lease id (node id) of a running node: the lease in the bucket that names its pid. */
  async function nodeIdOf(node: Node): Promise<string> {
    for (const key of await listKeys(`${prefix}/berth/leases/`)) {
      const lease = JSON.parse(await readObject(key)) as { pid?: number };
      if (lease.pid === node.berth.child.pid) return key.slice(key.lastIndexOf("/") + 1);
    }
    assert.fail(`no lease in the bucket names pid ${node.berth.child.pid}\n${logs()}`);
  }

  const outboxPrefix = (nodeId: string): string => `${prefix}/berth/notifications/${nodeId}/`;

  /** The events stored in a node's outbox, segment by segment in order (on S3, an object per append). */
  async function outboxEvents(nodeId: string): Promise<StoredEvent[]> {
    const events: StoredEvent[] = [];
    for (const key of (await listKeys(outboxPrefix(nodeId))).sort()) {
      assert.match(key, /\/hook\/\d{12}\.v1\.events$/, "an outbox segment of endpoint hook (and no cursor: nothing was delivered)");
      const { events: stored, unreadable } = parseSegment(Buffer.from(await readObject(key)), key);
      assert.equal(unreadable, 0, key);
      events.push(...(stored as unknown as StoredEvent[]));
    }
    return events;
  }

  /** Pushes an image by tag and pulls its manifest: four events (config, layer, manifest, pull). */
  async function pushAndPull(node: Node, name: string): Promise<ImageParts> {
    const image = await node.client.pushImage(name, "v1", randomImage());
    const pulled = await node.client.get(`/v2/${name}/manifests/v1`, { Accept: OCI_MANIFEST });
    assert.equal(pulled.response.status, 200, `GET ${name}:v1`);
    return image;
  }

  /** What each event is about, sorted, for comparing deliveries with what was stored. */
  const describeEvents = (events: Array<Record<string, unknown>> | StoredEvent[]): string[] =>
    events
      .map((event) => {
        const e = event as unknown as StoredEvent;
        return `${e.action} ${e.target.repository} ${e.target.digest ?? ""} ${e.target.tag ?? ""}`;
      })
      .sort();

  /** Delivered events by id, failing on an id delivered twice. */
  function deliveredOnce(): Map<string, Record<string, unknown>> {
    const byId = new Map<string, Record<string, unknown>>();
    for (const event of receiver!.events()) {
      const id = String(event.id);
      assert.ok(!byId.has(id), `event ${id} delivered twice: ${describeEvents([event]).join("")}`);
      byId.set(id, event);
    }
    return byId;
  }

  it("two nodes pushing with the receiver up: each delivers its own events, every one once, and both outboxes end empty", async () => {
    receiver!.respondWith("ok");
    const [a, b] = await Promise.all([startNode(), startNode()]);
    const nameA = uniqueName("notify-multi/a");
    const nameB = uniqueName("notify-multi/b");
    const [imageA, imageB] = await Promise.all([pushAndPull(a, nameA), pushAndPull(b, nameB)]);
    await receiver!.waitForEvents(8, DELIVERED_WITHIN_MS);
    const byId = deliveredOnce();
    const expected = (name: string, image: ImageParts): string[] =>
      [
        `push ${name} ${digestOf(image.config)} `,
        `push ${name} ${digestOf(image.layers[0]!)} `,
        `push ${name} ${image.digest} v1`,
        `pull ${name} ${image.digest} v1`,
      ].sort();
    const events = [...byId.values()];
    const ofRepository = (name: string): Array<Record<string, unknown>> =>
      events.filter((event) => (event.target as StoredEvent["target"]).repository === name);
    assert.deepEqual(describeEvents(ofRepository(nameA)), expected(nameA, imageA), "node A's events");
    assert.deepEqual(describeEvents(ofRepository(nameB)), expected(nameB, imageB), "node B's events");
    assert.equal(events.length, 8, `nothing else was delivered: ${describeEvents(events).join("\n")}`);
    // Each node sent its own: one process instance per repository, a different one for each.
    const instances = (name: string): Set<string | undefined> =>
      new Set(ofRepository(name).map((event) => (event.source as StoredEvent["source"]).instanceID));
    assert.equal(instances(nameA).size, 1, "A's events come from one process");
    assert.equal(instances(nameB).size, 1, "B's events come from one process");
    assert.notDeepEqual([...instances(nameA)], [...instances(nameB)], "A and B delivered their own events");
    // A batch is removed once delivered: nothing stays in either outbox.
    const [idA, idB] = await Promise.all([nodeIdOf(a), nodeIdOf(b)]);
    for (const [node, id] of [["A", idA], ["B", idB]] as const) {
      await waitFor(async () => (await listKeys(outboxPrefix(id))).length === 0, `node ${node}'s outbox to be empty`, DELIVERED_WITHIN_MS);
    }
  });

  it("node A killed for good with its events undelivered: node B delivers every event of A's outbox with its original id, once, and A's outbox is removed", async () => {
    const [a, b] = nodes as [Node, Node];
    const before = receiver!.events().length;
    receiver!.respondWith({ status: 500 });
    const name = uniqueName("notify-multi/orphan");
    await pushAndPull(a, name);

    // Acknowledged, so stored: A's outbox in the bucket holds the four events (the receiver refuses them).
    const idA = await nodeIdOf(a);
    const stored = await outboxEvents(idA);
    assert.equal(stored.length, 4, `A's outbox holds the push and pull events:\n${describeEvents(stored).join("\n")}\n${logs()}`);
    assert.ok(stored.every((event) => event.target.repository === name), "only this push's events are in A's outbox");
    await waitFor(() => receiver!.deliveries.some((delivery) => delivery.status === 500), "A to try to deliver and be refused", DELIVERED_WITHIN_MS);

    const signal = await a.berth.stop("SIGKILL");
    assert.equal(signal, null, "killed by a signal");
    assert.equal(a.berth.child.signalCode, "SIGKILL");
    nodes.splice(nodes.indexOf(a), 1);
    // A's lease stays fresh for 90 s; B adopts at once at its next pass because A's pid is gone.
    receiver!.respondWith("ok");

    const ids = new Set(stored.map((event) => event.id));
    await waitFor(
      () => [...ids].every((id) => receiver!.events().some((event) => event.id === id)),
      `B to deliver A's ${ids.size} stored events`,
      ADOPTED_WITHIN_MS,
    ).catch((err: unknown) => assert.fail(`${(err as Error).message}\n${logs()}`));
    const delivered = receiver!.events().slice(before);
    assert.deepEqual(delivered.map((event) => String(event.id)).sort(), [...ids].sort(), "exactly A's stored events, each once, with their original ids");
    assert.deepEqual(describeEvents(delivered), describeEvents(stored), "the events as they were stored");
    deliveredOnce();

    // Removed once adopted: nothing of A's outbox is left in the bucket.
    await waitFor(async () => (await listKeys(outboxPrefix(idA))).length === 0, "A's outbox objects to be removed", DELIVERED_WITHIN_MS);
    // B delivered them from its own outbox, which is empty again.
    const idB = await nodeIdOf(b);
    await waitFor(async () => (await listKeys(outboxPrefix(idB))).length === 0, "B's outbox to be empty", DELIVERED_WITHIN_MS);
    assert.match(b.berth.log(), /adopted the undelivered notification events of a registry process that is gone/, "B says it adopted A's events");
  });
});
