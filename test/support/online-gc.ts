import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { utimes } from "node:fs/promises";
import { join } from "node:path";
import { serve, type RunningRegistry } from "../../src/cli/serve.js";
import { parseConfig } from "../../src/config/load-config.js";
import { DEFAULT_GC_MAX_CPU } from "../../src/config/config.js";
import { FilesystemDriver } from "../../src/driver/filesystem-driver.js";
import type { StorageDriver } from "../../src/driver/storage-driver.js";
import type { CollectorStep, GcHooks } from "../../src/gc/online/gc-hooks.js";
import { collectOnline, type OnlineGcSummary } from "../../src/gc/online/online-collector.js";
import { scaledTiming, type GcTiming } from "../../src/gc/online/timing.js";
import { PlainProgress } from "../../src/gc/progress.js";
import { createLogger } from "../../src/log/logger.js";
import { testConfig } from "./berth-process.js";
import { RegistryClient, registryTree } from "./registry-client.js";

/** The protocol in a second and a half: polls every 50-100 ms. */
export const FAST_TIMING: GcTiming = scaledTiming(1500, { idlePollMs: 100 });
export const HOUR_MS = 3_600_000;

const SILENT = { write: () => true } as unknown as NodeJS.WritableStream;

/** A gate per step: `pauseAt` arms it, the hook waits there until `release`. */
export class Pauser implements GcHooks {
  private readonly armed = new Map<string, { reached: () => void; reachedP: Promise<void>; release: () => void; releaseP: Promise<void> }>();

  pauseAt(key: string): void {
    let reached!: () => void;
    let release!: () => void;
    const reachedP = new Promise<void>((r) => (reached = r));
    const releaseP = new Promise<void>((r) => (release = r));
    this.armed.set(key, { reached, reachedP, release, releaseP });
  }

  /** Resolves when the step (or request) `key` is reached. */
  reached(key: string): Promise<void> {
    const gate = this.armed.get(key);
    assert.ok(gate, `${key} is not armed`);
    return gate.reachedP;
  }

  release(key: string): void {
    this.armed.get(key)?.release();
  }

  releaseAll(): void {
    for (const gate of this.armed.values()) gate.release();
  }

  async collector(step: CollectorStep): Promise<void> {
    await this.gate(step);
  }

  async request(_step: "vouched", operation: string, repository: string): Promise<void> {
    await this.gate(`${operation}:${repository}`);
  }

  private async gate(key: string): Promise<void> {
    const gate = this.armed.get(key);
    if (!gate) return;
    gate.reached();
    await gate.releaseP;
  }
}

/** `berth serve` in this process on `root`, with the fast protocol and the pauser's request hooks. */
export async function startNode(root: string, hooks: GcHooks, wrapDriver?: (driver: StorageDriver) => StorageDriver): Promise<RunningRegistry> {
  const { config } = parseConfig(testConfig().replace("{{root}}", root), {}, "gc.yml");
  const log = createLogger({ level: "error", formatter: "json", destination: SILENT });
  return serve(config, [], log, { gc: { timing: FAST_TIMING, hooks }, wrapDriver });
}

/** One online collection over `root` with a one-hour grace period. */
export function collect(root: string, hooks: GcHooks, options: { deleteUntagged?: boolean; dryRun?: boolean } = {}): Promise<OnlineGcSummary> {
  return collectOnline(
    new FilesystemDriver(root),
    { dryRun: options.dryRun ?? false, deleteUntagged: options.deleteUntagged ?? false, graceMs: HOUR_MS, maxCpu: DEFAULT_GC_MAX_CPU, holder: "test-collector", timing: FAST_TIMING, hooks },
    new PlainProgress(SILENT),
  );
}

/** Makes a blob (and its layer link in `repositories`) two hours old: past the grace period. */
export async function age(root: string, digest: string, repositories: string[] = [], what: "blob" | "revision" = "blob"): Promise<void> {
  const tree = registryTree(root);
  const [algorithm, hex] = digest.split(":") as [string, string];
  const then = new Date(Date.now() - 2 * HOUR_MS);
  await utimes(join(tree, "blobs", algorithm, hex.slice(0, 2), hex, "data"), then, then);
  for (const repository of repositories) {
    const dir = what === "blob" ? "_layers" : "_manifests/revisions";
    await utimes(join(tree, "repositories", repository, dir, algorithm, hex, "link"), then, then);
  }
}

/** Asserts the manifest and every blob it names pull, with every digest verified. */
export async function assertPullable(client: RegistryClient, repository: string, reference: string, expected: Buffer): Promise<void> {
  const { response, bytes } = await client.get(`/v2/${repository}/manifests/${reference}`, {
    accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
  });
  assert.equal(response.status, 200, `GET manifest ${repository}:${reference}`);
  assert.deepEqual(bytes, expected, `manifest ${repository}:${reference} bytes`);
  const manifest = JSON.parse(bytes.toString("utf8")) as { config?: { digest: string }; layers?: { digest: string }[] };
  for (const digest of [manifest.config?.digest, ...(manifest.layers ?? []).map((l) => l.digest)]) {
    if (digest === undefined) continue;
    const blob = await client.get(`/v2/${repository}/blobs/${digest}`);
    assert.equal(blob.response.status, 200, `GET blob ${digest} of ${repository}:${reference}`);
    assert.equal(`sha256:${createHash("sha256").update(blob.bytes).digest("hex")}`, digest, `blob ${digest} content`);
  }
}
