import type { StorageDriver } from "../driver/storage-driver.js";
import { deleteIfPresent } from "../driver/storage-driver.js";
import type { Digest } from "../reference/digest.js";
import { manifestRevisionLinkPath, tagIndexEntryLinkPath } from "../storage/paths.js";
import type { ManifestToDelete, MarkResult } from "./mark.js";
import { formatBytes, type GcProgress } from "./progress.js";
import { isSoundLink, walkBlobs } from "./storage-scan.js";

export interface BlobToDelete {
  digest: Digest;
  /** The blob's directory, removed whole, as distribution's vacuum does. */
  dir: string;
  size: number;
}

export interface LayerLinkToRemove {
  repository: string;
  digest: Digest;
  dir: string;
}

/** What the sweep deletes: computed in full before anything is deleted, and all a dry run does. */
export interface SweepPlan {
  manifests: ManifestToDelete[];
  blobs: BlobToDelete[];
  bytes: number;
  /** Layer links whose blob is gone now or goes in this sweep. */
  layerLinks: LayerLinkToRemove[];
}

/**
 * Every blob under `blobs/` that nothing marked, and every layer link that would be left pointing
 * at nothing. Files under `blobs/` that are not blobs of a supported digest are kept and reported;
 * corrupt layer links are kept and reported.
 */
export async function planSweep(driver: StorageDriver, marked: MarkResult, progress: GcProgress): Promise<SweepPlan> {
  const plan: SweepPlan = { manifests: marked.toDelete, blobs: [], bytes: 0, layerLinks: [] };
  const stored = new Set<string>();
  progress.update({ phase: "scan blobs" });
  await walkBlobs(driver, (blob) => {
    if (!blob.digest) {
      progress.warn(`${blob.dir}/data is not a blob of a digest berth supports; kept`);
      return;
    }
    const key = blob.digest.toString();
    stored.add(key);
    if (marked.marked.has(key)) return;
    plan.blobs.push({ digest: blob.digest, dir: blob.dir, size: blob.size });
    plan.bytes += blob.size;
    progress.update({ blobsToDelete: plan.blobs.length, bytesToFree: plan.bytes });
  });
  const doomed = new Set(plan.blobs.map((blob) => blob.digest.toString()));
  for (const [repository, links] of marked.layerLinks) {
    for (const link of links) {
      if (!isSoundLink(link)) {
        progress.warn(`${repository}: layer link ${link.dir}/link is corrupt; kept`);
        continue;
      }
      const key = link.digest.toString();
      if (!stored.has(key) || doomed.has(key)) plan.layerLinks.push({ repository, digest: link.digest, dir: link.dir });
    }
  }
  return plan;
}

export interface SweepResult {
  manifestsDeleted: number;
  blobsDeleted: number;
  bytesDeleted: number;
  layerLinksRemoved: number;
  /** Deletions that failed (logged); their blobs' links are left alone. */
  failures: number;
}

/** A manifest could not be removed: its blobs must not be swept. */
export class ManifestDeletionError extends Error {
  constructor(readonly manifest: ManifestToDelete, cause: unknown) {
    super(`cannot delete manifest ${manifest.repository}@${manifest.digest}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "ManifestDeletionError";
  }
}

/**
 * Deletes what the plan lists, in the order that keeps a crash harmless: manifests first (a crash
 * after leaves only unreferenced blobs, collected next time), then blobs, then the layer links of
 * blobs now gone. A manifest that cannot be removed stops the sweep before any blob is deleted,
 * since its blobs were not marked. A blob that cannot be deleted is reported and its links kept.
 */
export async function executeSweep(driver: StorageDriver, plan: SweepPlan, progress: GcProgress): Promise<SweepResult> {
  const result: SweepResult = { manifestsDeleted: 0, blobsDeleted: 0, bytesDeleted: 0, layerLinksRemoved: 0, failures: 0 };
  progress.update({ phase: "sweep" });
  for (const manifest of plan.manifests) {
    try {
      await deleteManifest(driver, manifest);
    } catch (err) {
      throw new ManifestDeletionError(manifest, err);
    }
    result.manifestsDeleted++;
    progress.item(`deleted manifest ${manifest.repository}@${manifest.digest} (untagged)`);
  }
  const failed = new Set<string>();
  for (const blob of plan.blobs) {
    try {
      await deleteIfPresent(driver, blob.dir);
    } catch (err) {
      result.failures++;
      failed.add(blob.digest.toString());
      progress.warn(`cannot delete blob ${blob.digest}: ${err instanceof Error ? err.message : String(err)}; kept`);
      continue;
    }
    result.blobsDeleted++;
    result.bytesDeleted += blob.size;
    progress.item(`deleted blob ${blob.digest} (${blob.size} bytes)`);
    progress.update({ blobsDeleted: result.blobsDeleted, bytesDeleted: result.bytesDeleted });
  }
  for (const link of plan.layerLinks) {
    if (failed.has(link.digest.toString())) continue;
    try {
      await deleteIfPresent(driver, link.dir);
    } catch (err) {
      result.failures++;
      progress.warn(`cannot remove layer link ${link.repository} ${link.digest}: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    result.layerLinksRemoved++;
    progress.item(`removed layer link ${link.repository} ${link.digest}`);
  }
  return result;
}

/** What a dry run prints: the same lines, conditional. */
export function describePlan(plan: SweepPlan, progress: GcProgress): void {
  for (const manifest of plan.manifests) progress.item(`would delete manifest ${manifest.repository}@${manifest.digest} (untagged)`);
  for (const blob of plan.blobs) progress.item(`would delete blob ${blob.digest} (${blob.size} bytes)`);
  for (const link of plan.layerLinks) progress.item(`would remove layer link ${link.repository} ${link.digest}`);
  progress.item(`would free ${plan.bytes} bytes (${formatBytes(plan.bytes)})`);
}

/**
 * distribution's `RemoveManifest`: the manifest leaves every tag's history (`index/`), then the
 * repository (its revision link). berth's referrers index (`_referrers`) is left as it is, as
 * distribution leaves it: its entries are hints that readers check against the revisions, and
 * they stay true should the same manifest be pushed again.
 */
async function deleteManifest(driver: StorageDriver, manifest: ManifestToDelete): Promise<void> {
  const { repository, digest, tags } = manifest;
  for (const tag of tags) await deleteIfPresent(driver, parentOf(tagIndexEntryLinkPath(repository, tag, digest)));
  await deleteIfPresent(driver, parentOf(manifestRevisionLinkPath(repository, digest)));
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}
