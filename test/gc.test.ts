import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { run, describeRun, requireProgram } from "./support/external-program.js";

const scriptProgram = requireProgram("script");
import {
  BERTH_CLI,
  REPOSITORIES,
  berthGc,
  blobsOnDisk,
  buildGcTree,
  closure,
  copyRoot,
  linksOnDisk,
  type GcTreeFacts,
} from "./support/gc-tree.js";
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  EMPTY_JSON_DIGEST,
  OCI_INDEX,
  OCI_MANIFEST,
  RegistryClient,
  digestOf,
  registryTree,
  snapshotTree,
  assertTreeUnchanged,
} from "./support/registry-client.js";
import { TerminalProgress, PlainProgress, formatBytes } from "../src/gc/progress.js";
import { LEASE_FRESH_MS } from "../src/gc/registry-lease.js";
import { manifestReferences, UnreadableManifestError } from "../src/gc/manifest-references.js";

const ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(", ");
const READ_ONLY_CONFIG = testConfig({ deleteEnabled: false, storage: "  maintenance:\n    readonly:\n      enabled: true" });

let tree: { root: string; facts: GcTreeFacts; cleanup(): Promise<void> };
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  tree = await buildGcTree();
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await tree?.cleanup();
});

async function freshCopy(): Promise<string> {
  const copy = await copyRoot(tree.root);
  cleanups.push(copy.cleanup);
  return copy.root;
}

/** What default collection deletes: the deleted manifest C1 (not its shared layer) and the orphan. */
function orphans(facts: GcTreeFacts): string[] {
  return [...closure(facts.gone.C1).filter((d) => d !== facts.shared), facts.gone.orphan];
}

/** What --delete-untagged deletes on top: A2, A3 (old v2), R2 (referrer of A2), U and its child M3. */
function untagged(facts: GcTreeFacts): string[] {
  const { A2, A3, R2 } = facts.app;
  return [
    ...closure(A2).filter((d) => d !== facts.shared),
    ...closure(A3),
    ...closure(R2).filter((d) => d !== EMPTY_JSON_DIGEST),
    ...closure(facts.multi.U, facts.multi.M3),
  ];
}

function without(all: Iterable<string>, removed: string[]): Set<string> {
  const gone = new Set(removed);
  return new Set([...all].filter((d) => !gone.has(d)));
}

function bytesOf(facts: GcTreeFacts, digests: string[]): number {
  return digests.reduce((sum, d) => sum + facts.sizes.get(d)!, 0);
}

/** Pulls a manifest (and everything under it) and verifies every digest. Returns the digests fetched. */
async function pullVerified(client: RegistryClient, repo: string, reference: string): Promise<string[]> {
  const { response, bytes } = await client.get(`/v2/${repo}/manifests/${reference}`, { Accept: ACCEPT });
  assert.equal(response.status, 200, `GET ${repo}:${reference}: ${bytes.toString()}`);
  const digest = digestOf(bytes);
  assert.equal(response.headers.get("docker-content-digest"), digest);
  if (reference.includes(":")) assert.equal(digest, reference);
  const manifest = JSON.parse(bytes.toString()) as { manifests?: { digest: string }[]; config?: { digest: string }; layers?: { digest: string }[] };
  const fetched = [digest];
  if (manifest.manifests) {
    for (const child of manifest.manifests) fetched.push(...(await pullVerified(client, repo, child.digest)));
    return fetched;
  }
  for (const blob of [manifest.config!, ...manifest.layers!]) {
    const got = await client.get(`/v2/${repo}/blobs/${blob.digest}`);
    assert.equal(got.response.status, 200, `GET blob ${blob.digest} of ${repo}:${reference}`);
    assert.equal(digestOf(got.bytes), blob.digest, `content of ${blob.digest}`);
    fetched.push(blob.digest);
  }
  return fetched;
}

/** Starts berth on `root` and pulls every tag of every repository, verified. */
async function pullEveryTag(root: string, configYaml?: string): Promise<Set<string>> {
  const berth = await startBerth({ root, configYaml });
  try {
    return await pullEveryTagFrom(berth);
  } finally {
    await berth.stop();
  }
}

async function pullEveryTagFrom(berth: BerthProcess): Promise<Set<string>> {
  const client = new RegistryClient(berth.url);
  const fetched = new Set<string>();
  for (const repo of REPOSITORIES) {
    const { response, body } = await client.getJSON<{ tags: string[] | null }>(`/v2/${repo}/tags/list`);
    assert.equal(response.status, 200);
    for (const tag of body.tags ?? []) for (const d of await pullVerified(client, repo, tag)) fetched.add(d);
  }
  return fetched;
}

function summaryLine(stdout: string, label: string): string {
  const line = stdout.split("\n").find((l) => l.trimStart().startsWith(`${label}:`));
  assert.ok(line, `summary has "${label}":\n${stdout}`);
  return line.slice(line.indexOf(":") + 1).trim();
}

/** The tree without berth's leases (a registry started on it writes one). */
async function snapshotRegistry(root: string) {
  return snapshotTree(registryTree(root));
}

describe("berth garbage-collect", () => {
  it("--dry-run deletes nothing and reports exactly what a real run deletes", async () => {
    const root = await freshCopy();
    const before = await snapshotTree(root);
    const result = await berthGc(root, ["--dry-run"]);
    assert.equal(result.code, 0, describeRun(result));
    await assertTreeUnchanged(before, root);

    const expected = orphans(tree.facts);
    assert.match(result.stdout, /^Garbage collection dry run: nothing was deleted\.\n/);
    assert.equal(summaryLine(result.stdout, "blobs would be deleted"), `${expected.length} (${bytesOf(tree.facts, expected)} bytes, ${formatBytes(bytesOf(tree.facts, expected))})`);
    assert.match(summaryLine(result.stdout, "manifests would be deleted"), /^0 /);
    assert.equal(summaryLine(result.stdout, "layer links would be removed"), "3");
    assert.equal(summaryLine(result.stdout, "repositories scanned"), "4");
    // Revision links: 7 in gc/app, 1 in gc/base, 5 in gc/multi, none left in gc/gone.
    assert.equal(summaryLine(result.stdout, "manifests scanned"), "13");
    const listed = [...result.stderr.matchAll(/^would delete blob (\S+) \((\d+) bytes\)$/gm)].map((m) => m[1]!);
    assert.deepEqual(new Set(listed), new Set(expected));
  });

  it("deletes unreferenced blobs and dangling layer links, keeps every manifest; every tag still pulls", async () => {
    const root = await freshCopy();
    const { facts } = tree;
    const result = await berthGc(root);
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stdout, /^Garbage collection finished\.\n/);

    const expected = without(facts.sizes.keys(), orphans(facts));
    assert.deepEqual(await blobsOnDisk(root), expected);
    assert.equal(summaryLine(result.stdout, "blobs deleted"), `4 (${bytesOf(facts, orphans(facts))} bytes, ${formatBytes(bytesOf(facts, orphans(facts)))})`);
    assert.match(summaryLine(result.stdout, "manifests deleted"), /^0 /);
    assert.equal(summaryLine(result.stdout, "layer links removed"), "3");
    assert.deepEqual(await linksOnDisk(root, "gc/gone", "_layers"), new Set([facts.shared]), "only the shared layer's link, whose blob stays");
    assert.equal((await linksOnDisk(root, "gc/app", "_manifests/revisions")).size, 7, "untagged manifests are kept");

    const pulled = await pullEveryTag(root);
    for (const digest of closure(facts.app.A1, facts.app.A4, facts.base.B1, facts.multi.I, facts.multi.M1, facts.multi.M2)) {
      assert.ok(pulled.has(digest), `pulled ${digest}`);
    }
    const again = await berthGc(root);
    assert.equal(again.code, 0, describeRun(again));
    assert.equal(summaryLine(again.stdout, "blobs deleted"), "0 (0 bytes, 0 B)", "a second run finds nothing");
    assert.deepEqual(await blobsOnDisk(root), expected);
  });

  it("--delete-untagged --dry-run deletes nothing", async () => {
    const root = await freshCopy();
    const before = await snapshotTree(root);
    const result = await berthGc(root, ["--delete-untagged", "--dry-run"]);
    assert.equal(result.code, 0, describeRun(result));
    await assertTreeUnchanged(before, root);
    assert.equal(summaryLine(result.stdout, "manifests would be deleted"), "5");
    const deleted = [...orphans(tree.facts), ...untagged(tree.facts)];
    assert.match(summaryLine(result.stdout, "blobs would be deleted"), new RegExp(`^${deleted.length} \\(${bytesOf(tree.facts, deleted)} bytes`));
  });

  it("--delete-untagged deletes untagged manifests but keeps a tagged index's children and kept manifests' referrers", async () => {
    const root = await freshCopy();
    const { facts } = tree;
    const { A1, A2, A3, A4, R1, R2, R3 } = facts.app;
    const result = await berthGc(root, ["-m"]);
    assert.equal(result.code, 0, describeRun(result));

    const expected = without(facts.sizes.keys(), [...orphans(facts), ...untagged(facts)]);
    assert.deepEqual(await blobsOnDisk(root), expected);
    assert.equal(summaryLine(result.stdout, "manifests deleted"), "5");
    assert.deepEqual(await linksOnDisk(root, "gc/app", "_manifests/revisions"), new Set([A1.digest, A4.digest, R1.digest, R3.digest]));
    assert.deepEqual(
      await linksOnDisk(root, "gc/multi", "_manifests/revisions"),
      new Set([facts.multi.I.digest, facts.multi.M1.digest, facts.multi.M2.digest]),
    );
    // A3 leaves the history of tag v2.
    const app = join(registryTree(root), "repositories", "gc", "app");
    assert.deepEqual(await readdir(join(app, "_manifests/tags/v2/index/sha256")), [A4.digest.slice(7)]);
    // Layer links of deleted blobs go; those of kept blobs (the shared layer, the empty config) stay.
    const appLinks = await linksOnDisk(root, "gc/app", "_layers");
    for (const gone of [...A2.blobs, ...A3.blobs, ...R2.blobs].filter((d) => d !== facts.shared && d !== EMPTY_JSON_DIGEST)) {
      assert.ok(!appLinks.has(gone), `layer link ${gone} removed`);
    }
    assert.ok(appLinks.has(facts.shared) && appLinks.has(EMPTY_JSON_DIGEST));

    const berth = await startBerth({ root });
    try {
      const pulled = await pullEveryTagFrom(berth);
      for (const digest of closure(A1, A4, facts.base.B1, facts.multi.I, facts.multi.M1, facts.multi.M2)) {
        assert.ok(pulled.has(digest), `pulled ${digest}`);
      }
      const client = new RegistryClient(berth.url);
      // Referrers of kept manifests, and their referrers, still pull and are still listed.
      for (const referrer of [R1, R3]) await pullVerified(client, "gc/app", referrer.digest);
      const { body } = await client.getJSON<{ manifests: { digest: string }[] }>(`/v2/gc/app/referrers/${A1.digest}`);
      assert.deepEqual(body.manifests.map((m) => m.digest), [R1.digest]);
      const signatures = await client.getJSON<{ manifests: { digest: string }[] }>(`/v2/gc/app/referrers/${R1.digest}`);
      assert.deepEqual(signatures.body.manifests.map((m) => m.digest), [R3.digest]);
      const orphaned = await client.getJSON<{ manifests: { digest: string }[] }>(`/v2/gc/app/referrers/${A2.digest}`);
      assert.deepEqual(orphaned.body.manifests, [], "R2 went with its subject");
      for (const gone of [A2, A3, R2]) {
        const response = await client.send(`/v2/gc/app/manifests/${gone.digest}`, { headers: { Accept: ACCEPT } });
        assert.equal(response.status, 404, `untagged ${gone.digest} is gone`);
      }
    } finally {
      await berth.stop();
    }
  });

  it("refuses while a writable berth serves the storage, and says how to proceed; a dry run only warns", async () => {
    const root = await freshCopy();
    const berth = await startBerth({ root });
    try {
      const before = await snapshotRegistry(root);
      const result = await berthGc(root);
      assert.equal(result.code, 3, describeRun(result));
      assert.match(result.stderr, /refusing to collect garbage: a registry that writes to this storage is running/);
      assert.match(result.stderr, new RegExp(`pid ${berth.child.pid} on host `));
      assert.match(result.stderr, /storage\.maintenance\.readonly\.enabled: true/);
      assert.equal(result.stdout, "");
      await assertTreeUnchanged(before, registryTree(root));

      const dry = await berthGc(root, ["--dry-run"]);
      assert.equal(dry.code, 0, describeRun(dry));
      assert.match(dry.stderr, /^warning: storage in use \(berth serve, pid \d+ on host /m);
      await assertTreeUnchanged(before, registryTree(root));
    } finally {
      await berth.stop();
    }
    const leases = await readdir(join(root, "berth", "leases"));
    assert.deepEqual(leases, [], "a clean stop removes the lease");
    const afterStop = await berthGc(root);
    assert.equal(afterStop.code, 0, describeRun(afterStop));
  });

  it("runs beside a read-only berth, which keeps serving every tag", async () => {
    const root = await freshCopy();
    const berth = await startBerth({ root, configYaml: READ_ONLY_CONFIG });
    try {
      const [lease] = await readdir(join(root, "berth", "leases"));
      const record = JSON.parse(await readFile(join(root, "berth", "leases", lease!), "utf8")) as Record<string, unknown>;
      assert.equal(record.readOnly, true);
      const result = await berthGc(root);
      assert.equal(result.code, 0, describeRun(result));
      assert.match(result.stderr, /^running beside a read-only registry: berth serve \(read-only\), pid \d+ on host /m);
      assert.deepEqual(await blobsOnDisk(root), without(tree.facts.sizes.keys(), orphans(tree.facts)));
      await pullEveryTagFrom(berth);
    } finally {
      await berth.stop();
    }
  });

  it("serve's lease names the process and is refreshed; a stale lease is ignored and removed, a fresh one from another host refuses", async () => {
    const root = await freshCopy();
    const berth = await startBerth({ root });
    let leaseFile: string;
    try {
      const [lease] = await readdir(join(root, "berth", "leases"));
      leaseFile = join(root, "berth", "leases", lease!);
      const record = JSON.parse(await readFile(leaseFile, "utf8")) as Record<string, unknown>;
      assert.equal(record.pid, berth.child.pid);
      assert.equal(record.readOnly, false);
      assert.equal(typeof record.host, "string");
      assert.ok(Date.now() - Date.parse(record.refreshedAt as string) < LEASE_FRESH_MS);
      assert.ok(!Number.isNaN(Date.parse(record.startedAt as string)));
    } finally {
      await berth.stop("SIGKILL"); // leaves the lease behind, as a crash would
    }
    const leases = join(root, "berth", "leases");
    const stale = { pid: 1, host: "elsewhere", startedAt: "2020-01-01T00:00:00Z", refreshedAt: "2020-01-01T00:00:00Z", readOnly: false };
    await writeFile(leaseFile, JSON.stringify(stale));
    const old = new Date(Date.now() - LEASE_FRESH_MS - 30_000);
    await utimes(leaseFile, old, old);

    const fresh = join(leases, "0123456789abcdef");
    await writeFile(fresh, JSON.stringify({ ...stale, host: "node-b", refreshedAt: new Date().toISOString() }));
    const refused = await berthGc(root);
    assert.equal(refused.code, 3, describeRun(refused));
    assert.match(refused.stderr, /pid 1 on host node-b/);
    assert.doesNotMatch(refused.stderr, /host elsewhere/);

    await rm(fresh);
    const result = await berthGc(root);
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stderr, new RegExp(`^removed stale lease \\(no refresh in ${LEASE_FRESH_MS / 1000} s\\): berth serve, pid 1 on host elsewhere`, "m"));
    assert.deepEqual(await readdir(leases), []);
  });

  it("a collection holds a lease too: a writable berth will not start beside it, nor will a second collection", async () => {
    const root = await freshCopy();
    const leases = join(root, "berth", "leases");
    await mkdir(leases, { recursive: true });
    const now = new Date().toISOString();
    const collecting = { role: "garbage-collect", pid: 7, host: "ops-1", startedAt: now, refreshedAt: now, readOnly: false };
    await writeFile(join(leases, "feedfacefeedface"), JSON.stringify(collecting));

    await assert.rejects(startBerth({ root }), /garbage-collect is running on this storage[\s\S]*garbage-collect, pid 7 on host ops-1/);
    assert.deepEqual(await readdir(leases), ["feedfacefeedface"], "the registry that refused removed its own lease");
    const readOnly = await startBerth({ root, configYaml: READ_ONLY_CONFIG });
    await readOnly.stop();

    const second = await berthGc(root);
    assert.equal(second.code, 3, describeRun(second));
    assert.match(second.stderr, /this storage is in use:\n {2}garbage-collect, pid 7 on host ops-1/);
    assert.match(second.stderr, /wait for the other collection to finish/);
  });

  it("on a terminal it draws a live progress line instead of per-item lines", { skip: scriptProgram.skip }, async () => {
    const root = await freshCopy();
    const work = join(root, "..");
    const config = join(work, "tty.yml");
    await writeFile(config, `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n`);
    const command = [process.execPath, BERTH_CLI, "garbage-collect", config].map((a) => `'${a}'`).join(" ");
    const result = await run(scriptProgram.path!, ["-qec", command, "/dev/null"], { env: { COLUMNS: "200", TERM: "xterm" } });
    assert.equal(result.code, 0, describeRun(result));
    assert.ok(result.stdout.includes("\r\x1b[2K"), "redraws in place");
    assert.match(result.stdout, /mark: 4 repositories scanned, 13 manifests, \d+ blobs marked/);
    assert.match(result.stdout, /Garbage collection finished\./);
    assert.doesNotMatch(result.stdout, /^deleted blob /m, "no per-item lines on a terminal");
    assert.deepEqual(await blobsOnDisk(root), without(tree.facts.sizes.keys(), orphans(tree.facts)));
  });

  it("stops before the sweep when a manifest cannot be parsed, naming it; nothing is deleted", async () => {
    const root = await freshCopy();
    const { A2 } = tree.facts.app;
    const hex = A2.digest.slice(7);
    await writeFile(join(registryTree(root), "blobs", "sha256", hex.slice(0, 2), hex, "data"), "this is not a manifest");
    const before = await snapshotTree(root);

    for (const args of [[], ["--dry-run"], ["--delete-untagged"]]) {
      const result = await berthGc(root, args);
      assert.equal(result.code, 1, describeRun(result));
      assert.match(result.stdout, /^Garbage collection stopped before the sweep: nothing was deleted\.\n/, describeRun(result));
      assert.ok(result.stdout.includes(`  gc/app@${A2.digest}: content is not valid JSON\n`), result.stdout);
      assert.match(result.stderr, new RegExp(`^warning: cannot read manifest gc/app@${A2.digest}: content is not valid JSON$`, "m"));
      await assertTreeUnchanged(before, root);
    }
  });

  it("keeps what corrupt links may name: tag links (the whole repository), revision links, layer links", async () => {
    const root = await freshCopy();
    const { facts } = tree;
    const app = join(registryTree(root), "repositories", "gc", "app");
    await writeFile(join(app, "_manifests/tags/v1/current/link"), "garbage");
    const multi = join(registryTree(root), "repositories", "gc", "multi");
    const { U } = facts.multi;
    await writeFile(join(multi, "_manifests/revisions/sha256", U.digest.slice(7), "link"), "sha256:0000");
    const layerLink = join(registryTree(root), "repositories", "gc", "gone", "_layers", "sha256", facts.gone.orphan.slice(7), "link");
    await writeFile(layerLink, "sha256:not-a-digest");

    const result = await berthGc(root, ["--delete-untagged"]);
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stderr, /^warning: gc\/app: tag link unreadable \(v1\); no manifest of this repository is deleted$/m);
    assert.match(result.stderr, /^warning: gc\/gone: layer link .* is corrupt; kept$/m);
    assert.match(result.stderr, new RegExp(`^warning: gc/multi: revision link .*/${U.digest.slice(7)}/link does not hold ${U.digest}; kept, with what it may name$`, "m"));
    assert.equal((await linksOnDisk(root, "gc/app", "_manifests/revisions")).size, 7);
    assert.equal((await linksOnDisk(root, "gc/multi", "_manifests/revisions")).size, 5);
    assert.equal(await readFile(layerLink, "utf8"), "sha256:not-a-digest");
    assert.match(summaryLine(result.stdout, "warnings"), /^3 /);
    // Only the orphans go: gc/app keeps its untagged manifests, gc/multi the index U and its child M3.
    assert.deepEqual(await blobsOnDisk(root), without(facts.sizes.keys(), orphans(facts)));
  });

  it("a revision link without content is warned about and left; what only it named is collected", async () => {
    const root = await freshCopy();
    const { facts } = tree;
    const { A2 } = facts.app;
    const hex = A2.digest.slice(7);
    await rm(join(registryTree(root), "blobs", "sha256", hex.slice(0, 2), hex), { recursive: true });
    const result = await berthGc(root);
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stderr, new RegExp(`^warning: gc/app: manifest ${A2.digest} has a revision link but no content; link kept$`, "m"));
    assert.ok((await linksOnDisk(root, "gc/app", "_manifests/revisions")).has(A2.digest));
    const lost = [...A2.blobs.filter((d) => d !== facts.shared), A2.digest];
    assert.deepEqual(await blobsOnDisk(root), without(facts.sizes.keys(), [...orphans(facts), ...lost]));
  });

  it("an index child that is no longer a manifest of the repository keeps what it refers to (distribution 2.8 would not)", async () => {
    const root = await freshCopy();
    const { facts } = tree;
    const { I, M1 } = facts.multi;
    await rm(join(registryTree(root), "repositories", "gc", "multi", "_manifests", "revisions", "sha256", M1.digest.slice(7)), { recursive: true });
    const result = await berthGc(root);
    assert.equal(result.code, 0, describeRun(result));
    assert.match(
      result.stderr,
      new RegExp(`^warning: gc/multi: index ${I.digest} names manifest ${M1.digest}, which is not a manifest of the repository; what it refers to is kept$`, "m"),
    );
    assert.deepEqual(await blobsOnDisk(root), without(facts.sizes.keys(), orphans(facts)));
  });

  it("prints plain lines when not on a terminal: the start, one per repository, one per deletion, then the summary on stdout", async () => {
    const root = await freshCopy();
    const result = await berthGc(root);
    assert.equal(result.code, 0, describeRun(result));
    assert.doesNotMatch(result.stderr, /\r|\x1b\[/, "no terminal control sequences");
    const lines = result.stderr.trimEnd().split("\n");
    assert.match(lines[0]!, /^berth garbage-collect: filesystem \S+$/);
    assert.deepEqual(
      lines.filter((l) => l.startsWith("repository ")).map((l) => l.slice(0, l.indexOf(":"))),
      ["repository gc/app", "repository gc/base", "repository gc/gone", "repository gc/multi"],
    );
    assert.match(result.stderr, /^repository gc\/app: 7 manifests, 2 tags, \d+ layer links$/m);
    assert.match(result.stderr, /^marked \d+ blobs in 4 repositories \(13 manifests scanned\)$/m);
    assert.equal(lines.filter((l) => /^deleted blob sha256:[0-9a-f]{64} \(\d+ bytes\)$/.test(l)).length, 4);
    assert.equal(lines.filter((l) => /^removed layer link gc\/gone sha256:[0-9a-f]{64}$/.test(l)).length, 3);
    const known = /^(berth garbage-collect: |repository |marked |deleted blob |removed layer link )/;
    assert.deepEqual(lines.filter((l) => !known.test(l)), [], "every stderr line is one of the documented kinds");
    const stdout = result.stdout.split("\n");
    assert.match(stdout[3]!, /^ {2}blobs marked: \d+$/);
    stdout[3] = "  blobs marked: N";
    assert.deepEqual(stdout, [
      "Garbage collection finished.",
      "  repositories scanned: 4",
      "  manifests scanned: 13",
      "  blobs marked: N",
      `  blobs deleted: 4 (${bytesOf(tree.facts, orphans(tree.facts))} bytes, ${formatBytes(bytesOf(tree.facts, orphans(tree.facts)))})`,
      "  manifests deleted: 0 (untagged manifests are kept without --delete-untagged)",
      "  layer links removed: 3",
      "",
    ]);
  });

  it("removes the hidden leftovers of writes and deletes a kill cut short, whatever their age; a dry run keeps them", async () => {
    const root = await freshCopy();
    const tags = join(registryTree(root), "repositories", "gc", "app", "_manifests", "tags");
    const leftovers = [join(tags, ".v3.tmp-0123456789abcdef"), join(tags, "v1", "current", ".link.tmp-0123456789abcdee")];
    await mkdir(join(leftovers[0]!, "current"), { recursive: true });
    await writeFile(leftovers[1]!, "sha256:");
    const dry = await berthGc(root, ["--dry-run"]);
    assert.equal(dry.code, 0, describeRun(dry));
    assert.deepEqual(await readdir(leftovers[0]!), ["current"], "a dry run removes nothing");
    assert.equal(await readFile(leftovers[1]!, "utf8"), "sha256:");
    const result = await berthGc(root);
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stdout, /^ {2}temporary files removed: 2$/m);
    assert.deepEqual((await readdir(tags)).sort(), ["v1", "v2"]);
    assert.deepEqual(await readdir(join(tags, "v1", "current")), ["link"]);
  });

  it("a storage root that no registry ever served (no leases) collects fine", async () => {
    const root = await freshCopy();
    await rm(join(root, "berth"), { recursive: true, force: true });
    const result = await berthGc(root, ["--dry-run"]);
    assert.equal(result.code, 0, describeRun(result));
  });

  it("usage: --help, unknown flags, too many files, inmemory storage", async () => {
    const help = await run(process.execPath, [BERTH_CLI, "garbage-collect", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--delete-untagged/);
    const top = await run(process.execPath, [BERTH_CLI, "--help"]);
    assert.match(top.stdout, /berth garbage-collect \[config\.yml\] \[--dry-run\] \[--delete-untagged\]/);
    const unknown = await run(process.execPath, [BERTH_CLI, "garbage-collect", "--force"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /--force/);
    const many = await run(process.execPath, [BERTH_CLI, "garbage-collect", "a.yml", "b.yml"]);
    assert.equal(many.code, 2);
    const dir = await freshCopy();
    const config = join(dir, "..", "inmemory.yml");
    await writeFile(config, "version: 0.1\nstorage:\n  inmemory: {}\n");
    const inmemory = await run(process.execPath, [BERTH_CLI, "garbage-collect", config]);
    assert.equal(inmemory.code, 1, describeRun(inmemory));
    assert.match(inmemory.stderr, /inmemory/);
  });
});

describe("garbage-collect progress", () => {
  function fakeStream(columns = 200) {
    const writes: string[] = [];
    return { writes, stream: { isTTY: true, columns, write: (chunk: string) => (writes.push(chunk), true) } as unknown as NodeJS.WritableStream };
  }

  it("on a terminal: one line redrawn in place, warnings above it, cleared at the end", () => {
    const { writes, stream } = fakeStream();
    const progress = new TerminalProgress(stream);
    progress.update({ phase: "mark", repositories: 1, manifests: 3, blobsMarked: 9 });
    assert.equal(writes.at(-1), "\r\x1b[2Kmark: 1 repositories scanned, 3 manifests, 9 blobs marked");
    progress.item("deleted blob sha256:…");
    assert.equal(writes.length, 1, "item lines are not shown on a terminal");
    progress.warn("something odd");
    assert.deepEqual(writes.slice(1), ["\r\x1b[2K", "warning: something odd\n", "\r\x1b[2Kmark: 1 repositories scanned, 3 manifests, 9 blobs marked"]);
    progress.update({ phase: "scan blobs", blobsToDelete: 2, bytesToFree: 3 * 1024 * 1024 });
    assert.equal(writes.at(-1), "\r\x1b[2Kscan blobs: 9 blobs marked, 2 to delete (3.0 MiB to free)");
    progress.update({ phase: "sweep", blobsDeleted: 1, bytesDeleted: 1024 * 1024 });
    assert.equal(writes.at(-1), "\r\x1b[2Ksweep: deleted 1 of 2 blobs (1.0 MiB of 3.0 MiB freed)");
    progress.finish();
    assert.equal(writes.at(-1), "\r\x1b[2K");
    assert.equal(progress.warnings, 1);
  });

  it("on a terminal the line fits the width", () => {
    const { writes, stream } = fakeStream(30);
    new TerminalProgress(stream).update({ phase: "sweep", repositories: 1000 });
    assert.ok(writes.at(-1)!.length <= "\r\x1b[2K".length + 29);
  });

  it("elsewhere: plain lines, no counters", () => {
    const writes: string[] = [];
    const progress = new PlainProgress({ write: (c: string) => (writes.push(c), true) } as unknown as NodeJS.WritableStream);
    progress.update({ repositories: 4 });
    progress.item("deleted blob x");
    progress.warn("odd");
    assert.deepEqual(writes, ["deleted blob x\n", "warning: odd\n"]);
  });

  it("formats sizes for people", () => {
    assert.equal(formatBytes(0), "0 B");
    assert.equal(formatBytes(1023), "1023 B");
    assert.equal(formatBytes(1536), "1.5 KiB");
    assert.equal(formatBytes(5 * 1024 ** 3), "5.0 GiB");
  });
});

describe("manifest references as garbage collection reads them", () => {
  const d = (c: string) => `sha256:${c.repeat(64)}`;

  it("image manifests name config and every layer, foreign ones too; the subject is not a reference", () => {
    const refs = manifestReferences(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: { mediaType: "x", digest: d("a"), size: 1 },
          layers: [
            { mediaType: "x", digest: d("b"), size: 1 },
            { mediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar", digest: d("c"), size: 1, urls: ["http://x"] },
          ],
          subject: { mediaType: OCI_MANIFEST, digest: d("e"), size: 1 },
        }),
      ),
    );
    assert.deepEqual(refs.blobs, [d("a"), d("b"), d("c")]);
    assert.deepEqual(refs.children, []);
    assert.equal(refs.subject?.toString(), d("e"));
  });

  it("indexes name their children; schema 1 its fsLayers; artifact manifests their blobs", () => {
    assert.deepEqual(manifestReferences(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ digest: d("1") }] }))).children, [d("1")]);
    assert.deepEqual(
      manifestReferences(Buffer.from(JSON.stringify({ schemaVersion: 1, name: "x", fsLayers: [{ blobSum: d("2") }, { blobSum: d("3") }] }))).blobs,
      [d("2"), d("3")],
    );
    assert.deepEqual(
      manifestReferences(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.artifact.manifest.v1+json", blobs: [{ digest: d("4") }] }))).blobs,
      [d("4")],
    );
  });

  it("anything it cannot account for is unreadable", () => {
    for (const bad of [
      "not json",
      "[]",
      JSON.stringify({ schemaVersion: 3 }),
      JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.example.unknown+json", layers: [] }),
      JSON.stringify({ schemaVersion: 2, config: { digest: "nope" }, layers: [] }),
      JSON.stringify({ schemaVersion: 2, layers: "x" }),
      JSON.stringify({ schemaVersion: 2 }),
    ]) {
      assert.throws(() => manifestReferences(Buffer.from(bad)), UnreadableManifestError, bad);
    }
  });
});

