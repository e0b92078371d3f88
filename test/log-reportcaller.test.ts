/**
 * log.reportcaller against the real server: each line names the function and the file (with its
 * line) that logged it, as distribution's `func` and `file` fields, never pino's own frames; without
 * the key, lines carry neither.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startBerth, testConfig } from "./support/berth-process.js";

function jsonLines(log: string): Array<Record<string, unknown>> {
  return log
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("log.reportcaller", () => {
  it("true: the start-up line names serve() in dist/src/cli/serve.js and its line", async () => {
    const berth = await startBerth({ configYaml: testConfig({ log: "  level: info\n  formatter: json\n  reportcaller: true\n  accesslog:\n    disabled: true" }) });
    try {
      const lines = jsonLines(berth.log());
      const listening = lines.find((l) => typeof l.msg === "string" && l.msg.startsWith("berth listening"));
      assert.ok(listening, berth.log());
      assert.equal(listening.func, "serve");
      assert.match(String(listening.file), /\/src\/cli\/serve\.js:\d+$/);
      assert.ok(lines.every((l) => !String(l.file).includes("node_modules")), "never pino's frames");
    } finally {
      await berth.stop();
    }
  });

  it("absent: no func or file fields", async () => {
    const berth = await startBerth({ configYaml: testConfig({ log: "  level: info\n  formatter: json\n  accesslog:\n    disabled: true" }) });
    try {
      const lines = jsonLines(berth.log());
      assert.ok(lines.length > 0);
      assert.ok(lines.every((l) => !("func" in l) && !("file" in l)));
    } finally {
      await berth.stop();
    }
  });
});
