/**
 * The push crash campaign's audit through the API, after each restart (tools/push-crash.ts):
 *
 *   - uploads cut short by the kill, or left half-way on purpose, are resumed: GET answers 204 with
 *     a Range, and sending the rest then completing yields the right digest; or GET answers 404
 *     BLOB_UPLOAD_UNKNOWN. Never a 5xx, never more bytes than were sent, never other bytes;
 *   - every blob link, manifest revision and tag the ledger knows of, in every round so far:
 *     what the ledger says it must be (present: served complete, absent: 404), or one of the values
 *     it may be when the kill caught its operation in flight; whatever is served hashes to the
 *     digest it is served under, with that Docker-Content-Digest and a Content-Length equal to the
 *     bytes; HEAD agrees with GET;
 *   - every tag a tag list shows resolves (no allowance for the remains of a tag or untag a kill cut
 *     short: TagStore writes `current/link` first and removes it last, and the filesystem driver
 *     makes and removes directories atomically).
 *
 * A blob no operation touched since an earlier audit saw it (and whose outcome is settled) gets a
 * HEAD only, unless the audit is a full one (every tenth round): its Docker-Content-Digest and
 * Content-Length must be right, and its bytes are vouched for by the storage audit, which hashes a
 * data file again whenever it changed. That keeps the cost of auditing every earlier round's blobs
 * per round to a stat each, not a download.
 *
 * Each observation then becomes what the ledger knows of the key.
 */
import { createHash } from "node:crypto";
import { digestOf, withQuery } from "../../test/support/registry-client.js";
import { ABSENT, PRESENT, type KeyKind, type Ledger, type OpenUpload } from "./ledger.js";

export interface AuditCounts {
  uploadsResumed: number;
  /** Interrupted or left uploads answered 404 BLOB_UPLOAD_UNKNOWN. */
  uploadsUnknown: number;
  blobsServed: number;
  /** Blobs unchanged since an earlier audit, checked with a HEAD (see the module comment). */
  blobsHeadOnly: number;
  manifestsServed: number;
  tagsResolved: number;
  /** Keys that answered 404, as the ledger allowed. */
  absent: number;
  /** Keys whose in-flight operation turned out to have happened (or not): both were allowed. */
  settled: number;
  /** Deleted (acknowledged) but served again: a violation, after a kill or a power cut, counted apart too. */
  revertedDeletes: number;
  violations: number;
}

export interface AuditOptions {
  problems: string[];
  /** Labels problems. */
  round: number;
  /** GET and HEAD of every key, touched or not. */
  full: boolean;
}

const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

/** Requests in flight at once during the audit. */
const CONCURRENCY = 8;

interface Served {
  status: number;
  headers: Headers;
  body: Buffer;
}

async function get(url: string, method: "GET" | "HEAD" = "GET", headers: Record<string, string> = {}): Promise<Served> {
  const response = await fetch(url, { method, headers, redirect: "manual" });
  return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
}

/** The first error code of a registry error body; undefined when the body is not one. */
function errorCode(body: Buffer): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const errors = (parsed as { errors?: unknown }).errors;
  if (!Array.isArray(errors) || errors.length === 0) return undefined;
  const first: unknown = errors[0];
  const code = typeof first === "object" && first !== null ? (first as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

export async function auditRegistry(url: string, ledger: Ledger, options: AuditOptions): Promise<AuditCounts> {
  const counts: AuditCounts = {
    uploadsResumed: 0,
    uploadsUnknown: 0,
    blobsServed: 0,
    blobsHeadOnly: 0,
    manifestsServed: 0,
    tagsResolved: 0,
    absent: 0,
    settled: 0,
    revertedDeletes: 0,
    violations: 0,
  };
  const violation = (line: string): void => {
    counts.violations++;
    if (options.problems.length < 40) options.problems.push(`round ${options.round}: ${line}`);
  };

  const uploads = ledger.openUploads;
  ledger.openUploads = [];
  await inPool(uploads, (upload) => resumeUpload(url, upload, ledger, counts, violation));

  const keys = [...ledger.keys()];
  await inPool(keys, async ({ kind, repository, name, values, touched }) => {
    const light = kind === "blob" && !touched && values.size === 1 && !options.full;
    const observed =
      kind === "tag"
        ? await checkTag(url, repository, name, values, ledger, counts, violation)
        : light
          ? await checkBlobHead(url, repository, name, ledger.blobSizes.get(name), counts, violation)
          : await checkContent(url, kind, repository, name, counts, violation);
    if (observed === undefined) return;
    if (!values.has(observed)) {
      const deleted = observed !== ABSENT && values.size === 1 && values.has(ABSENT);
      if (deleted) counts.revertedDeletes++;
      violation(`${kind} ${repository} ${name}: the ledger allows ${[...values].join(" or ")}, berth answers ${observed}`);
    } else if (values.size > 1) counts.settled++;
    if (observed === ABSENT) counts.absent++;
    ledger.observe(kind, repository, name, observed);
  });

  const repositories = new Set(keys.map((key) => key.repository));
  await inPool([...repositories], (repository) => checkTagList(url, repository, counts, violation));
  ledger.audited();
  return counts;
}

/** Runs `work` over `items`, CONCURRENCY at a time. */
async function inPool<T>(items: T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/**
 * GET and HEAD of a blob or manifest by digest: PRESENT when served correctly, ABSENT on the
 * matching 404; undefined (and a violation) for anything else.
 */
async function checkContent(
  url: string,
  kind: Exclude<KeyKind, "tag">,
  repository: string,
  digest: string,
  counts: AuditCounts,
  violation: (line: string) => void,
): Promise<string | undefined> {
  const path = `${url}/v2/${repository}/${kind === "blob" ? "blobs" : "manifests"}/${digest}`;
  const headers: Record<string, string> = kind === "manifest" ? { Accept: MANIFEST_ACCEPT } : {};
  const full = await get(path, "GET", headers);
  const head = await get(path, "HEAD", headers);
  const what = `${kind} ${repository}@${digest}`;
  if (head.status !== full.status) violation(`${what}: HEAD answers ${head.status}, GET ${full.status}`);
  if (full.status === 404) {
    const code = errorCode(full.body);
    const expected = kind === "blob" ? "BLOB_UNKNOWN" : "MANIFEST_UNKNOWN";
    if (code !== expected) return void violation(`${what}: 404 with ${code ?? "no registry error"}, not ${expected}`);
    return ABSENT;
  }
  if (full.status !== 200) return void violation(`${what}: GET answers ${full.status}: ${full.body.toString("utf8").slice(0, 300)}`);
  if (!servedCorrectly(what, digest, full, violation)) return undefined;
  if (head.status === 200) {
    if (head.headers.get("docker-content-digest") !== digest) violation(`${what}: HEAD's Docker-Content-Digest is ${head.headers.get("docker-content-digest")}`);
    if (head.headers.get("content-length") !== String(full.body.length)) violation(`${what}: HEAD's Content-Length ${head.headers.get("content-length")}, GET sent ${full.body.length} bytes`);
    if (kind === "manifest" && head.headers.get("content-type") !== full.headers.get("content-type")) violation(`${what}: HEAD and GET disagree on Content-Type`);
  }
  if (kind === "blob") counts.blobsServed++;
  else counts.manifestsServed++;
  return PRESENT;
}

/** HEAD of a blob seen in an earlier audit: PRESENT with the right digest and size, or ABSENT. */
async function checkBlobHead(
  url: string,
  repository: string,
  digest: string,
  size: number | undefined,
  counts: AuditCounts,
  violation: (line: string) => void,
): Promise<string | undefined> {
  const head = await get(`${url}/v2/${repository}/blobs/${digest}`, "HEAD");
  const what = `blob ${repository}@${digest}`;
  if (head.status === 404) return ABSENT;
  if (head.status !== 200) return void violation(`${what}: HEAD answers ${head.status}`);
  if (head.headers.get("docker-content-digest") !== digest) return void violation(`${what}: HEAD's Docker-Content-Digest is ${head.headers.get("docker-content-digest")}`);
  if (size !== undefined && head.headers.get("content-length") !== String(size)) return void violation(`${what}: HEAD's Content-Length ${head.headers.get("content-length")}, pushed ${size} bytes`);
  counts.blobsHeadOnly++;
  return PRESENT;
}

/** The bytes hash to `digest`, which is the Docker-Content-Digest, and Content-Length counts them. */
function servedCorrectly(what: string, digest: string, served: Served, violation: (line: string) => void): boolean {
  const algorithm = digest.startsWith("sha512:") ? "sha512" : "sha256";
  const computed = `${algorithm}:${createHash(algorithm).update(served.body).digest("hex")}`;
  let ok = true;
  if (computed !== digest) {
    violation(`${what}: served ${served.body.length} bytes that hash to ${computed}`);
    ok = false;
  }
  if (served.headers.get("docker-content-digest") !== digest) {
    violation(`${what}: Docker-Content-Digest is ${served.headers.get("docker-content-digest")}`);
    ok = false;
  }
  if (served.headers.get("content-length") !== String(served.body.length)) {
    violation(`${what}: Content-Length ${served.headers.get("content-length")} for ${served.body.length} bytes`);
    ok = false;
  }
  return ok;
}

/**
 * GET and HEAD of a tag: the digest it points at (served correctly, a manifest the repository may
 * have), ABSENT on 404 MANIFEST_UNKNOWN; undefined (and a violation) for anything else.
 */
async function checkTag(
  url: string,
  repository: string,
  tag: string,
  values: ReadonlySet<string>,
  ledger: Ledger,
  counts: AuditCounts,
  violation: (line: string) => void,
): Promise<string | undefined> {
  const path = `${url}/v2/${repository}/manifests/${tag}`;
  const full = await get(path, "GET", { Accept: MANIFEST_ACCEPT });
  const head = await get(path, "HEAD", { Accept: MANIFEST_ACCEPT });
  const what = `tag ${repository}:${tag}`;
  if (head.status !== full.status) violation(`${what}: HEAD answers ${head.status}, GET ${full.status}`);
  if (full.status === 404) {
    const code = errorCode(full.body);
    if (code !== "MANIFEST_UNKNOWN") return void violation(`${what}: 404 with ${code ?? "no registry error"}`);
    return ABSENT;
  }
  if (full.status !== 200) return void violation(`${what}: GET answers ${full.status}: ${full.body.toString("utf8").slice(0, 300)}`);
  const digest = full.headers.get("docker-content-digest") ?? "";
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) return void violation(`${what}: Docker-Content-Digest ${JSON.stringify(digest)}`);
  if (!servedCorrectly(what, digest, full, violation)) return undefined;
  if (head.status === 200 && head.headers.get("docker-content-digest") !== digest) violation(`${what}: HEAD names ${head.headers.get("docker-content-digest")}, GET ${digest}`);
  // A tag never points at a revision the repository cannot have.
  const manifest = ledger.get("manifest", repository, digest);
  if (values.has(digest) && manifest !== undefined && !manifest.has(PRESENT)) violation(`${what}: points at ${digest}, which the repository deleted`);
  counts.tagsResolved++;
  return digest;
}

/** Every tag the list shows resolves: a listed tag that answers 404 is a violation, whatever the ledger allows. */
async function checkTagList(url: string, repository: string, counts: AuditCounts, violation: (line: string) => void): Promise<void> {
  const list = await get(`${url}/v2/${repository}/tags/list`);
  if (list.status === 404) return;
  if (list.status !== 200) return void violation(`tags of ${repository}: ${list.status}`);
  let tags: unknown;
  try {
    tags = (JSON.parse(list.body.toString("utf8")) as { tags?: unknown }).tags;
  } catch {
    return void violation(`tags of ${repository}: the body is not JSON`);
  }
  if (tags === null) return;
  if (!Array.isArray(tags)) return void violation(`tags of ${repository}: no tags array`);
  for (const tag of tags) {
    if (typeof tag !== "string") return void violation(`tags of ${repository}: ${JSON.stringify(tag)} is not a tag`);
    const resolved = await get(`${url}/v2/${repository}/manifests/${tag}`, "HEAD", { Accept: MANIFEST_ACCEPT });
    if (resolved.status !== 200) violation(`tags of ${repository}: lists ${tag}, which answers ${resolved.status}`);
  }
}

/**
 * Continues an upload from where storage has it and completes it; a clear 404 BLOB_UPLOAD_UNKNOWN
 * is the other acceptable answer. A completed upload joins the ledger as an acknowledged blob.
 */
async function resumeUpload(url: string, upload: OpenUpload, ledger: Ledger, counts: AuditCounts, violation: (line: string) => void): Promise<void> {
  const what = `${upload.why} upload of ${upload.bytes.length} bytes to ${upload.repository}`;
  // The Location named the process that was killed: the same path and token, on the new one.
  const { pathname, search } = new URL(upload.location);
  const status = await get(`${url}${pathname}${search}`);
  if (status.status === 404) {
    const code = errorCode(status.body);
    if (code === "BLOB_UPLOAD_UNKNOWN") counts.uploadsUnknown++;
    else violation(`${what}: GET answers 404 with ${code ?? "no registry error"}`);
    return;
  }
  if (status.status !== 204) return void violation(`${what}: GET answers ${status.status}: ${status.body.toString("utf8").slice(0, 300)}`);
  const range = /^0-(\d+)$/.exec(status.headers.get("range") ?? "");
  const location = status.headers.get("location");
  if (!range || !location) return void violation(`${what}: 204 without a Range or Location (${status.headers.get("range")})`);
  const end = Number(range[1]);
  if (end + 1 > upload.bytes.length) return void violation(`${what}: storage holds ${end + 1} bytes, more than were sent`);
  // "0-0" is what an empty upload answers too (distribution's convention): send from byte 0, and
  // from byte 1 if that is refused (416: the upload holds that byte already).
  let next: string | undefined;
  for (const size of end === 0 ? [0, 1] : [end + 1]) {
    next = await sendRest(new URL(location, url).toString(), upload.bytes, size);
    if (next !== undefined) break;
  }
  if (next === undefined) return void violation(`${what}: the rest after ${end + 1} bytes was refused`);
  const done = await fetch(withQuery(next, { digest: upload.digest }), { method: "PUT", redirect: "manual" });
  const body = Buffer.from(await done.arrayBuffer());
  if (done.status !== 201 || done.headers.get("docker-content-digest") !== upload.digest) {
    return void violation(`${what}: completing after a resume answered ${done.status} ${done.headers.get("docker-content-digest")}: ${body.toString("utf8").slice(0, 300)}`);
  }
  counts.uploadsResumed++;
  ledger.record("resumed upload", [{ kind: "blob", repository: upload.repository, name: upload.digest, value: PRESENT }], "acknowledged");
  if (digestOf(upload.bytes) !== upload.digest) violation(`${what}: the harness lost track of its bytes`);
}

/** PATCHes bytes from `offset` on; the next Location, or undefined when refused with 416. */
async function sendRest(location: string, bytes: Buffer, offset: number): Promise<string | undefined> {
  if (offset >= bytes.length) return location;
  const response = await fetch(location, {
    method: "PATCH",
    redirect: "manual",
    headers: { "Content-Type": "application/octet-stream", "Content-Range": `${offset}-${bytes.length - 1}`, "Content-Length": String(bytes.length - offset) },
    body: bytes.subarray(offset),
  } as RequestInit);
  await response.arrayBuffer();
  const next = response.headers.get("location");
  if (response.status !== 202 || !next) return undefined;
  return new URL(next, location).toString();
}
