/**
 * The push crash campaign's workload: clients pushing, mounting, tagging and deleting against
 * berth while a kill is on its way (tools/push-crash.ts). Each client owns two repositories for
 * the whole campaign and runs one operation at a time, so the ledger knows the order of the
 * operations on each key; the clients run concurrently with each other.
 */
import { randomBytes } from "node:crypto";
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, digestOf, withQuery } from "../../test/support/registry-client.js";
import { ABSENT, PRESENT, type Effect, type Ledger, type Outcome } from "./ledger.js";

/** What the clients of one round share. */
export interface WorkloadRound {
  /** From 1, as problems name it. */
  index: number;
  url: string;
  random: () => number;
  ledger: Ledger;
  /** Set once the kill is under way: clients start nothing new. */
  killed: boolean;
  /** Called before each request is sent: the kill is scheduled from here. */
  onRequest: () => void;
  /** Answers berth must not give (5xx, or a refusal of a request the ledger says is valid), one line each. */
  problems: string[];
  /** Count of those answers. */
  unexpectedAnswers: number;
}

/** The answer to a request, read whole: a body cut by the kill leaves the status seen. */
interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

async function send(url: string, init: { method: string; headers?: Record<string, string>; body?: Uint8Array }): Promise<Answer> {
  const response = await fetch(url, { redirect: "manual", ...(init as RequestInit) });
  let text = "";
  try {
    text = await response.text();
  } catch {
    // the connection died mid-body: the status was seen all the same
  }
  return { status: response.status, headers: response.headers, text };
}

function pick<T>(random: () => number, items: readonly T[]): T | undefined {
  return items.length === 0 ? undefined : items[Math.floor(random() * items.length)];
}

/** Mostly small blobs, some large enough that a kill can land inside one request's body. */
function blobSize(random: () => number): number {
  const r = random();
  if (r < 0.7) return 1 + Math.floor(random() * 8 * 1024);
  if (r < 0.95) return 8 * 1024 + Math.floor(random() * 120 * 1024);
  return 256 * 1024 + Math.floor(random() * 1792 * 1024);
}

/** A request ended without an answer: the kill. */
class Unanswered extends Error {}

export class Client {
  readonly repos: [string, string];

  constructor(
    private readonly round: WorkloadRound,
    id: number,
    /** Every client's repositories: mount sources. */
    private readonly allRepos: string[],
  ) {
    this.repos = [`crash/c${id}/a`, `crash/c${id}/b`];
  }

  async run(operations: number): Promise<void> {
    const round = this.round;
    for (let done = 0; done < operations && !round.killed; done++) {
      const repo = pick(round.random, this.repos)!;
      const choice = round.random();
      try {
        if (choice < 0.12) await this.pushBlob(repo, "monolithic");
        else if (choice < 0.24) await this.pushBlob(repo, "chunked");
        else if (choice < 0.34) await this.pushBlob(repo, "single-shot");
        else if (choice < 0.42) await this.mount(repo);
        else if (choice < 0.48) await this.leaveHalfway(repo);
        else if (choice < 0.62) await this.pushImage(repo, "tag");
        else if (choice < 0.68) await this.pushImage(repo, "digest");
        else if (choice < 0.76) await this.moveTag(repo);
        else if (choice < 0.82) await this.deleteTag(repo);
        else if (choice < 0.9) await this.deleteManifest(repo);
        else await this.deleteBlob(repo);
      } catch (err) {
        // Unanswered: the kill; what it may have done is in the ledger already.
        if (!(err instanceof Unanswered)) throw err;
      }
    }
  }

  // --- requests

  private url(path: string): string {
    return new URL(path, this.round.url).toString();
  }

  /**
   * One request that is a step of an operation (an upload's POST or PATCH): no key changes with
   * it. Throws Unanswered when the kill cut it (or came before it was sent).
   */
  private async step(what: string, url: string, init: Parameters<typeof send>[1], expected: number): Promise<Answer> {
    const answer = await this.request(url, init);
    if (answer.status !== expected) this.unexpected(what, answer);
    return answer;
  }

  private async request(url: string, init: Parameters<typeof send>[1]): Promise<Answer> {
    if (this.round.killed) throw new Unanswered();
    this.round.onRequest();
    try {
      return await send(url, init);
    } catch {
      throw new Unanswered();
    }
  }

  /**
   * The request that makes an operation happen: it changes `effects` when acknowledged (`expected`),
   * may have when unanswered or answered 5xx, and did not when refused. `refusals` are statuses the
   * workload can legitimately get; any other is a problem. Returns the answer, or undefined when
   * there was none.
   */
  private async operation(
    what: string,
    effects: Effect[],
    expected: number,
    url: string,
    init: Parameters<typeof send>[1],
    refusals: number[] = [],
  ): Promise<Answer | undefined> {
    let answer: Answer | undefined;
    let outcome: Outcome;
    try {
      answer = await this.request(url, init);
      outcome = answer.status === expected ? "acknowledged" : answer.status >= 500 ? "server-error" : "refused";
      if (answer.status !== expected && !refusals.includes(answer.status)) this.unexpected(what, answer);
    } catch (err) {
      if (!(err instanceof Unanswered)) throw err;
      outcome = "unanswered";
    }
    this.round.ledger.record(what, effects, outcome);
    return answer;
  }

  private unexpected(what: string, answer: Answer): void {
    this.round.unexpectedAnswers++;
    if (this.round.problems.length < 20) this.round.problems.push(`round ${this.round.index}: ${what} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  }

  // --- blobs

  /** Pushes fresh random bytes (or `bytes`) one of three ways; the digest when acknowledged. */
  private async pushBlob(repo: string, how: "monolithic" | "chunked" | "single-shot", bytes?: Buffer): Promise<string | undefined> {
    const random = this.round.random;
    bytes ??= randomBytes(blobSize(random));
    const digest = digestOf(bytes);
    this.round.ledger.blobSizes.set(digest, bytes.length);
    const effects: Effect[] = [{ kind: "blob", repository: repo, name: digest, value: PRESENT }];
    const what = `${how} blob push`;
    let answer: Answer | undefined;
    if (how === "single-shot") {
      answer = await this.operation(what, effects, 201, this.url(`/v2/${repo}/blobs/uploads/?digest=${digest}`), {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream", "Content-Length": String(bytes.length) },
        body: bytes,
      });
    } else {
      let location = await this.startUpload(repo);
      if (location === undefined) return undefined;
      let last: Buffer | undefined = bytes;
      if (how === "chunked") {
        const pieces = 2 + Math.floor(random() * 3);
        const size = Math.ceil(bytes.length / pieces);
        // Half the time the last piece travels with the PUT that completes the upload.
        const patched = random() < 0.5 ? bytes.length : Math.max(0, bytes.length - size);
        try {
          for (let offset = 0; offset < patched; offset += size) {
            const end = Math.min(offset + size, patched);
            location = await this.patch(repo, location, bytes, offset, end);
          }
        } catch (err) {
          if (err instanceof Unanswered) this.round.ledger.openUploads.push({ repository: repo, location, bytes, digest, why: "interrupted" });
          throw err;
        }
        last = patched < bytes.length ? bytes.subarray(patched) : undefined;
      }
      const headers: Record<string, string> = { "Content-Type": "application/octet-stream" };
      if (last !== undefined) {
        headers["Content-Length"] = String(last.length);
        if (how === "chunked") headers["Content-Range"] = `${bytes.length - last.length}-${bytes.length - 1}`;
      }
      answer = await this.operation(what, effects, 201, withQuery(location, { digest }), { method: "PUT", headers, body: last });
      if (answer === undefined) this.round.ledger.openUploads.push({ repository: repo, location, bytes, digest, why: "interrupted" });
    }
    return answer?.status === 201 ? digest : undefined;
  }

  /** POST: a new upload's absolute Location. */
  private async startUpload(repo: string): Promise<string | undefined> {
    const started = await this.step("upload start", this.url(`/v2/${repo}/blobs/uploads/`), { method: "POST" }, 202);
    const location = started.headers.get("location");
    return started.status === 202 && location ? this.url(location) : undefined;
  }

  /** PATCH bytes [offset, end) with their Content-Range: the next Location. */
  private async patch(repo: string, location: string, bytes: Buffer, offset: number, end: number): Promise<string> {
    const answer = await this.step(`PATCH ${offset}-${end - 1} in ${repo}`, location, {
      method: "PATCH",
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `${offset}-${end - 1}`, "Content-Length": String(end - offset) },
      body: bytes.subarray(offset, end),
    }, 202);
    const next = answer.headers.get("location");
    if (answer.status !== 202 || !next) throw new Unanswered();
    return this.url(next);
  }

  /** Starts an upload, sends part of it, and leaves it for the audit to finish after the restart. */
  private async leaveHalfway(repo: string): Promise<void> {
    const bytes = randomBytes(2 + blobSize(this.round.random));
    const digest = digestOf(bytes);
    this.round.ledger.blobSizes.set(digest, bytes.length);
    let location = await this.startUpload(repo);
    if (location === undefined) return;
    const half = 1 + Math.floor(this.round.random() * (bytes.length - 1));
    try {
      location = await this.patch(repo, location, bytes, 0, half);
      this.round.ledger.openUploads.push({ repository: repo, location, bytes, digest, why: "left" });
    } catch (err) {
      if (err instanceof Unanswered) this.round.ledger.openUploads.push({ repository: repo, location, bytes, digest, why: "interrupted" });
      throw err;
    }
  }

  /** Links a blob another repository has, or (202) gets an upload instead, which it cancels. */
  private async mount(repo: string): Promise<void> {
    const ledger = this.round.ledger;
    const sources = this.allRepos.filter((other) => other !== repo);
    const from = pick(this.round.random, sources)!;
    const digest = pick(this.round.random, ledger.namesWith("blob", from, PRESENT));
    if (digest === undefined) return void (await this.pushBlob(repo, "single-shot"));
    // 202: the source's owner deleted it meanwhile, and an ordinary upload was started instead.
    const answer = await this.operation("mount", [{ kind: "blob", repository: repo, name: digest, value: PRESENT }], 201,
      this.url(`/v2/${repo}/blobs/uploads/?mount=${digest}&from=${from}`), { method: "POST" }, [202]);
    const location = answer?.headers.get("location");
    if (answer?.status === 202 && location) await this.step("cancel of a mount's fallback upload", this.url(location), { method: "DELETE" }, 204);
  }

  private async deleteBlob(repo: string): Promise<void> {
    const digest = pick(this.round.random, this.round.ledger.namesWith("blob", repo, PRESENT));
    if (digest === undefined) return;
    await this.operation("blob delete", [{ kind: "blob", repository: repo, name: digest, value: ABSENT }], 202, this.url(`/v2/${repo}/blobs/${digest}`), {
      method: "DELETE",
    });
  }

  // --- manifests and tags

  /** Pushes a config and one or two layers (fresh, or blobs the repository has), then the manifest. */
  private async pushImage(repo: string, by: "tag" | "digest"): Promise<void> {
    const random = this.round.random;
    const ledger = this.round.ledger;
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, id: randomBytes(8).toString("hex") }));
    const configDigest = await this.pushBlob(repo, pick(random, ["monolithic", "chunked", "single-shot"] as const)!, config);
    if (configDigest === undefined) return;
    const layers: Array<{ digest: string; size: number }> = [];
    for (let i = 0, n = 1 + Math.floor(random() * 2); i < n; i++) {
      const existing = random() < 0.4 ? pick(random, ledger.namesWith("blob", repo, PRESENT).filter((d) => ledger.blobSizes.has(d))) : undefined;
      if (existing !== undefined) {
        layers.push({ digest: existing, size: ledger.blobSizes.get(existing)! });
        continue;
      }
      const bytes = randomBytes(blobSize(random));
      const digest = await this.pushBlob(repo, pick(random, ["monolithic", "chunked", "single-shot"] as const)!, bytes);
      if (digest === undefined) return;
      layers.push({ digest, size: bytes.length });
    }
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
        layers: layers.map((layer) => ({ mediaType: OCI_LAYER, ...layer })),
      }),
    );
    const digest = digestOf(bytes);
    ledger.manifestBytes.set(digest, { bytes, mediaType: OCI_MANIFEST, blobs: [configDigest, ...layers.map((layer) => layer.digest)] });
    const tag = by === "tag" ? this.tagToPut(repo) : undefined;
    await this.putManifest(repo, digest, tag);
  }

  /** Puts a manifest the repository has (and still has every blob of) under a tag: new, or moved. */
  private async moveTag(repo: string): Promise<void> {
    const ledger = this.round.ledger;
    const candidates = ledger
      .namesWith("manifest", repo, PRESENT)
      .filter((digest) => ledger.manifestBytes.get(digest)?.blobs.every((blob) => ledger.is("blob", repo, blob, PRESENT)));
    const digest = pick(this.round.random, candidates);
    if (digest === undefined) return this.pushImage(repo, "tag");
    await this.putManifest(repo, digest, this.tagToPut(repo));
  }

  private async putManifest(repo: string, digest: string, tag: string | undefined): Promise<void> {
    const { bytes, mediaType } = this.round.ledger.manifestBytes.get(digest)!;
    const effects: Effect[] = [{ kind: "manifest", repository: repo, name: digest, value: PRESENT }];
    if (tag !== undefined) effects.push({ kind: "tag", repository: repo, name: tag, value: digest });
    await this.operation(tag === undefined ? "manifest put by digest" : "manifest put by tag", effects, 201, this.url(`/v2/${repo}/manifests/${tag ?? digest}`), {
      method: "PUT",
      headers: { "Content-Type": mediaType },
      body: bytes,
    });
  }

  /** A tag the repository has (a move) or a new one. */
  private tagToPut(repo: string): string {
    const existing = this.round.random() < 0.5 ? pick(this.round.random, this.existingTags(repo)) : undefined;
    return existing ?? `t${randomBytes(4).toString("hex")}`;
  }

  private existingTags(repo: string): string[] {
    const tags: string[] = [];
    for (const key of this.round.ledger.keys()) {
      if (key.kind === "tag" && key.repository === repo && key.values.size === 1 && !key.values.has(ABSENT)) tags.push(key.name);
    }
    return tags;
  }

  private async deleteTag(repo: string): Promise<void> {
    const tag = pick(this.round.random, this.existingTags(repo));
    if (tag === undefined) return;
    await this.operation("tag delete", [{ kind: "tag", repository: repo, name: tag, value: ABSENT }], 202, this.url(`/v2/${repo}/manifests/${tag}`), {
      method: "DELETE",
    });
  }

  private async deleteManifest(repo: string): Promise<void> {
    const ledger = this.round.ledger;
    const digest = pick(this.round.random, ledger.namesWith("manifest", repo, PRESENT));
    if (digest === undefined) return;
    await this.operation("manifest delete", ledger.manifestDeleteEffects(repo, digest), 202, this.url(`/v2/${repo}/manifests/${digest}`), {
      method: "DELETE",
    });
  }
}
