// ui: berth's built-in web interface (src/ui/), a berth extension distribution does not have.
import type { Config } from "./config.js";
import { child, readBool, readSection } from "./raw-values.js";
import type { RawMap } from "./raw-yaml.js";

/** The ui section; on unless `ui.enabled: false`. */
export function buildUi(root: RawMap): Config["ui"] {
  const ui = readSection(child(root, "ui"), "ui");
  return { enabled: readBool(child(ui, "enabled"), "ui.enabled") ?? true };
}
