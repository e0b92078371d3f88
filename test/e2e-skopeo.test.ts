/**
 * End to end with skopeo (containers/image): the client podman and buildah push and pull with.
 * Images are built on disk as OCI layouts (test/support/oci-layout.ts) and copied to and from a
 * real `berth serve` over plain HTTP on loopback.
 *
 * skopeo runs with --debug, so a failing command's message carries its HTTP exchanges.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DEFAULT_TEST_CONFIG, startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { describeRun, requireProgram, run, type RunResult } from "./support/external-program.js";
import { buildTestLayouts, MEDIA_TYPE, readLayout, sha256Digest, type Descriptor, type TestLayouts } from "./support/oci-layout.js";

const skopeo = requireProgram("skopeo");

/** The default test configuration with the access log on: failure messages quote it, the mount test reads it. */
const CONFIG_WITH_ACCESS_LOG = testConfig({ log: "  level: info\n  accesslog:\n    disabled: false" });

const MANIFEST_ACCEPT = [MEDIA_TYPE.imageManifest, MEDIA_TYPE.imageIndex].join(", ");

describe("skopeo against berth", () => {
  // Each test carries the skip reason (not the suite), so a skipped run counts its skipped tests.
  const test = (name: string, fn: () => Promise<void>) => it(name, { skip: skopeo.skip }, fn);

  let berth: BerthProcess;
  let work: string;
  let layouts: TestLayouts;
  let outputs = 0;

  before(async () => {
    if (skopeo.skip) return;
    assert.notEqual(CONFIG_WITH_ACCESS_LOG, DEFAULT_TEST_CONFIG, "the access log can be switched on");
    work = await mkdtemp(join(tmpdir(), "berth-e2e-skopeo-"));
    layouts = await buildTestLayouts(join(work, "source"));
    berth = await startBerth({ configYaml: CONFIG_WITH_ACCESS_LOG });
  });

  after(async () => {
    await berth?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Runs skopeo with a policy that accepts anything (no /etc/containers/policy.json needed). */
  async function runSkopeo(args: string[]): Promise<RunResult> {
    return run(skopeo.path!, ["--debug", "--insecure-policy", ...args]);
  }

  async function skopeoOk(args: string[]): Promise<RunResult> {
    const result = await runSkopeo(args);
    assert.equal(result.code, 0, `skopeo failed:\n${describeRun(result)}\n--- berth log (tail) ---\n${berth.log().slice(-3000)}`);
    return result;
  }

  const source = (ref: string) => `oci:${layouts.dir}:${ref}`;
  const remote = (repositoryAndReference: string) => `docker://${berth.hostPort}/${repositoryAndReference}`;
  const newOutputLayout = () => join(work, `out-${++outputs}`);

  function push(ref: string, destination: string, extra: string[] = []): Promise<RunResult> {
    return skopeoOk(["copy", "--dest-tls-verify=false", "--preserve-digests", ...extra, source(ref), remote(destination)]);
  }

  function pull(from: string, layoutDir: string, extra: string[] = []): Promise<RunResult> {
    return skopeoOk(["copy", "--src-tls-verify=false", "--preserve-digests", ...extra, remote(from), `oci:${layoutDir}:pulled`]);
  }

  async function headManifest(repository: string, reference: string): Promise<Response> {
    return fetch(`${berth.url}/v2/${repository}/manifests/${reference}`, { method: "HEAD", headers: { accept: MANIFEST_ACCEPT } });
  }

  test("skopeo copy pushes a four-layer image from an OCI layout, and copies it back out with identical manifest and blob digests", async () => {
    const image = layouts.single;
    await push(layouts.refs.single, "e2e/single:v1");

    const head = await headManifest("e2e/single", "v1");
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("docker-content-digest"), image.manifest.digest);

    const out = newOutputLayout();
    await pull("e2e/single:v1", out);
    const copied = await readLayout(out);
    assert.deepEqual(
      copied.index.manifests.map((m) => m.digest),
      [image.manifest.digest],
      "the copied layout names the same manifest digest",
    );
    assert.deepEqual(copied.blobDigests, new Set([image.manifest.digest, ...image.blobDigests]));
    assert.deepEqual(await copied.readBlob(image.manifest.digest), image.manifestBytes);
    const big = image.layers[1]!.descriptor;
    assert.ok(big.size > 2 * 1024 * 1024, "one layer is several MiB");
    assert.equal(sha256Digest(await copied.readBlob(big.digest)), big.digest);
  });

  test("skopeo copy --all pushes a multi-arch OCI index and copies it back out with the same index digest", async () => {
    const { index, indexBytes, children } = layouts.multi;
    await push(layouts.refs.multi, "e2e/multi:v1", ["--all"]);

    const head = await headManifest("e2e/multi", "v1");
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("docker-content-digest"), index.digest);
    for (const child of children) {
      const childHead = await headManifest("e2e/multi", child.manifest.digest);
      assert.equal(childHead.status, 200, `child ${child.manifest.platform?.architecture} is stored`);
    }

    const out = newOutputLayout();
    await pull("e2e/multi:v1", out, ["--all"]);
    const copied = await readLayout(out);
    assert.deepEqual(copied.index.manifests.map((m) => m.digest), [index.digest]);
    assert.deepEqual(await copied.readBlob(index.digest), indexBytes);
    const expected = new Set([index.digest, ...children.flatMap((c) => [c.manifest.digest, ...c.blobDigests])]);
    assert.deepEqual(copied.blobDigests, expected);
  });

  test("skopeo copy pushes an artifact whose subject is an image, and GET /v2/<name>/referrers/<subject> lists it", async () => {
    const { artifact, single } = layouts;
    await push(layouts.refs.single, "e2e/artifact:v1");
    await push(layouts.refs.artifact, "e2e/artifact:sbom");

    const head = await headManifest("e2e/artifact", "sbom");
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("docker-content-digest"), artifact.manifest.digest, "the artifact manifest is stored byte for byte");

    const response = await fetch(`${berth.url}/v2/e2e/artifact/referrers/${single.manifest.digest}`, {
      headers: { accept: MEDIA_TYPE.imageIndex },
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^application\/vnd\.oci\.image\.index\.v1\+json/);
    const referrers = (await response.json()) as { schemaVersion: number; mediaType: string; manifests: Descriptor[] };
    assert.equal(referrers.schemaVersion, 2);
    assert.equal(referrers.mediaType, MEDIA_TYPE.imageIndex);
    assert.deepEqual(
      referrers.manifests.map(({ mediaType, digest, size, artifactType }) => ({ mediaType, digest, size, artifactType })),
      [{ mediaType: MEDIA_TYPE.imageManifest, digest: artifact.manifest.digest, size: artifact.manifest.size, artifactType: artifact.artifactType }],
    );

    // And the artifact comes back out by digest, bytes and blobs unchanged.
    const out = newOutputLayout();
    await pull(`e2e/artifact@${artifact.manifest.digest}`, out);
    const copied = await readLayout(out);
    assert.deepEqual(await copied.readBlob(artifact.manifest.digest), artifact.manifestBytes);
    assert.deepEqual(copied.blobDigests, new Set([artifact.manifest.digest, ...artifact.blobDigests]));
  });

  test("skopeo inspect reports the pushed digest and layers, --raw returns the manifest bytes as pushed, --config --raw the config", async () => {
    const image = layouts.single;
    await push(layouts.refs.single, "e2e/inspect:v1");

    const inspected = await skopeoOk(["inspect", "--tls-verify=false", remote("e2e/inspect:v1")]);
    const info = JSON.parse(inspected.stdout) as { Digest: string; Layers: string[]; Architecture: string; Os: string; RepoTags: string[] };
    assert.equal(info.Digest, image.manifest.digest);
    assert.deepEqual(info.Layers, image.layers.map((l) => l.descriptor.digest));
    assert.equal(info.Architecture, "amd64");
    assert.equal(info.Os, "linux");
    assert.deepEqual(info.RepoTags, ["v1"]);

    const raw = await skopeoOk(["inspect", "--raw", "--tls-verify=false", remote("e2e/inspect:v1")]);
    assert.equal(raw.stdout, image.manifestBytes.toString("utf8"));

    const config = await skopeoOk(["inspect", "--config", "--raw", "--tls-verify=false", remote("e2e/inspect:v1")]);
    assert.equal(sha256Digest(Buffer.from(config.stdout, "utf8")), image.config.digest);
  });

  test("skopeo list-tags lists every tag of a repository", async () => {
    for (const tag of ["v1", "v1.1", "latest"]) await push(layouts.refs.single, `e2e/tags:${tag}`);
    const listed = await skopeoOk(["list-tags", "--tls-verify=false", remote("e2e/tags")]);
    const tags = JSON.parse(listed.stdout) as { Repository: string; Tags: string[] };
    assert.equal(tags.Repository, `${berth.hostPort}/e2e/tags`);
    assert.deepEqual([...tags.Tags].sort(), ["latest", "v1", "v1.1"]);
  });

  test("skopeo copy between two repositories of berth mounts the layers instead of uploading them", async () => {
    const image = layouts.single;
    await push(layouts.refs.single, "e2e/mount-from:v1");
    await skopeoOk([
      "copy",
      "--src-tls-verify=false",
      "--dest-tls-verify=false",
      "--preserve-digests",
      remote("e2e/mount-from:v1"),
      remote("e2e/mount-to:v1"),
    ]);
    const head = await headManifest("e2e/mount-to", "v1");
    assert.equal(head.headers.get("docker-content-digest"), image.manifest.digest);
    for (const digest of image.blobDigests) {
      const blob = await fetch(`${berth.url}/v2/e2e/mount-to/blobs/${digest}`, { method: "HEAD" });
      assert.equal(blob.status, 200, `${digest} is linked into the target repository`);
    }
    // skopeo asks for a cross-repository mount (POST …/uploads/?mount=&from=) for each layer it
    // knows to be in the source repository; a mount that works answers 201 with no upload.
    const mounts = berth.log().split("\n").filter((line) => /POST\b.*\/v2\/e2e\/mount-to\/blobs\/uploads\/.*\b201\b/.test(line));
    assert.ok(mounts.length >= image.layers.length, `a 201 mount for each layer (got ${mounts.length}); berth log:\n${berth.log().slice(-4000)}`);
  });

  test("skopeo delete removes a manifest: afterwards it is 404 by tag and by digest, and skopeo inspect fails", async () => {
    const image = layouts.single;
    await push(layouts.refs.single, "e2e/delete:v1");
    assert.equal((await headManifest("e2e/delete", "v1")).status, 200);

    await skopeoOk(["delete", "--tls-verify=false", remote("e2e/delete:v1")]);

    assert.equal((await headManifest("e2e/delete", image.manifest.digest)).status, 404);
    assert.equal((await headManifest("e2e/delete", "v1")).status, 404);
    const get = await fetch(`${berth.url}/v2/e2e/delete/manifests/${image.manifest.digest}`, { headers: { accept: MANIFEST_ACCEPT } });
    assert.equal(get.status, 404);
    assert.equal(((await get.json()) as { errors: { code: string }[] }).errors[0]?.code, "MANIFEST_UNKNOWN");
    const inspect = await runSkopeo(["inspect", "--tls-verify=false", remote("e2e/delete:v1")]);
    assert.notEqual(inspect.code, 0, describeRun(inspect));
    assert.match(inspect.stderr, /manifest unknown/i);
  });
});
