/**
 * The htpasswd access controller beyond the shared suite: the file format as `htpasswd -B` writes
 * it, re-reading the file when it changes, failing closed when it disappears, a missing file at
 * start, and unknown users costing what known ones do.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { appendFile, mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { HtpasswdAccessController, parseBasicCredentials, parseHtpasswd } from "../src/auth/htpasswd.js";
import { ConfigError } from "../src/config/config.js";
import { RegistryError } from "../src/errcode/registry-error.js";
import { requireProgram, runOk } from "./support/external-program.js";
import { memoryLogger } from "./support/memory-logger.js";

const htpasswdProgram = requireProgram("htpasswd");
const basic = (user: string, password: string) => ({ headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` } });
const PULL = [{ type: "repository" as const, name: "team/app", action: "pull" }];
/** The controller re-checks the file at most once a second. */
const RECHECK_WAIT_MS = 1100;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function accepted(controller: HtpasswdAccessController, user: string, password: string): Promise<boolean> {
  try {
    await controller.authorize(basic(user, password), PULL);
    return true;
  } catch (err) {
    assert.ok(err instanceof RegistryError && err.code === "UNAUTHORIZED", String(err));
    return false;
  }
}

describe("htpasswd file format", () => {
  it("skips blank lines and # comments, splits at the first colon, and accepts CRLF line ends", () => {
    const { entries, warnings } = parseHtpasswd(`# users\r\n\r\nalice:$2y$05$${"a".repeat(53)}\r\n  bob:$2b$10$${"b".repeat(53)}  \n`);
    assert.deepEqual([...entries.keys()], ["alice", "bob"]);
    assert.deepEqual(warnings, []);
  });

  it("a line without a colon is an error naming its line number but not its content", () => {
    assert.throws(() => parseHtpasswd("alice:$2y$05$x\nsecret-looking-line\n"), (err: Error) => {
      assert.match(err.message, /line 2/);
      assert.doesNotMatch(err.message, /secret-looking-line/);
      return true;
    });
  });

  it("non-bcrypt entries (MD5, SHA-1, crypt) are kept as users who cannot log in, with a warning; a repeated user's last line wins", () => {
    const { entries, warnings } = parseHtpasswd(`md5:$apr1$x$y\nsha:{SHA}abc\nalice:$2y$05$${"a".repeat(53)}\nalice:$2y$05$${"c".repeat(53)}\n`);
    assert.equal(entries.get("md5")?.hash, undefined);
    assert.equal(entries.get("sha")?.hash, undefined);
    assert.equal(entries.get("alice")?.hash, `$2y$05$${"c".repeat(53)}`);
    assert.equal(warnings.length, 3);
    assert.match(warnings.join("\n"), /"md5" \(line 1\) has no bcrypt hash/);
    assert.match(warnings.join("\n"), /"alice" appears more than once; line 4 wins/);
  });

  it("Basic credentials split at the first colon, so passwords may contain colons; malformed base64 is no credential", () => {
    assert.deepEqual(parseBasicCredentials(Buffer.from("alice:pa:ss").toString("base64")), { user: "alice", password: "pa:ss" });
    assert.equal(parseBasicCredentials(Buffer.from("alice").toString("base64")), undefined);
    assert.equal(parseBasicCredentials("not base64!"), undefined);
    assert.equal(parseBasicCredentials("YWxpY2U6cw"), undefined, "unpadded");
  });
});

describe("htpasswd access controller", () => {
  let dir: string;
  let file: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-htpasswd-"));
    file = join(dir, "htpasswd");
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("accepts the $2y$ entries `htpasswd -B` writes, at its default cost and at -C 10", { skip: htpasswdProgram.skip }, async () => {
    const path = join(dir, "real-htpasswd");
    await runOk(htpasswdProgram.path!, ["-cbB", path, "alice", "s3cret with spaces"]);
    await runOk(htpasswdProgram.path!, ["-bB", "-C", "10", path, "bob", "b0b:colon"]);
    const controller = await HtpasswdAccessController.open({ realm: "r", path }, memoryLogger().log);
    assert.equal(await accepted(controller, "alice", "s3cret with spaces"), true);
    assert.equal(await accepted(controller, "bob", "b0b:colon"), true);
    assert.equal(await accepted(controller, "alice", "s3cret"), false);
  });

  it("accepts $2a$ and $2b$ hashes too", async () => {
    const b = await bcrypt.hash("pw-b", 4);
    const a = b.replace(/^\$2b\$/, "$2a$");
    await writeFile(file, `a:${a}\nb:${b}\n`);
    const controller = await HtpasswdAccessController.open({ realm: "r", path: file }, memoryLogger().log);
    assert.equal(await accepted(controller, "a", "pw-b"), true);
    assert.equal(await accepted(controller, "b", "pw-b"), true);
  });

  it("re-reads the file when it changes: users added, passwords changed and users removed take effect without a restart", async () => {
    await writeFile(file, `alice:${await bcrypt.hash("one", 4)}\n`);
    const memory = memoryLogger();
    const controller = await HtpasswdAccessController.open({ realm: "r", path: file }, memory.log);
    assert.equal(await accepted(controller, "alice", "one"), true);
    assert.equal(await accepted(controller, "carol", "three"), false);

    await appendFile(file, `carol:${await bcrypt.hash("three", 4)}\n`);
    await sleep(RECHECK_WAIT_MS);
    assert.equal(await accepted(controller, "carol", "three"), true, "a user added to the file");

    await writeFile(file, `alice:${await bcrypt.hash("two", 4)}\n`);
    await sleep(RECHECK_WAIT_MS);
    assert.equal(await accepted(controller, "alice", "one"), false, "the old password, even though it was verified (and remembered) before");
    assert.equal(await accepted(controller, "alice", "two"), true);
    assert.equal(await accepted(controller, "carol", "three"), false, "a user removed from the file");
    assert.match(memory.text(), /users reloaded/);
  });

  it("a file that disappears refuses everyone until it is back; a broken rewrite keeps the users last read", async () => {
    await writeFile(file, `alice:${await bcrypt.hash("pw", 4)}\n`);
    const memory = memoryLogger();
    const controller = await HtpasswdAccessController.open({ realm: "r", path: file }, memory.log);
    assert.equal(await accepted(controller, "alice", "pw"), true);

    await unlink(file);
    await sleep(RECHECK_WAIT_MS);
    assert.equal(await accepted(controller, "alice", "pw"), false, "fails closed");
    assert.match(memory.text(), /the file is gone/);

    await writeFile(file, `alice:${await bcrypt.hash("pw", 4)}\n`);
    await sleep(RECHECK_WAIT_MS);
    assert.equal(await accepted(controller, "alice", "pw"), true, "back");

    await writeFile(file, "this line has no colon\n");
    await sleep(RECHECK_WAIT_MS);
    assert.equal(await accepted(controller, "alice", "pw"), true, "a half-written file does not lock everyone out");
    assert.match(memory.text(), /cannot read the changed file; keeping the users last read/);
  });

  it("a missing file at start is a ConfigError naming auth.htpasswd.path; no file is created and no password logged", async () => {
    const missing = join(dir, "sub", "missing-htpasswd");
    const memory = memoryLogger();
    await assert.rejects(HtpasswdAccessController.open({ realm: "r", path: missing }, memory.log), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.key, "auth.htpasswd.path");
      assert.match(err.message, /does not exist; create it with: htpasswd -cB/);
      return true;
    });
    assert.equal(existsSync(missing), false);
    assert.doesNotMatch(memory.text(), /password/i);
  });

  it("a malformed file at start is a ConfigError naming the line", async () => {
    await writeFile(file, "no colon here\n");
    await assert.rejects(HtpasswdAccessController.open({ realm: "r", path: file }, memoryLogger().log), /auth\.htpasswd\.path: .*line 1/);
  });

  it("an unknown user costs a bcrypt comparison like a known user with a wrong password (no user enumeration by timing)", async () => {
    // Cost 10 takes a few hundred milliseconds in pure JavaScript; skipping the comparison for an
    // unknown user would answer in well under a millisecond.
    await writeFile(file, `alice:${await bcrypt.hash("right", 10)}\n`);
    const controller = await HtpasswdAccessController.open({ realm: "r", path: file }, memoryLogger().log);
    const time = async (user: string): Promise<number> => {
      const started = performance.now();
      assert.equal(await accepted(controller, user, "wrong"), false);
      return performance.now() - started;
    };
    await time("alice"); // warm up the JIT
    const known = await time("alice");
    const unknown = await time("nobody");
    assert.ok(unknown > known / 3, `unknown user took ${unknown.toFixed(1)} ms, a known one ${known.toFixed(1)} ms`);
  });

  it("the challenge is Basic with the configured realm", async () => {
    await writeFile(file, `alice:${await bcrypt.hash("pw", 4)}\n`);
    const controller = await HtpasswdAccessController.open({ realm: 'my "quoted" realm', path: file }, memoryLogger().log);
    await assert.rejects(controller.authorize({ headers: {} }, PULL), (err: unknown) => {
      assert.ok(err instanceof RegistryError);
      assert.equal(err.headers["WWW-Authenticate"], 'Basic realm="my \\"quoted\\" realm"');
      return true;
    });
  });
});
