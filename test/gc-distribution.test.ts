/**
 * berth's collector against distribution's own (`docker-registry garbage-collect`, distribution
 * 2.8) on copies of one tree: the same blobs survive without --delete-untagged; with it, berth
 * keeps exactly the documented extra (a tagged index's children, referrers of kept manifests) and
 * distribution breaks the multi-arch image that berth keeps whole.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBerth } from "./support/berth-process.js";
import { describeRun, requireProgram, run, type RunResult } from "./support/external-program.js";
import { berthGc, blobsOnDisk, buildGcTree, closure, copyRoot, linksOnDisk, type GcTreeFacts } from "./support/gc-tree.js";
import { EMPTY_JSON_DIGEST, OCI_INDEX, OCI_MANIFEST, RegistryClient } from "./support/registry-client.js";

const registry = requireProgram("docker-registry");

async function distributionGc(root: string, args: string[] = []): Promise<RunResult> {
  const work = await mkdtemp(join(tmpdir(), "berth-gc-dist-"));
  try {
    const config = join(work, "config.yml");
    await writeFile(config, `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n`);
    const result = await run(registry.path!, ["garbage-collect", ...args, config], { timeoutMs: 120_000 });
    assert.equal(result.code, 0, describeRun(result));
    return result;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** distribution's closing line: "N blobs marked, M blobs and K manifests eligible for deletion". */
function eligible(result: RunResult): { marked: number; blobs: number; manifests: number } {
  const match = /(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion/.exec(result.stdout);
  assert.ok(match, `distribution's summary line:\n${result.stdout}`);
  return { marked: Number(match[1]), blobs: Number(match[2]), manifests: Number(match[3]) };
}

function difference(a: Set<string>, b: Set<string>): Set<string> {
  return new Set([...a].filter((x) => !b.has(x)));
}

describe("garbage collection: berth and distribution 2.8 on the same tree", { skip: registry.skip }, () => {
  let tree: { root: string; facts: GcTreeFacts; cleanup(): Promise<void> };
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    tree = await buildGcTree();
  });

  after(async () => {
    for (const cleanup of cleanups) await cleanup();
    await tree?.cleanup();
  });

  async function twoCopies(): Promise<[string, string]> {
    const a = await copyRoot(tree.root);
    const b = await copyRoot(tree.root);
    cleanups.push(a.cleanup, b.cleanup);
    return [a.root, b.root];
  }

  it("without --delete-untagged both leave the same blobs and manifests", async () => {
    const [byDistribution, byBerth] = await twoCopies();
    const dist = await distributionGc(byDistribution);
    const berth = await berthGc(byBerth);
    assert.equal(berth.code, 0, describeRun(berth));

    assert.equal(eligible(dist).blobs, 4);
    assert.deepEqual(await blobsOnDisk(byBerth), await blobsOnDisk(byDistribution));
    for (const repo of ["gc/app", "gc/base", "gc/multi", "gc/gone"]) {
      assert.deepEqual(
        await linksOnDisk(byBerth, repo, "_manifests/revisions"),
        await linksOnDisk(byDistribution, repo, "_manifests/revisions"),
        `${repo} manifests`,
      );
    }
    // Deliberate difference: distribution 2.8 leaves the layer links of the blobs it deleted;
    // berth removes them (as distribution 3 does), so the repository no longer claims the blob.
    const orphans = [...closure(tree.facts.gone.C1).filter((d) => d !== tree.facts.shared), tree.facts.gone.orphan];
    const gone = orphans.filter((d) => d !== tree.facts.gone.C1.digest); // the manifest was never a layer link
    assert.deepEqual(
      difference(await linksOnDisk(byDistribution, "gc/gone", "_layers"), await linksOnDisk(byBerth, "gc/gone", "_layers")),
      new Set(gone),
    );
  });

  it("each finds nothing left to collect in the tree the other collected", async () => {
    const [byDistribution, byBerth] = await twoCopies();
    await distributionGc(byDistribution);
    const berth = await berthGc(byBerth);
    assert.equal(berth.code, 0, describeRun(berth));

    const distAfterBerth = eligible(await distributionGc(byBerth, ["--dry-run"]));
    assert.deepEqual({ blobs: distAfterBerth.blobs, manifests: distAfterBerth.manifests }, { blobs: 0, manifests: 0 });
    const berthAfterDist = await berthGc(byDistribution, ["--dry-run"]);
    assert.equal(berthAfterDist.code, 0, describeRun(berthAfterDist));
    assert.match(berthAfterDist.stdout, /^ {2}blobs would be deleted: 0 /m);
    // Only the layer links distribution 2.8 leaves behind.
    assert.match(berthAfterDist.stdout, /^ {2}layer links would be removed: 3$/m);
  });

  it("with --delete-untagged berth keeps exactly a tagged index's children and kept manifests' referrers, which distribution deletes", async () => {
    const [byDistribution, byBerth] = await twoCopies();
    const { facts } = tree;
    const { M1, M2, I } = facts.multi;
    const { A1, R1, R3 } = facts.app;
    const dist = await distributionGc(byDistribution, ["--delete-untagged"]);
    const berth = await berthGc(byBerth, ["--delete-untagged"]);
    assert.equal(berth.code, 0, describeRun(berth));

    const distBlobs = await blobsOnDisk(byDistribution);
    const berthBlobs = await blobsOnDisk(byBerth);
    assert.deepEqual(difference(distBlobs, berthBlobs), new Set(), "berth deletes nothing distribution keeps");
    // distribution marks an index's children as blobs but not what they refer to (2.8 does not
    // recurse), and deletes every untagged manifest: the children themselves, and referrers.
    const keptByBerthOnly = new Set([
      ...M1.blobs,
      ...M2.blobs,
      ...closure(R1, R3),
    ]);
    assert.deepEqual(difference(berthBlobs, distBlobs), keptByBerthOnly);
    assert.ok(keptByBerthOnly.has(EMPTY_JSON_DIGEST), "the artifacts' empty config goes with them in distribution");
    assert.equal(eligible(dist).manifests, 9);
    assert.match(berth.stdout, /^ {2}manifests deleted: 5$/m);
    assert.deepEqual(
      difference(await linksOnDisk(byBerth, "gc/multi", "_manifests/revisions"), await linksOnDisk(byDistribution, "gc/multi", "_manifests/revisions")),
      new Set([M1.digest, M2.digest]),
    );

    // What that means to a client: the tagged multi-arch image is broken in distribution's tree.
    const accept = { Accept: [OCI_MANIFEST, OCI_INDEX].join(", ") };
    for (const [root, childStatus, referrerStatus] of [
      [byDistribution, 404, 404],
      [byBerth, 200, 200],
    ] as const) {
      const server = await startBerth({ root });
      try {
        const client = new RegistryClient(server.url);
        assert.equal((await client.send(`/v2/gc/multi/manifests/1.0`, { headers: accept })).status, 200);
        assert.equal((await client.send(`/v2/gc/multi/manifests/${I.digest}`, { headers: accept })).status, 200);
        for (const child of [M1, M2]) {
          assert.equal((await client.send(`/v2/gc/multi/manifests/${child.digest}`, { headers: accept })).status, childStatus);
          const config = child.blobs[0]!;
          assert.equal((await client.send(`/v2/gc/multi/blobs/${config}`)).status, childStatus);
        }
        assert.equal((await client.send(`/v2/gc/app/manifests/${R1.digest}`, { headers: accept })).status, referrerStatus);
        const { body } = await client.getJSON<{ manifests: { digest: string }[] }>(`/v2/gc/app/referrers/${A1.digest}`);
        assert.equal(body.manifests.length, referrerStatus === 200 ? 1 : 0);
      } finally {
        await server.stop();
      }
    }
  });
});
