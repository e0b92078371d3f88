import { createHash, type Hash } from "node:crypto";
import { RegistryError } from "../errcode/registry-error.js";

/** Digest algorithms berth accepts, with the length of their hex encoding. */
export const DIGEST_ALGORITHMS = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

/** A validated content digest: "<algorithm>:<lowercase hex>". */
export class Digest {
  private constructor(readonly algorithm: DigestAlgorithm, readonly hex: string) {}

  /** Parses and validates; throws DIGEST_INVALID for anything else (including sha384, uppercase hex). */
  static parse(value: string): Digest {
    const colon = value.indexOf(":");
    if (colon > 0) {
      const algorithm = value.slice(0, colon);
      const hex = value.slice(colon + 1);
      if (isAlgorithm(algorithm) && hex.length === DIGEST_ALGORITHMS[algorithm] && /^[a-f0-9]+$/.test(hex)) {
        return new Digest(algorithm, hex);
      }
    }
    throw new RegistryError("DIGEST_INVALID", "invalid digest", { digest: value.slice(0, 200) });
  }

  /** Like parse, but undefined instead of throwing: for values read back from storage. */
  static tryParse(value: string): Digest | undefined {
    try {
      return Digest.parse(value);
    } catch {
      return undefined;
    }
  }

  static fromHash(algorithm: DigestAlgorithm, hash: Hash): Digest {
    return new Digest(algorithm, hash.digest("hex"));
  }

  static of(algorithm: DigestAlgorithm, bytes: Uint8Array): Digest {
    return new Digest(algorithm, createHash(algorithm).update(bytes).digest("hex"));
  }

  toString(): string {
    return `${this.algorithm}:${this.hex}`;
  }

  equals(other: Digest): boolean {
    return this.algorithm === other.algorithm && this.hex === other.hex;
  }
}

export function isAlgorithm(value: string): value is DigestAlgorithm {
  return Object.hasOwn(DIGEST_ALGORITHMS, value);
}
