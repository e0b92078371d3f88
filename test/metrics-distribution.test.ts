/**
 * berth's Prometheus page beside distribution's (Debian's docker-registry, 2.8): the same requests
 * on both, then every metric name and label set distribution exports for them must be exported by
 * berth too, so dashboards and alerts written for distribution keep working. The exceptions are
 * listed here and in docs/metrics.md.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { freePort, requireDistribution, startDistribution, type DistributionProcess } from "./support/distribution-process.js";
import { debugURL, scrape, type Sample } from "./support/prometheus-text.js";
import { RegistryClient, digestOf, randomBlob, randomImage } from "./support/registry-client.js";

const distribution = requireDistribution();

/** Metrics of distribution's runtime, not of the registry: berth has Node's instead. */
const RUNTIME_PREFIXES = ["go_", "promhttp_"];
/** Go process metrics prom-client does not have. */
const MISSING_PROCESS_METRICS = ["process_virtual_memory_max_bytes"];
/** Label values written differently on purpose (distribution 2.8 → berth, which follows distribution 3). */
const RENAMED_LABEL_VALUES: Record<string, string> = { URLFor: "RedirectURL" };

/** The same requests, as any client would make them: a chunked push, a pull, misses, tags, catalog. */
async function exercise(url: string): Promise<void> {
  const client = new RegistryClient(url);
  const name = "compare/app";
  const image = randomImage({ layers: 1, layerSize: 2000 });
  assert.equal((await client.send("/v2/")).status, 200);
  await client.pushBlob(name, image.config, { chunkSize: 1 << 20 });
  await client.pushBlob(name, image.layers[0]!, { chunkSize: 1000 });
  assert.equal((await client.putManifest(name, "v1", image.bytes, image.mediaType)).status, 201);
  assert.equal((await client.get(`/v2/${name}/manifests/v1`, { Accept: image.mediaType })).response.status, 200);
  assert.equal((await client.send(`/v2/${name}/manifests/v1`, { method: "HEAD", headers: { Accept: image.mediaType } })).status, 200);
  assert.equal((await client.send(`/v2/${name}/blobs/${digestOf(image.layers[0]!)}`)).status, 200);
  assert.equal((await client.send(`/v2/${name}/blobs/${digestOf(image.config)}`, { method: "HEAD" })).status, 200);
  assert.equal((await client.send(`/v2/${name}/blobs/${digestOf(randomBlob(8))}`)).status, 404);
  assert.equal((await client.send(`/v2/${name}/manifests/missing`)).status, 404);
  assert.equal((await client.send(`/v2/${name}/tags/list`)).status, 200);
  assert.equal((await client.send("/v2/_catalog")).status, 200);
}

/** "name{label=value,…}" without `le` and `quantile` (bucket bounds are compared by name). */
function seriesKey(sample: Sample): string {
  const labels = Object.entries(sample.labels)
    .filter(([k]) => k !== "le" && k !== "quantile")
    .map(([k, v]) => `${k}=${RENAMED_LABEL_VALUES[v] ?? v}`)
    .sort();
  return `${sample.name}{${labels.join(",")}}`;
}

describe("Prometheus metrics compared with distribution's", { skip: distribution.skip }, () => {
  let berth: BerthProcess;
  let peer: DistributionProcess;
  let peerRoot: string;
  let berthSamples: Sample[];
  let peerSamples: Sample[];

  before(async () => {
    const debugPort = await freePort();
    peerRoot = await mkdtemp(join(tmpdir(), "berth-metrics-peer-"));
    peer = await startDistribution({
      root: join(peerRoot, "data"),
      extraYaml: `  debug:\n    addr: 127.0.0.1:${debugPort}\n    prometheus:\n      enabled: true\n`,
      env: { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: "inmemory" },
    });
    berth = await startBerth({
      configYaml: testConfig({ storage: "  cache:\n    blobdescriptor: inmemory", http: "  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true" }),
    });
    // startDistribution waited for distribution by probing GET /v2/ once it answered: the same here.
    assert.equal((await fetch(`${berth.url}/v2/`)).status, 200);
    await exercise(peer.url);
    await exercise(berth.url);
    peerSamples = (await scrape(`http://127.0.0.1:${debugPort}/metrics`)).samples;
    berthSamples = (await scrape(`${await debugURL(berth.log)}/metrics`)).samples;
  });
  after(async () => {
    await berth?.stop();
    await peer?.stop();
    if (peerRoot) await rm(peerRoot, { recursive: true, force: true });
  });

  it("exports every series distribution exports for the same requests, with the same labels", () => {
    const ours = new Set(berthSamples.map(seriesKey));
    const theirs = [...new Set(peerSamples.map(seriesKey))].filter((key) => !RUNTIME_PREFIXES.some((p) => key.startsWith(p)) && !MISSING_PROCESS_METRICS.some((m) => key.startsWith(`${m}{`)));
    assert.ok(theirs.some((key) => key.startsWith("registry_http_requests_total{")), "distribution exported HTTP metrics");
    assert.deepEqual(theirs.filter((key) => !ours.has(key)), []);
  });

  it("counts the same requests by handler, code and method", () => {
    const counts = (samples: Sample[]) =>
      Object.fromEntries(samples.filter((s) => s.name === "registry_http_requests_total").map((s) => [seriesKey(s), s.value]));
    assert.deepEqual(counts(berthSamples), counts(peerSamples));
  });

  it("uses the same histogram buckets", () => {
    for (const name of ["registry_http_request_duration_seconds_bucket", "registry_http_request_size_bytes_bucket", "registry_storage_action_seconds_bucket"]) {
      const bounds = (samples: Sample[]) => [...new Set(samples.filter((s) => s.name === name).map((s) => Number(s.labels.le)))].sort((a, b) => a - b);
      assert.deepEqual(bounds(berthSamples), bounds(peerSamples), name);
    }
  });
});
