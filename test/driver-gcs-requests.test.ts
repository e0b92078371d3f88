/**
 * storage.gcs's `useragent` and `maxconcurrency` (distribution 3), seen from the other end of the
 * socket: the driver pointed (apiendpoint) at a local HTTP server that records each request's
 * User-Agent and how many are open at once, and answers as GCS does for objects that are not there.
 * The Cloud Storage emulator (test/driver-gcs.test.ts) answers too fast to show a limit.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { GcsDriver } from "../src/driver/gcs/gcs-driver.js";
import { PathNotFoundError } from "../src/driver/storage-driver.js";
import { testServiceAccount } from "./support/gcs-emulator.js";

/** How long the server holds each request: long enough for the waiting ones to pile up. */
const HOLD_MS = 60;

describe("storage.gcs useragent and maxconcurrency on the wire", () => {
  let endpoint = "";
  let open = 0;
  let mostOpen = 0;
  const agents: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    open++;
    mostOpen = Math.max(mostOpen, open);
    agents.push(req.headers["user-agent"] ?? "");
    req.resume();
    setTimeout(() => {
      open--;
      // A listing is empty; an object (metadata or media) is not found.
      const listing = /\/o(\?|$)/.test(req.url ?? "");
      res.writeHead(listing ? 200 : 404, { "content-type": "application/json" });
      res.end(listing ? JSON.stringify({ kind: "storage#objects" }) : JSON.stringify({ error: { code: 404, message: "No such object" } }));
    }, HOLD_MS);
  });
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const driver = (maxConcurrency: number, userAgent?: string): GcsDriver =>
    new GcsDriver({ bucket: "registry-bucket", apiEndpoint: endpoint, serviceAccount: testServiceAccount(), rootDirectory: "", chunkSize: 256 * 1024, maxConcurrency, userAgent });

  it("holds at most maxconcurrency requests open at once, and reaches it", async () => {
    mostOpen = 0;
    const gcs = driver(25);
    const results = await Promise.allSettled(Array.from({ length: 60 }, (_, i) => gcs.stat(`/missing/${i}`)));
    for (const result of results) assert.ok(result.status === "rejected" && result.reason instanceof PathNotFoundError, String(result.status === "rejected" ? result.reason : "stat found a missing object"));
    assert.equal(mostOpen, 25);
  });

  it("puts useragent in front of every request's User-Agent, the SDK's and berth's own (media reads)", async () => {
    agents.length = 0;
    const gcs = driver(50, "registry-fleet/7");
    await assert.rejects(gcs.stat("/missing"), PathNotFoundError);
    await assert.rejects(gcs.reader("/missing", 0), PathNotFoundError);
    assert.ok(agents.length >= 3, `requests: ${agents.length}`);
    for (const agent of agents) assert.match(agent, /^registry-fleet\/7( |$)/);
    agents.length = 0;
    await assert.rejects(driver(50).stat("/missing"), PathNotFoundError);
    for (const agent of agents) assert.doesNotMatch(agent, /registry-fleet/);
  });
});
