/** GET /v2/_catalog?n=&last=: repository names in catalog order, paginated with Link headers. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startBerth, type BerthProcess } from "./support/berth-process.js";
import { RegistryClient, expectError, nextLink, randomBlob } from "./support/registry-client.js";

let berth: BerthProcess;
let client: RegistryClient;
// This file's server holds exactly these repositories (pushed out of order).
const repositories = ["zeta", "alpha/one", "alpha", "beta/deep/nested", "a0", "alpha/two", "alpha-dash", "b", "alpha/0x"];
// Distribution's order: where a walk of the tree, children in lexical order, meets each
// `<name>/_manifests`. Segment by segment ("alpha/two" before "alpha-dash"), and a nested name
// starting with a digit before its parent ("0x" sorts before "_manifests").
const sorted = ["a0", "alpha/0x", "alpha", "alpha/one", "alpha/two", "alpha-dash", "b", "beta/deep/nested", "zeta"];

before(async () => {
  berth = await startBerth();
  client = new RegistryClient(berth.url);
  for (const name of repositories) await client.pushImage(name, "latest");
});

after(async () => {
  await berth.stop();
});

async function catalog(query: string): Promise<{ response: Response; repositories: string[] }> {
  const { response, body } = await client.getJSON<{ repositories: string[] }>(`/v2/_catalog${query}`);
  return { response, repositories: body.repositories };
}

test("GET /v2/_catalog answers 200 with every repository in catalog order", async () => {
  const { response, repositories: listed } = await catalog("");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type")!, /^application\/json/);
  assert.deepEqual(listed, sorted);
  assert.equal(response.headers.get("link"), null);
});

test("GET /v2/_catalog?n= answers the first n names and a Link to the next page", async () => {
  const { response, repositories: listed } = await catalog("?n=3");
  assert.deepEqual(listed, sorted.slice(0, 3));
  const link = new URL(nextLink(response)!, berth.url);
  assert.equal(link.pathname, "/v2/_catalog");
  assert.equal(link.searchParams.get("n"), "3");
  assert.equal(link.searchParams.get("last"), sorted[2]);
});

test("GET /v2/_catalog following Link headers visits every repository once", async () => {
  const seen: string[] = [];
  let url: string | undefined = "/v2/_catalog?n=3";
  let pages = 0;
  while (url) {
    const { response, body } = await client.getJSON<{ repositories: string[] }>(new URL(url, berth.url).toString());
    seen.push(...body.repositories);
    const next: string | undefined = nextLink(response);
    url = next;
    pages += 1;
    assert.ok(pages <= 5, "pagination terminates");
  }
  assert.deepEqual(seen, sorted);
  assert.equal(pages, 3);
});

test("GET /v2/_catalog?n=&last= answers the names after last", async () => {
  const { repositories: listed } = await catalog("?n=2&last=alpha/one");
  assert.deepEqual(listed, sorted.slice(sorted.indexOf("alpha/one") + 1, sorted.indexOf("alpha/one") + 3));
});

test("GET /v2/_catalog?last= of a name that does not exist answers the names after its place", async () => {
  assert.deepEqual((await catalog("?n=2&last=alpha/p")).repositories, ["alpha/two", "alpha-dash"]);
  assert.deepEqual((await catalog("?last=alpha%2F1")).repositories, sorted.slice(sorted.indexOf("alpha")));
  // Not a storage path: placed by comparing segment by segment (" " sorts before "-").
  assert.deepEqual((await catalog(`?last=${encodeURIComponent("alpha z")}`)).repositories, ["alpha-dash", "b", "beta/deep/nested", "zeta"]);
  assert.deepEqual((await catalog(`?last=${encodeURIComponent("../../..")}`)).repositories, sorted);
  // Longer than a file name may be (255 bytes): no repository is there, nested or not.
  assert.deepEqual((await catalog(`?n=2&last=${"a".repeat(300)}`)).repositories, ["alpha/0x", "alpha"]);
  assert.deepEqual((await catalog(`?n=2&last=alpha/${"p".repeat(300)}/x`)).repositories, ["alpha/two", "alpha-dash"]);
});

test("GET /v2/_catalog?last= without n answers every name after last", async () => {
  const { repositories: listed } = await catalog("?last=b");
  assert.deepEqual(listed, sorted.slice(sorted.indexOf("b") + 1));
});

test("GET /v2/_catalog?n=0 answers 200 with an empty list", async () => {
  const { response, repositories: listed } = await catalog("?n=0");
  assert.equal(response.status, 200);
  assert.deepEqual(listed, []);
});

test("GET /v2/_catalog?n=-5 answers 400 PAGINATION_NUMBER_INVALID", async () => {
  await expectError(await client.fetch("/v2/_catalog?n=-5"), 400, "PAGINATION_NUMBER_INVALID");
});

test("GET /v2/_catalog?n=ten answers 400 PAGINATION_NUMBER_INVALID", async () => {
  await expectError(await client.fetch("/v2/_catalog?n=ten"), 400, "PAGINATION_NUMBER_INVALID");
});

test("GET /v2/_catalog does not list a repository that holds only blobs", async () => {
  await client.pushBlob("blobs-only", randomBlob());
  const { repositories: listed } = await catalog("");
  assert.equal(listed.includes("blobs-only"), false);
});

test("GET /v2/_catalog lists a repository once its first manifest is pushed", async () => {
  await client.pushImage("late/comer", "v1");
  const { repositories: listed } = await catalog("");
  assert.ok(listed.includes("late/comer"));
});

describe("catalog.maxentries", () => {
  let capped: BerthProcess;
  let cappedClient: RegistryClient;
  before(async () => {
    // Set from the environment, as REGISTRY_CATALOG_MAXENTRIES works like every other override.
    capped = await startBerth({ env: { REGISTRY_CATALOG_MAXENTRIES: "2" } });
    cappedClient = new RegistryClient(capped.url);
    for (const name of ["c", "a", "b"]) await cappedClient.pushImage(name, "latest");
  });
  after(async () => {
    await capped.stop();
  });

  test("GET /v2/_catalog without n answers at most maxentries names and a Link to the rest", async () => {
    const { response, body } = await cappedClient.getJSON<{ repositories: string[] }>("/v2/_catalog");
    assert.equal(response.status, 200);
    assert.deepEqual(body.repositories, ["a", "b"]);
    const link = new URL(nextLink(response)!, capped.url);
    assert.equal(link.searchParams.get("n"), "2");
    assert.equal(link.searchParams.get("last"), "b");
  });

  test("GET /v2/_catalog?n=maxentries answers that many", async () => {
    const { body } = await cappedClient.getJSON<{ repositories: string[] }>("/v2/_catalog?n=2&last=a");
    assert.deepEqual(body.repositories, ["b", "c"]);
  });

  test("GET /v2/_catalog?n= above maxentries answers 400 PAGINATION_NUMBER_INVALID", async () => {
    const error = await expectError(await cappedClient.fetch("/v2/_catalog?n=3"), 400, "PAGINATION_NUMBER_INVALID");
    assert.deepEqual(error.detail, { n: 3 });
    await expectError(await cappedClient.fetch("/v2/_catalog?n=99999999999"), 400, "PAGINATION_NUMBER_INVALID");
  });
});
