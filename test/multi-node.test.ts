/**
 * Scale out: many stateless nodes. Three `berth serve` processes share one S3 bucket (a real Ceph
 * radosgw, started here), one root directory in it, one Redis (the blob descriptor cache) and one
 * http.secret, and nothing else: no node knows the others exist.
 *
 * - a chunked upload whose every request goes to another node, finished on a third, pulled from all
 *   three through the 307 to a presigned S3 URL; the finishing node resumes the saved SHA-256 state
 *   and never reads the upload's bytes back (shown by radosgw's own request log);
 * - the same layer pushed to different nodes at once, monolithic and chunked: one blob;
 * - a node killed (SIGKILL) in the middle of a chunked push: the client asks another node where the
 *   upload stands, continues from there and finishes; a replacement node serves the result;
 * - skopeo pushing and pulling an image through nginx, round robin over the three nodes, pulling
 *   blobs through the redirect to S3.
 *
 * Needs Ceph (ceph-mon ceph-osd radosgw ceph-common), redis-server, nginx and skopeo: a missing one
 * skips the tests that need it on a developer's machine and fails them in CI (CI=true).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import {
  cephSkipReason,
  listKeys as listBucketKeys,
  openMultipartUploads as openBucketMultipartUploads,
  s3DriverConfig,
  startCephS3,
  type CephS3,
} from "./support/ceph-s3.js";
import { describeRun, requireProgram, run, type RunResult } from "./support/external-program.js";
import { requireNginx, startNginxProxy, type NginxProxy } from "./support/nginx-proxy.js";
import { buildTestLayouts, readLayout, sha256Digest, type TestLayouts } from "./support/oci-layout.js";
import { requireRedis, startRedis, type RedisServer } from "./support/redis-server.js";
import { digestOf, RegistryClient, uniqueName, withQuery } from "./support/registry-client.js";

const MiB = 1024 * 1024;
const NODE_COUNT = 3;

// Each check throws when CI=true and the program is missing: a CI run never skips these silently.
const cephSkip = cephSkipReason();
const redisSkip = requireRedis().skip;
const nginx = requireNginx();
const skopeo = requireProgram("skopeo");
/** What every test here needs: the bucket, Redis and the nodes. */
const clusterSkip = cephSkip || redisSkip;
const skopeoSkip = clusterSkip || nginx.skip || skopeo.skip;

interface Node {
  berth: BerthProcess;
  client: RegistryClient;
}

describe("many stateless nodes: three berth processes on one S3 bucket, one Redis, one secret", () => {
  const test = (name: string, skip: string | false, fn: () => Promise<void>) => it(name, { skip }, fn);

  let ceph: CephS3 | undefined;
  let s3: S3Client | undefined;
  let redis: RedisServer | undefined;
  /** The live nodes; a killed node's slot gets its replacement. */
  const nodes: Node[] = [];
  const stopped: BerthProcess[] = [];
  const rootdirectory = `/multi-${randomBytes(4).toString("hex")}`;
  const secret = randomBytes(24).toString("hex");

  const startNode = async (): Promise<Node> => {
    const berth = await startBerth({ configYaml: nodeConfig() });
    const node = { berth, client: new RegistryClient(berth.url) };
    // /debug/health answers 503 until the node's Redis connection is up.
    await waitFor(async () => (await node.client.send("/debug/health")).status === 200, `node ${berth.hostPort} to connect to redis`);
    return node;
  };

  before(async () => {
    if (clusterSkip) return;
    const started = Date.now();
    [ceph, redis] = await Promise.all([startCephS3(), startRedis()]);
    s3 = ceph.client();
    nodes.push(...(await Promise.all(Array.from({ length: NODE_COUNT }, startNode))));
    process.stderr.write(`# multi-node: Ceph, Redis and ${NODE_COUNT} nodes up in ${Date.now() - started} ms\n`);
  });

  after(async () => {
    await Promise.all([...nodes.map((node) => node.berth.stop()), ...stopped.map((berth) => berth.stop())]);
    s3?.destroy();
    await redis?.stop();
    await ceph?.stop();
  });

  function nodeConfig(): string {
    assert.ok(ceph && redis);
    return testConfig({
      // No accesslog key: the access log stays at its default (on), as this test always ran it.
      log: "  level: info\n  formatter: json",
      driver: s3DriverConfig(ceph, rootdirectory),
      storage: "  cache:\n    blobdescriptor: redis",
      secret,
      sections: `redis:\n  addr: ${redis.addr}`,
    });
  }

  /** The object key of a path under the registry's root directory. */
  const key = (path: string): string => `${rootdirectory.slice(1)}/docker/registry/v2/${path}`;
  const blobDataKey = (digest: string): string => {
    const hex = digest.slice("sha256:".length);
    return key(`blobs/sha256/${hex.slice(0, 2)}/${hex}/data`);
  };

  const listKeys = (prefix: string): Promise<string[]> => listBucketKeys(s3!, ceph!.bucket, prefix);
  const openMultipartUploads = (prefix: string): Promise<string[]> => openBucketMultipartUploads(s3!, ceph!.bucket, prefix);

  /** The same Location (path and `_state` query) on another node. */
  function onNode(location: string, node: Node): string {
    const url = new URL(location);
    url.host = node.berth.hostPort;
    return url.toString();
  }

  /** Asserts a Location points at the node that issued it (berth builds it from the Host header). */
  function assertIssuedBy(location: string, node: Node): void {
    assert.equal(new URL(location).host, node.berth.hostPort, `Location ${location} names the node that answered`);
  }

  async function patch(node: Node, location: string, bytes: Buffer, start: number): Promise<Response> {
    return node.client.patchChunk(onNode(location, node), bytes, start);
  }

  /** GET through every given node: a 307 to a presigned S3 URL, and the right bytes when followed. */
  async function assertServedByAll(name: string, digest: string, size: number, serving: Node[] = nodes): Promise<void> {
    for (const node of serving) {
      const head = await node.client.send(`/v2/${name}/blobs/${digest}`, { method: "HEAD" });
      assert.equal(head.status, 307, `HEAD on ${node.berth.hostPort}`);
      const get = await node.client.send(`/v2/${name}/blobs/${digest}`);
      assert.equal(get.status, 307, `GET on ${node.berth.hostPort}`);
      assert.equal(get.headers.get("docker-content-digest"), digest);
      const target = get.headers.get("location") ?? "";
      assert.ok(target.startsWith(`${ceph!.endpoint}/${ceph!.bucket}/`), `redirect to the bucket: ${target}`);
      assert.match(target, /X-Amz-Signature=/);
      const followed = await fetch(node.client.url(`/v2/${name}/blobs/${digest}`), { redirect: "follow" });
      assert.equal(followed.status, 200, `following the redirect from ${node.berth.hostPort}`);
      const hash = createHash("sha256");
      let length = 0;
      for await (const chunk of followed.body!) {
        hash.update(chunk as Uint8Array);
        length += (chunk as Uint8Array).length;
      }
      assert.equal(length, size, `bytes from ${node.berth.hostPort}`);
      assert.equal(`sha256:${hash.digest("hex")}`, digest, `digest of the bytes from ${node.berth.hostPort}`);
    }
  }

  /** radosgw's request log: one `"METHOD /bucket/key?query HTTP/1.1" status` per line (beast frontend). */
  async function rgwRequests(): Promise<Array<{ method: string; path: string; query: string; status: number }>> {
    const text = await readFile(join(ceph!.stateDir, "log", "client.rgw.log"), "utf8");
    const requests = [];
    for (const match of text.matchAll(/ beast: \S+ \S+ - \S+ \[[^\]]*\] "([A-Z]+) ([^ ?"]+)(\?[^ "]*)? HTTP\/[\d.]+" (\d{3}) /g)) {
      requests.push({ method: match[1]!, path: decodeURIComponent(match[2]!), query: match[3] ?? "", status: Number(match[4]) });
    }
    return requests;
  }

  test("a chunked upload spread over all nodes (one request per node in turn) finishes on a third node and is pulled from every node", clusterSkip, async () => {
    const started = Date.now();
    const name = uniqueName("multi/chunked");
    // Six chunks of 6 MiB (parts of 5 MiB cross them) and chunks under S3's 5 MiB part minimum.
    const sizes = [6 * MiB, 6 * MiB, 1 * MiB + 7, 6 * MiB, 300_001, 6 * MiB, 6 * MiB, 6 * MiB, 2 * MiB + 13];
    const blob = randomBytes(sizes.reduce((a, b) => a + b, 0));
    const digest = digestOf(blob);
    const order: number[] = [];

    const post = await nodes[0]!.client.send(`/v2/${name}/blobs/uploads/`, { method: "POST" });
    assert.equal(post.status, 202);
    let location = post.headers.get("location")!;
    assertIssuedBy(location, nodes[0]!);
    const uuid = post.headers.get("docker-upload-uuid")!;
    order.push(0);

    let offset = 0;
    for (const [i, size] of sizes.entries()) {
      const index = (i + 1) % NODE_COUNT;
      const node = nodes[index]!;
      const response = await patch(node, location, blob.subarray(offset, offset + size), offset);
      assert.equal(response.status, 202, `chunk ${i} (${size} bytes at ${offset}) on ${node.berth.hostPort}: ${await response.text()}`);
      offset += size;
      assert.equal(response.headers.get("range"), `0-${offset - 1}`, `Range after chunk ${i}`);
      assert.equal(response.headers.get("docker-upload-uuid"), uuid);
      location = response.headers.get("location")!;
      assertIssuedBy(location, node);
      order.push(index);
      if (i === 3) {
        // Any node reports where the upload stands.
        const status = await nodes[(index + 1) % NODE_COUNT]!.client.send(onNode(location, nodes[(index + 1) % NODE_COUNT]!));
        assert.equal(status.status, 204);
        assert.equal(status.headers.get("range"), `0-${offset - 1}`);
      }
    }
    const finisher = (sizes.length + 1) % NODE_COUNT;
    assert.notEqual(finisher, order.at(-1), "the PUT goes to another node than the last PATCH");
    assert.notEqual(finisher, order.at(-2), "…and than the one before it");
    const put = await nodes[finisher]!.client.send(withQuery(onNode(location, nodes[finisher]!), { digest }), { method: "PUT" });
    assert.equal(put.status, 201, `PUT on ${nodes[finisher]!.berth.hostPort}: ${await put.text()}`);
    assert.equal(put.headers.get("docker-content-digest"), digest);
    order.push(finisher);
    assert.deepEqual(new Set(order), new Set([0, 1, 2]));
    const pushed = Date.now();

    await assertServedByAll(name, digest, blob.length);

    // The blob is in the bucket once, and nothing is left of the upload.
    assert.deepEqual(await listKeys(key(`blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/`)), [blobDataKey(digest)]);
    assert.deepEqual(await listKeys(key(`repositories/${name}/_uploads/`)), []);
    assert.deepEqual(await openMultipartUploads(key(`repositories/${name}/`)), []);
    // The descriptor is in the shared cache, in distribution's key layout.
    assert.equal(await redis!.client().hget(`blobs::${digest}`, "size"), String(blob.length));

    // Evidence that no node read the upload's bytes back, from the S3 server's own request log:
    // the finishing node loaded the SHA-256 state the last PATCH saved at the final offset, and
    // there was never a GetObject of the upload's data (ListParts, `?uploadId=`, is a listing).
    const uploadPrefix = `/${ceph!.bucket}/${key(`repositories/${name}/_uploads/${uuid}/`)}`;
    const finalState = `${uploadPrefix}hashstates/sha256/${blob.length}`;
    let requests = await rgwRequests();
    // radosgw writes its log asynchronously: wait for the copy into blobs/, which follows the resume.
    const blobPath = `/${ceph!.bucket}/${blobDataKey(digest)}`;
    await waitFor(async () => {
      requests = await rgwRequests();
      return requests.some((r) => r.method === "PUT" && r.path === blobPath);
    }, "radosgw to log the upload's requests");
    const uploadRequests = requests.filter((r) => r.path.startsWith(uploadPrefix));
    const stateReads = uploadRequests.filter((r) => r.method === "GET" && r.path === finalState && r.status === 200);
    assert.equal(stateReads.length, 1, `the finishing node loaded the hash state at ${blob.length}:\n${describeRequests(uploadRequests)}`);
    const dataReads = uploadRequests.filter((r) => r.method === "GET" && r.path === `${uploadPrefix}data` && !/[?&](uploadId|uploads)=/.test(r.query));
    assert.deepEqual(dataReads, [], `no GetObject of the upload's data:\n${describeRequests(uploadRequests)}`);
    // A hash state saved after every chunk, at the chunk's end offset.
    const stateOffsets = new Set(
      uploadRequests
        .filter((r) => r.method === "PUT" && r.path.startsWith(`${uploadPrefix}hashstates/sha256/`))
        .map((r) => Number(r.path.slice(r.path.lastIndexOf("/") + 1))),
    );
    const chunkEnds = sizes.map((_, i) => sizes.slice(0, i + 1).reduce((a, b) => a + b, 0));
    assert.deepEqual(stateOffsets, new Set(chunkEnds), describeRequests(uploadRequests));

    process.stderr.write(
      `# multi-node chunked: ${(blob.length / MiB).toFixed(1)} MiB in ${sizes.length} chunks over nodes ${order.join("→")}: ` +
        `pushed in ${pushed - started} ms, pulled from ${NODE_COUNT} nodes in ${Date.now() - pushed} ms; ` +
        `${uploadRequests.length} S3 requests on the upload, 0 reads of its data\n`,
    );
  });

  test("the same layer pushed to different nodes at once, monolithic and chunked, is one blob every node serves", clusterSkip, async () => {
    const started = Date.now();
    const name = uniqueName("multi/concurrent");
    const layer = randomBytes(7 * MiB + 333);
    const digest = digestOf(layer);
    const chunk = 3 * MiB + 17;

    const monolithic = async (node: Node): Promise<number> => {
      const response = await node.client.send(`/v2/${name}/blobs/uploads/?digest=${digest}`, {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream" },
        body: layer,
      });
      assert.equal(response.status, 201, `monolithic push on ${node.berth.hostPort}: ${await response.text()}`);
      return response.status;
    };
    const chunked = async (first: number): Promise<number> => {
      let at = first;
      const post = await nodes[at]!.client.send(`/v2/${name}/blobs/uploads/`, { method: "POST" });
      assert.equal(post.status, 202);
      let location = post.headers.get("location")!;
      for (let offset = 0; offset < layer.length; offset += chunk) {
        at = (at + 1) % NODE_COUNT;
        const response = await patch(nodes[at]!, location, layer.subarray(offset, offset + chunk), offset);
        assert.equal(response.status, 202, `chunk at ${offset} on ${nodes[at]!.berth.hostPort}: ${await response.text()}`);
        location = response.headers.get("location")!;
      }
      at = (at + 1) % NODE_COUNT;
      const put = await nodes[at]!.client.send(withQuery(onNode(location, nodes[at]!), { digest }), { method: "PUT" });
      assert.equal(put.status, 201, `chunked push finished on ${nodes[at]!.berth.hostPort}: ${await put.text()}`);
      assert.equal(put.headers.get("docker-content-digest"), digest);
      return put.status;
    };

    const statuses = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => (i % 2 === 0 ? monolithic(nodes[i % NODE_COUNT]!) : chunked(i % NODE_COUNT))));
    assert.deepEqual(statuses, [201, 201, 201, 201, 201, 201]);
    const pushed = Date.now();

    assert.deepEqual(await listKeys(key(`blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/`)), [blobDataKey(digest)], "one blob");
    const object = await s3!.send(new HeadObjectCommand({ Bucket: ceph!.bucket, Key: blobDataKey(digest) }));
    assert.equal(object.ContentLength, layer.length);
    assert.deepEqual(await listKeys(key(`repositories/${name}/_layers/`)), [key(`repositories/${name}/_layers/sha256/${digest.slice(7)}/link`)]);
    assert.deepEqual(await listKeys(key(`repositories/${name}/_uploads/`)), [], "no upload left behind");
    assert.deepEqual(await openMultipartUploads(key(`repositories/${name}/`)), [], "no multipart upload left open");

    await assertServedByAll(name, digest, layer.length);
    process.stderr.write(`# multi-node concurrent: 6 pushes of ${(layer.length / MiB).toFixed(1)} MiB (3 monolithic, 3 chunked over 3 nodes) in ${pushed - started} ms\n`);
  });

  test("a node killed (SIGKILL) in the middle of a chunked push: another node reports the upload's range, the push continues there, and a replacement node serves the blob", clusterSkip, async () => {
    const name = uniqueName("multi/killed");
    const chunk = 4 * MiB + 1234;
    const blob = randomBytes(6 * chunk + 99);
    const digest = digestOf(blob);
    const victimIndex = 1;
    const victim = nodes[victimIndex]!;
    const survivors = nodes.filter((node) => node !== victim);

    // Three chunks accepted, one on each node.
    const post = await nodes[0]!.client.send(`/v2/${name}/blobs/uploads/`, { method: "POST" });
    assert.equal(post.status, 202);
    let location = post.headers.get("location")!;
    let accepted = 0;
    for (const index of [0, 1, 2]) {
      const response = await patch(nodes[index]!, location, blob.subarray(accepted, accepted + chunk), accepted);
      assert.equal(response.status, 202, await response.text());
      accepted += chunk;
      location = response.headers.get("location")!;
    }

    // The fourth chunk streams to the victim, which dies with part of it received: enough bytes
    // that its writer has begun another 5 MiB part.
    const partial = 3 * MiB + 500_000;
    const inFlight = streamPartially(onNode(location, victim), blob.subarray(accepted, accepted + chunk), accepted, partial);
    await inFlight.sent;
    await new Promise((resolve) => setTimeout(resolve, 300)); // let the bytes reach it (any amount is fine)
    const signal = await victim.berth.stop("SIGKILL");
    assert.equal(signal, null, "killed by a signal, not exited");
    assert.equal(victim.berth.child.signalCode, "SIGKILL");
    const outcome = await inFlight.response;
    assert.ok(outcome instanceof Error, `the in-flight PATCH got no answer (got ${String(outcome)})`);
    nodes.splice(victimIndex, 1);
    stopped.push(victim.berth);

    // Another node tells where the upload stands: everything accepted, maybe some of the lost chunk.
    const status = await survivors[0]!.client.send(onNode(location, survivors[0]!));
    assert.equal(status.status, 204, `upload status on ${survivors[0]!.berth.hostPort}`);
    const range = /^0-(\d+)$/.exec(status.headers.get("range") ?? "");
    assert.ok(range, `Range header: ${status.headers.get("range")}`);
    const resumeAt = Number(range[1]) + 1;
    assert.ok(resumeAt >= accepted && resumeAt <= accepted + partial, `resume offset ${resumeAt} within [${accepted}, ${accepted + partial}]`);
    location = status.headers.get("location") ?? location;

    // The client continues from there on the survivors, in turn, and finishes.
    let offset = resumeAt;
    let turn = 1;
    while (offset < blob.length) {
      const node = survivors[turn++ % survivors.length]!;
      const response = await patch(node, location, blob.subarray(offset, offset + chunk), offset);
      assert.equal(response.status, 202, `chunk at ${offset} on ${node.berth.hostPort}: ${await response.text()}`);
      offset = Math.min(offset + chunk, blob.length);
      location = response.headers.get("location")!;
    }
    const finisher = survivors[turn % survivors.length]!;
    const put = await finisher.client.send(withQuery(onNode(location, finisher), { digest }), { method: "PUT" });
    assert.equal(put.status, 201, `PUT on ${finisher.berth.hostPort}: ${await put.text()}`);
    assert.equal(put.headers.get("docker-content-digest"), digest);

    // A replacement node, started from the same configuration, takes the dead one's place.
    const replacement = await startNode();
    nodes.splice(victimIndex, 0, replacement);
    await assertServedByAll(name, digest, blob.length);
    assert.deepEqual(await listKeys(key(`repositories/${name}/_uploads/`)), [], "nothing left of the upload");
    assert.deepEqual(await openMultipartUploads(key(`repositories/${name}/`)), [], "no multipart upload left open");
    process.stderr.write(
      `# multi-node kill: ${accepted} bytes accepted, ${partial} more streaming when the node died; ` +
        `another node reported ${resumeAt} (${resumeAt - accepted} of the lost chunk kept); blob verified on ${nodes.length} nodes\n`,
    );
  });

  describe("skopeo through a round-robin nginx in front of the nodes", () => {
    let proxy: NginxProxy | undefined;
    let work: string | undefined;
    let layouts: TestLayouts;

    before(async () => {
      if (skopeoSkip) return;
      work = await mkdtemp(join(tmpdir(), "berth-multi-skopeo-"));
      layouts = await buildTestLayouts(join(work, "source"), { bigLayerBytes: 12 * MiB });
      proxy = await startNginxProxy(nodes.map((node) => node.berth.hostPort));
    });

    after(async () => {
      await proxy?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    async function skopeoOk(args: string[]): Promise<RunResult> {
      const result = await run(skopeo.path!, ["--debug", "--insecure-policy", ...args], { timeoutMs: 120_000 });
      if (result.code !== 0) {
        const logs = nodes.map((node) => `--- ${node.berth.hostPort} (tail) ---\n${node.berth.log().slice(-2000)}`).join("\n");
        assert.fail(`skopeo failed:\n${describeRun(result)}\n--- nginx ---\n${await proxy!.errorLog()}\n${logs}`);
      }
      return result;
    }

    test("skopeo copy pushes an image through the proxy and copies it back out, blobs through the redirect to S3, with identical digests", skopeoSkip, async () => {
      const started = Date.now();
      const image = layouts.single;
      const reference = `docker://${proxy!.hostPort}/multi/skopeo:v1`;
      await skopeoOk(["copy", "--dest-tls-verify=false", "--preserve-digests", `oci:${layouts.dir}:${layouts.refs.single}`, reference]);
      const pushed = Date.now();
      const out = join(work!, "out");
      await skopeoOk(["copy", "--src-tls-verify=false", "--preserve-digests", reference, `oci:${out}:pulled`]);
      const pulled = Date.now();

      const copied = await readLayout(out);
      assert.deepEqual(copied.index.manifests.map((m) => m.digest), [image.manifest.digest]);
      assert.deepEqual(copied.blobDigests, new Set([image.manifest.digest, ...image.blobDigests]));
      assert.deepEqual(await copied.readBlob(image.manifest.digest), image.manifestBytes);
      for (const digest of image.blobDigests) assert.equal(sha256Digest(await copied.readBlob(digest)), digest);

      const log = await proxy!.accessLog();
      // Round robin: every node answered some of the requests.
      const upstreams = new Set(log.map((entry) => entry.upstream));
      assert.deepEqual(upstreams, new Set(nodes.map((node) => node.berth.hostPort)), `every node answered through the proxy:\n${JSON.stringify(log, null, 1)}`);
      // The push: uploads streamed through the proxy, each request to whichever node was next.
      const uploads = log.filter((entry) => entry.uri.startsWith("/v2/multi/skopeo/blobs/uploads/"));
      assert.ok(uploads.some((entry) => entry.method === "PUT" && entry.status === 201), "uploads finished through the proxy");
      // The pull: every blob GET answered 307 (to the presigned S3 URL skopeo then fetched directly).
      const blobGets = log.filter((entry) => entry.method === "GET" && /^\/v2\/multi\/skopeo\/blobs\/sha256:/.test(entry.uri));
      assert.ok(blobGets.length >= image.blobDigests.length, `blob GETs:\n${JSON.stringify(log, null, 1)}`);
      assert.deepEqual(new Set(blobGets.map((entry) => entry.status)), new Set([307]), "blob GETs answered with redirects");
      for (const digest of image.blobDigests) {
        assert.ok(blobGets.some((entry) => entry.uri === `/v2/multi/skopeo/blobs/${digest}`), `skopeo fetched ${digest} through the redirect`);
      }
      // …and skopeo fetched each of those blobs from S3 itself, with the presigned URL (radosgw's log).
      const presignedGets = async (): Promise<Set<string>> =>
        new Set(
          (await rgwRequests())
            .filter((r) => r.method === "GET" && /[?&]X-Amz-Signature=/.test(r.query) && (r.status === 200 || r.status === 206))
            .map((r) => r.path),
        );
      const wanted = image.blobDigests.map((digest) => `/${ceph!.bucket}/${blobDataKey(digest)}`);
      let fetched = new Set<string>();
      await waitFor(async () => {
        fetched = await presignedGets();
        return wanted.every((path) => fetched.has(path));
      }, "radosgw to log skopeo's presigned GETs").catch(() => undefined);
      assert.deepEqual(wanted.filter((path) => !fetched.has(path)), [], "every blob was fetched from S3 with a presigned URL");
      process.stderr.write(
        `# multi-node skopeo via nginx: push ${pushed - started} ms, pull ${pulled - pushed} ms, ${log.length} proxied requests over ` +
          `${upstreams.size} nodes, ${blobGets.length} blob GETs answered 307\n`,
      );
    });
  });
});

/** Streams `partial` bytes of a PATCH declaring all of `bytes`, and never sends the rest. */
function streamPartially(url: string, bytes: Buffer, start: number, partial: number): { sent: Promise<void>; response: Promise<number | Error> } {
  const target = new URL(url);
  let sentResolve!: () => void;
  const sent = new Promise<void>((resolve) => (sentResolve = resolve));
  // Resolves with the status, or with the error when the connection dies first (never rejects, so
  // that the failure the test provokes is not an unhandled rejection before it is looked at).
  const response = new Promise<number | Error>((resolve) => {
    const req = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: "PATCH",
        path: target.pathname + target.search,
        headers: {
          "Content-Type": "application/octet-stream",
          "Content-Range": `${start}-${start + bytes.length - 1}`,
          "Content-Length": String(bytes.length),
        },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", (err) => resolve(err));
    req.write(bytes.subarray(0, partial), () => sentResolve());
  });
  return { sent, response };
}

function describeRequests(requests: Array<{ method: string; path: string; query: string; status: number }>): string {
  return requests.map((r) => `${r.method} ${r.path}${r.query} ${r.status}`).join("\n");
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
