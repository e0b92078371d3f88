/**
 * The traced storage driver joins the shared driver suite (test/driver-suite.ts) over the
 * filesystem and inmemory drivers, every call made inside an active span so that each one really
 * records a span: wrapping changes no result, error, stream or capability (appendLog exists
 * exactly when the inner driver has it, writers still copy chunks). Then the spans it recorded:
 * each a child of the active span, none left open.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ROOT_CONTEXT, SpanStatusCode, context, trace, type Context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { InMemoryDriver } from "../src/driver/inmemory-driver.js";
import type { StorageDriver } from "../src/driver/storage-driver.js";
import { TracedDriver } from "../src/tracing/traced-driver.js";
import { createHash } from "node:crypto";
import { createResumableSha256 } from "../src/hash/resumable-sha256.js";
import { nativeFileOps } from "../src/native/durable-file.js";
import { runDriverSuite } from "./driver-suite.js";

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer("test");
const contextManager = new AsyncLocalStorageContextManager();
context.setGlobalContextManager(contextManager.enable());
const request = tracer.startSpan("request");
const inRequest = trace.setSpan(ROOT_CONTEXT, request);

/** `driver` with every method called inside `active`, as the server calls it inside a request's span. */
function calledIn(active: Context, driver: StorageDriver): StorageDriver {
  return new Proxy(driver, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => context.with(active, () => (value as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
}

runDriverSuite(
  "traced filesystem",
  async () => {
    const root = await mkdtemp(join(tmpdir(), "berth-traced-driver-"));
    return { driver: calledIn(inRequest, new TracedDriver(new FilesystemDriver(root), tracer)), cleanup: () => rm(root, { recursive: true, force: true }) };
  },
  { copiesChunks: true, appendLog: true },
);

runDriverSuite("traced inmemory", async () => ({ driver: calledIn(inRequest, new TracedDriver(new InMemoryDriver(), tracer)), cleanup: async () => undefined }));

describe("traced driver: its spans", () => {
  before(() => request.end());
  after(async () => {
    await provider.shutdown();
    contextManager.disable();
  });

  it("appendLog is there exactly when the inner driver has it", () => {
    assert.equal(typeof new TracedDriver(new FilesystemDriver("/nonexistent"), tracer).appendLog, "function");
    assert.equal("appendLog" in new TracedDriver(new InMemoryDriver(), tracer), false);
  });

  it("a traced filesystem writer takes a hash state as the filesystem writer does, and one of the inmemory driver does not", { skip: nativeFileOps?.writeHashed === undefined && process.env.CI !== "true" && "native durable_file addon not built" }, async () => {
    const root = await mkdtemp(join(tmpdir(), "berth-traced-hash-"));
    try {
      const state = createResumableSha256();
      assert.ok(state, "the sha256_state addon is not built");
      const writer = await new TracedDriver(new FilesystemDriver(root), tracer).writer("/upload/data", false);
      assert.equal(writer.hashWhileWriting?.(state.nativeState), true);
      await writer.write(Buffer.from("traced"));
      await writer.commit();
      assert.equal(state.hexDigest(), createHash("sha256").update("traced").digest("hex"));
      const inMemory = await new TracedDriver(new InMemoryDriver(), tracer).writer("/upload/data", false);
      assert.equal(inMemory.hashWhileWriting?.(createResumableSha256()!.nativeState) ?? false, false);
      await inMemory.cancel();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("every call of the suites made a span, a child of the active span, and every span ended", () => {
    const spans = exporter.getFinishedSpans().filter((s) => s.name !== "request");
    const names = new Set(spans.map((s) => s.name));
    for (const name of ["GetContent", "PutContent", "Reader", "Writer", "Stat", "List", "Move", "Delete", "Walk", "AppendLog"]) {
      assert.ok(names.has(name), `a ${name} span`);
    }
    const requestId = request.spanContext().spanId;
    // Walk makes its span active for what `visit` does: those calls are the Walk's children.
    const walks = new Set(spans.filter((s) => s.name === "Walk").map((s) => s.spanContext().spanId));
    for (const span of spans) {
      const parent = span.parentSpanContext?.spanId;
      assert.ok(parent === requestId || (parent !== undefined && walks.has(parent)), `${span.name} is a child of the request or of a Walk`);
    }
    // The suite's appends run outside any span (only the driver's methods are called inside one): none recorded.
    assert.equal(names.has("AppendLog.Append"), false);
    const writers = spans.filter((s) => s.name === "Writer");
    // A writer ends committed, cancelled or closed; one that could not be opened ends failed (an
    // invalid path) or not found (its whileExists file absent, as every not-found span is marked).
    for (const writer of writers) {
      const outcome = writer.attributes["berth.storage.writer.outcome"];
      const unopened = writer.status.code === SpanStatusCode.ERROR || writer.attributes["berth.storage.not_found"] === true;
      assert.ok(["commit", "cancel", "close"].includes(String(outcome)) || (outcome === undefined && unopened), JSON.stringify(writer.attributes));
    }
    assert.ok(writers.some((s) => s.attributes["berth.storage.writer.outcome"] === "commit"));
  });

  it("no span is recorded without an active span (background work)", async () => {
    const before = exporter.getFinishedSpans().length;
    const driver = new TracedDriver(new InMemoryDriver(), tracer);
    await driver.putContent("/background", Buffer.from("x"));
    await driver.getContent("/background");
    assert.equal(exporter.getFinishedSpans().length, before);
  });
});
