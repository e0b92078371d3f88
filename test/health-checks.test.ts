/**
 * The `health` section: distribution's periodic checks (file, http, tcp, storagedriver), the drain
 * (every API request 503 UNAVAILABLE while a check is down), liveness and readiness (outbox write
 * failures, SIGTERM draining), the debug routes, and distribution 2.8 side by side.
 */
import assert from "node:assert/strict";
import { lookup } from "node:dns/promises";
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseConfig } from "../src/config/load-config.js";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { PeriodicCheck } from "../src/health/periodic-check.js";
import { fileProbe, storageDriverProbe } from "../src/health/probes.js";
import { serve } from "../src/cli/serve.js";
import { createLogger } from "../src/log/logger.js";
import { BERTH_CLI, startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { freePort, requireDistribution, startDistribution, type DistributionProcess } from "./support/distribution-process.js";
import { run } from "./support/external-program.js";
import { RegistryClient, expectError, waitFor } from "./support/registry-client.js";

const UNAVAILABLE_DETAIL = "health check failed: please see /debug/health";
const quietLog = createLogger({ level: "error", formatter: "json", destination: { write: () => true } as unknown as NodeJS.WritableStream });

async function statusAndBody(client: RegistryClient, path: string): Promise<{ status: number; body: unknown }> {
  const response = await client.send(path);
  return { status: response.status, body: await response.json() };
}

async function waitForHealth(client: RegistryClient, status: number, path = "/debug/health"): Promise<void> {
  await waitFor(async () => (await client.send(path)).status === status, `${path} to answer ${status}`);
}

describe("health.file", () => {
  let work: string;
  let berth: BerthProcess;
  let client: RegistryClient;
  let drainFile: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-health-"));
    drainFile = join(work, "drain");
    berth = await startBerth({ configYaml: testConfig({ sections: `health:\n  file:\n    - file: ${drainFile}\n      interval: 100ms\n      threshold: 2` }) });
    client = new RegistryClient(berth.url);
  });
  after(async () => {
    await berth?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it("answers 200 {} and serves the API while the file is absent", async () => {
    assert.deepEqual(await statusAndBody(client, "/debug/health"), { status: 200, body: {} });
    assert.deepEqual(await statusAndBody(client, "/debug/health/ready"), { status: 200, body: {} });
    assert.equal((await client.send("/v2/")).status, 200);
  });

  it("once the file exists: /debug/health 503 naming it, every API request 503 UNAVAILABLE, liveness still 200", async () => {
    const digest = await client.pushBlob("team/app", Buffer.from("before the drain"));
    await writeFile(drainFile, "");
    await waitForHealth(client, 503);
    assert.deepEqual(await statusAndBody(client, "/debug/health"), { status: 503, body: { [drainFile]: "file exists" } });
    assert.deepEqual(await statusAndBody(client, "/debug/health/ready"), { status: 503, body: { [drainFile]: "file exists" } });
    assert.deepEqual(await statusAndBody(client, "/debug/health/live"), { status: 200, body: {} });
    const entry = await expectError(await client.send("/v2/"), 503, "UNAVAILABLE");
    assert.equal(entry.message, "service unavailable");
    assert.equal(entry.detail, UNAVAILABLE_DETAIL);
    await expectError(await client.send(`/v2/team/app/blobs/${digest}`), 503, "UNAVAILABLE");
    await expectError(await client.send("/v2/team/app/blobs/uploads/", { method: "POST" }), 503, "UNAVAILABLE");
    assert.equal((await client.send(`/v2/team/app/blobs/${digest}`, { method: "HEAD" })).status, 503);
    assert.ok(berth.log().includes(`health check ${drainFile} is down after 2 consecutive failure(s)`), berth.log());
  });

  it("once the file is removed: 200 again and the API serves", async () => {
    await rm(drainFile);
    await waitForHealth(client, 200);
    assert.deepEqual(await statusAndBody(client, "/debug/health"), { status: 200, body: {} });
    assert.equal((await client.send("/v2/")).status, 200);
  });
});

describe("health.http against a real HTTP server", () => {
  let upstream: Server;
  let answer = 500;
  const seen: IncomingMessage[] = [];
  let berth: BerthProcess;
  let client: RegistryClient;
  let uri: string;
  before(async () => {
    upstream = createServer((req, res) => {
      seen.push(req);
      res.writeHead(answer).end();
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    uri = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/ping`;
    berth = await startBerth({
      configYaml: testConfig({ sections: `health:\n  http:\n    - uri: ${uri}\n      headers:\n        Authorization: [Bearer s3cret]\n      interval: 100ms\n      timeout: 1s` }),
    });
    client = new RegistryClient(berth.url);
  });
  after(async () => {
    await berth?.stop();
    await new Promise((resolve) => upstream.close(resolve));
  });

  it("is down while the server answers 500, with distribution's message, and sends HEAD with the configured headers", async () => {
    await waitForHealth(client, 503);
    assert.deepEqual(await statusAndBody(client, "/debug/health"), { status: 503, body: { [uri]: `${uri}: downstream service returned unexpected status: 500` } });
    await expectError(await client.send("/v2/"), 503, "UNAVAILABLE");
    assert.equal(seen[0]?.method, "HEAD");
    assert.equal(seen[0]?.url, "/ping");
    assert.equal(seen[0]?.headers.authorization, "Bearer s3cret");
  });

  it("is up again once the server answers 200", async () => {
    answer = 200;
    await waitForHealth(client, 200);
    assert.equal((await client.send("/v2/")).status, 200);
  });
});

describe("health.tcp", () => {
  it("is up against a listening port and down, with the refusal, against a closed one", async () => {
    let connections = 0;
    const listening = createTcpServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => listening.listen(0, "127.0.0.1", resolve));
    const open = `127.0.0.1:${(listening.address() as AddressInfo).port}`;
    const closed = `127.0.0.1:${await freePort()}`;
    const berth = await startBerth({
      configYaml: testConfig({ sections: `health:\n  tcp:\n    - addr: ${open}\n      interval: 100ms\n    - addr: ${closed}\n      interval: 100ms\n      timeout: 1s` }),
    });
    try {
      const client = new RegistryClient(berth.url);
      await waitFor(() => connections >= 2, "two checks of the listening port");
      await waitForHealth(client, 503);
      assert.deepEqual(await statusAndBody(client, "/debug/health"), {
        status: 503,
        body: { [closed]: `${closed}: connection failed: connect ECONNREFUSED ${closed}` },
      });
    } finally {
      await berth.stop();
      await new Promise((resolve) => listening.close(resolve));
    }
  });
});

describe("health.storagedriver", () => {
  it("is down while the filesystem root is a symlink loop, named storagedriver_filesystem, and up once the root is back", async () => {
    const berth = await startBerth({ configYaml: testConfig({ sections: "health:\n  storagedriver:\n    enabled: true\n    interval: 100ms\n    threshold: 2" }) });
    const root = berth.root!;
    try {
      const client = new RegistryClient(berth.url);
      const digest = await client.pushBlob("team/app", Buffer.from("stored"));
      await rename(root, `${root}.away`);
      await symlink(root, root);
      await waitForHealth(client, 503);
      assert.deepEqual(await statusAndBody(client, "/debug/health"), { status: 503, body: { storagedriver_filesystem: "stat of the storage root failed: ELOOP" } });
      await expectError(await client.send(`/v2/team/app/blobs/${digest}`), 503, "UNAVAILABLE");
      await rm(root);
      await rename(`${root}.away`, root);
      await waitForHealth(client, 200);
      assert.equal((await client.send(`/v2/team/app/blobs/${digest}`)).status, 200);
    } finally {
      await berth.stop();
    }
  });

  it("without it, readiness still looks at the storage when asked, and nothing drains", async () => {
    const berth = await startBerth();
    const root = berth.root!;
    try {
      const client = new RegistryClient(berth.url);
      await client.pushBlob("team/app", Buffer.from("stored"));
      assert.deepEqual(await statusAndBody(client, "/debug/health/ready"), { status: 200, body: {} });
      await rename(root, `${root}.away`);
      await symlink(root, root);
      // The last answer is reused for a second: wait for a fresh look.
      await waitForHealth(client, 503, "/debug/health/ready");
      assert.deepEqual(await statusAndBody(client, "/debug/health/ready"), { status: 503, body: { storagedriver_filesystem: "stat of the storage root failed: ELOOP" } });
      assert.deepEqual(await statusAndBody(client, "/debug/health"), { status: 200, body: {} }, "no check configured: distribution's view and the API are not drained");
      await rm(root);
      await rename(`${root}.away`, root);
      await waitForHealth(client, 200, "/debug/health/ready");
    } finally {
      await berth.stop();
    }
  });

  it("treats a missing root as healthy (the backend answered; the registry is empty), as distribution", async () => {
    const work = await mkdtemp(join(tmpdir(), "berth-health-"));
    try {
      const probe = storageDriverProbe(new FilesystemDriver(join(work, "not-yet")), quietLog);
      await probe(new AbortController().signal);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe("PeriodicCheck thresholds", () => {
  it("is down only after `threshold` consecutive failures and up at the first success", async () => {
    const work = await mkdtemp(join(tmpdir(), "berth-health-"));
    const file = join(work, "drain");
    let changes = 0;
    const check = new PeriodicCheck(file, fileProbe(file), { intervalMs: 60_000, timeoutMs: 1_000, threshold: 3 }, () => changes++, quietLog);
    try {
      await writeFile(file, "");
      await check.runOnce();
      await check.runOnce();
      assert.equal(check.error, undefined, "two failures of three");
      await check.runOnce();
      assert.equal(check.error, "file exists");
      await rm(file);
      await check.runOnce();
      assert.equal(check.error, undefined);
      await writeFile(file, "");
      await check.runOnce();
      assert.equal(check.error, undefined, "a success starts the count again");
      assert.equal(changes, 2);
    } finally {
      check.stop();
      await rm(work, { recursive: true, force: true });
    }
  });

  it("bounds a look by its timeout, and starts no second look while one hangs", async () => {
    let looks = 0;
    const check = new PeriodicCheck("hang", () => ((looks++, new Promise<void>(() => undefined))), { intervalMs: 60_000, timeoutMs: 50, threshold: 1 }, () => undefined, quietLog);
    // The check's own timers never hold the process: this test holds it while the look hangs.
    const hold = setTimeout(() => undefined, 60_000);
    const first = check.runOnce();
    await check.runOnce();
    assert.equal(looks, 1, "the second look waits for the first");
    await first;
    assert.equal(check.error, "timed out after 50ms");
    check.stop();
    clearTimeout(hold);
  });
});

describe("bad health input at start", () => {
  it("a check naming a host that does not resolve stops berth with the key named", async () => {
    const host = "nowhere.invalid";
    const code = await lookup(host).then(
      () => assert.fail(`${host} resolves here`),
      (err: NodeJS.ErrnoException) => err.code,
    );
    const work = await mkdtemp(join(tmpdir(), "berth-health-"));
    try {
      const file = join(work, "config.yml");
      await writeFile(file, testConfig({ sections: `health:\n  tcp:\n    - addr: 127.0.0.1:6379\n    - addr: ${host}:6379` }).replace("{{root}}", join(work, "data")));
      const result = await run(process.execPath, [BERTH_CLI, "serve", file]);
      assert.equal(result.code, 1);
      assert.equal(result.stderr.trim().split("\n").at(-1), `berth: configuration: health.tcp[1].addr: host "${host}" does not resolve (${code})`);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe("readiness", () => {
  it("fails naming the endpoint while its notification outbox cannot be written, and recovers once it can", async () => {
    const root = await mkdtemp(join(tmpdir(), "berth-health-root-"));
    // Outboxes live under <root>/berth/notifications: a file there refuses every append.
    await mkdir(join(root, "berth"), { recursive: true });
    await writeFile(join(root, "berth", "notifications"), "in the way");
    const berth = await startBerth({
      root,
      cleanup: true,
      configYaml: testConfig({ sections: "notifications:\n  endpoints:\n    - name: hook\n      url: http://127.0.0.1:9/events" }),
    });
    try {
      const client = new RegistryClient(berth.url);
      assert.equal((await client.send("/debug/health/ready")).status, 200, "nothing failed yet");
      const blob = Buffer.from("needs an event");
      const refused = await client.send(`/v2/team/app/blobs/uploads/?digest=sha256:${(await import("node:crypto")).createHash("sha256").update(blob).digest("hex")}`, {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream" },
        body: blob,
      });
      await expectError(refused, 503, "UNAVAILABLE");
      const ready = await statusAndBody(client, "/debug/health/ready");
      assert.equal(ready.status, 503);
      // The filesystem driver reports ENOTDIR under a file as a path not found.
      assert.deepEqual(ready.body, { notifications_hook: "outbox cannot be written: PathNotFoundError" });
      assert.equal((await client.send("/debug/health")).status, 503);
      assert.equal((await client.send("/v2/")).status, 200, "no health check configured: nothing drains the API");
      await rm(join(root, "berth", "notifications"));
      await waitForHealth(client, 200, "/debug/health/ready");
      await client.pushBlob("team/app", blob);
    } finally {
      await berth.stop();
    }
  });

  it("answers 503 draining at once after SIGTERM while an in-flight request finishes on its connection", async () => {
    const berth = await startBerth();
    const client = new RegistryClient(berth.url);
    const { location } = await client.startUpload("team/app");
    const url = new URL(location);
    const socket = connect(Number(url.port), url.hostname);
    const reader = responses(socket);
    await new Promise((resolve) => socket.once("connect", resolve));
    // The PATCH must be in flight before the SIGTERM: a request read in the turn that stops the
    // registry is its connection's last (Connection: close). 100 Continue is written as the server
    // takes the request, so once it is here the SIGTERM is read in a later turn.
    socket.write(`PATCH ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n`);
    assert.match(await reader.next(), /^HTTP\/1\.1 100 Continue\r\n/);
    socket.write("5\r\nhello\r\n");
    const exited = new Promise<number | null>((resolve) => berth.child.once("exit", resolve));
    berth.child.kill("SIGTERM");
    await waitFor(async () => (await fetch(`${berth.url}/v2/`).then(() => false, () => true)), "the listener to close");
    socket.write("0\r\n\r\n");
    const patched = await reader.next();
    assert.match(patched, /^HTTP\/1\.1 202 /, "the in-flight upload finishes");
    socket.write(`GET /debug/health/ready HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
    const ready = await reader.next();
    assert.match(ready, /^HTTP\/1\.1 503 /);
    assert.ok(ready.endsWith(JSON.stringify({ draining: "the registry is stopping: in-flight requests are finishing" })), ready);
    socket.write(`GET /debug/health/live HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
    assert.match(await reader.next(), /^HTTP\/1\.1 200 /, "alive while draining");
    socket.end();
    assert.equal(await exited, 0);
  });
});

/** Reads whole HTTP/1.1 responses (with Content-Length bodies) from a socket, one at a time. */
function responses(socket: Socket): { next(): Promise<string> } {
  let buffered = "";
  const waiting: Array<() => void> = [];
  socket.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    waiting.splice(0).forEach((wake) => wake());
  });
  const take = (): string | undefined => {
    const end = buffered.indexOf("\r\n\r\n");
    if (end < 0) return undefined;
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
    if (buffered.length < end + 4 + length) return undefined;
    const response = buffered.slice(0, end + 4 + length);
    buffered = buffered.slice(end + 4 + length);
    return response;
  };
  return {
    async next() {
      for (;;) {
        const response = take();
        if (response !== undefined) return response;
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
    },
  };
}

describe("the debug listener's health views and /debug/config", () => {
  it("serve /debug/health, /debug/health/live, /debug/health/ready and /debug/config with every secret masked", async () => {
    const work = await mkdtemp(join(tmpdir(), "berth-health-"));
    const drainFile = join(work, "drain");
    const { config } = parseConfig(
      testConfig({
        secret: "hunter2-http-secret",
        http: "  debug:\n    addr: 127.0.0.1:0",
        sections: `health:\n  file:\n    - file: ${drainFile}\n      interval: 50ms\n  http:\n    - uri: http://probe:hunter2-uri@127.0.0.1:9/x\n      headers: { Authorization: [Basic hunter2-header] }\n      interval: 1h`,
      }).replace("{{root}}", join(work, "data")),
      {},
      "debug.yml",
    );
    const running = await serve(config, [], quietLog);
    assert.ok(running.debugUrl !== undefined, "the debug listener is up");
    const client = new RegistryClient(running.debugUrl);
    try {
      assert.deepEqual(await statusAndBody(client, "/debug/health"), { status: 200, body: {} });
      await writeFile(drainFile, "");
      await waitForHealth(client, 503);
      assert.deepEqual(await statusAndBody(client, "/debug/health/ready"), { status: 503, body: { [drainFile]: "file exists" } });
      assert.deepEqual(await statusAndBody(client, "/debug/health/live"), { status: 200, body: {} });
      const shown = await client.send("/debug/config");
      assert.equal(shown.status, 200);
      assert.equal(shown.headers.get("cache-control"), "no-store");
      const text = await shown.text();
      assert.doesNotMatch(text, /hunter2/);
      const described = JSON.parse(text) as { http: { secret: string }; health: { http: Array<{ uri: string; headers: unknown }> } };
      assert.equal(described.http.secret, "********");
      assert.deepEqual(described.health.http[0], { uri: "http://probe:***@127.0.0.1:9/x", headers: { Authorization: "<redacted>" }, statuscode: 200, timeout: "1h0m0s", interval: "1h0m0s", threshold: 1 });
      assert.equal((await new RegistryClient(running.url).send("/debug/config")).status, 404, "never on the public port");
      await rm(drainFile);
      await waitForHealth(client, 200, "/debug/health/ready");
      // An upload in flight keeps the stop waiting; meanwhile the debug listener says it is draining.
      const { location } = await new RegistryClient(running.url).startUpload("team/app");
      const url = new URL(location);
      const socket = connect(Number(url.port), url.hostname);
      const reader = responses(socket);
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.write(`PATCH ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`);
      const closing = running.close();
      assert.deepEqual(await statusAndBody(client, "/debug/health/ready"), {
        status: 503,
        body: { draining: "the registry is stopping: in-flight requests are finishing" },
      });
      socket.write("0\r\n\r\n");
      assert.match(await reader.next(), /^HTTP\/1\.1 202 /, "the in-flight upload finishes");
      socket.end();
      await closing;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe("compatibility with distribution 2.8 (docker-registry)", () => {
  const program = requireDistribution();
  let work: string;
  let drainFile: string;
  let berth: BerthProcess;
  let distribution: DistributionProcess;
  let distributionDebug: RegistryClient;
  before(async () => {
    if (program.skip) return;
    work = await mkdtemp(join(tmpdir(), "berth-health-compat-"));
    drainFile = join(work, "drain");
    const healthYaml = `health:\n  file:\n    - file: ${drainFile}\n      interval: 100ms\n`;
    const debugPort = await freePort();
    distribution = await startDistribution({ root: join(work, "distribution"), extraYaml: healthYaml, env: { REGISTRY_HTTP_DEBUG_ADDR: `127.0.0.1:${debugPort}` } });
    distributionDebug = new RegistryClient(`http://127.0.0.1:${debugPort}`);
    berth = await startBerth({ configYaml: testConfig({ sections: healthYaml.trimEnd() }) });
  });
  after(async () => {
    await berth?.stop();
    await distribution?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("same /debug/health status and body, and the same 503 answer to the API, while the file exists and after", { skip: program.skip }, async () => {
    const berthClient = new RegistryClient(berth.url);
    const distributionClient = new RegistryClient(distribution.url);
    assert.deepEqual(await statusAndBody(berthClient, "/debug/health"), await statusAndBody(distributionDebug, "/debug/health"));

    await writeFile(drainFile, "");
    await waitForHealth(berthClient, 503);
    await waitForHealth(distributionDebug, 503);
    const ours = await statusAndBody(berthClient, "/debug/health");
    assert.deepEqual(ours, await statusAndBody(distributionDebug, "/debug/health"));
    assert.deepEqual(ours, { status: 503, body: { [drainFile]: "file exists" } });

    for (const path of ["/v2/", "/v2/team/app/tags/list", "/v2/team/app/manifests/latest"]) {
      const [theirs, mine] = [await distributionClient.send(path), await berthClient.send(path)];
      assert.equal(mine.status, theirs.status, path);
      assert.equal(mine.headers.get("content-type"), theirs.headers.get("content-type"), path);
      assert.deepEqual(await mine.json(), await theirs.json(), path);
    }

    await rm(drainFile);
    await waitForHealth(berthClient, 200);
    await waitForHealth(distributionDebug, 200);
    assert.deepEqual(await statusAndBody(berthClient, "/debug/health"), await statusAndBody(distributionDebug, "/debug/health"));
    assert.equal((await distributionClient.send("/v2/")).status, (await berthClient.send("/v2/")).status);
  });
});
