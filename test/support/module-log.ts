/**
 * Preloaded into a berth process (NODE_OPTIONS=--import <this module's URL>) by tests that check
 * which modules a process loads: every module that goes through Node's ES module loader is
 * appended, one URL a line, to the file named by BERTH_TEST_MODULE_LOG. That covers berth's own
 * modules and the entry module of each package berth imports (CommonJS files a package then
 * require()s among themselves are not seen, its entry is).
 */
import { register } from "node:module";

const file = process.env.BERTH_TEST_MODULE_LOG;
if (file !== undefined && file !== "") register("./module-log-hooks.js", import.meta.url, { data: { file } });

/** The NODE_OPTIONS value that preloads this module. */
export function moduleLogNodeOptions(): string {
  return `--import=${import.meta.url}`;
}
