import { createHash, type Hash } from "node:crypto";
import { createResumableSha256, unmarshalSha256 } from "./resumable-sha256.js";

/**
 * The running SHA-256 of an upload. Saveable (`marshal` returns distribution's hash state) when the
 * native addon is built; otherwise it lives only in this process and `marshal` returns undefined.
 */
export interface UploadHash {
  readonly length: number;
  update(chunk: Buffer): void;
  /** Hex digest of the bytes so far; hashing may continue afterwards. */
  hexDigest(): string;
  marshal(): Buffer | undefined;
  /** OpenSSL's SHA256_CTX, when the native addon holds the state (see ResumableSha256). */
  readonly nativeState?: Buffer;
}

export function newUploadHash(): UploadHash {
  return createResumableSha256() ?? new InProcessHash(createHash("sha256"));
}

/** A hash resumed from saved state, or undefined when the state cannot be used here. */
export function resumeUploadHash(saved: Buffer): UploadHash | undefined {
  return unmarshalSha256(saved);
}

class InProcessHash implements UploadHash {
  length = 0;

  constructor(private readonly hash: Hash) {}

  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.length += chunk.length;
  }

  hexDigest(): string {
    return this.hash.copy().digest("hex");
  }

  marshal(): undefined {
    return undefined;
  }
}
