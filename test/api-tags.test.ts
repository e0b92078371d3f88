/** GET /v2/<name>/tags/list?n=&last=: lexical order, pagination and its Link header, errors. */
import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startBerth, type BerthProcess } from "./support/berth-process.js";
import { InMemoryDriver } from "../src/driver/inmemory-driver.js";
import { createLogger } from "../src/log/logger.js";
import { Digest } from "../src/reference/digest.js";
import { TagStore } from "../src/storage/tag-store.js";
import { OCI_MANIFEST, RegistryClient, expectError, nextLink, randomImage, registryTree, uniqueName } from "./support/registry-client.js";

let berth: BerthProcess;
let client: RegistryClient;
const name = uniqueName("tags");
// Pushed out of order; sorted by code unit they are: 1, 10, 2, A, Z, a, b, latest, v10, v9.
const pushed = ["v9", "latest", "b", "A", "10", "v10", "a", "Z", "2", "1"];
const sorted = ["1", "10", "2", "A", "Z", "a", "b", "latest", "v10", "v9"];

before(async () => {
  berth = await startBerth();
  client = new RegistryClient(berth.url);
  const image = await client.pushImage(name, pushed[0]);
  for (const tag of pushed.slice(1)) await client.pushManifest(name, tag, image.bytes, OCI_MANIFEST);
});

after(async () => {
  await berth.stop();
});

async function list(query: string): Promise<{ response: Response; tags: string[]; name: string }> {
  const { response, body } = await client.getJSON<{ name: string; tags: string[] }>(`/v2/${name}/tags/list${query}`);
  return { response, tags: body.tags, name: body.name };
}

test("GET /v2/<name>/tags/list answers 200 with the name and every tag in lexical (code unit) order", async () => {
  const { response, tags, name: listed } = await list("");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type")!, /^application\/json/);
  assert.equal(listed, name);
  assert.deepEqual(tags, sorted);
  assert.equal(response.headers.get("link"), null);
});

test("GET /v2/<name>/tags/list?n= answers the first n tags and a Link to the next page", async () => {
  const { response, tags } = await list("?n=3");
  assert.equal(response.status, 200);
  assert.deepEqual(tags, sorted.slice(0, 3));
  const link = nextLink(response);
  assert.ok(link, "Link header");
  const next = new URL(link, berth.url);
  assert.equal(next.pathname, `/v2/${name}/tags/list`);
  assert.equal(next.searchParams.get("n"), "3");
  assert.equal(next.searchParams.get("last"), sorted[2]);
});

test("GET /v2/<name>/tags/list following Link headers visits every tag once, and the last page has no Link", async () => {
  const seen: string[] = [];
  let url: string | undefined = `/v2/${name}/tags/list?n=4`;
  let pages = 0;
  while (url) {
    const { response, body }: { response: Response; body: { tags: string[] } } = await client.getJSON<{ tags: string[] }>(new URL(url, berth.url).toString());
    assert.equal(response.status, 200);
    seen.push(...body.tags);
    const next: string | undefined = nextLink(response);
    url = next;
    pages += 1;
    assert.ok(pages <= 5, "pagination terminates");
  }
  assert.deepEqual(seen, sorted);
  assert.equal(pages, 3);
});

test("GET /v2/<name>/tags/list?n=&last= answers the tags after last", async () => {
  const { response, tags } = await list(`?n=2&last=${sorted[3]}`);
  assert.equal(response.status, 200);
  assert.deepEqual(tags, sorted.slice(4, 6));
});

test("GET /v2/<name>/tags/list?last= without n answers every tag after last", async () => {
  const { tags } = await list("?last=b");
  assert.deepEqual(tags, ["latest", "v10", "v9"]);
});

test("GET /v2/<name>/tags/list?last= with a value between tags answers the tags after it", async () => {
  const { tags } = await list("?last=B");
  assert.deepEqual(tags, ["Z", "a", "b", "latest", "v10", "v9"]);
});

test("GET /v2/<name>/tags/list?n= larger than the list answers every tag without a Link", async () => {
  const { response, tags } = await list("?n=100");
  assert.deepEqual(tags, sorted);
  assert.equal(response.headers.get("link"), null);
});

test("GET /v2/<name>/tags/list?n= equal to the number of tags answers them all without a Link", async () => {
  const { response, tags } = await list(`?n=${sorted.length}`);
  assert.deepEqual(tags, sorted);
  assert.equal(response.headers.get("link"), null);
});

test("GET /v2/<name>/tags/list?n=0 answers 200 with an empty list and no Link", async () => {
  const { response, tags } = await list("?n=0");
  assert.equal(response.status, 200);
  assert.deepEqual(tags, []);
  assert.equal(response.headers.get("link"), null);
});

test("GET /v2/<name>/tags/list?n=half&last= mirrors the conformance suite's pagination check", async () => {
  const numResults = Math.floor(sorted.length / 2);
  const first = await list(`?n=${numResults}`);
  assert.equal(first.tags.length, numResults);
  const second = await list(`?n=${numResults}&last=${first.tags[numResults - 1]}`);
  assert.equal(second.response.status, 200);
  assert.ok(second.tags.length <= numResults);
  assert.deepEqual(second.tags, sorted.slice(numResults, numResults * 2));
});

test("GET /v2/<name>/tags/list?n=-1 answers 400 PAGINATION_NUMBER_INVALID", async () => {
  await expectError(await client.fetch(`/v2/${name}/tags/list?n=-1`), 400, "PAGINATION_NUMBER_INVALID");
});

test("GET /v2/<name>/tags/list?n=abc answers 400 PAGINATION_NUMBER_INVALID", async () => {
  await expectError(await client.fetch(`/v2/${name}/tags/list?n=abc`), 400, "PAGINATION_NUMBER_INVALID");
});

test("GET /v2/<name>/tags/list?n=1.5 answers 400 PAGINATION_NUMBER_INVALID", async () => {
  await expectError(await client.fetch(`/v2/${name}/tags/list?n=1.5`), 400, "PAGINATION_NUMBER_INVALID");
});

test("GET /v2/<name>/tags/list of a repository that does not exist answers 404 NAME_UNKNOWN", async () => {
  await expectError(await client.fetch(`/v2/${uniqueName("ghost")}/tags/list`), 404, "NAME_UNKNOWN");
});

test("GET /v2/<name>/tags/list of a repository whose tags were all deleted answers 200 with an empty list", async () => {
  const repo = uniqueName("tags");
  const image = await client.pushImage(repo, "only");
  assert.equal((await client.send(`/v2/${repo}/manifests/only`, { method: "DELETE" })).status, 202);
  assert.deepEqual(await client.tags(repo), []);
  assert.equal((await client.send(`/v2/${repo}/manifests/${image.digest}`)).status, 200);
});

test("GET /v2/<name>/tags/list lists a tag once however often it was pushed", async () => {
  const repo = uniqueName("tags");
  await client.pushImage(repo, "v1");
  await client.pushImage(repo, "v1", randomImage());
  assert.deepEqual(await client.tags(repo), ["v1"]);
});

test("HEAD /v2/<name>/tags/list answers 200 without a body", async () => {
  const response = await client.fetch(`/v2/${name}/tags/list`, { method: "HEAD" });
  assert.equal(response.status, 200);
  assert.equal(await response.text(), "");
});

test("GET /v2/<name>/tags/list lists a tag directory without its current link, as distribution does; the tag answers 404 and a push of it repairs it", async () => {
  // What a kill while tagging or untagging left with distribution, or with berth before tags were
  // written current link first and directories made and removed atomically (docs/reliability.md).
  // berth no longer leaves it, but a storage root may still hold it. Leaving such names out would
  // cost a read per tag (a HEAD per tag on S3), so they stay listed; the name resolves to
  // MANIFEST_UNKNOWN until it is pushed again.
  const repo = uniqueName("tags-remains");
  await client.pushImage(repo, "kept");
  const manifest = (await client.get(`/v2/${repo}/manifests/kept`, { Accept: OCI_MANIFEST })).bytes;
  const tags = join(registryTree(berth.root!), "repositories", repo, "_manifests", "tags");
  await mkdir(join(tags, "made", "index", "sha256"), { recursive: true });
  await client.pushManifest(repo, "halfgone", manifest, OCI_MANIFEST);
  await rm(join(tags, "halfgone", "current"), { recursive: true });
  const { response, body } = await client.getJSON<{ tags: string[] }>(`/v2/${repo}/tags/list`);
  assert.equal(response.status, 200);
  assert.deepEqual(body.tags, ["halfgone", "kept", "made"]);
  await expectError(await client.send(`/v2/${repo}/manifests/halfgone`), 404, "MANIFEST_UNKNOWN");
  await client.pushManifest(repo, "halfgone", manifest, OCI_MANIFEST);
  assert.equal((await client.send(`/v2/${repo}/manifests/halfgone`, { headers: { Accept: OCI_MANIFEST } })).status, 200);
});

test("a tag's current link is the first part written and the last removed, so that a kill between two writes or deletes never leaves a listed tag that answers 404", async () => {
  // On an object store a directory is its keys, and a recursive delete removes them one request
  // at a time: the order is TagStore's to keep (the filesystem driver is atomic per directory).
  const calls: string[] = [];
  class Recording extends InMemoryDriver {
    override async putContent(path: string, content: Uint8Array): Promise<void> {
      calls.push(`put ${path}`);
      return super.putContent(path, content);
    }
    override async delete(path: string): Promise<void> {
      calls.push(`delete ${path}`);
      return super.delete(path);
    }
  }
  const tags = new TagStore(new Recording(), "r", createLogger({ level: "error", formatter: "text" }));
  const digest = Digest.parse(`sha256:${"a".repeat(64)}`);
  await tags.tag("t", digest);
  await tags.untag("t");
  const base = "/docker/registry/v2/repositories/r/_manifests/tags/t";
  assert.deepEqual(calls, [
    `put ${base}/current/link`,
    `put ${base}/index/sha256/${"a".repeat(64)}/link`,
    `delete ${base}/index`,
    `delete ${base}`,
  ]);
  assert.deepEqual(await tags.all(), []);
});
