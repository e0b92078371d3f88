/**
 * The storage tree the garbage-collection tests collect: built through a real berth over HTTP, then
 * copied (cp -a) once per run so every run starts from the same bytes.
 *
 *   gc/app    A1 tagged v1 (layers LA1 + LS, shared) · A2 untagged (LA2 + LS) · A3 was v2, then
 *             A4 took the tag (Docker schema 2) · referrers: R1 (SBOM, subject A1), R3
 *             (signature, subject R1), R2 (subject A2) — all untagged, empty config "{}"
 *   gc/base   B1 tagged latest (LS mounted from gc/app + LB1)
 *   gc/multi  index I tagged 1.0 over M1 and M2 (children untagged) · index U untagged over M3
 *   gc/gone   C1 (LC1 + LS) tagged old, then deleted by digest · an orphan blob LO, never in a manifest
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BERTH_CLI, DEFAULT_TEST_CONFIG, startBerth } from "./berth-process.js";
import { run, runOk, type RunResult } from "./external-program.js";
import {
  DOCKER_CONFIG,
  DOCKER_LAYER,
  DOCKER_MANIFEST,
  EMPTY_JSON,
  OCI_CONFIG,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_LAYER,
  OCI_MANIFEST,
  RegistryClient,
  descriptorOf,
  digestOf,
  indexOf,
  json,
  registryTree,
  type Descriptor,
} from "./registry-client.js";

export interface BuiltManifest {
  digest: string;
  bytes: Buffer;
  mediaType: string;
  /** Digests of the blobs it names (config and layers); none for an index. */
  blobs: string[];
  /** Every blob's bytes by digest, for pushing. */
  contents: Map<string, Buffer>;
}

export interface GcTreeFacts {
  shared: string;
  app: { A1: BuiltManifest; A2: BuiltManifest; A3: BuiltManifest; A4: BuiltManifest; R1: BuiltManifest; R2: BuiltManifest; R3: BuiltManifest };
  base: { B1: BuiltManifest };
  multi: { I: BuiltManifest; M1: BuiltManifest; M2: BuiltManifest; U: BuiltManifest; M3: BuiltManifest };
  gone: { C1: BuiltManifest; orphan: string };
  /** Every blob the tree holds, by digest, with its size. */
  sizes: Map<string, number>;
}

export const REPOSITORIES = ["gc/app", "gc/base", "gc/multi", "gc/gone"] as const;

export function image(
  layers: Buffer[],
  options: { docker?: boolean; subject?: BuiltManifest; artifactType?: string; emptyConfig?: boolean } = {},
): BuiltManifest {
  const config = options.emptyConfig
    ? EMPTY_JSON
    : json({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, id: randomBytes(8).toString("hex") });
  const mediaType = options.docker ? DOCKER_MANIFEST : OCI_MANIFEST;
  const configType = options.emptyConfig ? OCI_EMPTY : options.docker ? DOCKER_CONFIG : OCI_CONFIG;
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    ...(options.artifactType ? { artifactType: options.artifactType } : {}),
    config: descriptorOf(configType, config),
    layers: layers.map((layer) => descriptorOf(options.docker ? DOCKER_LAYER : OCI_LAYER, layer)),
    ...(options.subject ? { subject: descriptorOfManifest(options.subject) } : {}),
  };
  const bytes = json(manifest);
  const contents = new Map<string, Buffer>([[digestOf(config), config], ...layers.map((l): [string, Buffer] => [digestOf(l), l])]);
  return { digest: digestOf(bytes), bytes, mediaType, blobs: [...contents.keys()], contents };
}

export function index(children: BuiltManifest[]): BuiltManifest {
  const built = indexOf(children.map(descriptorOfManifest), { mediaType: OCI_INDEX });
  return { digest: built.digest, bytes: built.bytes, mediaType: OCI_INDEX, blobs: [], contents: new Map() };
}

function descriptorOfManifest(manifest: BuiltManifest): Descriptor {
  return descriptorOf(manifest.mediaType, manifest.bytes);
}

function layer(): Buffer {
  return randomBytes(200 + Math.floor(Math.random() * 300));
}

async function push(client: RegistryClient, repo: string, manifest: BuiltManifest, reference = manifest.digest): Promise<void> {
  for (const bytes of manifest.contents.values()) await client.pushBlob(repo, bytes);
  await client.pushManifest(repo, reference, manifest.bytes, manifest.mediaType);
}

/** Builds the tree in a fresh storage root through a real berth, and stops it. */
export async function buildGcTree(): Promise<{ root: string; facts: GcTreeFacts; cleanup(): Promise<void> }> {
  const work = await mkdtemp(join(tmpdir(), "berth-gc-tree-"));
  const root = join(work, "data");
  const berth = await startBerth({ root });
  try {
    const client = new RegistryClient(berth.url);
    const sharedLayer = layer();
    const shared = digestOf(sharedLayer);

    const A1 = image([layer(), sharedLayer]);
    const A2 = image([layer(), sharedLayer]);
    const A3 = image([layer()], { docker: true });
    const A4 = image([layer()], { docker: true });
    const R1 = image([layer()], { emptyConfig: true, subject: A1, artifactType: "application/vnd.example.sbom.v1" });
    const R3 = image([layer()], { emptyConfig: true, subject: R1, artifactType: "application/vnd.example.signature.v1" });
    const R2 = image([layer()], { emptyConfig: true, subject: A2, artifactType: "application/vnd.example.sbom.v1" });
    await push(client, "gc/app", A1, "v1");
    await push(client, "gc/app", A2);
    await push(client, "gc/app", A3, "v2");
    await push(client, "gc/app", A4, "v2");
    for (const referrer of [R1, R3, R2]) await push(client, "gc/app", referrer);

    const B1Layer = layer();
    const B1 = image([sharedLayer, B1Layer]);
    const mount = await client.send(`/v2/gc/base/blobs/uploads/?mount=${shared}&from=gc/app`, { method: "POST" });
    assert.equal(mount.status, 201, "cross-repository mount of the shared layer");
    for (const [digest, bytes] of B1.contents) if (digest !== shared) await client.pushBlob("gc/base", bytes);
    await client.pushManifest("gc/base", "latest", B1.bytes, B1.mediaType);

    const M1 = image([layer()]);
    const M2 = image([layer(), layer()]);
    const M3 = image([layer()]);
    const I = index([M1, M2]);
    const U = index([M3]);
    for (const child of [M1, M2, M3]) await push(client, "gc/multi", child);
    await push(client, "gc/multi", I, "1.0");
    await push(client, "gc/multi", U);

    const C1 = image([layer(), sharedLayer]);
    await push(client, "gc/gone", C1, "old");
    const deleted = await client.send(`/v2/gc/gone/manifests/${C1.digest}`, { method: "DELETE" });
    assert.equal(deleted.status, 202, "DELETE manifest by digest");
    const orphanBytes = layer();
    const orphan = await client.pushBlob("gc/gone", orphanBytes);

    const sizes = new Map<string, number>();
    for (const m of [A1, A2, A3, A4, R1, R2, R3, B1, M1, M2, M3, I, U, C1]) {
      sizes.set(m.digest, m.bytes.length);
      for (const [digest, bytes] of m.contents) sizes.set(digest, bytes.length);
    }
    sizes.set(orphan, orphanBytes.length);
    const facts: GcTreeFacts = {
      shared,
      app: { A1, A2, A3, A4, R1, R2, R3 },
      base: { B1 },
      multi: { I, M1, M2, U, M3 },
      gone: { C1, orphan },
      sizes,
    };
    assert.deepEqual(await blobsOnDisk(root), new Set(sizes.keys()), "the tree holds exactly the blobs pushed");
    return { root, facts, cleanup: () => rm(work, { recursive: true, force: true }) };
  } finally {
    await berth.stop();
  }
}

/** Every digest with a `data` file under blobs/. */
export async function blobsOnDisk(root: string): Promise<Set<string>> {
  const found = new Set<string>();
  const blobs = join(registryTree(root), "blobs");
  for (const algorithm of await readdir(blobs).catch(() => [] as string[])) {
    for (const prefix of await readdir(join(blobs, algorithm))) {
      for (const hex of await readdir(join(blobs, algorithm, prefix))) {
        const files = await readdir(join(blobs, algorithm, prefix, hex));
        if (files.includes("data")) found.add(`${algorithm}:${hex}`);
      }
    }
  }
  return found;
}

/** Digests with a link under `<repo>/<kind>/` (`_layers` or `_manifests/revisions`). */
export async function linksOnDisk(root: string, repo: string, kind: "_layers" | "_manifests/revisions"): Promise<Set<string>> {
  const found = new Set<string>();
  const dir = join(registryTree(root), "repositories", repo, kind);
  for (const algorithm of await readdir(dir).catch(() => [] as string[])) {
    for (const hex of await readdir(join(dir, algorithm))) {
      if ((await readdir(join(dir, algorithm, hex))).includes("link")) found.add(`${algorithm}:${hex}`);
    }
  }
  return found;
}

/** A copy of a storage root, made with `cp -a` as an operator would. */
export async function copyRoot(root: string): Promise<{ root: string; cleanup(): Promise<void> }> {
  const work = await mkdtemp(join(tmpdir(), "berth-gc-copy-"));
  await runOk("cp", ["-a", root, join(work, "data")]);
  return { root: join(work, "data"), cleanup: () => rm(work, { recursive: true, force: true }) };
}

/** Runs `berth garbage-collect <config> …args` against `root` (the real CLI, output piped: not a terminal). */
export async function berthGc(root: string, args: string[] = [], extraYaml = ""): Promise<RunResult> {
  const work = await mkdtemp(join(tmpdir(), "berth-gc-config-"));
  try {
    const config = join(work, "config.yml");
    await writeFile(config, DEFAULT_TEST_CONFIG.replaceAll("{{root}}", root) + extraYaml);
    return await run(process.execPath, [BERTH_CLI, "garbage-collect", config, ...args], { timeoutMs: 60_000 });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Every blob a manifest brings with it, manifest included. */
export function closure(...manifests: BuiltManifest[]): string[] {
  return manifests.flatMap((m) => [m.digest, ...m.blobs]);
}

export { BERTH_CLI };
