import type { ManifestReferences } from "../manifest-references.js";

/**
 * Every digest a rescue keeps: the rescued digests, and for each that is a manifest, what it refers
 * to (blobs, index children, recursively) and its referrers (manifests whose subject it is). Read
 * from the references the marks parsed; conservative by construction, since referrers are taken
 * from every repository, not only the rescuing one.
 */
export function keptWith(rescued: Iterable<string>, references: ReadonlyMap<string, ManifestReferences>): Set<string> {
  const referrers = new Map<string, string[]>();
  for (const [digest, refs] of references) {
    if (!refs.subject) continue;
    const subject = refs.subject.toString();
    const list = referrers.get(subject);
    if (list) list.push(digest);
    else referrers.set(subject, [digest]);
  }
  const kept = new Set<string>();
  const queue = [...rescued];
  for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
    if (kept.has(next)) continue;
    kept.add(next);
    const refs = references.get(next);
    if (refs) queue.push(...refs.blobs, ...refs.children);
    queue.push(...(referrers.get(next) ?? []));
  }
  return kept;
}
