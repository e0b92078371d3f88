/**
 * Online garbage collection under load (docs/garbage-collection.md, "Stress"): several `berth
 * serve` processes on one storage (a filesystem root, or an S3 bucket) collect back to back on
 * their schedule while pushers (some reusing layers through HEAD and cross-repository mounts),
 * taggers and deleters run for a bounded time. Afterwards every acknowledged, not deleted tag must
 * pull with every digest verified, and nothing unreferenced older than the grace period may remain.
 *
 *   npm run stress:gc -- [--seconds 120] [--nodes 2] [--s3]
 *
 * `--s3` starts a throwaway Ceph (scripts/start-ceph.sh); run it under `flock /tmp/ceph.lock` on a
 * machine where others use Ceph too. test/gc-online-stress.test.ts runs a short round.
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { StorageDriver } from "../src/driver/storage-driver.js";
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";
import { mark } from "../src/gc/mark.js";
import { PlainProgress } from "../src/gc/progress.js";
import { walkBlobs } from "../src/gc/storage-scan.js";
import { startBerth, testConfig, type BerthProcess } from "../test/support/berth-process.js";
import { s3DriverConfig, startCephS3, type CephS3 } from "../test/support/ceph-s3.js";
import { OCI_MANIFEST, RegistryClient, randomImage, type ImageParts } from "../test/support/registry-client.js";
import { seededRandom } from "../test/support/seeded-random.js";
import { positiveInt, runIfMain } from "./campaign-cli.js";

export interface GcStressOptions {
  seconds: number;
  nodes: number;
  /** Storage for every node, given a scratch directory: the lines under `storage:`, and a driver on it for the final audit. */
  storage: (work: string) => StressStorage;
  /** Runs on the storage after the audit, before it is removed (test/gc-online-stress.test.ts: distribution's collector). */
  afterwards?: (storage: StressStorage) => Promise<void>;
  graceMs: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface StressStorage {
  yaml: string;
  driver: StorageDriver;
  /** The filesystem root, when the storage is one. */
  root?: string;
}

export interface GcStressFigures {
  nodes: number;
  seconds: number;
  pushesAcknowledged: number;
  /** Pushes refused by the protocol (MANIFEST_BLOB_UNKNOWN for a doomed layer, 503): never acknowledged. */
  pushesRefused: number;
  layersReusedByHead: number;
  layersReusedByMount: number;
  tagsAdded: number;
  tagsDeleted: number;
  collectionsCompleted: number;
  bytesReclaimed: number;
  blobsReclaimed: number;
  imagesVerified: number;
  /** Acknowledged, not deleted tags that did not pull whole. Goal: 0. */
  violations: number;
  /** Unreferenced items older than the grace period left after the final collection. Goal: 0. */
  leftovers: number;
  problems: string[];
}

interface Acknowledged {
  repository: string;
  tag: string;
  image: ImageParts;
}

const REPOSITORIES = ["alpha", "beta", "gamma", "delta"];

export async function runGcStress(options: GcStressOptions): Promise<GcStressFigures> {
  const say = options.log ?? (() => {});
  const random = seededRandom(options.seed ?? 1);
  const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)]!;
  const env = { BERTH_TEST_GC_TIMING: `leaseExpireMs=3000,idlePollMs=300,graceMs=${options.graceMs},intervalMs=200` };
  const work = await mkdtemp(join(tmpdir(), "berth-gc-stress-"));
  const storage = options.storage(work);
  const config = testConfig({
    driver: storage.yaml,
    log: "  level: info\n  formatter: json\n  accesslog:\n    disabled: true",
    storage: "  maintenance:\n    gc:\n      enabled: true\n      deleteuntagged: true",
  });
  const nodes: BerthProcess[] = [];
  const figures: GcStressFigures = {
    nodes: options.nodes,
    seconds: options.seconds,
    pushesAcknowledged: 0,
    pushesRefused: 0,
    layersReusedByHead: 0,
    layersReusedByMount: 0,
    tagsAdded: 0,
    tagsDeleted: 0,
    collectionsCompleted: 0,
    bytesReclaimed: 0,
    blobsReclaimed: 0,
    imagesVerified: 0,
    violations: 0,
    leftovers: 0,
    problems: [],
  };
  try {
    for (let i = 0; i < options.nodes; i++) nodes.push(await startBerth({ configYaml: config, root: join(work, "unused"), env }));
    const clients = nodes.map((node) => new RegistryClient(node.url));
    const client = (): RegistryClient => pick(clients);
    const acknowledged = new Map<string, Acknowledged>();
    const layers: { repository: string; digest: string; bytes: Buffer }[] = [];
    let counter = 0;
    const deadline = Date.now() + options.seconds * 1000;

    const pusher = async (): Promise<void> => {
      while (Date.now() < deadline) {
        const repository = pick(REPOSITORIES);
        const image = randomImage({ layers: 2, layerSize: 2048 });
        // Half the time one layer is an existing one, found through HEAD or mounted from where it was pushed.
        if (layers.length > 0 && random() < 0.5) {
          const reused = pick(layers);
          image.layers[0] = reused.bytes;
          const manifest = image.manifest as { layers: { digest: string; size: number }[] };
          manifest.layers[0] = { ...manifest.layers[0]!, digest: reused.digest, size: reused.bytes.length };
          image.bytes = Buffer.from(JSON.stringify(image.manifest));
          image.digest = `sha256:${createHash("sha256").update(image.bytes).digest("hex")}`;
        }
        const c = client();
        for (const [i, bytes] of [image.config, ...image.layers].entries()) {
          const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
          if ((await c.send(`/v2/${repository}/blobs/${digest}`, { method: "HEAD" })).status === 200) {
            figures.layersReusedByHead++;
            continue;
          }
          const known = layers.find((l) => l.digest === digest && l.repository !== repository);
          if (known && (await c.send(`/v2/${repository}/blobs/uploads/?mount=${digest}&from=${known.repository}`, { method: "POST" })).status === 201) {
            figures.layersReusedByMount++;
            continue;
          }
          const upload = await c.send(`/v2/${repository}/blobs/uploads/?digest=${digest}`, {
            method: "POST",
            headers: { "Content-Type": "application/octet-stream" },
            body: bytes,
          });
          if (upload.status !== 201) break; // 503: a run is deleting this digest; the manifest PUT is refused below
          if (i > 0 && layers.length < 200) layers.push({ repository, digest, bytes });
        }
        const tag = `t${++counter}`;
        const put = await client().putManifest(repository, tag, image.bytes, OCI_MANIFEST);
        if (put.status === 201) {
          figures.pushesAcknowledged++;
          acknowledged.set(`${repository}:${tag}`, { repository, tag, image });
        } else if (put.status === 400 || put.status === 503) {
          figures.pushesRefused++;
        } else {
          figures.problems.push(`PUT ${repository}:${tag} answered ${put.status}`);
        }
      }
    };
    const tagger = async (): Promise<void> => {
      while (Date.now() < deadline) {
        const entry = [...acknowledged.values()][Math.floor(random() * acknowledged.size)];
        if (entry === undefined) {
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        const tag = `r${++counter}`;
        const put = await client().putManifest(entry.repository, tag, entry.image.bytes, OCI_MANIFEST);
        if (put.status === 201) {
          figures.tagsAdded++;
          acknowledged.set(`${entry.repository}:${tag}`, { ...entry, tag });
        }
      }
    };
    const deleter = async (): Promise<void> => {
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 30));
        const entry = [...acknowledged.values()][Math.floor(random() * acknowledged.size)];
        if (entry === undefined || random() < 0.5) continue;
        // Forgotten first: from the moment the DELETE is sent the tag may be gone.
        acknowledged.delete(`${entry.repository}:${entry.tag}`);
        const response = await client().send(`/v2/${entry.repository}/manifests/${entry.tag}`, { method: "DELETE" });
        if (response.status === 202) figures.tagsDeleted++;
      }
    };
    say(`gc-stress: ${options.nodes} nodes, ${options.seconds} s of pushes, tags and deletes while they collect`);
    await Promise.all([pusher(), pusher(), pusher(), tagger(), deleter()]);

    say(`gc-stress: verifying ${acknowledged.size} acknowledged tags`);
    for (const entry of acknowledged.values()) {
      const problem = await verify(client(), entry);
      if (problem === undefined) figures.imagesVerified++;
      else {
        figures.violations++;
        figures.problems.push(problem);
      }
    }

    // Quiet now: wait out the grace period, then for two more runs (runs never overlap, so the second
    // started after the wait: it saw everything older than the grace period), and audit what is left.
    const quietSince = new Date();
    await new Promise((r) => setTimeout(r, options.graceMs + 500));
    const runsSoFar = countRuns(nodes).runs;
    const waitUntil = Date.now() + 300_000;
    while (countRuns(nodes).runs < runsSoFar + 2) {
      if (Date.now() > waitUntil) {
        figures.problems.push("no two collections completed within 5 minutes of the load stopping");
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    figures.leftovers = await leftovers(storage.driver, quietSince, figures.problems);
    await options.afterwards?.(storage);
    Object.assign(figures, countRuns(nodes).figures);
    // Afterwards the tags still pull: the final collection deleted nothing they need.
    for (const entry of acknowledged.values()) {
      const problem = await verify(client(), entry);
      if (problem !== undefined) {
        figures.violations++;
        figures.problems.push(`after the final collection: ${problem}`);
      }
    }
    return figures;
  } finally {
    for (const node of nodes) await node.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/** Finished runs in the nodes' logs; completed ones (something deleted, or nothing to) with what they freed. */
function countRuns(nodes: BerthProcess[]): { runs: number; figures: Pick<GcStressFigures, "collectionsCompleted" | "blobsReclaimed" | "bytesReclaimed"> } {
  let runs = 0;
  const figures = { collectionsCompleted: 0, blobsReclaimed: 0, bytesReclaimed: 0 };
  for (const node of nodes) {
    for (const line of node.log().split("\n")) {
      const match = /online gc: (\w+): (\d+) blobs \((\d+) bytes\)/.exec(line);
      if (!match) continue;
      runs++;
      if (match[1] !== "completed" && match[1] !== "nothing") continue;
      figures.collectionsCompleted++;
      figures.blobsReclaimed += Number(match[2]);
      figures.bytesReclaimed += Number(match[3]);
    }
  }
  return { runs, figures };
}

/** undefined when the tag pulls whole: its manifest bytes, and every blob with its digest verified. */
async function verify(client: RegistryClient, entry: Acknowledged): Promise<string | undefined> {
  const { response, bytes } = await client.get(`/v2/${entry.repository}/manifests/${entry.tag}`, { accept: OCI_MANIFEST });
  if (response.status !== 200) return `${entry.repository}:${entry.tag}: manifest answered ${response.status}`;
  if (!bytes.equals(entry.image.bytes)) return `${entry.repository}:${entry.tag}: manifest bytes differ`;
  const manifest = JSON.parse(bytes.toString("utf8")) as { config: { digest: string }; layers: { digest: string }[] };
  for (const digest of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
    const blob = await client.get(`/v2/${entry.repository}/blobs/${digest}`);
    if (blob.response.status === 307) {
      const location = blob.response.headers.get("location")!;
      const direct = Buffer.from(await (await fetch(location)).arrayBuffer());
      if (`sha256:${createHash("sha256").update(direct).digest("hex")}` !== digest) return `${entry.repository}:${entry.tag}: blob ${digest} corrupt`;
      continue;
    }
    if (blob.response.status !== 200) return `${entry.repository}:${entry.tag}: blob ${digest} answered ${blob.response.status}`;
    if (`sha256:${createHash("sha256").update(blob.bytes).digest("hex")}` !== digest) return `${entry.repository}:${entry.tag}: blob ${digest} corrupt`;
  }
  return undefined;
}

/** Unmarked blobs and untagged revisions written before `cutoff` (distribution's mark, delete-untagged). */
async function leftovers(driver: StorageDriver, cutoff: Date, problems: string[]): Promise<number> {
  const silent = new PlainProgress({ write: () => true } as unknown as NodeJS.WritableStream);
  const marked = await mark(driver, { deleteUntagged: true, keepRevisionsSince: cutoff }, silent);
  let count = 0;
  await walkBlobs(driver, (blob) => {
    if (blob.digest && !marked.marked.has(blob.digest.toString()) && blob.modTime < cutoff) {
      count++;
      problems.push(`left over: blob ${blob.digest}`);
    }
  });
  for (const manifest of marked.toDelete) {
    count++;
    problems.push(`left over: untagged manifest ${manifest.repository}@${manifest.digest}`);
  }
  return count;
}

export function formatFigures(f: GcStressFigures, storage: string): string {
  return [
    `gc-stress on ${storage}: ${f.nodes} nodes, ${f.seconds} s`,
    `  pushes acknowledged: ${f.pushesAcknowledged} (refused by the protocol, never acknowledged: ${f.pushesRefused})`,
    `  layers reused through HEAD: ${f.layersReusedByHead}, through mount: ${f.layersReusedByMount}`,
    `  tags added: ${f.tagsAdded}, tags deleted: ${f.tagsDeleted}`,
    `  collections completed: ${f.collectionsCompleted}, blobs reclaimed: ${f.blobsReclaimed} (${f.bytesReclaimed} bytes)`,
    `  tags verified: ${f.imagesVerified}`,
    `  violations: ${f.violations}, unreferenced left over past the grace period: ${f.leftovers}`,
    ...f.problems.slice(0, 20).map((p) => `  problem: ${p}`),
  ].join("\n");
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { seconds: { type: "string" }, nodes: { type: "string" }, s3: { type: "boolean" }, grace: { type: "string" } }, strict: true });
  const s3 = values.s3 === true;
  const seconds = positiveInt(values.seconds, "seconds", 120);
  const nodes = positiveInt(values.nodes, "nodes", s3 ? 3 : 2);
  const graceMs = positiveInt(values.grace, "grace", 3000);
  let ceph: CephS3 | undefined;
  let storage: GcStressOptions["storage"];
  let where: string;
  if (s3) {
    ceph = await startCephS3();
    const root = `/gc-stress-${Date.now()}`;
    const { S3Driver } = await import("../src/driver/s3/s3-driver.js");
    const driver = new S3Driver(ceph.driverOptions({ rootdirectory: root }));
    storage = () => ({ yaml: s3DriverConfig(ceph!, root), driver });
    where = "S3 (Ceph radosgw)";
  } else {
    storage = filesystemStorage;
    where = "the filesystem";
  }
  try {
    const figures = await runGcStress({ storage, seconds, nodes, graceMs, log: (line) => process.stderr.write(`${line}\n`) });
    process.stdout.write(`${formatFigures(figures, where)}\n`);
    return figures.violations === 0 && figures.leftovers === 0 && figures.problems.length === 0 ? 0 : 1;
  } finally {
    await ceph?.stop();
  }
}

/** Every node on one directory under the run's scratch directory. */
export function filesystemStorage(work: string): StressStorage {
  const root = join(work, "data");
  return { yaml: `  filesystem:\n    rootdirectory: ${root}`, driver: new FilesystemDriver(root), root };
}

runIfMain(import.meta.url, main);
