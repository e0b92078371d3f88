/**
 * What `npm pack` ships is enough to run berth and serve its web UI: the compiled code and the
 * UI's assets, which are read at run time from src/ui/assets/ (they are not compiled into dist/).
 * The package is packed, unpacked into a temporary directory, given this checkout's dependencies
 * (what `npm install` of the tarball would fetch from the registry), and started from there.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { requireProgram, runOk } from "./support/external-program.js";

const npm = requireProgram("npm");
const tar = requireProgram("tar");
const skip = npm.skip || tar.skip;
/** The checkout: dist/test/ → two levels up. */
const CHECKOUT = fileURLToPath(new URL("../../", import.meta.url));

describe("the packed package", { skip }, () => {
  let work: string;
  let packed: string[];
  let berth: BerthProcess;

  before(async () => {
    if (skip) return;
    work = await mkdtemp(join(tmpdir(), "berth-pack-"));
    // --ignore-scripts: `prepare` would compile again; the test runs on the compiled checkout.
    const pack = await runOk(npm.path!, ["pack", "--json", "--ignore-scripts", "--pack-destination", work], { cwd: CHECKOUT });
    const [result] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    packed = result!.files.map((f) => f.path);
    await runOk(tar.path!, ["-xzf", join(work, result!.filename), "-C", work]);
    await symlink(join(CHECKOUT, "node_modules"), join(work, "package", "node_modules"));
    berth = await startBerth({ cli: join(work, "package", "dist", "src", "cli", "main.js"), configYaml: testConfig() });
  });

  after(async () => {
    await berth?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("lists the compiled code and every UI asset, and no tests, benchmarks or sources to compile", () => {
    for (const file of ["dist/src/cli/main.js", "src/ui/assets/index.html", "src/ui/assets/ui.js", "src/ui/assets/ui.css", "src/ui/assets/icon.svg", "binding.gyp", "package.json", "README.md"]) {
      assert.ok(packed.includes(file), `${file} is packed`);
    }
    assert.deepEqual(
      packed.filter((f) => /^(test|bench|tools|dist\/test|dist\/bench)\//.test(f) || (f.startsWith("src/") && f.endsWith(".ts"))),
      [],
    );
  });

  it("serves the web UI from the unpacked package: the page, and its script and style byte for byte", async () => {
    const page = await fetch(`${berth.url}/ui/`, { headers: { "Accept-Encoding": "identity" } });
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    // The page is the shipped index.html with the settings filled in (src/ui/static-assets.ts).
    const html = await page.text();
    assert.match(html, /<script src="ui\.js" defer><\/script>/);
    assert.match(html, /data-settings="\{&quot;auth&quot;:&quot;none&quot;/);
    const style = await fetch(`${berth.url}/ui/ui.css`, { headers: { "Accept-Encoding": "identity" } });
    assert.equal(await style.text(), await readFile(join(CHECKOUT, "src", "ui", "assets", "ui.css"), "utf8"));
    const script = await fetch(`${berth.url}/ui/ui.js`, { headers: { "Accept-Encoding": "identity" } });
    assert.equal(script.status, 200);
    assert.equal(await script.text(), await readFile(join(CHECKOUT, "src", "ui", "assets", "ui.js"), "utf8"));
  });
});
