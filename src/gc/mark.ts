import type { StorageDriver } from "../driver/storage-driver.js";
import { isPathNotFound } from "../driver/storage-driver.js";
import { Digest } from "../reference/digest.js";
import { blobDataPath } from "../storage/paths.js";
import { manifestReferences, UnreadableManifestError, type ManifestReferences } from "./manifest-references.js";
import { STORAGE_CONCURRENCY, mapConcurrent } from "../storage/map-concurrent.js";
import type { GcProgress } from "./progress.js";
import { isSoundLink, listLayerLinks, listRepositories, listRevisionLinks, readTags, type LinkEntry } from "./storage-scan.js";

export interface MarkOptions {
  /** Keep only manifests reachable from a tag (plus index children and referrers); delete the rest. */
  deleteUntagged: boolean;
  /**
   * With `deleteUntagged`: revisions whose link was written at or after this time are roots too
   * (online collection's grace period: a manifest pushed by digest a moment ago is not garbage).
   */
  keepRevisionsSince?: Date;
  /**
   * Parsed references by manifest digest, shared between marks: a digest's bytes never change, so
   * a second mark (online collection's re-check) reads only manifests the first did not.
   */
  references?: Map<string, ManifestReferences>;
}

/** An untagged manifest the sweep removes from its repository (revision link and tag history). */
export interface ManifestToDelete {
  repository: string;
  digest: Digest;
  /** Every tag of the repository: their `index/` may remember the manifest (distribution's list). */
  tags: string[];
}

/** A manifest the collector had to read and could not: its references are unknown. */
export interface UnreadableManifest {
  repository: string;
  digest: string;
  reason: string;
}

export interface MarkResult {
  /** Digests ("alg:hex") of every blob something kept refers to, manifests included. */
  marked: Set<string>;
  repositories: string[];
  /** Revision links scanned. */
  manifests: number;
  toDelete: ManifestToDelete[];
  unreadable: UnreadableManifest[];
  /** Each repository's layer links, for the sweep's dangling-link pass. */
  layerLinks: Map<string, LinkEntry[]>;
}

/** A blob larger than this, named as a manifest, is not one (registries refuse manifests over 4 MiB). */
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/**
 * The mark phase, distribution's `MarkAndSweep` first half, per repository:
 *
 * - Without `deleteUntagged`, every manifest revision is kept.
 * - With it, the roots are the manifests tags point to. Where distribution 2.8 then deletes every
 *   other revision, berth also keeps what the kept manifests need or carry: the children of a kept
 *   index (recursively: a tagged multi-arch image keeps its platforms) and the referrers of a kept
 *   manifest (manifests whose `subject` it is: signatures, SBOMs, and their own referrers).
 *
 * A kept manifest marks itself, its config, its layers and its children. Reading is conservative:
 * a corrupt revision link keeps whatever it may name, a repository with an unreadable tag link
 * keeps all its manifests, and a manifest that cannot be parsed is reported as unreadable (the
 * caller refuses to sweep), because its references cannot be known.
 */
export async function mark(driver: StorageDriver, options: MarkOptions, progress: GcProgress): Promise<MarkResult> {
  const result: MarkResult = {
    marked: new Set(),
    repositories: await listRepositories(driver),
    manifests: 0,
    toDelete: [],
    unreadable: [],
    layerLinks: new Map(),
  };
  // Repositories are read STORAGE_CONCURRENCY at a time (on an object store a mark is its round
  // trips), and what each one found is committed in repository order: the result and the output
  // are a sequential mark's.
  const found = new Map<number, RepositoryFindings>();
  let committed = 0;
  await mapConcurrent(result.repositories.map((repository, index) => ({ repository, index })), STORAGE_CONCURRENCY, async ({ repository, index }) => {
    const findings: RepositoryFindings = { manifests: 0, layerLinks: [], toDelete: [], unreadable: [], lines: [] };
    await new RepositoryMarker(driver, repository, options, findings, result.marked).run();
    found.set(index, findings);
    for (let next = found.get(committed); next !== undefined; next = found.get(committed)) {
      found.delete(committed);
      commit(result.repositories[committed]!, next, result, progress);
      committed++;
      progress.update({ repositories: committed, manifests: result.manifests, blobsMarked: result.marked.size });
    }
  });
  return result;
}

/** What one repository's mark found, held until the repositories before it are committed. */
interface RepositoryFindings {
  manifests: number;
  layerLinks: LinkEntry[];
  toDelete: ManifestToDelete[];
  unreadable: UnreadableManifest[];
  /** Its progress lines, in the order they arose. */
  lines: Array<{ warning: boolean; line: string }>;
}

function commit(repository: string, findings: RepositoryFindings, result: MarkResult, progress: GcProgress): void {
  result.manifests += findings.manifests;
  result.layerLinks.set(repository, findings.layerLinks);
  for (const manifest of findings.toDelete) result.toDelete.push(manifest);
  for (const unreadable of findings.unreadable) result.unreadable.push(unreadable);
  for (const { warning, line } of findings.lines) {
    if (warning) progress.warn(line);
    else progress.item(line);
  }
}

type Loaded = ManifestReferences | "missing" | "unreadable";

class RepositoryMarker {
  private readonly loaded = new Map<string, Loaded>();
  private readonly kept = new Set<string>();

  private readonly progress = {
    warn: (line: string) => this.findings.lines.push({ warning: true, line }),
    item: (line: string) => this.findings.lines.push({ warning: false, line }),
  };

  constructor(
    private readonly driver: StorageDriver,
    private readonly repository: string,
    private readonly options: MarkOptions,
    private readonly findings: RepositoryFindings,
    /** The mark's digests, shared by every repository (a set: the order of additions does not matter). */
    private readonly marked: Set<string>,
  ) {}

  async run(): Promise<void> {
    const { driver, repository, progress, findings: result } = this;
    const revisionLinks = await listRevisionLinks(driver, repository);
    const tags = await readTags(driver, repository);
    result.layerLinks = await listLayerLinks(driver, repository);
    result.manifests = revisionLinks.length;

    const revisions = new Map<string, Digest>();
    /** Manifests kept whatever the tags say: those a corrupt revision link may name. */
    const pinned: Digest[] = [];
    for (const link of revisionLinks) {
      if (isSoundLink(link)) {
        revisions.set(link.digest.toString(), link.digest);
        continue;
      }
      if (link.digest === undefined) {
        const named = link.dir.split("/").slice(-2).join(":");
        result.unreadable.push({ repository, digest: named, reason: "revision link for a digest algorithm berth does not support" });
        continue;
      }
      progress.warn(`${repository}: revision link ${link.dir}/link does not hold ${link.digest}; kept, with what it may name`);
      pinned.push(link.digest);
      if (link.target) pinned.push(link.target);
    }
    await this.loadAll([...revisions.values(), ...pinned]);

    let roots: Digest[];
    if (!this.options.deleteUntagged) {
      roots = [...revisions.values(), ...pinned, ...tags.current.values()];
    } else if (tags.unreadable.length > 0) {
      progress.warn(
        `${repository}: tag link unreadable (${tags.unreadable.join(", ")}); no manifest of this repository is deleted`,
      );
      roots = [...revisions.values(), ...pinned, ...tags.current.values()];
    } else {
      roots = [...tags.current.values(), ...pinned];
      const since = this.options.keepRevisionsSince;
      if (since !== undefined) {
        for (const link of revisionLinks) if (isSoundLink(link) && link.modTime >= since) roots.push(link.digest);
      }
    }
    for (const [tag, digest] of tags.current) {
      if (!revisions.has(digest.toString())) {
        progress.warn(`${repository}: tag ${tag} points to ${digest}, which is not a manifest of the repository; what it refers to is kept`);
      }
    }

    const referrers = this.referrersBySubject(revisions);
    /** Index children not among the revisions, with the index naming them, for the warning. */
    const parentOf = new Map<string, string>();
    const queue = [...roots];
    for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
      const key = next.toString();
      if (this.kept.has(key)) continue;
      this.kept.add(key);
      this.markBlob(key);
      // Revisions are manifests by construction; anything else is sized before it is read.
      const refs = await this.load(next, !revisions.has(key));
      const parent = parentOf.get(key);
      if (refs === "missing") {
        if (revisions.has(key)) progress.warn(`${repository}: manifest ${key} has a revision link but no content; link kept`);
        if (parent) progress.warn(`${repository}: index ${parent} names manifest ${key}, which is not stored`);
        continue;
      }
      if (parent) {
        progress.warn(`${repository}: index ${parent} names manifest ${key}, which is not a manifest of the repository; what it refers to is kept`);
      }
      if (refs === "unreadable") continue;
      for (const blob of refs.blobs) this.markBlob(blob);
      for (const child of refs.children) {
        this.markBlob(child);
        const digest = Digest.tryParse(child);
        if (!digest) continue;
        if (!revisions.has(child) && !parentOf.has(child)) parentOf.set(child, key);
        queue.push(digest);
      }
      for (const referrer of referrers.get(key) ?? []) queue.push(referrer);
    }

    let untagged = 0;
    for (const [key, digest] of revisions) {
      const refs = this.loaded.get(key);
      // Unreadable manifests stop the sweep; revision links without content are left as found.
      if (this.kept.has(key) || refs === undefined || typeof refs !== "object") continue;
      untagged++;
      result.toDelete.push({ repository, digest, tags: tags.names });
    }
    progress.item(
      `repository ${repository}: ${count(revisions.size, "manifest")}, ${count(tags.current.size, "tag")}, ` +
        `${count(result.layerLinks.length, "layer link")}` +
        (this.options.deleteUntagged ? `, ${count(untagged, "untagged manifest")} to delete` : ""),
    );
  }

  /** Referrers among this repository's revisions, by subject. Only needed when some may be deleted. */
  private referrersBySubject(revisions: Map<string, Digest>): Map<string, Digest[]> {
    const bySubject = new Map<string, Digest[]>();
    if (!this.options.deleteUntagged) return bySubject;
    for (const [key, digest] of revisions) {
      const refs = this.loaded.get(key);
      if (refs === undefined || typeof refs !== "object" || !refs.subject) continue;
      const subject = refs.subject.toString();
      const list = bySubject.get(subject);
      if (list) list.push(digest);
      else bySubject.set(subject, [digest]);
    }
    return bySubject;
  }

  private markBlob(digest: string): void {
    this.marked.add(digest);
  }

  private async loadAll(digests: Digest[]): Promise<void> {
    await mapConcurrent(digests, STORAGE_CONCURRENCY, (digest) => this.load(digest));
  }

  private async load(digest: Digest, sizeCheck = false): Promise<Loaded> {
    const key = digest.toString();
    const known = this.loaded.get(key) ?? this.options.references?.get(key);
    if (known !== undefined) {
      this.loaded.set(key, known);
      return known;
    }
    let loaded: Loaded;
    try {
      if (sizeCheck && (await this.driver.stat(blobDataPath(digest))).size > MAX_MANIFEST_BYTES) {
        throw new UnreadableManifestError(`larger than ${MAX_MANIFEST_BYTES} bytes: not a manifest`);
      }
      loaded = manifestReferences(await this.driver.getContent(blobDataPath(digest)));
      this.options.references?.set(key, loaded);
    } catch (err) {
      if (isPathNotFound(err)) loaded = "missing";
      else if (err instanceof UnreadableManifestError) {
        loaded = "unreadable";
        this.findings.unreadable.push({ repository: this.repository, digest: key, reason: err.reason });
      } else throw err;
    }
    this.loaded.set(key, loaded);
    return loaded;
  }
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
