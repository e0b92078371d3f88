/**
 * Storage faults under the S3 driver: the real `berth serve` over a socket, Ceph's radosgw behind a
 * fault-injecting proxy (test/support/s3-fault-proxy.ts) that answers 500 InternalError or 503
 * SlowDown, resets connections before an answer or in the middle of a body, reports a request
 * that took effect as failed, adds latency, or never answers.
 *
 * Each must reach the client as a registry error with a 5xx status and a code, never a hang (every
 * request has a 30 s client-side timeout); retries toward S3 are bounded (counted at the proxy); a
 * cut body is never delivered as a complete answer; nothing half-written is visible (the tree is
 * audited straight on Ceph, past the proxy); and once the fault ends everything works again
 * without a restart.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { serve } from "../src/cli/serve.js";
import { parseConfig } from "../src/config/load-config.js";
import { S3Driver } from "../src/driver/s3/s3-driver.js";
import { createLogger } from "../src/log/logger.js";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { cephSkipReason, s3DriverConfig, startCephS3, type CephS3 } from "./support/ceph-s3.js";
import { startS3FaultProxy, type S3FaultProxy, type S3ProxiedRequest } from "./support/s3-fault-proxy.js";
import { OCI_MANIFEST, RegistryClient, digestOf, expectError, randomBlob, randomImage, uniqueName, withQuery, type ImageParts } from "./support/registry-client.js";
import { auditStorage } from "./support/storage-audit.js";

const HANG_MS = 30_000;
const MiB = 1024 * 1024;
/** berth's retry policy (src/driver/s3/retry-policy.ts, the AWS SDK's standard mode): one request and two retries. */
const MAX_ATTEMPTS = 3;

class TimedClient extends RegistryClient {
  override fetch(pathOrURL: string, init: Parameters<RegistryClient["fetch"]>[1] = {}): Promise<Response> {
    return super.fetch(pathOrURL, { signal: AbortSignal.timeout(HANG_MS), ...init });
  }
}

async function expectBackendUnavailable(response: Response): Promise<void> {
  const entry = await expectError(response, 503, "UNAVAILABLE");
  assert.equal(entry.detail, "storage backend unavailable", JSON.stringify(entry));
}

function monolithicPush(client: RegistryClient, name: string, bytes: Buffer): Promise<Response> {
  return client.send(`/v2/${name}/blobs/uploads/?digest=${digestOf(bytes)}`, {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: bytes,
  });
}

function attempts(requests: S3ProxiedRequest[], operation: string, key?: RegExp): S3ProxiedRequest[] {
  return requests.filter((r) => r.operation === operation && (key === undefined || key.test(r.key)));
}

const quietLog = createLogger({ level: "error", formatter: "json", destination: { write: () => true } as unknown as NodeJS.WritableStream });

const skip = cephSkipReason();

describe("S3 faults between berth and Ceph", { skip }, () => {
  let s3: CephS3;
  let proxy: S3FaultProxy;
  let berth: BerthProcess;
  let client: RegistryClient;
  const rootdirectory = `/faults-${process.pid}`;
  const name = uniqueName("s3faults");
  let image: ImageParts;

  before(async () => {
    s3 = await startCephS3();
    proxy = await startS3FaultProxy(s3.endpoint);
    berth = await startBerth({
      configYaml: testConfig({ driver: s3DriverConfig({ ...s3, endpoint: proxy.endpoint }, rootdirectory), storage: "  redirect:\n    disable: true" }),
    });
    client = new TimedClient(berth.url);
    image = await client.pushImage(name, "before", randomImage({ layers: 1, layerSize: 2 * MiB }));
  });

  // Each test counts only its own requests, and a failing one leaves no fault behind.
  beforeEach(() => proxy.take());
  afterEach(() => proxy.clear());

  after(async () => {
    await berth?.stop();
    await proxy?.close();
    await s3?.stop();
  });

  async function assertImageServed(tag: string, expected: ImageParts): Promise<void> {
    const { response, bytes } = await client.get(`/v2/${name}/manifests/${tag}`, { Accept: OCI_MANIFEST });
    assert.equal(response.status, 200, `manifest ${tag}`);
    assert.deepEqual(bytes, expected.bytes);
    for (const blob of [expected.config, ...expected.layers]) {
      const got = await client.get(`/v2/${name}/blobs/${digestOf(blob)}`);
      assert.equal(got.response.status, 200);
      assert.equal(digestOf(got.bytes), digestOf(blob));
    }
  }

  async function assertSoundBucket(): Promise<void> {
    const direct = new S3Driver(s3.driverOptions({ rootdirectory }));
    try {
      const audit = await auditStorage(direct);
      assert.deepEqual(audit.problems, [], "nothing half-written is visible");
      assert.ok(audit.blobs > 0);
    } finally {
      direct.transport.destroy();
    }
  }

  async function assertBlobAbsentOrWhole(bytes: Buffer): Promise<void> {
    const got = await client.get(`/v2/${name}/blobs/${digestOf(bytes)}`);
    if (got.response.status === 404) return;
    assert.equal(got.response.status, 200);
    assert.equal(digestOf(got.bytes), digestOf(bytes));
  }

  it("500 InternalError on every PutObject of a blob's data: 3 attempts, then 503 UNAVAILABLE; the push succeeds once it ends", async () => {
    // A monolithic push's bytes are verified, then stored at the blob's path in one PutObject.
    const data = /\/blobs\/sha256\/[0-9a-f]{2}\/[0-9a-f]{64}\/data$/;
    proxy.inject({ operations: ["PutObject"], key: data, fault: { kind: "error", status: 500, code: "InternalError" } });
    const bytes = randomBlob(100_000);
    await expectBackendUnavailable(await monolithicPush(client, name, bytes));
    assert.equal(attempts(proxy.take(), "PutObject", data).length, MAX_ATTEMPTS);
    await assertBlobAbsentOrWhole(bytes);
    proxy.clear();
    assert.equal((await monolithicPush(client, name, bytes)).status, 201);
    await assertBlobAbsentOrWhole(bytes);
  });

  it("503 SlowDown on every CopyObject (the move into the blob store): 3 attempts, then 503 UNAVAILABLE; the same upload completes once it ends", async () => {
    proxy.inject({ operations: ["CopyObject"], fault: { kind: "error", status: 503, code: "SlowDown" } });
    const bytes = randomBlob(200_000);
    const { location } = await client.startUpload(name);
    const patched = await client.patchChunk(location, bytes, 0);
    assert.equal(patched.status, 202);
    const put = withQuery(client.url(patched.headers.get("location")!), { digest: digestOf(bytes) });
    await expectBackendUnavailable(await client.send(put, { method: "PUT" }));
    assert.equal(attempts(proxy.take(), "CopyObject").length, MAX_ATTEMPTS);
    await assertBlobAbsentOrWhole(bytes);
    proxy.clear();
    const done = await client.send(put, { method: "PUT" });
    assert.equal(done.status, 201, await done.clone().text());
    await assertBlobAbsentOrWhole(bytes);
  });

  it("one connection reset before the answer: retried once, the push succeeds", async () => {
    const data = /\/blobs\/sha256\/[0-9a-f]{2}\/[0-9a-f]{64}\/data$/;
    proxy.inject({ operations: ["PutObject"], key: data, fault: { kind: "reset" }, times: 1 });
    const bytes = randomBlob(50_000);
    assert.equal((await monolithicPush(client, name, bytes)).status, 201);
    const puts = attempts(proxy.take(), "PutObject", data);
    assert.deepEqual(puts.map((r) => r.outcome), ["reset", 200]);
    await assertBlobAbsentOrWhole(bytes);
  });

  it("every HeadObject reset: 503 UNAVAILABLE after 3 attempts", async () => {
    proxy.inject({ operations: ["HeadObject"], fault: { kind: "reset" } });
    await expectBackendUnavailable(await client.send(`/v2/${name}/blobs/${digestOf(image.layers[0]!)}`));
    assert.deepEqual(attempts(proxy.take(), "HeadObject").map((r) => r.outcome), Array(MAX_ATTEMPTS).fill("reset"));
  });

  it("CompleteMultipartUpload done by S3 but answered 500 every time: 503 UNAVAILABLE, and the client's retried PUT completes the blob", async () => {
    const bytes = randomBlob(6 * MiB);
    proxy.inject({ operations: ["CompleteMultipartUpload"], fault: { kind: "error-after-forwarding", status: 500, code: "InternalError" } });
    const { location } = await client.startUpload(name);
    const patched = await client.patchChunk(location, bytes, 0);
    assert.equal(patched.status, 202, await patched.clone().text());
    const put = withQuery(client.url(patched.headers.get("location")!), { digest: digestOf(bytes) });
    const first = await client.send(put, { method: "PUT" });
    // Each attempt reaches Ceph (the first completes the object; radosgw answers the repeats 200 too) and is answered 500.
    assert.deepEqual(attempts(proxy.take(), "CompleteMultipartUpload").map((r) => r.outcome), Array(MAX_ATTEMPTS).fill(500));
    await expectBackendUnavailable(first);
    await assertBlobAbsentOrWhole(bytes);
    proxy.clear();
    const again = await client.send(put, { method: "PUT" });
    assert.equal(again.status, 201, await again.clone().text());
    assert.equal(digestOf((await client.get(`/v2/${name}/blobs/${digestOf(bytes)}`)).bytes), digestOf(bytes));
  });

  it("CompleteMultipartUpload done by S3 but answered 500 once: the SDK's retry does not leave the registry confused", async () => {
    const bytes = randomBlob(6 * MiB);
    proxy.inject({ operations: ["CompleteMultipartUpload"], fault: { kind: "error-after-forwarding", status: 500, code: "InternalError" }, times: 1 });
    const { location } = await client.startUpload(name);
    const patched = await client.patchChunk(location, bytes, 0);
    const put = withQuery(client.url(patched.headers.get("location")!), { digest: digestOf(bytes) });
    // radosgw answers a Complete of an upload it already completed 200 (as AWS does): the SDK's retry is safe.
    const first = await client.send(put, { method: "PUT" });
    assert.equal(first.status, 201, await first.clone().text());
    assert.deepEqual(attempts(proxy.take(), "CompleteMultipartUpload").map((r) => r.outcome), [500, 200]);
    assert.equal(digestOf((await client.get(`/v2/${name}/blobs/${digestOf(bytes)}`)).bytes), digestOf(bytes));
  });

  it("a blob's GetObject body cut after 100 KiB: the client's download fails, never a complete 200 with other bytes", async () => {
    const layer = image.layers[0]!;
    proxy.inject({ operations: ["GetObject"], key: /\/blobs\//, fault: { kind: "truncate", bytes: 100 * 1024 }, times: 1 });
    const response = await client.fetch(`/v2/${name}/blobs/${digestOf(layer)}`);
    if (response.status === 200) {
      await assert.rejects(
        response.arrayBuffer().then((body) => digestOf(Buffer.from(body))),
        "the body fails rather than ending as if complete",
      );
    } else {
      await expectBackendUnavailable(response);
    }
    proxy.clear();
    assert.equal(digestOf((await client.get(`/v2/${name}/blobs/${digestOf(layer)}`)).bytes), digestOf(layer));
  });

  it("a manifest's or a link's GetObject body cut every time: 503 UNAVAILABLE, never 404 or a corrupt-manifest 500", async () => {
    proxy.inject({ operations: ["GetObject"], key: /\/_manifests\/|\/blobs\//, fault: { kind: "truncate", bytes: 10 } });
    await expectBackendUnavailable(await client.send(`/v2/${name}/manifests/before`, { headers: { Accept: OCI_MANIFEST } }));
    await expectBackendUnavailable(await client.send(`/v2/${name}/manifests/${image.digest}`, { headers: { Accept: OCI_MANIFEST } }));
    proxy.clear();
    await assertImageServed("before", image);
  });

  it("300 ms of latency on every request: a push and a pull succeed", async () => {
    proxy.inject({ fault: { kind: "delay", ms: 300 } });
    const slow = await client.pushImage(name, "slow", randomImage());
    await assertImageServed("slow", slow);
  });

  it("a HeadObject never answered: the client gets 503 UNAVAILABLE, not a hang (berth in-process, a 1 s S3 socket timeout)", async () => {
    // The same configuration, served in-process so that the driver can be given a short socket
    // timeout (the default, SOCKET_TIMEOUT_MS, is a minute: three attempts would take three).
    const { config } = parseConfig(testConfig({ driver: s3DriverConfig({ ...s3, endpoint: proxy.endpoint }, rootdirectory), storage: "  redirect:\n    disable: true" }), {}, "stall.yml");
    const running = await serve(config, [], quietLog, {
      wrapDriver: () => new S3Driver(s3.driverOptions({ rootdirectory, regionendpoint: proxy.endpoint, chunksize: 5 * MiB }), { socketTimeoutMs: 1000 }),
    });
    try {
      const inProcess = new TimedClient(running.url);
      proxy.take();
      proxy.inject({ operations: ["HeadObject"], fault: { kind: "stall" } });
      const started = Date.now();
      await expectBackendUnavailable(await inProcess.send(`/v2/${name}/blobs/${digestOf(image.layers[0]!)}`));
      assert.ok(Date.now() - started < HANG_MS);
      assert.deepEqual(attempts(proxy.take(), "HeadObject").map((r) => r.outcome), Array(MAX_ATTEMPTS).fill("stalled"));
      proxy.clear();
      assert.equal(digestOf((await inProcess.get(`/v2/${name}/blobs/${digestOf(image.layers[0]!)}`)).bytes), digestOf(image.layers[0]!));
    } finally {
      await running.close();
    }
  });

  it("after all of it: the bucket holds nothing half-written, and pushes and pulls work without a restart", async () => {
    const last = await client.pushImage(name, "last", randomImage({ layers: 2, layerSize: 6 * MiB }));
    await assertImageServed("last", last);
    await assertImageServed("before", image);
    await assertSoundBucket();
  });
});
