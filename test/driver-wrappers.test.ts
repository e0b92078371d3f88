/**
 * The drivers that wrap another (metrics, tracing, redirect middleware) keep what the registry
 * reads off the driver it composed: whether it is remote (content-addressed bytes are then written
 * without asking whether they are there) and the optional capabilities, present exactly when the
 * inner driver has them.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { trace } from "@opentelemetry/api";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { InMemoryDriver } from "../src/driver/inmemory-driver.js";
import { S3Driver } from "../src/driver/s3/s3-driver.js";
import type { StorageDriver } from "../src/driver/storage-driver.js";
import { MeteredDriver, TIMED_ACTIONS, type ActionTimer, type TimedAction } from "../src/metrics/metered-driver.js";
import { RedirectDriver } from "../src/middleware/redirect-driver.js";
import { TracedDriver } from "../src/tracing/traced-driver.js";

const timers = {} as Record<TimedAction, ActionTimer>;
for (const action of TIMED_ACTIONS) timers[action] = { observe: () => undefined };
const wrappers: Array<[string, (inner: StorageDriver) => StorageDriver]> = [
  ["metered", (inner) => new MeteredDriver(inner, timers)],
  ["traced", (inner) => new TracedDriver(inner, trace.getTracer("test"))],
  ["redirect middleware", (inner) => new RedirectDriver(inner, new URL("https://cdn.example.com/base"))],
];

describe("driver wrappers", () => {
  for (const [name, wrap] of wrappers) {
    it(`${name}: remote, appendLog and removeTemporaries as the inner driver has them`, () => {
      // Made, never asked anything: no S3 server is needed.
      const s3 = new S3Driver({ bucket: "b", region: "us-east-1", regionendpoint: "http://127.0.0.1:9", accesskey: "a", secretkey: "s" });
      try {
        const remote = wrap(s3);
        assert.equal(remote.remote, true);
        assert.equal(typeof remote.removeTemporaries, "function");
        assert.equal(remote.appendLog, undefined);
        const local = wrap(new FilesystemDriver("/nonexistent"));
        assert.equal(local.remote, undefined);
        assert.equal(typeof local.appendLog, "function");
        assert.equal(typeof local.removeTemporaries, "function");
        const memory = wrap(new InMemoryDriver());
        assert.equal(memory.remote, undefined);
        assert.equal(memory.removeTemporaries, undefined);
      } finally {
        s3.transport.destroy();
      }
    });
  }
});
