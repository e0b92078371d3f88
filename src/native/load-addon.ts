import { createRequire } from "node:module";

/**
 * Loads one of berth's native addons (built by `npm install` into build/Release), or undefined when
 * it was not built here: every addon has a pure-Node fallback, so a missing compiler costs speed,
 * never a feature. `accept` rejects a stale build whose interface does not match this code.
 */
export function loadAddon<T>(name: string, accept: (addon: T) => boolean): T | undefined {
  const require = createRequire(import.meta.url);
  // dist/src/native/ → the package root; the second is the layout of an installed package's sources.
  for (const candidate of [`../../../build/Release/${name}.node`, `../../build/Release/${name}.node`]) {
    try {
      const addon = require(candidate) as T;
      if (accept(addon)) return addon;
    } catch {
      // Not built at this location; try the next, then fall back.
    }
  }
  return undefined;
}
