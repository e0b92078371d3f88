import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InMemoryDriver } from "../src/driver/inmemory-driver.js";
import { PathNotFoundError } from "../src/driver/storage-driver.js";
import { runDriverSuite } from "./driver-suite.js";

runDriverSuite("inmemory", async () => ({ driver: new InMemoryDriver(), cleanup: async () => undefined }));

describe("inmemory storage driver specifics", () => {
  it("keeps instances apart", async () => {
    const first = new InMemoryDriver();
    await first.putContent("/shared/name", Buffer.from("first"));
    await assert.rejects(new InMemoryDriver().stat("/shared/name"), PathNotFoundError);
  });

  it("publishes a writer's bytes only on close or commit", async () => {
    const driver = new InMemoryDriver();
    await driver.putContent("/file", Buffer.from("old"));
    const writer = await driver.writer("/file", true);
    await writer.write(Buffer.from(" and new"));
    assert.equal((await driver.getContent("/file")).toString(), "old");
    await writer.commit();
    assert.equal((await driver.getContent("/file")).toString(), "old and new");
  });

  it("has no redirect URL", async () => {
    assert.equal(await new InMemoryDriver().redirectURL("/any", "GET"), undefined);
  });
});
