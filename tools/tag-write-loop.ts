/**
 * A child process for test/driver-filesystem.test.ts (kept out of dist/test, where the test runner
 * would run it as a test file): writes tags and removes them through the
 * filesystem driver, in TagStore's order, until it is killed, so that the test can look at what a
 * SIGKILL at any moment leaves.
 *
 *   node tag-write-loop.js <root>
 *
 * Each round makes tag `t<i>` (current link first, then three index entries) and, every other
 * round, deletes it again, so that kills land in directory creation and in recursive deletes.
 */
import { FilesystemDriver } from "../src/driver/filesystem-driver.js";

/** Where the tags go; test/driver-filesystem.test.ts lists it. */
const TAGS_PATH = "/docker/registry/v2/repositories/loop/_manifests/tags";

const root = process.argv[2];
if (root === undefined) throw new Error("usage: tag-write-loop.js <root>");
const driver = new FilesystemDriver(root);

function digest(n: number): string {
  return `sha256:${n.toString(16).padStart(64, "0")}`;
}

for (let i = 0; ; i++) {
  const tag = `${TAGS_PATH}/t${i}`;
  await driver.putContent(`${tag}/current/link`, Buffer.from(digest(i)));
  for (let entry = 0; entry < 3; entry++) {
    const d = digest(i * 10 + entry);
    await driver.putContent(`${tag}/index/sha256/${d.slice(7)}/link`, Buffer.from(d));
  }
  if (i % 2 === 1) await driver.delete(tag);
}
