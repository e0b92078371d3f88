import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BERTH_CLI, startBerth } from "./support/berth-process.js";

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function berth(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BERTH_CLI, ...args], { cwd: options.cwd, env: { ...process.env, ...options.env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("berth command line", () => {
  it("berth --version prints the package version", async () => {
    const result = await berth(["--version"]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^berth \d+\.\d+\.\d+\n$/);
  });

  it("berth --help lists the commands", async () => {
    const result = await berth(["--help"]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /berth serve \[config\.yml\]/);
    assert.match(result.stdout, /berth config check FILE/);
  });

  it("berth serve --help explains the embedded default", async () => {
    const result = await berth(["serve", "--help"]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /\.\/data/);
    assert.match(result.stdout, /5000/);
  });

  it("an unknown command exits 2 with usage", async () => {
    const result = await berth(["launch"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unknown command "launch"/);
  });

  it("an unknown flag exits 2 with usage", async () => {
    const result = await berth(["serve", "--verbose"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /verbose/);
  });

  it("a bad configuration exits 1 naming the key, before listening", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-cli-"));
    try {
      const file = join(dir, "config.yml");
      await writeFile(file, "version: 0.1\nstorage:\n  inmemory: {}\n  delete:\n    enabled: sometimes\nhttp:\n  addr: 127.0.0.1:0\n");
      const result = await berth(["serve", file]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /storage\.delete\.enabled/);
      assert.doesNotMatch(result.stderr, /listening/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a configuration whose htpasswd file does not exist exits 1 naming auth.htpasswd.path, instead of starting open or creating it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-cli-"));
    try {
      const file = join(dir, "config.yml");
      const htpasswd = join(dir, "auth", "htpasswd");
      await writeFile(file, `version: 0.1\nstorage:\n  inmemory: {}\nauth:\n  htpasswd:\n    realm: r\n    path: ${htpasswd}\nhttp:\n  addr: 127.0.0.1:0\n`);
      const result = await berth(["serve", file]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /auth\.htpasswd\.path: .*does not exist; create it with: htpasswd -cB/);
      assert.doesNotMatch(result.stderr, /listening/);
      assert.equal(existsSync(htpasswd), false, "no htpasswd file (and no password in a log) is made up");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("berth serve with no file stores under ./data and listens on :5000, printing both", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-cli-"));
    const child = spawn(process.execPath, [BERTH_CLI, "serve"], { cwd: dir, env: { ...process.env, REGISTRY_LOG_ACCESSLOG_DISABLED: "true" } });
    let log = "";
    child.stderr.on("data", (c: Buffer) => (log += c.toString()));
    try {
      await waitFor(() => /listening on/.test(log) || child.exitCode !== null);
      // Port 5000 may be taken on a developer machine; then berth must say so and exit 1.
      if (child.exitCode !== null) {
        assert.equal(child.exitCode, 1);
        assert.match(log, /EADDRINUSE|cannot listen/);
        return;
      }
      assert.match(log, /:5000/);
      assert.match(log, new RegExp(`${join(dir, "data").replaceAll("/", "\\/")}`));
      const response = await fetch("http://127.0.0.1:5000/v2/");
      assert.equal(response.status, 200);
      const upload = await fetch("http://127.0.0.1:5000/v2/cli/test/blobs/uploads/", { method: "POST" });
      assert.equal(upload.status, 202);
      assert.deepEqual(await readdir(join(dir, "data", "docker", "registry", "v2", "repositories", "cli", "test")), ["_uploads"]);
    } finally {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("exit", resolve));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("stops on SIGTERM with status 0", async () => {
    const registry = await startBerth();
    assert.equal(await registry.stop("SIGTERM"), 0);
  });

  it("berth config check prints the effective configuration with the secret masked", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-cli-"));
    try {
      const file = join(dir, "config.yml");
      await writeFile(file, "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: :5000\n  secret: hunter2\nhealth:\n  storagedriver:\n    enabled: true\n");
      const result = await berth(["config", "check", file]);
      assert.equal(result.code, 0);
      assert.match(result.stdout, /valid/);
      assert.doesNotMatch(result.stdout, /hunter2/);
      assert.match(result.stdout, /"storagedriver": \{\s+"enabled": true,\s+"interval": "10s",\s+"threshold": 1/);
      assert.doesNotMatch(result.stderr, /health/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("upload purging", () => {
  /** A purge every second of what is older than a second. */
  const PURGING_CONFIG = `version: 0.1
log: { level: info, accesslog: { disabled: true } }
storage:
  filesystem: { rootdirectory: "{{root}}" }
  maintenance:
    uploadpurging: { enabled: true, age: 1s, interval: 1s, dryrun: false }
http: { addr: 127.0.0.1:0, secret: s }
`;

  it("removes uploads older than storage.maintenance.uploadpurging.age", async () => {
    const registry = await startBerth({ configYaml: PURGING_CONFIG });
    try {
      const started = await fetch(`${registry.url}/v2/purge/me/blobs/uploads/`, { method: "POST" });
      assert.equal(started.status, 202);
      // Without `_state`: a token older than the purging age is refused on its own (400).
      const location = started.headers.get("location")!.split("?")[0]!;
      assert.equal((await fetch(location)).status, 204);
      await waitFor(async () => (await fetch(location)).status === 404, 10_000);
      const gone = await fetch(location);
      assert.equal(gone.status, 404);
      assert.equal(((await gone.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, "BLOB_UPLOAD_UNKNOWN");
      const uploads = join(registry.root!, "docker/registry/v2/repositories/purge/me/_uploads");
      // The 404 comes as soon as `startedat` is gone; the rest of the directory follows.
      await waitFor(async () => (await readdir(uploads).catch(() => [])).length === 0, 10_000);
      // The log line travels through a pipe and may arrive after the 404.
      await waitFor(() => /purged stale uploads/.test(registry.log()), 10_000);
    } finally {
      await registry.stop();
    }
  });

  it("also removes the hidden leftovers of interrupted writes older than the purging age", async () => {
    const root = await mkdtemp(join(tmpdir(), "berth-purge-temporaries-"));
    const tags = join(root, "docker/registry/v2/repositories/purge/tmp/_manifests/tags");
    await mkdir(join(tags, ".t.tmp-0123456789abcdef", "current"), { recursive: true });
    await writeFile(join(tags, ".u.tmp-0123456789abcdee"), "partial");
    // Older than the age (1 s) by the time the first pass runs (within the 1 s interval).
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const registry = await startBerth({ root, configYaml: PURGING_CONFIG });
    try {
      await waitFor(async () => (await readdir(tags)).length === 0, 10_000);
      await waitFor(() => /removed stale temporary files/.test(registry.log()), 10_000);
    } finally {
      await registry.stop();
      await rm(root, { recursive: true, force: true });
    }
  });
});

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
