import { storageFaultOf, type StorageFaultKind } from "../driver/storage-fault.js";
import { RegistryError } from "./registry-error.js";

/**
 * What a client is told of a storage failure: `503 UNAVAILABLE` (the registry cannot store or read
 * right now; retrying later may work once an operator, or the object store, has recovered), with a
 * detail naming the kind of failure and nothing else (no path, errno or bucket). distribution
 * answers all of these `500 UNKNOWN`; a client cannot tell a full disk from a bug there.
 */
const DETAILS: Record<StorageFaultKind, string> = {
  full: "storage is full",
  "read-only": "storage is read-only",
  "access-denied": "storage refused access",
  io: "storage I/O error",
  unavailable: "storage backend unavailable",
};

/**
 * The registry error `err` is answered with: itself when it is one, UNAVAILABLE for a storage
 * failure, undefined for anything else (an internal failure: 500 UNKNOWN).
 */
export function registryErrorOf(err: unknown): RegistryError | undefined {
  if (err instanceof RegistryError) return err;
  const kind = storageFaultOf(err);
  return kind === undefined ? undefined : new RegistryError("UNAVAILABLE", undefined, DETAILS[kind]);
}
