/**
 * The push crash campaign's ledger: what each blob link, manifest revision and tag of the
 * workload may be, given the answers berth gave (tools/push-crash.ts).
 *
 * Every key holds the set of values it may have now. An operation is a candidate when it is sent:
 * answered 2xx (acknowledged), its value is the only one; refused with a 4xx, nothing changed;
 * unanswered (the kill) or answered 5xx, its value joins the set, since it may or may not have
 * happened. The audit collapses a set to what it observed. This is exact because each repository
 * belongs to one client, which runs one operation at a time: operations on a key never overlap.
 *
 * The ledger outlives rounds and restarts: the audit after each kill checks everything every
 * earlier round acknowledged too.
 */

/** A tag that points nowhere, or a blob or manifest the repository does not have. */
export const ABSENT = "absent";
/** A blob or manifest the repository has. */
export const PRESENT = "present";

export type KeyKind = "blob" | "manifest" | "tag";

/** An upload whose bytes are only partly in storage: resumed by the audit after the restart. */
export interface OpenUpload {
  repository: string;
  /** Any Location the upload answered with: its token names the upload, not an offset. */
  location: string;
  bytes: Buffer;
  digest: string;
  /** "left": the client stopped half-way on purpose; "interrupted": the kill cut it short. */
  why: "left" | "interrupted";
}

/** What one operation does: keys and the value each gets when it happens. */
export interface Effect {
  kind: KeyKind;
  repository: string;
  /** A digest (blob, manifest) or a tag name. */
  name: string;
  value: string;
  /**
   * The effect happens only if the key has this value (a manifest delete untags only the tags
   * pointing at it): acknowledged, it replaces that value and leaves the others possible.
   */
  onlyIf?: string;
}

/** How an operation ended. */
export type Outcome = "acknowledged" | "refused" | "unanswered" | "server-error";

export class Ledger {
  /** `${kind} ${repository} ${name}` → the values it may have. */
  private readonly possible = new Map<string, Set<string>>();
  /** Manifest bytes by digest and the blobs they name, so that tags can be moved onto them again. */
  readonly manifestBytes = new Map<string, { bytes: Buffer; mediaType: string; blobs: string[] }>();
  /** Sizes of the blobs pushed: a later image names them in its manifest, the audit checks them. */
  readonly blobSizes = new Map<string, number>();
  /** Uploads to resume after the next restart. */
  openUploads: OpenUpload[] = [];
  /** Keys an operation touched since the last audit (see audited()). */
  private touched = new Set<string>();

  /** Operations by outcome, in this round (reset by takeRoundCounts). */
  private roundCounts: Record<Outcome, number> & { sent: number } = freshCounts();
  /** What acknowledged operations were, by name, in this round. */
  private roundKinds: Record<string, number> = {};

  /** The values `key` may have; undefined for a key no operation touched. */
  get(kind: KeyKind, repository: string, name: string): ReadonlySet<string> | undefined {
    return this.possible.get(keyOf(kind, repository, name));
  }

  /** True when the key certainly has `value`. */
  is(kind: KeyKind, repository: string, name: string, value: string): boolean {
    const values = this.get(kind, repository, name);
    return values !== undefined && values.size === 1 && values.has(value);
  }

  /** Names of `kind` in `repository` that certainly have `value`. */
  namesWith(kind: KeyKind, repository: string, value: string): string[] {
    const prefix = `${kind} ${repository} `;
    const names: string[] = [];
    for (const [key, values] of this.possible) {
      if (key.startsWith(prefix) && values.size === 1 && values.has(value)) names.push(key.slice(prefix.length));
    }
    return names;
  }

  /** Every key the workload touched, for the audit; `touched`: by an operation since the last audit. */
  *keys(): Iterable<{ kind: KeyKind; repository: string; name: string; values: ReadonlySet<string>; touched: boolean }> {
    for (const [key, values] of this.possible) {
      const [kind, repository, name] = key.split(" ") as [KeyKind, string, string];
      yield { kind, repository, name, values, touched: this.touched.has(key) };
    }
  }

  /** The audit has seen every key: from now on only new operations make a key touched. */
  audited(): void {
    this.touched = new Set();
  }

  /** Tags of `repository` that may point at `digest`. */
  tagsThatMayPointAt(repository: string, digest: string): string[] {
    const prefix = `tag ${repository} `;
    return [...this.possible].filter(([key, values]) => key.startsWith(prefix) && values.has(digest)).map(([key]) => key.slice(prefix.length));
  }

  /** Records the outcome of one operation with these effects. */
  record(what: string, effects: Effect[], outcome: Outcome): void {
    this.roundCounts.sent++;
    this.roundCounts[outcome]++;
    if (outcome === "refused") return;
    if (outcome === "acknowledged") this.roundKinds[what] = (this.roundKinds[what] ?? 0) + 1;
    for (const effect of effects) {
      const key = keyOf(effect.kind, effect.repository, effect.name);
      this.touched.add(key);
      const values = this.possible.get(key) ?? new Set<string>([ABSENT]);
      if (effect.onlyIf !== undefined) {
        if (!values.has(effect.onlyIf)) continue;
        if (outcome === "acknowledged") values.delete(effect.onlyIf);
      } else if (outcome === "acknowledged") values.clear();
      values.add(effect.value);
      this.possible.set(key, values);
    }
  }

  /**
   * The effects of a manifest delete by digest: the revision goes, and so does every tag that may
   * point at it (berth untags first, then unlinks the revision).
   */
  manifestDeleteEffects(repository: string, digest: string): Effect[] {
    return [
      { kind: "manifest", repository, name: digest, value: ABSENT },
      ...this.tagsThatMayPointAt(repository, digest).map((tag) => ({ kind: "tag" as const, repository, name: tag, value: ABSENT, onlyIf: digest })),
    ];
  }

  /** The audit saw the key hold `value`: from now on that is all it may be. */
  observe(kind: KeyKind, repository: string, name: string, value: string): void {
    this.possible.set(keyOf(kind, repository, name), new Set([value]));
  }

  /** This round's operation counts, and a fresh count for the next. */
  takeRoundCounts(): { counts: Record<Outcome, number> & { sent: number }; acknowledgedByKind: Record<string, number> } {
    const taken = { counts: this.roundCounts, acknowledgedByKind: this.roundKinds };
    this.roundCounts = freshCounts();
    this.roundKinds = {};
    return taken;
  }
}

function keyOf(kind: KeyKind, repository: string, name: string): string {
  return `${kind} ${repository} ${name}`;
}

function freshCounts(): Record<Outcome, number> & { sent: number } {
  return { sent: 0, acknowledged: 0, refused: 0, unanswered: 0, "server-error": 0 };
}
