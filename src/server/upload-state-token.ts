import { createHmac, timingSafeEqual } from "node:crypto";
import { RegistryError } from "../errcode/registry-error.js";

/** What an upload's Location carries in `_state`, signed so a client cannot alter it. */
export interface UploadState {
  name: string;
  id: string;
  startedAt: number;
}

/** How far ahead of this node's clock another node's may run and its tokens still be taken. */
const MAX_CLOCK_LEAD_MS = 24 * 3_600_000;

/** distribution's default upload purging age: an upload older than this is abandoned. */
export const DEFAULT_UPLOAD_STATE_MAX_AGE_MS = 168 * 3_600_000;

/**
 * Signs and checks upload state tokens with `http.secret`. Every node sharing the secret trusts
 * a token any of them issued; a token names its repository, so it is refused in another one, and
 * expires with the upload it names: once its upload is older than `maxAgeMs` (the upload purging
 * age), the purger may have removed it, and the token is refused.
 * The offset is deliberately not in the token: storage is the single authority on how many bytes
 * an upload holds, so a stale Location (an earlier chunk's) still works.
 */
export class UploadStateSigner {
  private readonly key: Buffer;

  constructor(
    secret: string,
    private readonly maxAgeMs: number = DEFAULT_UPLOAD_STATE_MAX_AGE_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.key = Buffer.from(secret, "utf8");
  }

  sign(state: UploadState): string {
    const payload = Buffer.from(JSON.stringify([state.name, state.id, state.startedAt])).toString("base64url");
    return `${payload}.${this.mac(payload)}`;
  }

  /** BLOB_UPLOAD_INVALID for a malformed, tampered, expired or foreign token. */
  verify(token: string, expected: { name: string; id: string }): UploadState {
    const dot = token.indexOf(".");
    const payload = dot > 0 ? token.slice(0, dot) : "";
    // The MAC is compared as text, not decoded: base64url decoding ignores stray characters and the
    // unused low bits of the last one, so several spellings would decode to the same MAC.
    const given = Buffer.from(dot > 0 ? token.slice(dot + 1) : "", "latin1");
    const wanted = Buffer.from(this.mac(payload), "latin1");
    if (payload === "" || given.length !== wanted.length || !timingSafeEqual(given, wanted)) {
      throw new RegistryError("BLOB_UPLOAD_INVALID", "upload state is not valid");
    }
    let fields: unknown;
    try {
      fields = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    } catch {
      throw new RegistryError("BLOB_UPLOAD_INVALID", "upload state is not valid");
    }
    if (!Array.isArray(fields) || fields.length !== 3) throw new RegistryError("BLOB_UPLOAD_INVALID", "upload state is not valid");
    const [name, id, startedAt] = fields as unknown[];
    if (name !== expected.name || id !== expected.id) {
      throw new RegistryError("BLOB_UPLOAD_INVALID", "upload state does not belong to this upload");
    }
    // A time berth could have issued: milliseconds since the epoch, not past the clock of a node
    // running ahead. Anything else would become an invalid Date, and the next token unusable.
    const now = this.now();
    if (typeof startedAt !== "number" || !Number.isSafeInteger(startedAt) || startedAt < 0 || startedAt > now + MAX_CLOCK_LEAD_MS) {
      throw new RegistryError("BLOB_UPLOAD_INVALID", "upload state is not valid");
    }
    if (now - startedAt > this.maxAgeMs) throw new RegistryError("BLOB_UPLOAD_INVALID", "upload state has expired");
    return { name, id, startedAt };
  }

  /**
   * When the upload of a token that was already verified started (metrics of a completed upload);
   * undefined for anything else. The MAC is not checked again.
   */
  static startedAt(token: string): number | undefined {
    const dot = token.indexOf(".");
    try {
      const fields: unknown = JSON.parse(Buffer.from(dot > 0 ? token.slice(0, dot) : token, "base64url").toString("utf8"));
      const startedAt = Array.isArray(fields) && fields.length === 3 ? (fields[2] as unknown) : undefined;
      return typeof startedAt === "number" && Number.isFinite(startedAt) ? startedAt : undefined;
    } catch {
      return undefined;
    }
  }

  private mac(payload: string): string {
    return createHmac("sha256", this.key).update(payload).digest("base64url");
  }
}
