import { RegistryError } from "../errcode/registry-error.js";

// The OCI distribution spec's grammar. A component never starts with "_", ".", or "-", so storage
// directories such as "_manifests" and "_uploads" can never be taken for repository names.
const COMPONENT = "[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*";
const NAME_PATTERN = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** distribution's limit: the whole name, as clients send it, fits in 255 characters. */
export const MAX_NAME_LENGTH = 255;

export function isValidRepositoryName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

export function assertRepositoryName(name: string): void {
  if (!isValidRepositoryName(name)) {
    throw new RegistryError("NAME_INVALID", "invalid repository name", { name: name.slice(0, 300) });
  }
}

export function isValidTag(tag: string): boolean {
  return TAG_PATTERN.test(tag);
}

export function assertTag(tag: string): void {
  if (!isValidTag(tag)) throw new RegistryError("TAG_INVALID", "invalid tag", { tag: tag.slice(0, 200) });
}
