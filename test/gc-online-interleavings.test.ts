/**
 * Online collection, interleaved step by step with pushes (docs/garbage-collection.md). The
 * collector pauses at each step of the protocol while a real berth (in this process, over a
 * socket, on a real filesystem) serves a push; the safety property is asserted every time: a
 * manifest acknowledged with 201 pulls with every digest verified after the run. Layers are made
 * older than the grace period by setting their mtimes, so they are candidates.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { RunningRegistry } from "../src/cli/serve.js";
import type { CollectorStep } from "../src/gc/online/gc-hooks.js";
import { assertPullable, age, collect, Pauser, startNode } from "./support/online-gc.js";
import { FaultyDriver } from "./support/faulty-driver.js";
import { OCI_MANIFEST, RegistryClient, expectError, randomBlob, randomImage, registryTree, waitFor, withQuery, type ImageParts } from "./support/registry-client.js";

const STEPS: CollectorStep[] = ["marked", "candidates-acked", "doomed-acked", "before-delete"];
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

interface World {
  root: string;
  node: RunningRegistry;
  client: RegistryClient;
  pauser: Pauser;
}

async function world(): Promise<World> {
  const work = await mkdtemp(join(tmpdir(), "berth-gc-online-"));
  const root = join(work, "data");
  const pauser = new Pauser();
  const node = await startNode(root, pauser);
  cleanups.push(() => rm(work, { recursive: true, force: true }), () => node.close());
  return { root, node, client: new RegistryClient(node.url), pauser };
}

/** An image whose one layer is pushed now, into `repository`, and made older than the grace period. */
async function imageWithOldLayer(w: World, repository: string): Promise<{ image: ImageParts; layer: string }> {
  const image = randomImage({ layers: 1, layerSize: 1024 });
  const layer = await w.client.pushBlob(repository, image.layers[0]!);
  await age(w.root, layer, [repository]);
  return { image, layer };
}

async function blobExists(root: string, digest: string): Promise<boolean> {
  const hex = digest.slice("sha256:".length);
  return stat(join(registryTree(root), "blobs", "sha256", hex.slice(0, 2), hex, "data")).then(
    () => true,
    () => false,
  );
}

async function runPhase(root: string): Promise<string | undefined> {
  try {
    return (JSON.parse(await readFile(join(root, "berth", "gc", "run"), "utf8")) as { phase: string }).phase;
  } catch {
    return undefined;
  }
}

/** Lets the collector run from one pause to the next (or to the end). */
async function advance(w: World, from: CollectorStep, to: CollectorStep | undefined): Promise<void> {
  if (from === to) return;
  w.pauser.release(from);
  if (to !== undefined) await w.pauser.reached(to);
}

/** Pushes the manifest: 201, or refused (never acknowledged) with one of the codes the protocol allows. */
async function putManifest(w: World, repository: string, reference: string, image: ImageParts): Promise<boolean> {
  const response = await w.client.putManifest(repository, reference, image.bytes, OCI_MANIFEST);
  if (response.status === 201) return true;
  const body = (await response.json()) as { errors: { code: string }[] };
  assert.ok(
    (response.status === 400 && body.errors[0]?.code === "MANIFEST_BLOB_UNKNOWN") || (response.status === 503 && body.errors[0]?.code === "UNAVAILABLE"),
    `PUT manifest answered ${response.status} ${JSON.stringify(body)}`,
  );
  return false;
}

describe("online gc: HEAD → skip → manifest PUT, the race distribution cannot survive", () => {
  for (const [i, headAt] of STEPS.entries()) {
    for (const putAt of STEPS.slice(i)) {
      it(`HEAD with the collector at ${headAt}, PUT at ${putAt}: an acknowledged manifest keeps its layer`, async () => {
        const w = await world();
        const { image, layer } = await imageWithOldLayer(w, "app");
        await w.client.pushBlob("app", image.config);
        w.pauser.pauseAt(headAt);
        w.pauser.pauseAt(putAt);
        const run = collect(w.root, w.pauser);
        await w.pauser.reached(headAt);
        const head = await w.client.send(`/v2/app/blobs/${layer}`, { method: "HEAD" });
        // Before the doomed phase the layer exists (and is rescued); after it, it is already gone.
        assert.equal(head.status, STEPS.indexOf(headAt) < 2 ? 200 : 404, `HEAD at ${headAt}`);
        await advance(w, headAt, putAt);
        const acknowledged = await putManifest(w, "app", "v1", image);
        w.pauser.releaseAll();
        const summary = await run;
        assert.equal(summary.outcome, "completed");
        // A HEAD during the run rescues the layer: that client's push is accepted. A HEAD before the
        // run rescues nothing; a PUT after the doomed phase is then refused (never acknowledged), and
        // the client pushes the layer again: the race distribution loses becomes a retry.
        if (headAt === "candidates-acked") assert.ok(acknowledged, "the push a HEAD vouched for during the run is acknowledged");
        if (headAt === "marked" && STEPS.indexOf(putAt) >= 2) assert.equal(acknowledged, false, "refused, not acknowledged");
        if (acknowledged) await assertPullable(w.client, "app", "v1", image.bytes);
        else assert.equal(await blobExists(w.root, layer), false, "the unreferenced old layer is collected");
      });
    }
  }

  for (const at of ["marked", "candidates-acked"] as const) {
    it(`a manifest PUT in flight while the collector moves on from ${at}: the node's ack waits for it, the layer is kept`, async () => {
      const w = await world();
      const { image } = await imageWithOldLayer(w, "app");
      await w.client.pushBlob("app", image.config);
      w.pauser.pauseAt(at);
      w.pauser.pauseAt("manifest:app");
      const run = collect(w.root, w.pauser);
      await w.pauser.reached(at);
      const put = putManifest(w, "app", "v1", image);
      await w.pauser.reached("manifest:app");
      const before = await runPhase(w.root);
      w.pauser.release(at);
      // The collector publishes its next phase; the node cannot ack it while the PUT is in flight.
      while ((await runPhase(w.root)) === before) await new Promise((r) => setTimeout(r, 20));
      w.pauser.release("manifest:app");
      assert.ok(await put, "the PUT is acknowledged");
      const summary = await run;
      assert.equal(summary.outcome, "completed");
      await assertPullable(w.client, "app", "v1", image.bytes);
    });
  }
});

/** An old layer pushed into "base" only, the config into "app", and a collection paused at `at`. */
async function layerInBaseWithCollectorAt(at: CollectorStep) {
  const w = await world();
  const { image, layer } = await imageWithOldLayer(w, "base");
  await w.client.pushBlob("app", image.config);
  w.pauser.pauseAt(at);
  const run = collect(w.root, w.pauser);
  await w.pauser.reached(at);
  return { w, image, layer, run };
}

describe("online gc: cross-repository mount", () => {
  for (const at of STEPS) {
    it(`mount with the collector at ${at}, then the manifest PUT: mounted or uploaded, an acknowledged manifest pulls`, async () => {
      const { w, image, layer, run } = await layerInBaseWithCollectorAt(at);
      const mount = await w.client.send(`/v2/app/blobs/uploads/?mount=${layer}&from=base`, { method: "POST" });
      assert.equal(mount.status, STEPS.indexOf(at) < 2 ? 201 : 202, `mount at ${at}`);
      let acknowledged = false;
      if (mount.status === 201) acknowledged = await putManifest(w, "app", "v1", image);
      w.pauser.releaseAll();
      assert.equal((await run).outcome, "completed");
      if (mount.status === 201) assert.ok(acknowledged, "a mounted layer's manifest is acknowledged");
      if (!acknowledged) {
        // The client uploads the layer the mount did not find, then pushes the manifest.
        await w.client.pushBlob("app", image.layers[0]!);
        acknowledged = await putManifest(w, "app", "v1", image);
        assert.ok(acknowledged);
      }
      await assertPullable(w.client, "app", "v1", image.bytes);
    });
  }
});

describe("online gc: an upload completing to a digest that already exists", () => {
  for (const at of STEPS) {
    it(`upload with the collector at ${at}: stored (waiting out a doomed run if it must), and the manifest pulls`, async () => {
      const { w, image, layer, run } = await layerInBaseWithCollectorAt(at);
      const upload = await w.client.send(`/v2/app/blobs/uploads/?digest=${layer}`, {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream" },
        body: image.layers[0]!,
      });
      // A doomed digest's upload waits for the run to end; the collector is paused, so it gives up with 503.
      assert.equal(upload.status, STEPS.indexOf(at) < 2 ? 201 : 503, `upload at ${at}`);
      let acknowledged = upload.status === 201 ? await putManifest(w, "app", "v1", image) : false;
      w.pauser.releaseAll();
      assert.equal((await run).outcome, "completed");
      if (upload.status === 201) assert.ok(acknowledged);
      if (!acknowledged) {
        await w.client.pushBlob("app", image.layers[0]!);
        acknowledged = await putManifest(w, "app", "v1", image);
        assert.ok(acknowledged);
      }
      await assertPullable(w.client, "app", "v1", image.bytes);
    });
  }

  it("an upload to a doomed digest that waits while the run finishes is then stored and pulls", async () => {
    const w = await world();
    const { image, layer } = await imageWithOldLayer(w, "base");
    await w.client.pushBlob("app", image.config);
    w.pauser.pauseAt("doomed-acked");
    const run = collect(w.root, w.pauser);
    await w.pauser.reached("doomed-acked");
    const upload = w.client.send(withQuery(`${w.node.url}/v2/app/blobs/uploads/`, { digest: layer }), {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body: image.layers[0]!,
    });
    w.pauser.releaseAll();
    assert.equal((await run).outcome, "completed");
    assert.equal((await upload).status, 201);
    assert.ok(await putManifest(w, "app", "v1", image));
    await assertPullable(w.client, "app", "v1", image.bytes);
  });
});

describe("online gc: --delete-untagged and a tag PUT of an untagged manifest", () => {
  for (const at of STEPS) {
    it(`tag PUT of an old untagged manifest with the collector at ${at}: an acknowledged tag pulls`, async () => {
      const w = await world();
      const image = randomImage({ layers: 1, layerSize: 512 });
      await w.client.pushImage("app", undefined, image);
      await age(w.root, image.digest, ["app"], "revision");
      for (const blob of [image.config, image.layers[0]!]) await age(w.root, digestOfBuffer(blob), ["app"]);
      w.pauser.pauseAt(at);
      const run = collect(w.root, w.pauser, { deleteUntagged: true });
      await w.pauser.reached(at);
      const acknowledged = await putManifest(w, "app", "v1", image);
      w.pauser.releaseAll();
      assert.equal((await run).outcome, "completed");
      if (STEPS.indexOf(at) < 2) assert.ok(acknowledged, "tagged before the doomed phase: acknowledged");
      if (acknowledged) await assertPullable(w.client, "app", "v1", image.bytes);
    });
  }

  it("an old untagged manifest nobody touches is deleted with its blobs; a tagged one is kept", async () => {
    const w = await world();
    const untagged = randomImage({ layers: 1, layerSize: 512 });
    const tagged = randomImage({ layers: 1, layerSize: 512 });
    await w.client.pushImage("app", undefined, untagged);
    await w.client.pushImage("app", "v1", tagged);
    for (const image of [untagged, tagged]) {
      await age(w.root, image.digest, ["app"], "revision");
      for (const blob of [image.config, image.layers[0]!]) await age(w.root, digestOfBuffer(blob), ["app"]);
    }
    const summary = await collect(w.root, w.pauser, { deleteUntagged: true });
    assert.equal(summary.outcome, "completed");
    assert.equal(summary.manifestsDeleted, 1);
    assert.equal(summary.blobsDeleted, 3);
    assert.equal((await w.client.send(`/v2/app/manifests/${untagged.digest}`, { method: "HEAD" })).status, 404);
    await assertPullable(w.client, "app", "v1", tagged.bytes);
  });
});

describe("online gc: a node that cannot read the run state", () => {
  it("refuses vouching writes with 503 UNAVAILABLE after F_self, still serves reads, and writes again once it reads", async () => {
    const work = await mkdtemp(join(tmpdir(), "berth-gc-online-"));
    let faulty!: FaultyDriver;
    const node = await startNode(join(work, "data"), new Pauser(), (driver) => (faulty = new FaultyDriver(driver)));
    cleanups.push(() => rm(work, { recursive: true, force: true }), () => node.close());
    const client = new RegistryClient(node.url);
    const image = await client.pushImage("app", "v1", randomImage({ layers: 1 }));
    const fault = faulty.inject({ ops: ["getContent"], path: /\/berth\/gc\/run$/ });
    // A run may have started that this node cannot see: it must not vouch for anything it writes.
    await waitFor(async () => (await client.putManifest("app", "v2", image.bytes, OCI_MANIFEST)).status === 503, "the fence", 30_000);
    await expectError(await client.putManifest("app", "v2", image.bytes, OCI_MANIFEST), 503, "UNAVAILABLE");
    await assertPullable(client, "app", "v1", image.bytes);
    faulty.remove(fault);
    await waitFor(async () => (await client.putManifest("app", "v2", image.bytes, OCI_MANIFEST)).status === 201, "the fence lifted", 30_000);
  });
});

describe("online gc: what is young or referenced stays", () => {
  it("a layer pushed within the grace period is not a candidate; an old unreferenced one is deleted", async () => {
    const w = await world();
    const young = await w.client.pushBlob("app", randomBlob(100));
    const old = await w.client.pushBlob("app", randomBlob(100));
    await age(w.root, old, ["app"]);
    const summary = await collect(w.root, w.pauser);
    assert.equal(summary.candidates.blobs, 1);
    assert.equal(summary.blobsDeleted, 1);
    assert.equal(summary.layerLinksRemoved, 1);
    assert.equal(await blobExists(w.root, young), true);
    assert.equal(await blobExists(w.root, old), false);
    assert.equal((await w.client.send(`/v2/app/blobs/${old}`, { method: "HEAD" })).status, 404);
  });
});

describe("online gc: a push under way before the run", () => {
  it("an old layer mounted into a repository within the grace period is not a candidate: the manifest that follows is accepted", async () => {
    const w = await world();
    const { image, layer } = await imageWithOldLayer(w, "base");
    assert.equal((await w.client.send(`/v2/app/blobs/uploads/?mount=${layer}&from=base`, { method: "POST" })).status, 201);
    await w.client.pushBlob("app", image.config);
    const summary = await collect(w.root, w.pauser);
    assert.equal(summary.outcome, "nothing");
    assert.equal(summary.candidates.blobs, 0);
    assert.ok(await putManifest(w, "app", "v1", image));
    await assertPullable(w.client, "app", "v1", image.bytes);
  });
});

function digestOfBuffer(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}
