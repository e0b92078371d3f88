/** The keys of issue 17's last batch: catalog, middleware (and their REGISTRY_* overrides, and describeConfig). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, type Config } from "../src/config/config.js";
import { describeConfig, parseConfig } from "../src/config/load-config.js";

const MINIMAL = "version: 0.1\nstorage:\n  inmemory:\n";

function parse(yaml: string, env: NodeJS.ProcessEnv = {}): { config: Config; warnings: string[] } {
  return parseConfig(yaml, env, "test.yml");
}

function assertConfigError(run: () => unknown, key: string, fragment: string): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.key, key, err.message);
    assert.ok(err.message.includes(fragment), `${JSON.stringify(err.message)} lacks ${JSON.stringify(fragment)}`);
    return true;
  });
}

describe("catalog.maxentries", () => {
  it("is unset by default and read from the file or REGISTRY_CATALOG_MAXENTRIES", () => {
    assert.equal(parse(MINIMAL).config.catalog.maxEntries, undefined);
    const { config, warnings } = parse(`${MINIMAL}catalog:\n  maxentries: 500\n`);
    assert.equal(config.catalog.maxEntries, 500);
    assert.deepEqual(warnings, []);
    assert.equal(parse(MINIMAL, { REGISTRY_CATALOG_MAXENTRIES: "20" }).config.catalog.maxEntries, 20);
    assert.deepEqual(describeConfig(parse(`${MINIMAL}catalog:\n  maxentries: 500\n`).config)["catalog"], { maxentries: 500 });
  });

  it("refuses zero, negative and non-numbers", () => {
    assertConfigError(() => parse(`${MINIMAL}catalog:\n  maxentries: 0\n`), "catalog.maxentries", "positive integer");
    assertConfigError(() => parse(`${MINIMAL}catalog:\n  maxentries: -1\n`), "catalog.maxentries", "positive integer");
    assertConfigError(() => parse(MINIMAL, { REGISTRY_CATALOG_MAXENTRIES: "lots" }), "catalog.maxentries", "REGISTRY_CATALOG_MAXENTRIES");
  });
});

describe("middleware.storage", () => {
  const storage = (entries: string): string => `${MINIMAL}middleware:\n  storage:\n${entries}`;

  it("reads redirect and cloudfront entries with distribution's defaults, skipping disabled ones", () => {
    const { config, warnings } = parse(
      storage(`    - name: redirect
      options:
        baseurl: https://cdn.example.com/base/
    - name: redirect
      disabled: true
      options:
        baseurl: https://other.example.com
    - name: cloudfront
      options:
        baseurl: d111111abcdef8.cloudfront.net
        privatekey: /etc/registry/cf.pem
        keypairid: K1
`),
    );
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.middleware.storage, [
      { name: "redirect", baseURL: "https://cdn.example.com/base/" },
      {
        name: "cloudfront",
        baseURL: "https://d111111abcdef8.cloudfront.net/",
        privateKey: "/etc/registry/cf.pem",
        keyPairId: "K1",
        durationMs: 20 * 60_000,
        ipFilteredBy: "none",
        awsRegions: [],
        updateFrequencyMs: 12 * 3_600_000,
        ipRangesURL: "https://ip-ranges.amazonaws.com/ip-ranges.json",
      },
    ]);
    assert.deepEqual(describeConfig(config)["middleware"], {
      storage: [
        { name: "redirect", options: { baseurl: "https://cdn.example.com/base/" } },
        { name: "cloudfront", options: { baseurl: "https://d111111abcdef8.cloudfront.net/", privatekey: "/etc/registry/cf.pem", keypairid: "K1", duration: "20m0s", ipfilteredby: "none" } },
      ],
    });
  });

  it("reads every cloudfront option, and the misspelt updatefrenquency with a warning", () => {
    const { config, warnings } = parse(
      storage(`    - name: cloudfront
      options:
        baseurl: http://cdn.internal:8080/x
        privatekey: /k.pem
        keypairid: K1
        duration: 1h
        ipfilteredby: " AWSRegion "
        awsregion: "us-east-1, EU-west-1"
        updatefrenquency: 30m
        iprangesurl: http://127.0.0.1:1/ranges.json
        colour: blue
`),
    );
    assert.deepEqual(warnings, [
      "unknown key middleware.storage[0].options.colour",
      "middleware.storage[0].options.updatefrenquency is deprecated (a typo distribution kept); use updatefrequency",
    ]);
    const entry = config.middleware.storage[0];
    assert.ok(entry?.name === "cloudfront");
    assert.equal(entry.baseURL, "http://cdn.internal:8080/x/");
    assert.equal(entry.durationMs, 3_600_000);
    assert.equal(entry.ipFilteredBy, "awsregion");
    assert.deepEqual(entry.awsRegions, ["us-east-1", "eu-west-1"]);
    assert.equal(entry.updateFrequencyMs, 30 * 60_000);
    assert.equal(entry.ipRangesURL, "http://127.0.0.1:1/ranges.json");
  });

  it("is read from REGISTRY_MIDDLEWARE_STORAGE as a YAML list", () => {
    const { config } = parse(MINIMAL, { REGISTRY_MIDDLEWARE_STORAGE: "[{name: redirect, options: {baseurl: 'https://cdn.example.com'}}]" });
    assert.deepEqual(config.middleware.storage, [{ name: "redirect", baseURL: "https://cdn.example.com/" }]);
  });

  it("refuses what distribution refuses, naming the key", () => {
    assertConfigError(() => parse(storage("    - name: redirect\n")), "middleware.storage[0].options.baseurl", "required");
    assertConfigError(() => parse(storage("    - name: redirect\n      options:\n        baseurl: cdn.example.com/x\n")), "middleware.storage[0].options.baseurl", "scheme and a host");
    assertConfigError(() => parse(storage("    - name: redirect\n      options:\n        baseurl: https://cdn.example.com/?a=b\n")), "middleware.storage[0].options.baseurl", "query or fragment");
    assertConfigError(() => parse(storage("    - name: rewrite\n")), "middleware.storage[0].name", 'no storage middleware "rewrite"');
    assertConfigError(() => parse(storage("    - name: cloudfront\n      options:\n        baseurl: https://x\n        keypairid: K\n")), "middleware.storage[0].options.privatekey", "required");
    assertConfigError(() => parse(storage("    - name: cloudfront\n      options:\n        baseurl: https://x\n        privatekey: /k\n")), "middleware.storage[0].options.keypairid", "required");
    assertConfigError(
      () => parse(storage("    - name: cloudfront\n      options:\n        baseurl: https://x\n        privatekey: /k\n        keypairid: K\n        ipfilteredby: awsregion\n")),
      "middleware.storage[0].options.awsregion",
      "required with ipfilteredby: awsregion",
    );
    assertConfigError(
      () => parse(storage("    - name: cloudfront\n      options:\n        baseurl: https://x\n        privatekey: /k\n        keypairid: K\n        ipfilteredby: gcp\n")),
      "middleware.storage[0].options.ipfilteredby",
      "none, aws or awsregion",
    );
    assertConfigError(
      () => parse(storage("    - name: cloudfront\n      options:\n        baseurl: https://x\n        privatekey: /k\n        keypairid: K\n        duration: 0s\n")),
      "middleware.storage[0].options.duration",
      "greater than zero",
    );
    assertConfigError(() => parse(`${MINIMAL}middleware:\n  storage:\n    name: redirect\n`), "middleware.storage", "expected a list");
  });

  it("refuses any registry or repository middleware, saying what berth offers instead", () => {
    assertConfigError(() => parse(`${MINIMAL}middleware:\n  registry:\n    - name: custom\n`), "middleware.registry[0]", 'no registry middleware "custom"');
    assertConfigError(() => parse(`${MINIMAL}middleware:\n  repository:\n    - name: quota\n      options: {}\n`), "middleware.repository[0]", "proxy (pull-through cache), notifications");
    assert.deepEqual(parse(`${MINIMAL}middleware:\n  registry: []\n  repository:\n`).warnings, []);
  });
});

describe("validation", () => {
  it("is on with no lists by default; disabled, enabled (deprecated) and the lists are read", () => {
    assert.deepEqual(parse(MINIMAL).config.validation, { enabled: true, allow: [], deny: [], indexes: { platforms: "all", platformList: [] } });
    assert.equal(parse(`${MINIMAL}validation:\n  disabled: true\n`).config.validation.enabled, false);
    // distribution: the deprecated enabled: true wins over disabled.
    const both = parse(`${MINIMAL}validation:\n  enabled: true\n  disabled: true\n`);
    assert.equal(both.config.validation.enabled, true);
    assert.deepEqual(both.warnings, ["validation.enabled is deprecated in distribution; use validation.disabled"]);
    const { config, warnings } = parse(`${MINIMAL}validation:\n  manifests:\n    urls:\n      allow: ['^https://a/']\n      deny: ['b$', 'c']\n`);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.validation, { enabled: true, allow: ["^https://a/"], deny: ["b$", "c"], indexes: { platforms: "all", platformList: [] } });
    assert.deepEqual(describeConfig(config)["validation"], {
      disabled: false,
      manifests: { urls: { allow: ["^https://a/"], deny: ["b$", "c"] }, indexes: { platforms: "all", platformlist: [] } },
    });
  });

  it("refuses a list that is not a list of patterns, and a pattern that does not compile", () => {
    assertConfigError(() => parse(`${MINIMAL}validation:\n  manifests:\n    urls:\n      allow: x\n`), "validation.manifests.urls.allow", "expected a list");
    assertConfigError(() => parse(`${MINIMAL}validation:\n  manifests:\n    urls:\n      deny: ['(']\n`), "validation.manifests.urls.deny[0]", "not a regular expression");
    assertConfigError(() => parse(MINIMAL, { REGISTRY_VALIDATION_DISABLED: "perhaps" }), "validation.disabled", "REGISTRY_VALIDATION_DISABLED");
  });

  it("reads distribution 3's indexes.platforms (all, none, list, any case) and platformlist, warning as distribution does when not all", () => {
    const none = parse(`${MINIMAL}validation:\n  manifests:\n    indexes:\n      platforms: None\n`);
    assert.deepEqual(none.config.validation.indexes, { platforms: "none", platformList: [] });
    assert.deepEqual(none.warnings, [
      "validation.manifests.indexes.platforms: none: indexes may be pushed with children the registry does not hold, which other tools may not expect",
    ]);
    const list = parse(`${MINIMAL}validation:\n  manifests:\n    indexes:\n      platforms: list\n      platformlist:\n        - architecture: amd64\n          os: linux\n        - {architecture: arm64, os: linux}\n`);
    assert.deepEqual(list.config.validation.indexes, { platforms: "list", platformList: [{ architecture: "amd64", os: "linux" }, { architecture: "arm64", os: "linux" }] });
    assert.deepEqual((describeConfig(list.config)["validation"] as { manifests: unknown }).manifests, {
      urls: { allow: [], deny: [] },
      indexes: { platforms: "list", platformlist: [{ architecture: "amd64", os: "linux" }, { architecture: "arm64", os: "linux" }] },
    });
    assert.equal(parse(MINIMAL, { REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMS: "none" }).config.validation.indexes.platforms, "none");
    const stray = parse(`${MINIMAL}validation:\n  manifests:\n    indexes:\n      platformlist:\n        - {architecture: amd64, os: linux}\n`);
    assert.equal(stray.config.validation.indexes.platforms, "all");
    assert.deepEqual(stray.warnings, ["validation.manifests.indexes.platformlist applies only with platforms: list; every child is required"]);
  });

  it("refuses an unknown indexes.platforms and a platformlist that is not a list of platforms", () => {
    const at = "validation.manifests.indexes";
    assertConfigError(() => parse(`${MINIMAL}validation:\n  manifests:\n    indexes:\n      platforms: some\n`), `${at}.platforms`, "expected one of all, none, list");
    assertConfigError(() => parse(`${MINIMAL}validation:\n  manifests:\n    indexes:\n      platforms: list\n      platformlist: linux/amd64\n`), `${at}.platformlist`, "expected a list of platforms");
    assertConfigError(() => parse(`${MINIMAL}validation:\n  manifests:\n    indexes:\n      platforms: list\n      platformlist:\n        - linux/amd64\n`), `${at}.platformlist[0]`, "expected a mapping");
    assertConfigError(() => parse(`${MINIMAL}validation:\n  manifests:\n    indexes:\n      platforms: list\n      platformlist:\n        - {variant: v8}\n`), `${at}.platformlist[0]`, "expected an architecture and an os");
  });
});

describe("storage.tag.concurrencylimit", () => {
  it("reads a non-negative integer from the file or REGISTRY_STORAGE_TAG_CONCURRENCYLIMIT; 0 and absent keep the default", () => {
    assert.equal(parse(MINIMAL).config.storage.tagLookupConcurrency, 0);
    const { config, warnings } = parse(`${MINIMAL}  tag:\n    concurrencylimit: 8\n`);
    assert.deepEqual(warnings, []);
    assert.equal(config.storage.tagLookupConcurrency, 8);
    assert.deepEqual((describeConfig(config)["storage"] as Record<string, unknown>)["tag"], { concurrencylimit: 8 });
    assert.equal(parse(MINIMAL, { REGISTRY_STORAGE_TAG_CONCURRENCYLIMIT: "4" }).config.storage.tagLookupConcurrency, 4);
    assertConfigError(() => parse(`${MINIMAL}  tag:\n    concurrencylimit: -1\n`), "storage.tag.concurrencylimit", "non-negative integer");
  });
});
