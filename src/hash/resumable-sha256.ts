import { loadAddon } from "../native/load-addon.js";

/**
 * SHA-256 whose state can be saved and resumed by another process, in distribution's format, so an
 * upload continued elsewhere (another node, a restarted process, or distribution itself) finishes
 * without re-reading its bytes. Backed by the native addon in native/sha256_state.c (OpenSSL at
 * full speed); when the addon is not built, `resumableSha256Available` is false and callers fall
 * back to re-reading.
 */
export interface ResumableSha256 {
  /** Bytes hashed so far. */
  readonly length: number;
  update(chunk: Buffer): void;
  /** Lowercase hex digest of what was hashed; the hash can go on afterwards. */
  hexDigest(): string;
  /** Go's crypto/sha256 MarshalBinary encoding: what distribution stores in `hashstates/sha256/<offset>`. */
  marshal(): Buffer;
  /**
   * The state itself (OpenSSL's SHA256_CTX), for a writer that hashes in its own threadpool jobs
   * (FileWriter.hashWhileWriting). Nothing here may be called while such a job may run.
   */
  readonly nativeState: Buffer;
}

interface Sha256Addon {
  init(): Buffer;
  update(state: Buffer, bytes: Buffer): void;
  digest(state: Buffer): Buffer;
  stateSize: number;
}

// OpenSSL's SHA256_CTX: h[8], Nl, Nh (bit count), data[64 bytes], num (bytes in data), md_len.
const CTX_SIZE = 112;
const CTX_NL = 32;
const CTX_NH = 36;
const CTX_DATA = 40;
const CTX_NUM = 104;
const CTX_MD_LEN = 108;
const BLOCK = 64;

// Go: "sha\x03" ‖ h[8] big-endian ‖ block (buffered bytes, zero-padded to 64) ‖ length in bytes (uint64 BE).
const GO_MAGIC = Buffer.from("sha\x03", "binary");
const GO_SIZE = GO_MAGIC.length + 32 + BLOCK + 8;

const addon = loadAddon<Sha256Addon>("sha256_state", (candidate) => candidate.stateSize === CTX_SIZE);

export const resumableSha256Available = addon !== undefined;

/** A fresh hash, or undefined when the addon is not available. */
export function createResumableSha256(): ResumableSha256 | undefined {
  return addon ? new NativeSha256(addon, addon.init()) : undefined;
}

/**
 * Resumes a hash from distribution's saved state. undefined when the addon is missing or the bytes
 * are not a Go SHA-256 state (a corrupt or foreign file is never trusted).
 */
export function unmarshalSha256(saved: Buffer): ResumableSha256 | undefined {
  if (!addon || saved.length !== GO_SIZE || !saved.subarray(0, GO_MAGIC.length).equals(GO_MAGIC)) return undefined;
  const length = saved.readBigUInt64BE(GO_SIZE - 8);
  const buffered = Number(length % BigInt(BLOCK));
  const ctx = Buffer.alloc(CTX_SIZE);
  for (let i = 0; i < 8; i++) ctx.writeUInt32LE(saved.readUInt32BE(GO_MAGIC.length + 4 * i), 4 * i);
  const bits = length * 8n;
  ctx.writeUInt32LE(Number(bits & 0xffffffffn), CTX_NL);
  ctx.writeUInt32LE(Number((bits >> 32n) & 0xffffffffn), CTX_NH);
  saved.copy(ctx, CTX_DATA, GO_MAGIC.length + 32, GO_MAGIC.length + 32 + buffered);
  ctx.writeUInt32LE(buffered, CTX_NUM);
  ctx.writeUInt32LE(32, CTX_MD_LEN);
  return new NativeSha256(addon, ctx);
}

class NativeSha256 implements ResumableSha256 {
  constructor(
    private readonly native: Sha256Addon,
    private readonly ctx: Buffer,
  ) {}

  get nativeState(): Buffer {
    return this.ctx;
  }

  get length(): number {
    const bits = (BigInt(this.ctx.readUInt32LE(CTX_NH)) << 32n) | BigInt(this.ctx.readUInt32LE(CTX_NL));
    return Number(bits / 8n);
  }

  update(chunk: Buffer): void {
    this.native.update(this.ctx, chunk);
  }

  hexDigest(): string {
    return this.native.digest(this.ctx).toString("hex");
  }

  marshal(): Buffer {
    const out = Buffer.alloc(GO_SIZE);
    GO_MAGIC.copy(out, 0);
    for (let i = 0; i < 8; i++) out.writeUInt32BE(this.ctx.readUInt32LE(4 * i), GO_MAGIC.length + 4 * i);
    const buffered = this.ctx.readUInt32LE(CTX_NUM);
    this.ctx.copy(out, GO_MAGIC.length + 32, CTX_DATA, CTX_DATA + buffered);
    out.writeBigUInt64BE(BigInt(this.length), GO_SIZE - 8);
    return out;
  }
}
