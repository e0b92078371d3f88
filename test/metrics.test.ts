/**
 * The debug listener (http.debug.addr) and its Prometheus page: distribution's metric names and
 * labels after real pushes and pulls, promtool's check, 404/405, and nothing installed when off.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { requireProgram, run } from "./support/external-program.js";
import { debugURL, scrape, valueOf, type Sample } from "./support/prometheus-text.js";
import { RegistryClient, digestOf, randomBlob, randomImage, uniqueName, waitFor } from "./support/registry-client.js";
import { startEventReceiver, type EventReceiver } from "./support/event-receiver.js";

const promtool = requireProgram("promtool");

function metricsConfig(extraHttp = "", sections = ""): string {
  return testConfig({
    storage: "  cache:\n    blobdescriptor: inmemory",
    http: `  debug:\n    addr: 127.0.0.1:0\n    prometheus:\n      enabled: true\n      repositories: 1${extraHttp}`,
    sections,
  });
}

describe("http.debug.prometheus: GET /metrics on the debug listener", () => {
  let berth: BerthProcess;
  let client: RegistryClient;
  let debug: string;
  const name = uniqueName("metrics");
  const other = uniqueName("other");
  const image = randomImage({ layers: 1, layerSize: 1000 });
  let samples: Sample[];
  let text: string;

  before(async () => {
    berth = await startBerth({ configYaml: metricsConfig() });
    client = new RegistryClient(berth.url);
    debug = (await debugURL(berth.log));
    // The push: two monolithic blob uploads (POST ?digest=, 201) and a manifest PUT (201).
    await client.pushImage(name, "v1", image);
    // A chunked upload: POST (202), PATCH (202), PUT (201), in another repository.
    await client.pushBlob(other, randomBlob(3000), { chunkSize: 2000 });
    // The pull: manifest GET, config and layer GET, one HEAD, one unknown manifest.
    assert.equal((await client.get(`/v2/${name}/manifests/v1`, { Accept: image.mediaType })).response.status, 200);
    for (const blob of [image.config, image.layers[0]!]) {
      assert.equal((await client.send(`/v2/${name}/blobs/${digestOf(blob)}`)).status, 200);
    }
    assert.equal((await client.send(`/v2/${name}/blobs/${digestOf(image.layers[0]!)}`, { method: "HEAD" })).status, 200);
    assert.equal((await client.send(`/v2/${name}/manifests/nope`)).status, 404);
    // The web UI: the page, its script, two JSON answers and a JSON path that is none.
    for (const [path, status] of [["/ui/", 200], ["/ui/ui.js", 200], ["/ui/api/catalog", 200], [`/ui/api/repositories/${name}/tags`, 200], ["/ui/api/nope", 404]] as const) {
      const response = await fetch(`${berth.url}${path}`);
      await response.arrayBuffer();
      assert.equal(response.status, status, path);
    }
    ({ text, samples } = await scrape(`${debug}/metrics`));
  });
  after(async () => {
    await berth?.stop();
  });

  it("counts requests by distribution's handler, code and method", () => {
    const count = (handler: string, code: string, method: string) => valueOf(samples, "registry_http_requests_total", { handler, code, method });
    assert.equal(count("blob_upload", "201", "post"), 2);
    assert.equal(count("blob_upload", "202", "post"), 1);
    assert.equal(count("blob_upload_chunk", "202", "patch"), 2);
    assert.equal(count("blob_upload_chunk", "201", "put"), 1);
    assert.equal(count("manifest", "201", "put"), 1);
    assert.equal(count("manifest", "200", "get"), 1);
    assert.equal(count("manifest", "404", "get"), 1);
    assert.equal(count("blob", "200", "get"), 2);
    assert.equal(count("blob", "200", "head"), 1);
    assert.equal(valueOf(samples, "registry_http_request_duration_seconds_count", { handler: "blob", method: "get" }), 2);
    assert.equal(valueOf(samples, "registry_http_request_duration_seconds_bucket", { handler: "blob", method: "get", le: "60" }), 2);
  });

  it("counts the web UI's requests under handlers of its own, ui and ui_api, and none under distribution's", () => {
    const count = (handler: string, code: string, method: string) => valueOf(samples, "registry_http_requests_total", { handler, code, method });
    assert.equal(count("ui", "200", "get"), 2);
    assert.equal(count("ui_api", "200", "get"), 2);
    assert.equal(count("ui_api", "404", "get"), 1);
    assert.equal(valueOf(samples, "registry_http_request_duration_seconds_count", { handler: "ui_api", method: "get" }), 3);
    assert.equal(valueOf(samples, "registry_http_in_flight_requests", { handler: "ui" }), 0);
    assert.ok(valueOf(samples, "registry_http_response_size_bytes_sum", { handler: "ui" })! > 0);
    // The catalog and tags the UI read are not /v2/ requests: distribution's handlers never saw them.
    assert.equal(count("catalog", "200", "get"), undefined);
    assert.equal(count("tags", "200", "get"), undefined);
    const handlers = new Set(samples.filter((s) => s.name === "registry_http_requests_total").map((s) => s.labels.handler));
    assert.deepEqual([...handlers].sort(), ["blob", "blob_upload", "blob_upload_chunk", "manifest", "ui", "ui_api"]);
  });

  it("has every handler's in-flight gauge, at 0 between requests", () => {
    for (const handler of ["base", "manifest", "tags", "blob", "blob_upload", "blob_upload_chunk", "catalog", "referrers"]) {
      assert.equal(valueOf(samples, "registry_http_in_flight_requests", { handler }), 0, handler);
    }
  });

  it("measures response bodies: the two blobs GET sent", () => {
    const sent = image.config.length + image.layers[0]!.length;
    // blob GET x2 (bodies) and HEAD x1 (no body)
    assert.equal(valueOf(samples, "registry_http_response_size_bytes_sum", { handler: "blob" }), sent);
    assert.equal(valueOf(samples, "registry_http_response_size_bytes_count", { handler: "blob" }), 3);
    assert.ok(valueOf(samples, "registry_http_request_size_bytes_sum", { handler: "manifest" })! > image.bytes.length);
  });

  it("times storage actions as distribution's base driver names them", () => {
    for (const action of ["GetContent", "PutContent", "Stat", "Move"]) {
      assert.ok((valueOf(samples, "registry_storage_action_seconds_count", { driver: "filesystem", action }) ?? 0) > 0, action);
    }
  });

  it("counts blob descriptor cache lookups", () => {
    const request = valueOf(samples, "registry_storage_cache_total", { type: "Request" })!;
    assert.ok(request > 0);
    assert.equal(valueOf(samples, "registry_storage_cache_total", { type: "Hit" })! + valueOf(samples, "registry_storage_cache_total", { type: "Miss" })!, request);
    assert.equal(valueOf(samples, "registry_storage_cache_requests_total"), request);
  });

  it("counts bytes by repository for the first one, the rest as other, and upload durations", () => {
    assert.equal(valueOf(samples, "berth_repository_pushed_bytes_total", { repository: name }), image.config.length + image.layers[0]!.length + image.bytes.length);
    assert.equal(valueOf(samples, "berth_repository_pushed_bytes_total", { repository: "other" }), 3000);
    assert.equal(valueOf(samples, "berth_repository_pulled_bytes_total", { repository: name }), image.bytes.length + image.config.length + image.layers[0]!.length);
    assert.equal(valueOf(samples, "berth_blob_upload_duration_seconds_count"), 1);
  });

  it("has Node's process metrics", () => {
    for (const metric of ["process_resident_memory_bytes", "nodejs_heap_size_used_bytes", "nodejs_eventloop_lag_seconds"]) {
      assert.ok(samples.some((s) => s.name === metric), metric);
    }
    // Off unless http.debug.prometheus.gcdurations asks for it (its observer's cost).
    assert.doesNotMatch(text, /nodejs_gc_duration_seconds/);
  });

  it("passes promtool check metrics", { skip: promtool.skip }, async () => {
    const result = await run(promtool.path!, ["check", "metrics"], { input: text });
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
  });

  it("serves /debug/health, HEAD, and nothing else", async () => {
    const health = await fetch(`${debug}/debug/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), {});
    const head = await fetch(`${debug}/metrics`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.match(head.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    assert.equal((await fetch(`${debug}/metrics`, { method: "POST" })).status, 405);
    assert.equal((await fetch(`${debug}/v2/`)).status, 404);
    assert.equal((await fetch(`${debug}/debug/vars`)).status, 404);
  });

  it("is not on the API's port", async () => {
    assert.equal((await client.send("/metrics")).status, 404);
  });
});

describe("http.debug.addr without prometheus", () => {
  let berth: BerthProcess;
  before(async () => {
    berth = await startBerth({ configYaml: testConfig({ http: "  debug:\n    addr: 127.0.0.1:0" }) });
  });
  after(async () => {
    await berth?.stop();
  });

  it("serves /debug/health but no /metrics", async () => {
    const debug = (await debugURL(berth.log));
    assert.equal((await fetch(`${debug}/debug/health`)).status, 200);
    assert.equal((await fetch(`${debug}/metrics`)).status, 404);
  });
});

describe("http.debug.prometheus.path", () => {
  let berth: BerthProcess;
  before(async () => {
    berth = await startBerth({ configYaml: metricsConfig("\n      path: /internal/prom\n      gcdurations: true") });
  });
  after(async () => {
    await berth?.stop();
  });

  it("serves the page there instead of /metrics", async () => {
    const debug = (await debugURL(berth.log));
    assert.equal((await fetch(`${debug}/internal/prom`)).status, 200);
    assert.equal((await fetch(`${debug}/metrics`)).status, 404);
  });

  it("has the GC histogram with gcdurations: true", async () => {
    const text = await (await fetch(`${await debugURL(berth.log)}/internal/prom`)).text();
    assert.match(text, /# TYPE nodejs_gc_duration_seconds histogram/);
  });
});

describe("notification metrics", () => {
  let receiver: EventReceiver;
  let berth: BerthProcess;
  before(async () => {
    receiver = await startEventReceiver();
    berth = await startBerth({
      configYaml: metricsConfig("", `notifications:\n  endpoints:\n    - name: hook\n      url: ${receiver.url}\n      timeout: 2s\n      backoff: 100ms`),
    });
  });
  after(async () => {
    await berth?.stop();
    await receiver?.close();
  });

  it("shows each endpoint's events, deliveries, statuses and pending count", async () => {
    const client = new RegistryClient(berth.url);
    await client.pushImage(uniqueName("hooked"), "v1");
    const debug = (await debugURL(berth.log));
    let samples: Sample[] = [];
    // Delivery is asynchronous: wait until everything queued was delivered.
    for (let i = 0; i < 200; i++) {
      ({ samples } = await scrape(`${debug}/metrics`));
      const events = valueOf(samples, "registry_notifications_events_total", { type: "Events", endpoint: "hook" }) ?? 0;
      if (events > 0 && valueOf(samples, "registry_notifications_events_total", { type: "Successes", endpoint: "hook" }) === events) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const delivered = receiver.events().length;
    assert.equal(delivered, 3, "two blob pushes and a manifest push");
    assert.equal(valueOf(samples, "registry_notifications_events_total", { type: "Events", endpoint: "hook" }), 3);
    assert.equal(valueOf(samples, "registry_notifications_events_total", { type: "Successes", endpoint: "hook" }), 3);
    assert.equal(valueOf(samples, "registry_notifications_events_total", { type: "Failures", endpoint: "hook" }), 0);
    assert.equal(valueOf(samples, "registry_notifications_events_total", { type: "Dropped", endpoint: "hook" }), 0);
    assert.equal(valueOf(samples, "registry_notifications_pending_total", { endpoint: "hook" }), 0);
    assert.ok((valueOf(samples, "registry_notifications_status_total", { code: "200 OK", endpoint: "hook" }) ?? 0) >= 1);
  });

  it("counts pending events while the endpoint refuses them, and the last error", async () => {
    receiver.respondWith({ status: 503 });
    const client = new RegistryClient(berth.url);
    await client.pushBlob(uniqueName("refused"), randomBlob(10));
    const debug = (await debugURL(berth.log));
    let samples: Sample[] = [];
    for (let i = 0; i < 200; i++) {
      ({ samples } = await scrape(`${debug}/metrics`));
      if ((valueOf(samples, "registry_notifications_events_total", { type: "Failures", endpoint: "hook" }) ?? 0) > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(valueOf(samples, "registry_notifications_pending_total", { endpoint: "hook" }), 1);
    assert.ok((valueOf(samples, "registry_notifications_status_total", { code: "503 Service Unavailable", endpoint: "hook" }) ?? 0) >= 1);
    assert.ok(samples.some((s) => s.name === "berth_notifications_last_error_timestamp_seconds" && s.labels.endpoint === "hook"));
  });

  it("passes promtool check metrics but for distribution 3's own registry_notifications_pending_total name", { skip: promtool.skip }, async () => {
    const { text } = await scrape(`${(await debugURL(berth.log))}/metrics`);
    const result = await run(promtool.path!, ["check", "metrics"], { input: text });
    assert.deepEqual(
      result.stderr.trim().split("\n").concat(result.stdout.trim() === "" ? [] : result.stdout.trim().split("\n")),
      ['registry_notifications_pending_total non-counter metrics should not have "_total" suffix'],
    );
  });
});


describe("metrics under --workers 2", () => {
  let berth: BerthProcess;
  before(async () => {
    berth = await startBerth({ args: ["--workers", "2"], configYaml: metricsConfig() });
  });
  after(async () => {
    assert.equal(await berth?.stop(), 0);
  });

  it("the primary serves every worker's requests summed, and asks each worker for /debug/health", async () => {
    const debug = await debugURL(berth.log);
    await waitFor(() => (berth.log().match(/berth listening on/g) ?? []).length >= 2, "both workers listening");
    const requests = 20;
    // A fresh connection each, so the primary hands them to the workers in turn.
    for (let i = 0; i < requests; i++) {
      const response = await fetch(`${berth.url}/v2/`, { headers: { Connection: "close" } });
      assert.equal(response.status, 200);
    }
    const { samples } = await scrape(`${debug}/metrics`);
    assert.equal(valueOf(samples, "registry_http_requests_total", { handler: "base", code: "200", method: "get" }), requests);
    const health = await fetch(`${debug}/debug/health`);
    assert.equal(health.status, 200);
    const body = (await health.json()) as Record<string, unknown>;
    assert.deepEqual(Object.values(body), [{}, {}]);
    assert.deepEqual(Object.keys(body).sort(), ["worker 1", "worker 2"]);
    assert.equal((await fetch(`${debug}/nothing`)).status, 404);
  });
});

describe("docs/grafana-dashboard.json", () => {
  let berth: BerthProcess;
  before(async () => {
    berth = await startBerth({ configYaml: metricsConfig() });
    await new RegistryClient(berth.url).pushImage(uniqueName("dash"), "v1");
  });
  after(async () => {
    await berth?.stop();
  });

  it("is JSON whose every metric is on the page", async () => {
    const dashboard = JSON.parse(await readFile(new URL("../../docs/grafana-dashboard.json", import.meta.url), "utf8")) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    const { text } = await scrape(`${await debugURL(berth.log)}/metrics`);
    const families = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    const used = dashboard.panels.flatMap((panel) => panel.targets.flatMap((target) => [...target.expr.matchAll(/\b(?:registry|berth|process|nodejs)_[a-z0-9_]+/g)].map((m) => m[0])));
    assert.ok(used.length >= 10);
    for (const metric of used) assert.ok(families.has(metric.replace(/_(bucket|sum|count)$/, "")), `${metric} is not on the page`);
  });
});
