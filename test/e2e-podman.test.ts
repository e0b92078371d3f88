/**
 * End to end with podman against a real `berth serve` over plain HTTP on loopback.
 *
 * podman runs as root here with the vfs storage driver and a throwaway storage root, run root
 * and tmpdir per test file, so it needs no overlay mounts, no user namespaces and no container
 * runtime: only image operations (pull, push, manifest, search, inspect) are exercised.
 * (Running a container does not work in this sandbox: the sandbox's root lacks CAP_SYS_RESOURCE,
 * so crun fails with "setrlimit `RLIMIT_NOFILE`: Operation not permitted", and with
 * `--ulimit nofile=…` on RLIMIT_NPROC. A registry test does not need it.)
 * Images get in without a network with `podman pull oci:<layout>:<ref>`.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { describeRun, requireProgram, run, type RunResult } from "./support/external-program.js";
import { buildTestLayouts, MEDIA_TYPE, type Descriptor, type TestLayouts } from "./support/oci-layout.js";

const podman = requireProgram("podman");

const MANIFEST_ACCEPT = [
  MEDIA_TYPE.imageManifest,
  MEDIA_TYPE.imageIndex,
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

interface ImageInspect {
  Id: string;
  Digest: string;
  RepoDigests: string[];
  Architecture: string;
  Os: string;
  RootFS: { Type: string; Layers: string[] };
}

describe("podman against berth", () => {
  // Each test carries the skip reason (not the suite), so a skipped run counts its skipped tests.
  const test = (name: string, fn: () => Promise<void>) => it(name, { skip: podman.skip }, fn);

  let berth: BerthProcess;
  let work: string;
  let layouts: TestLayouts;
  let storageArgs: string[];

  before(async () => {
    if (podman.skip) return;
    // Lower case only: podman names an image pulled from `oci:<dir>` after <dir>, and a
    // reference must be lower case (mkdtemp's suffix is not).
    work = join(tmpdir(), `berth-e2e-podman-${randomBytes(6).toString("hex")}`);
    await mkdir(work);
    layouts = await buildTestLayouts(join(work, "source"));
    for (const dir of ["root", "runroot", "tmp"]) await mkdir(join(work, dir));
    storageArgs = [
      "--root", join(work, "root"),
      "--runroot", join(work, "runroot"),
      "--tmpdir", join(work, "tmp"),
      "--storage-driver", "vfs",
      "--events-backend", "none",
    ];
    // Access log on: a failing podman command's message quotes berth's log of the exchange.
    berth = await startBerth({ configYaml: testConfig({ log: "  level: info\n  accesslog:\n    disabled: false" }) });
  });

  after(async () => {
    await berth?.stop();
    // Not `podman system reset`: it also removes networks, which are machine-wide.
    if (work) await rm(work, { recursive: true, force: true });
  });

  function runPodman(args: string[]): Promise<RunResult> {
    return run(podman.path!, [...storageArgs, ...args]);
  }

  async function podmanOk(args: string[]): Promise<RunResult> {
    const result = await runPodman(args);
    assert.equal(result.code, 0, `podman failed:\n${describeRun(result)}\n--- berth log (tail) ---\n${berth.log().slice(-3000)}`);
    return result;
  }

  async function inspectImage(name: string): Promise<ImageInspect> {
    const result = await podmanOk(["image", "inspect", name]);
    const [info] = JSON.parse(result.stdout) as ImageInspect[];
    assert.ok(info, `podman image inspect ${name} printed an image`);
    return info;
  }

  /** Loads the test layout's single image into podman's storage and tags it `name`. */
  async function loadSingle(name: string): Promise<void> {
    await podmanOk(["pull", `oci:${layouts.dir}:${layouts.refs.single}`]);
    await podmanOk(["tag", layouts.single.config.digest.slice("sha256:".length), name]);
  }

  /**
   * Removes an image by ID, with all its names and layers, so the next pull must download
   * everything from berth (`podman rmi <name>` would only untag an image that has other names).
   */
  async function removeImage(configDigest: string): Promise<void> {
    const id = configDigest.slice("sha256:".length);
    await podmanOk(["rmi", "--force", id]);
    assert.notEqual((await runPodman(["image", "exists", id])).code, 0, "the image is gone from local storage");
  }

  async function pushWithDigest(name: string): Promise<string> {
    const digestFile = join(work, `digest-${Date.now()}-${Math.random().toString(16).slice(2)}`);
    await podmanOk(["push", "--tls-verify=false", "--digestfile", digestFile, name]);
    return (await readFile(digestFile, "utf8")).trim();
  }

  async function headManifest(repository: string, reference: string): Promise<Response> {
    return fetch(`${berth.url}/v2/${repository}/manifests/${reference}`, { method: "HEAD", headers: { accept: MANIFEST_ACCEPT } });
  }

  test("podman push --tls-verify=false uploads an image, and podman pull brings back the same image ID and layer diff IDs", async () => {
    const image = layouts.single;
    const name = `${berth.hostPort}/e2e/podman:v1`;
    await loadSingle(name);

    const pushedDigest = await pushWithDigest(name);
    const head = await headManifest("e2e/podman", "v1");
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("docker-content-digest"), pushedDigest, "berth serves the manifest podman pushed");

    await removeImage(image.config.digest);

    await podmanOk(["pull", "--tls-verify=false", name]);
    const info = await inspectImage(name);
    assert.equal(`sha256:${info.Id}`, image.config.digest, "the image ID is the config digest");
    assert.equal(info.Digest, pushedDigest);
    assert.deepEqual(info.RootFS.Layers, image.layers.map((l) => l.diffId));
    assert.equal(info.Architecture, "amd64");
    assert.ok(info.RepoDigests.includes(`${berth.hostPort}/e2e/podman@${pushedDigest}`), JSON.stringify(info.RepoDigests));
  });

  test("podman pull by digest fetches exactly the manifest with that digest", async () => {
    const name = `${berth.hostPort}/e2e/podman-digest:v1`;
    await loadSingle(name);
    const pushedDigest = await pushWithDigest(name);
    await removeImage(layouts.single.config.digest);

    const byDigest = `${berth.hostPort}/e2e/podman-digest@${pushedDigest}`;
    await podmanOk(["pull", "--tls-verify=false", byDigest]);
    const info = await inspectImage(byDigest);
    assert.equal(info.Digest, pushedDigest);
    assert.equal(`sha256:${info.Id}`, layouts.single.config.digest);
  });

  test("podman manifest push --all uploads a multi-arch list, and podman pull --arch arm64 pulls its arm64 image", async () => {
    const { children } = layouts.multi;
    const listName = `${berth.hostPort}/e2e/podman-multi:v1`;
    await podmanOk(["manifest", "create", listName]);
    await podmanOk(["manifest", "add", "--all", listName, `oci:${layouts.dir}:${layouts.refs.multi}`]);
    const digestFile = join(work, "multi-digest");
    await podmanOk(["manifest", "push", "--all", "--tls-verify=false", "--digestfile", digestFile, listName, `docker://${listName}`]);
    const pushedDigest = (await readFile(digestFile, "utf8")).trim();

    const response = await fetch(`${berth.url}/v2/e2e/podman-multi/manifests/v1`, { headers: { accept: MANIFEST_ACCEPT } });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-content-digest"), pushedDigest);
    const list = (await response.json()) as { manifests: Descriptor[] };
    assert.deepEqual(
      list.manifests.map((m) => [m.digest, m.platform?.architecture]),
      children.map((c) => [c.manifest.digest, c.manifest.platform?.architecture]),
    );

    await podmanOk(["manifest", "rm", listName]);
    const arm64 = children.find((c) => c.manifest.platform?.architecture === "arm64")!;
    await runPodman(["rmi", "--force", arm64.config.digest.slice("sha256:".length)]); // in case `manifest add` stored it
    assert.notEqual((await runPodman(["image", "exists", arm64.config.digest.slice("sha256:".length)])).code, 0);
    await podmanOk(["pull", "--tls-verify=false", "--arch", "arm64", listName]);
    const info = await inspectImage(listName);
    assert.equal(info.Architecture, "arm64");
    assert.equal(`sha256:${info.Id}`, arm64.config.digest);
    assert.deepEqual(info.RootFS.Layers, arm64.layers.map((l) => l.diffId));
  });

  test("podman search lists repositories from GET /v2/_catalog, and --list-tags the tags of one", async () => {
    const name = `${berth.hostPort}/e2e/podman-search:v1`;
    await loadSingle(name);
    await pushWithDigest(name);
    await podmanOk(["tag", name, `${berth.hostPort}/e2e/podman-search:v2`]);
    await pushWithDigest(`${berth.hostPort}/e2e/podman-search:v2`);

    const search = await podmanOk(["search", "--tls-verify=false", "--format", "{{.Name}}", `${berth.hostPort}/e2e/podman-search`]);
    assert.ok(search.stdout.split("\n").includes(`${berth.hostPort}/e2e/podman-search`), search.stdout);

    // podman 4.3 ignores --format with --list-tags: it prints a "NAME TAG" table.
    const tags = await podmanOk(["search", "--tls-verify=false", "--list-tags", `${berth.hostPort}/e2e/podman-search`]);
    const rows = tags.stdout.trim().split("\n").map((line) => line.trim().split(/\s+/));
    assert.deepEqual(
      rows.filter(([repository]) => repository === `${berth.hostPort}/e2e/podman-search`).map(([, tag]) => tag).sort(),
      ["v1", "v2"],
      tags.stdout,
    );
  });
});
