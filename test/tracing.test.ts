/**
 * OpenTelemetry tracing, end to end: berth started as a user starts it, with the standard OTEL_*
 * variables pointing at an OTLP/HTTP receiver (test/support/otlp-receiver.ts), real pushes and
 * pulls, and the span tree that arrives there. Also: a pull-through cache whose upstream (another
 * traced berth) joins the mirror's trace through the traceparent it was sent, the Redis cache's
 * spans, what a registry without OTEL_* loads (nothing of OpenTelemetry), and the exact error
 * for each OTEL_* value berth refuses.
 *
 * Every process is started here and stopped by its PID. Without redis-server the Redis test skips
 * (CI=true: it fails).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ConfigError } from "../src/config/config.js";
import { readTracingSettings } from "../src/tracing/tracing-settings.js";
import { BERTH_CLI, startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { describeRun, run } from "./support/external-program.js";
import { moduleLogNodeOptions } from "./support/module-log.js";
import {
  SPAN_KIND_CLIENT,
  SPAN_KIND_INTERNAL,
  SPAN_KIND_SERVER,
  STATUS_UNSET,
  startOtlpReceiver,
  type OtlpReceiver,
  type ReceivedSpan,
} from "./support/otlp-receiver.js";
import { requireRedis, startRedis, type RedisServer } from "./support/redis-server.js";
import { RegistryClient, expectError, randomBlob, randomImage, uniqueName } from "./support/registry-client.js";

const REPOSITORY = "berth.repository.name";
/** How far apart two spans' clocks may be (see the storage span test). */
const CLOCK_SLACK_NS = 1_000_000n;
const STORAGE_DRIVER = "io.cncf.distribution.storage.driver.name";
const STORAGE_PATH = "io.cncf.distribution.storage.path";

/** Every OTEL_* variable berth reads, emptied (the specification's "unset"), so the test runner's own never leak in. */
const NO_OTEL: Record<string, string> = Object.fromEntries(
  [
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_PROPAGATORS",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
  ].map((key) => [key, ""]),
);

/** Tracing to `receiver` over OTLP/HTTP JSON, exported every 50 ms. */
function tracingEnv(receiver: OtlpReceiver, service: string): Record<string, string> {
  return {
    ...NO_OTEL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_BSP_SCHEDULE_DELAY: "50",
    OTEL_SERVICE_NAME: service,
  };
}

const isServer = (span: ReceivedSpan): boolean => span.kind === SPAN_KIND_SERVER;
const isStorage = (span: ReceivedSpan): boolean => typeof span.attributes[STORAGE_DRIVER] === "string";

/** The server spans of `service` for `repository`, once there are `count` of them. */
function serverSpans(receiver: OtlpReceiver, service: string, repository: string, count: number): Promise<ReceivedSpan[]> {
  return receiver.waitFor((s) => s.service === service && isServer(s) && s.attributes[REPOSITORY] === repository, (spans) => spans.length >= count, `${count} server spans of ${repository}`);
}

/** The direct children of `parent`, once `ready` holds for them. */
function childrenOf(receiver: OtlpReceiver, parent: ReceivedSpan, ready: (spans: ReceivedSpan[]) => boolean, what: string): Promise<ReceivedSpan[]> {
  return receiver.waitFor((s) => s.traceId === parent.traceId && s.parentSpanId === parent.spanId, ready, what);
}

function summary(span: ReceivedSpan): string {
  return `${span.name} ${span.attributes["http.response.status_code"] ?? ""}`.trim();
}

describe("tracing: spans of a push and a pull, exported over OTLP/HTTP", () => {
  let receiver: OtlpReceiver;
  let berth: BerthProcess;
  let client: RegistryClient;

  before(async () => {
    receiver = await startOtlpReceiver();
    berth = await startBerth({ env: tracingEnv(receiver, "berth-test") });
    client = new RegistryClient(berth.url);
  });
  after(async () => {
    await berth?.stop();
    await receiver?.close();
  });

  it("a push: one server span per request, named by method and route template, with its status code", async () => {
    const name = uniqueName();
    await client.pushImage(name, "v1", randomImage({ layers: 1 }));
    const spans = await serverSpans(receiver, "berth-test", name, 3);
    assert.deepEqual(spans.map(summary).sort(), ["POST /v2/{name}/blobs/uploads/ 201", "POST /v2/{name}/blobs/uploads/ 201", "PUT /v2/{name}/manifests/{reference} 201"]);
    for (const span of spans) {
      assert.equal(span.parentSpanId, "", "a request without trace context starts a trace");
      assert.equal(span.status.code, STATUS_UNSET);
      assert.equal(span.scope, "berth");
    }
    const put = spans.find((s) => s.name.startsWith("PUT"))!;
    assert.equal(put.attributes["http.request.method"], "PUT");
    assert.equal(put.attributes["http.route"], "/v2/{name}/manifests/{reference}");
    assert.equal(put.attributes["url.path"], `/v2/${name}/manifests/v1`);
    assert.equal(put.attributes["url.scheme"], "http");
    assert.equal(new Set(spans.map((s) => s.traceId)).size, 3, "each request is its own trace");
  });

  it("a chunked upload: POST, PATCH and PUT of the upload session each have their span", async () => {
    const name = uniqueName();
    await client.pushBlob(name, randomBlob(10), { chunkSize: 5 });
    const spans = await serverSpans(receiver, "berth-test", name, 4);
    assert.deepEqual(spans.map(summary).sort(), [
      "PATCH /v2/{name}/blobs/uploads/{uuid} 202",
      "PATCH /v2/{name}/blobs/uploads/{uuid} 202",
      "POST /v2/{name}/blobs/uploads/ 202",
      "PUT /v2/{name}/blobs/uploads/{uuid} 201",
    ]);
  });

  it("storage spans are children of the request span that made them, named as distribution names them", async () => {
    const name = uniqueName();
    const image = randomImage({ layers: 1 });
    await client.pushImage(name, "v1", image);
    const [put] = await serverSpans(receiver, "berth-test", name, 3).then((spans) => spans.filter((s) => s.name.startsWith("PUT")));
    assert.ok(put);
    const tagLink = `/docker/registry/v2/repositories/${name}/_manifests/tags/v1/current/link`;
    const children = await childrenOf(receiver, put, (spans) => spans.some((s) => s.attributes[STORAGE_PATH] === tagLink), "the tag link's PutContent");
    for (const child of children) {
      assert.ok(isStorage(child), `${child.name} is a storage span`);
      assert.equal(child.kind, SPAN_KIND_INTERNAL);
      assert.equal(child.attributes[STORAGE_DRIVER], "filesystem");
      // The SDK starts each span at Date.now(), whole milliseconds (its end is that plus a
      // performance.now() duration), so two spans' clocks may disagree by up to 1 ms.
      assert.ok(child.startNs >= put.startNs - CLOCK_SLACK_NS && child.endNs <= put.endNs + CLOCK_SLACK_NS, `${child.name} [${child.startNs}, ${child.endNs}] lies within the request [${put.startNs}, ${put.endNs}]`);
    }
    const link = children.find((s) => s.attributes[STORAGE_PATH] === tagLink)!;
    assert.equal(link.name, "PutContent");
    assert.equal(link.attributes["io.cncf.distribution.storage.content.length"], 71);
    const revision = image.digest.slice("sha256:".length);
    assert.ok(children.some((s) => s.name === "PutContent" && s.attributes[STORAGE_PATH] === `/docker/registry/v2/blobs/sha256/${revision.slice(0, 2)}/${revision}/data`), "the manifest's bytes");

    // The blob POST: a Writer span that lasts until the upload was committed, then the move into place.
    const posts = (await serverSpans(receiver, "berth-test", name, 3)).filter((s) => s.name.startsWith("POST"));
    const layer = image.layers[0]!;
    for (const post of posts) {
      const steps = await childrenOf(receiver, post, (spans) => spans.some((s) => s.name === "Move"), "the upload's Move");
      const writer = steps.find((s) => s.name === "Writer");
      assert.ok(writer, `a Writer span under ${post.name}: ${steps.map((s) => s.name).join(", ")}`);
      assert.equal(writer.attributes["berth.storage.writer.outcome"], "commit");
      assert.ok(writer.attributes["berth.storage.size"] === layer.length || writer.attributes["berth.storage.size"] === image.config.length);
    }
  });

  it("a blob GET: the Reader span belongs to the request and has ended once the blob was sent", async () => {
    const name = uniqueName();
    const blob = randomBlob(4096);
    const digest = await client.pushBlob(name, blob);
    const { response, bytes } = await client.get(`/v2/${name}/blobs/${digest}`);
    assert.equal(response.status, 200);
    assert.deepEqual(bytes, blob);
    const [get] = (await serverSpans(receiver, "berth-test", name, 2)).filter((s) => s.name === "GET /v2/{name}/blobs/{digest}");
    assert.ok(get);
    assert.equal(get.attributes["http.response.status_code"], 200);
    const [reader] = await childrenOf(receiver, get, (spans) => spans.some((s) => s.name === "Reader"), "the Reader span").then((spans) => spans.filter((s) => s.name === "Reader"));
    assert.ok(reader);
    assert.equal(reader.attributes["io.cncf.distribution.storage.offset"], 0);
    assert.match(String(reader.attributes[STORAGE_PATH]), new RegExp(`/blobs/sha256/../${digest.slice(7)}/data$`));
    assert.ok(reader.endNs >= reader.startNs);
  });

  it("a client's traceparent and tracestate are honoured: the request span joins its trace", async () => {
    const name = uniqueName();
    await client.pushImage(name, "v1", randomImage({ layers: 1 }));
    const traceId = randomBytes(16).toString("hex");
    const parentId = randomBytes(8).toString("hex");
    const response = await client.send(`/v2/${name}/manifests/v1`, {
      headers: { traceparent: `00-${traceId}-${parentId}-01`, tracestate: "vendor=opaque", Accept: "application/vnd.oci.image.manifest.v1+json" },
    });
    assert.equal(response.status, 200);
    const [get] = await receiver.waitFor((s) => isServer(s) && s.traceId === traceId, (spans) => spans.length === 1, "the GET in the caller's trace");
    assert.equal(get!.name, "GET /v2/{name}/manifests/{reference}");
    assert.equal(get!.parentSpanId, parentId);
    assert.equal(get!.traceState, "vendor=opaque");
    assert.equal(get!.attributes[REPOSITORY], name);
    const children = await childrenOf(receiver, get!, (spans) => spans.some((s) => s.name === "GetContent"), "its storage spans");
    assert.ok(children.every((s) => s.traceId === traceId && isStorage(s)));
  });

  it("a sampled-out caller (traceparent flags 00) is not recorded: the default sampler follows the parent", async () => {
    const name = uniqueName();
    const traceId = randomBytes(16).toString("hex");
    await client.send(`/v2/${name}/tags/list`, { headers: { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-00` } });
    // A later request of the same repository is exported; by then the first would have been too.
    await client.send(`/v2/${name}/tags/list`);
    await serverSpans(receiver, "berth-test", name, 1);
    assert.equal(receiver.spans.filter((s) => s.traceId === traceId).length, 0);
  });

  it("an error answer: the span has the status code and berth's error code, and is no server error (4xx)", async () => {
    const name = uniqueName();
    await expectError(await client.send(`/v2/${name}/manifests/missing`), 404, "MANIFEST_UNKNOWN");
    const [span] = await serverSpans(receiver, "berth-test", name, 1);
    assert.equal(span!.attributes["http.response.status_code"], 404);
    assert.equal(span!.attributes["berth.error.code"], "MANIFEST_UNKNOWN");
    assert.equal(span!.status.code, STATUS_UNSET);
  });

  it("the web UI: the page, an asset and each JSON route have a server span named by its route", async () => {
    const name = uniqueName();
    await client.pushImage(name, "v1", randomImage({ layers: 1 }));
    const paths = ["/ui/", "/ui/ui.css", "/ui/api/settings", "/ui/api/catalog?q=x", `/ui/api/repositories/${name}/tags`, `/ui/api/repositories/${name}/configs/sha256:${"0".repeat(64)}`];
    for (const path of paths) await (await fetch(`${berth.url}${path}`)).arrayBuffer();
    const wanted = new Set(paths.map((p) => p.split("?")[0]));
    const spans = await receiver.waitFor((s) => s.service === "berth-test" && isServer(s) && wanted.has(String(s.attributes["url.path"])), (found) => found.length >= paths.length, "the UI's spans");
    const byPath = new Map(spans.map((s) => [s.attributes["url.path"], s]));
    const seen = paths.map((p) => summary(byPath.get(p.split("?")[0]!)!));
    assert.deepEqual(seen, [
      "GET /ui/ 200",
      "GET /ui/ 200",
      "GET /ui/api/settings 200",
      "GET /ui/api/catalog 200",
      "GET /ui/api/repositories/{name}/tags 200",
      "GET /ui/api/repositories/{name}/configs/{digest} 404",
    ]);
    const tags = byPath.get(`/ui/api/repositories/${name}/tags`)!;
    assert.equal(tags.attributes["http.route"], "/ui/api/repositories/{name}/tags");
    assert.equal(tags.kind, SPAN_KIND_SERVER);
    // The storage reads of the tag summaries are children of the UI request's span.
    const children = await childrenOf(receiver, tags, (found) => found.some(isStorage), "a storage span under the tags span");
    assert.ok(children.some(isStorage));
  });

  it("GET /v2/: a route without a repository has no repository attribute", async () => {
    assert.equal((await client.send("/v2/")).status, 200);
    const [base] = await receiver.waitFor((s) => isServer(s) && s.name === "GET /v2/", (spans) => spans.length >= 1, "GET /v2/");
    assert.equal(base!.attributes[REPOSITORY], undefined);
    assert.equal(base!.attributes["http.route"], "/v2/");
  });
});

describe("tracing: the pull-through cache's upstream requests", () => {
  let receiver: OtlpReceiver;
  let upstream: BerthProcess;
  let mirror: BerthProcess;

  before(async () => {
    receiver = await startOtlpReceiver();
    upstream = await startBerth({ env: tracingEnv(receiver, "upstream") });
    mirror = await startBerth({
      configYaml: testConfig({ sections: `proxy:\n  remoteurl: ${upstream.url}` }),
      env: tracingEnv(receiver, "mirror"),
    });
  });
  after(async () => {
    await mirror?.stop();
    await upstream?.stop();
    await receiver?.close();
  });

  it("a proxied pull has a client span per upstream request, and the upstream's request span is its child", async () => {
    const name = uniqueName();
    const image = await new RegistryClient(upstream.url).pushImage(name, "v1", randomImage({ layers: 1 }));
    const traceId = randomBytes(16).toString("hex");
    const response = await new RegistryClient(mirror.url).send(`/v2/${name}/manifests/v1`, {
      headers: { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01`, Accept: image.mediaType },
    });
    assert.equal(response.status, 200);

    const [get] = await receiver.waitFor((s) => s.service === "mirror" && isServer(s) && s.traceId === traceId, (spans) => spans.length === 1, "the mirror's GET");
    const clients = await receiver.waitFor((s) => s.service === "mirror" && s.kind === SPAN_KIND_CLIENT && s.traceId === traceId, (spans) => spans.length >= 1, "the mirror's upstream requests");
    const upstreamServers = await receiver.waitFor(
      (s) => s.service === "upstream" && isServer(s) && s.traceId === traceId,
      (spans) => spans.length >= clients.length,
      "the upstream's request spans in the same trace",
    );
    for (const span of clients) {
      assert.equal(span.parentSpanId, get!.spanId, "the upstream request is a child of the mirror's request");
      assert.match(String(span.attributes["url.full"]), new RegExp(`^${upstream.url}/v2/${name}/manifests/`));
      assert.equal(span.attributes["server.address"], "127.0.0.1");
      assert.equal(span.attributes["http.response.status_code"], 200);
      // The traceparent the mirror sent named this client span: the upstream's span is its child.
      const joined = upstreamServers.filter((s) => s.parentSpanId === span.spanId);
      assert.equal(joined.length, 1, `one upstream request span under ${span.name} ${span.attributes["url.full"]}`);
      assert.equal(joined[0]!.name, `${span.name} /v2/{name}/manifests/{reference}`);
    }
  });
});

const redisProgram = requireRedis();

describe("tracing: the Redis blob descriptor cache", { skip: redisProgram.skip }, () => {
  let receiver: OtlpReceiver;
  let redis: RedisServer;
  let berth: BerthProcess;

  before(async () => {
    receiver = await startOtlpReceiver();
    redis = await startRedis();
    berth = await startBerth({
      configYaml: testConfig({ storage: "  cache:\n    blobdescriptor: redis", sections: `redis:\n  addr: ${redis.addr}\n  db: 3` }),
      env: tracingEnv(receiver, "berth-redis"),
    });
    // The cache connects after the server listens.
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 10_000;
      const check = (): void => {
        if (berth.log().includes("redis blob descriptor cache connected")) resolve();
        else if (Date.now() > deadline) reject(new Error(`redis cache never connected:\n${berth.log()}`));
        else setTimeout(check, 25);
      };
      check();
    });
  });
  after(async () => {
    await berth?.stop();
    await redis?.stop();
    await receiver?.close();
  });

  it("cache gets and sets are client spans of the request that made them", async () => {
    const client = new RegistryClient(berth.url);
    const name = uniqueName();
    const digest = await client.pushBlob(name, randomBlob(32));
    assert.equal((await client.fetch(`/v2/${name}/blobs/${digest}`, { method: "HEAD" })).status, 200);
    const [head] = await receiver.waitFor((s) => isServer(s) && s.attributes[REPOSITORY] === name && s.name === "HEAD /v2/{name}/blobs/{digest}", (spans) => spans.length === 1, "the HEAD");
    const redisSpans = await childrenOf(receiver, head!, (spans) => spans.some((s) => s.attributes["db.system.name"] === "redis"), "the HEAD's redis spans").then((spans) =>
      spans.filter((s) => s.attributes["db.system.name"] === "redis"),
    );
    const get = redisSpans.find((s) => s.name === "redis blob descriptor get");
    assert.ok(get, `a cache get: ${redisSpans.map((s) => s.name).join(", ")}`);
    assert.equal(get.kind, SPAN_KIND_CLIENT);
    assert.equal(get.attributes["db.namespace"], "3");
    assert.equal(get.attributes["db.operation.name"], "MULTI");
    assert.equal(get.attributes["server.port"], redis.port);
    assert.equal(get.attributes[REPOSITORY], name);
    const [post] = await receiver.waitFor((s) => isServer(s) && s.attributes[REPOSITORY] === name && s.name.startsWith("POST"), (spans) => spans.length === 1, "the POST");
    await childrenOf(receiver, post!, (spans) => spans.some((s) => s.name === "redis blob descriptor set"), "the POST's cache set");
  });
});

describe("tracing: off unless configured", () => {
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-tracing-"));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  /** Starts berth with the module log preloaded, pushes an image, stops it; resolves to the module URLs it loaded. */
  async function modulesLoaded(env: Record<string, string>): Promise<string[]> {
    const log = join(work, `modules-${randomBytes(4).toString("hex")}.log`);
    await writeFile(log, "");
    const berth = await startBerth({ env: { ...env, NODE_OPTIONS: moduleLogNodeOptions(), BERTH_TEST_MODULE_LOG: log } });
    try {
      await new RegistryClient(berth.url).pushImage(uniqueName(), "v1", randomImage({ layers: 1 }));
    } finally {
      assert.equal(await berth.stop(), 0, berth.log());
    }
    return (await readFile(log, "utf8")).split("\n").filter((line) => line !== "");
  }

  const openTelemetry = (url: string): boolean => url.includes("/node_modules/@opentelemetry/");
  const tracingModule = (url: string): boolean => /\/dist\/src\/tracing\/(?!tracing-settings\.js)/.test(url);

  it("without OTEL_* variables no OpenTelemetry package and no tracing module is loaded (so no interceptor, no traced driver)", async () => {
    const modules = await modulesLoaded(NO_OTEL);
    assert.ok(modules.some((url) => url.endsWith("/dist/src/cli/serve.js")), "the module log sees berth's modules");
    assert.ok(modules.some((url) => url.endsWith("/dist/src/tracing/tracing-settings.js")), "the settings are read");
    assert.deepEqual(modules.filter(openTelemetry), []);
    assert.deepEqual(modules.filter(tracingModule), []);
  });

  it("with OTEL_TRACES_EXPORTER=console they are (the module log does see them)", async () => {
    const modules = await modulesLoaded({ ...NO_OTEL, OTEL_TRACES_EXPORTER: "console" });
    assert.ok(modules.some(openTelemetry), "the SDK is loaded");
    assert.ok(modules.some((url) => url.endsWith("/dist/src/tracing/traced-driver.js")));
    assert.ok(modules.some((url) => url.endsWith("/dist/src/tracing/request-tracing.js")));
  });

  for (const [label, off] of [
    ["OTEL_SDK_DISABLED=true", { OTEL_SDK_DISABLED: "true" }],
    ["OTEL_TRACES_EXPORTER=none", { OTEL_TRACES_EXPORTER: "none" }],
  ] as const) {
    it(`${label} turns tracing off even with an endpoint set: nothing loaded, nothing sent`, async () => {
      const receiver = await startOtlpReceiver();
      try {
        const modules = await modulesLoaded({ ...NO_OTEL, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "10", ...off });
        assert.deepEqual(modules.filter(openTelemetry), []);
        // berth stopped cleanly above: a tracing berth flushes its spans on the way out.
        assert.equal(receiver.requests.length, 0);
      } finally {
        await receiver.close();
      }
    });
  }

  it("an endpoint alone turns it on, with OTLP over http/protobuf (the default protocol) to <endpoint>/v1/traces", async () => {
    const receiver = await startOtlpReceiver();
    try {
      const berth = await startBerth({ env: { ...NO_OTEL, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "50" } });
      await new RegistryClient(berth.url).send("/v2/");
      // Stopping flushes what is buffered.
      assert.equal(await berth.stop(), 0);
      const traces = receiver.requests.filter((r) => r.path === "/v1/traces");
      assert.ok(traces.length >= 1, "spans were exported");
      assert.ok(traces.every((r) => r.headers["content-type"] === "application/x-protobuf"), JSON.stringify(traces.map((r) => r.headers["content-type"])));
    } finally {
      await receiver.close();
    }
  });
});

describe("tracing: OTEL_* values berth refuses stop it at start, naming the variable", () => {
  const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" };
  const cases: Array<[Record<string, string>, string]> = [
    [{ OTEL_TRACES_EXPORTER: "zipkin" }, 'configuration: OTEL_TRACES_EXPORTER: unsupported exporter "zipkin" (berth supports otlp, console, none)'],
    [{ OTEL_TRACES_EXPORTER: "otlp,none" }, 'configuration: OTEL_TRACES_EXPORTER: "none" cannot be combined with other exporters (got "otlp,none")'],
    [{ ...endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }, 'configuration: OTEL_EXPORTER_OTLP_PROTOCOL: unsupported value "grpc": grpc is not supported: use http/protobuf or http/json'],
    [{ ...endpoint, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/xml" }, 'configuration: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: unsupported value "http/xml": expected one of http/protobuf, http/json'],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "localhost:4318" }, 'configuration: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "localhost:4318" is not an http:// or https:// URL'],
    [{ ...endpoint, OTEL_TRACES_SAMPLER: "jaeger_remote" }, 'configuration: OTEL_TRACES_SAMPLER: unsupported value "jaeger_remote": expected one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio'],
    [{ ...endpoint, OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "2" }, 'configuration: OTEL_TRACES_SAMPLER_ARG: "2" is not a ratio between 0 and 1'],
    [{ ...endpoint, OTEL_PROPAGATORS: "b3" }, 'configuration: OTEL_PROPAGATORS: unsupported propagator "b3" (berth supports tracecontext, baggage, none)'],
    [{ ...endpoint, OTEL_SDK_DISABLED: "yes" }, 'configuration: OTEL_SDK_DISABLED: "yes" is not true or false'],
  ];

  let work: string;
  let configPath: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-tracing-config-"));
    configPath = join(work, "config.yml");
    await writeFile(configPath, testConfig().replaceAll("{{root}}", join(work, "data")));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  for (const [env, message] of cases) {
    it(`${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ")}: exit 1, "${message}"`, async () => {
      const result = await run(process.execPath, [BERTH_CLI, "serve", configPath], { env: { ...NO_OTEL, ...env } });
      assert.equal(result.code, 1, describeRun(result));
      assert.equal(result.stderr, `berth: ${message}\n`, describeRun(result));
    });
  }

  it("--workers 2: the primary refuses a bad value once, instead of each worker failing and being restarted", async () => {
    const result = await run(process.execPath, [BERTH_CLI, "serve", "--workers", "2", configPath], { env: { ...NO_OTEL, OTEL_TRACES_EXPORTER: "jaeger" } });
    assert.equal(result.code, 1, describeRun(result));
    assert.equal(result.stderr, 'berth: configuration: OTEL_TRACES_EXPORTER: unsupported exporter "jaeger" (berth supports otlp, console, none)\n');
  });
});

describe("tracing settings: when tracing is on", () => {
  const on = (env: Record<string, string>) => readTracingSettings(env);

  it("off with no variables, with empty ones, with OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true", () => {
    assert.equal(on({}), undefined);
    assert.equal(on(NO_OTEL), undefined);
    assert.equal(on({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }), undefined);
    assert.equal(on({ OTEL_SDK_DISABLED: "TRUE", OTEL_TRACES_EXPORTER: "otlp" }), undefined);
    // Other OTEL_* alone (a sampler, a service name) do not turn it on.
    assert.equal(on({ OTEL_SERVICE_NAME: "x", OTEL_TRACES_SAMPLER: "always_on" }), undefined);
  });

  it("on with an endpoint (otlp, http/protobuf, parentbased_always_on, W3C trace context and baggage)", () => {
    assert.deepEqual(on({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/v1/traces" }), {
      exporters: ["otlp"],
      protocol: "http/protobuf",
      sampler: "parentbased_always_on",
      samplerRatio: 1,
      propagators: ["tracecontext", "baggage"],
    });
  });

  it("on with OTEL_TRACES_EXPORTER; the traces protocol wins over the general one; ratio samplers take their argument", () => {
    assert.deepEqual(
      on({
        OTEL_TRACES_EXPORTER: "console, otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
        OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG: "0.25",
        OTEL_PROPAGATORS: "tracecontext",
      }),
      { exporters: ["console", "otlp"], protocol: "http/json", sampler: "parentbased_traceidratio", samplerRatio: 0.25, propagators: ["tracecontext"] },
    );
  });

  it("errors are ConfigErrors naming the variable", () => {
    assert.throws(() => on({ OTEL_TRACES_EXPORTER: "jaeger" }), (err: unknown) => err instanceof ConfigError && err.key === "OTEL_TRACES_EXPORTER");
  });
});
