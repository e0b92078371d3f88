/**
 * storage.tag.concurrencylimit: when a manifest is deleted by digest, berth finds the tags that
 * point at it by reading every tag's link, this many at a time (distribution 3's tag lookup).
 * Over a real socket, with the storage driver wrapped to count the link reads in flight.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { serve } from "../src/cli/serve.js";
import { parseConfig } from "../src/config/load-config.js";
import { createLogger } from "../src/log/logger.js";
import { testConfig } from "./support/berth-process.js";
import { FaultyDriver } from "./support/faulty-driver.js";
import { RegistryClient, randomImage, uniqueName } from "./support/registry-client.js";

/** Counts reads of tag `current` links in flight, each held a little so that reads overlap. */
class CountingDriver extends FaultyDriver {
  inFlight = 0;
  maxInFlight = 0;
  counting = false;

  override async getContent(path: string): Promise<Buffer> {
    if (!this.counting || !/\/_manifests\/tags\/[^/]+\/current\/link$/.test(path)) return super.getContent(path);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return await super.getContent(path);
    } finally {
      this.inFlight -= 1;
    }
  }
}

async function deleteWithTags(limit: string | undefined): Promise<{ maxInFlight: number; tagsAfter: number }> {
  const work = await mkdtemp(join(tmpdir(), "berth-tag-lookup-"));
  const log = createLogger({ level: "error", formatter: "json", destination: { write: () => true } as unknown as NodeJS.WritableStream });
  const { config } = parseConfig(testConfig({ storage: limit === undefined ? undefined : `  tag:\n    concurrencylimit: ${limit}` }).replace("{{root}}", join(work, "root")), {}, "tags.yml");
  let driver: CountingDriver | undefined;
  const running = await serve(config, [], log, { wrapDriver: (inner) => (driver = new CountingDriver(inner)) });
  try {
    const client = new RegistryClient(running.url);
    const name = uniqueName("tags");
    const image = await client.pushImage(name, "t00");
    for (let i = 1; i < 12; i++) await client.pushManifest(name, `t${String(i).padStart(2, "0")}`, image.bytes, image.mediaType);
    // One tag elsewhere: it must survive.
    await client.pushImage(name, "other");
    driver!.counting = true;
    assert.equal((await client.send(`/v2/${name}/manifests/${image.digest}`, { method: "DELETE" })).status, 202);
    driver!.counting = false;
    const { body } = await client.getJSON<{ tags: string[] }>(`/v2/${name}/tags/list`);
    assert.deepEqual(body.tags, ["other"]);
    return { maxInFlight: driver!.maxInFlight, tagsAfter: body.tags.length };
  } finally {
    await running.close();
    await rm(work, { recursive: true, force: true });
  }
}

describe("storage.tag.concurrencylimit", () => {
  it("DELETE /v2/<name>/manifests/<digest> reads at most concurrencylimit tag links at once, and removes every tag of the manifest", async () => {
    const { maxInFlight } = await deleteWithTags("3");
    assert.equal(maxInFlight, 3);
  });

  it("concurrencylimit: 1 reads the tags one by one", async () => {
    assert.equal((await deleteWithTags("1")).maxInFlight, 1);
  });
});
