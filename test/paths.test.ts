import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Digest } from "../src/reference/digest.js";
import * as paths from "../src/storage/paths.js";

// The layout is distribution's on-disk format: these literals are what distribution 2.8 reads and
// writes. A change here breaks switching between the two registries.
const HEX = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const D = Digest.parse(`sha256:${HEX}`);
const REPO = "/docker/registry/v2/repositories/library/ubuntu";

describe("storage paths", () => {
  const cases: Array<[string, string]> = [
    [paths.blobDataPath(D), `/docker/registry/v2/blobs/sha256/2c/${HEX}/data`],
    [paths.blobDirPath(D), `/docker/registry/v2/blobs/sha256/2c/${HEX}`],
    [paths.repositoryPath("library/ubuntu"), REPO],
    [paths.layerLinkPath("library/ubuntu", D), `${REPO}/_layers/sha256/${HEX}/link`],
    [paths.layersRootPath("library/ubuntu"), `${REPO}/_layers`],
    [paths.manifestRevisionsPath("library/ubuntu"), `${REPO}/_manifests/revisions`],
    [paths.manifestRevisionLinkPath("library/ubuntu", D), `${REPO}/_manifests/revisions/sha256/${HEX}/link`],
    [paths.tagsRootPath("library/ubuntu"), `${REPO}/_manifests/tags`],
    [paths.tagCurrentLinkPath("library/ubuntu", "22.04"), `${REPO}/_manifests/tags/22.04/current/link`],
    [paths.tagIndexPath("library/ubuntu", "22.04"), `${REPO}/_manifests/tags/22.04/index`],
    [paths.tagIndexEntryLinkPath("library/ubuntu", "22.04", D), `${REPO}/_manifests/tags/22.04/index/sha256/${HEX}/link`],
    [paths.uploadDataPath("library/ubuntu", "f6a0c7b1-5e1f-4c0e-9b9e-0d4b5f8a9c11"), `${REPO}/_uploads/f6a0c7b1-5e1f-4c0e-9b9e-0d4b5f8a9c11/data`],
    [paths.uploadStartedAtPath("library/ubuntu", "abc"), `${REPO}/_uploads/abc/startedat`],
    [paths.uploadHashStatePath("library/ubuntu", "abc", "sha256", 1024), `${REPO}/_uploads/abc/hashstates/sha256/1024`],
    [paths.referrerLinkPath("library/ubuntu", D, D), `${REPO}/_referrers/sha256/${HEX}/sha256/${HEX}/link`],
    [paths.referrersIndexedPath("library/ubuntu", "sha256"), `${REPO}/_referrers/_indexed/sha256`],
    [paths.referrersIndexedMarkerPath("library/ubuntu", D), `${REPO}/_referrers/_indexed/sha256/${HEX}`],
  ];
  for (const [actual, expected] of cases) {
    it(`builds ${expected}`, () => assert.equal(actual, expected));
  }

  it("places sha512 blobs under their own algorithm directory", () => {
    const hex = "a".repeat(128);
    assert.equal(paths.blobDataPath(Digest.parse(`sha512:${hex}`)), `/docker/registry/v2/blobs/sha512/aa/${hex}/data`);
  });
});
