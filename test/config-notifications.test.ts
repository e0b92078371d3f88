import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, type Config, type EndpointConfig } from "../src/config/config.js";
import { describeConfig, parseConfig } from "../src/config/load-config.js";

const MINIMAL = "version: 0.1\nstorage:\n  inmemory:\n";
const HOUR = 3_600_000;

function parse(yaml: string, env: NodeJS.ProcessEnv = {}): { config: Config; warnings: string[] } {
  return parseConfig(yaml, env, "test.yml");
}

/** Asserts a ConfigError for `key` whose message contains `fragment`. */
function assertConfigError(run: () => unknown, key: string, fragment: string): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.key, key, err.message);
    assert.ok(err.message.startsWith(`configuration: ${key}: `), err.message);
    assert.ok(err.message.includes(fragment), `${JSON.stringify(err.message)} lacks ${JSON.stringify(fragment)}`);
    return true;
  });
}

/** A configuration whose notifications.endpoints holds these entries (each a block of "key: value" lines). */
function withEndpoints(...entries: string[]): string {
  const items = entries.map((entry) => {
    const [first = "", ...rest] = entry.trim().split("\n");
    return [`    - ${first}`, ...rest.map((line) => `      ${line}`)].join("\n");
  });
  return `${MINIMAL}notifications:\n  endpoints:\n${items.join("\n")}\n`;
}

function onlyEndpoint(yaml: string, env: NodeJS.ProcessEnv = {}): EndpointConfig {
  const endpoints = parse(yaml, env).config.notifications?.endpoints ?? [];
  assert.equal(endpoints.length, 1);
  return endpoints[0]!;
}

const DEFAULTS: Omit<EndpointConfig, "name" | "url"> = {
  headers: {},
  timeoutMs: 1_000,
  threshold: 10,
  backoffMs: 1_000,
  ignoredMediaTypes: [],
  ignoredActions: [],
  repositories: [],
  ignoreHeadPulls: false,
  format: "v1",
  signingKey: undefined,
  maxEvents: 100_000,
  maxBatch: 100,
  maxAgeMs: 168 * HOUR,
};

describe("notifications: defaults", () => {
  it("is undefined without a notifications section, or with an empty one", () => {
    assert.equal(parse(MINIMAL).config.notifications, undefined);
    assert.equal(parse(`${MINIMAL}notifications:\n`).config.notifications, undefined);
    assert.equal(parse(`${MINIMAL}notifications: {}\n`).config.notifications, undefined);
    assert.equal(parse(`${MINIMAL}notifications:\n  endpoints: []\n`).config.notifications, undefined);
  });

  it("is undefined when there is no endpoint, even with events.includereferences", () => {
    const { config, warnings } = parse(`${MINIMAL}notifications:\n  events:\n    includereferences: true\n`);
    assert.equal(config.notifications, undefined);
    assert.deepEqual(warnings, []);
  });

  it("gives an endpoint with only name and url distribution's defaults and berth's", () => {
    const { config, warnings } = parse(withEndpoints("name: hook\nurl: https://hooks.example.com/registry"));
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.notifications, {
      includeReferences: false,
      endpoints: [{ name: "hook", url: "https://hooks.example.com/registry", ...DEFAULTS }],
    });
  });

  it("treats a zero timeout, backoff or threshold as the default, as distribution does", () => {
    const endpoint = onlyEndpoint(withEndpoints("name: a\nurl: http://x\ntimeout: 0\nbackoff: 0s\nthreshold: 0"));
    assert.equal(endpoint.timeoutMs, 1_000);
    assert.equal(endpoint.backoffMs, 1_000);
    assert.equal(endpoint.threshold, 10);
  });
});

describe("notifications: every key", () => {
  it("reads distribution's keys and berth's", () => {
    const { config, warnings } = parse(`${MINIMAL}notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      disabled: false
      url: https://bob:pw@my.listener.com/event?x=1
      headers:
        Authorization: [Bearer x]
        X-Team: [a, b]
        X-Single: one
      timeout: 500ms
      threshold: 3
      backoff: 30s
      ignoredmediatypes:
        - application/octet-stream
      ignore:
        mediatypes:
          - application/vnd.oci.image.layer.v1.tar+gzip
        actions: [pull, Mount]
        headpulls: yes
      repositories: [team/**, "*/base", library/alpine]
      format: cloudevents
      signingkey: s3cret
      maxevents: 500
      maxbatch: 20
      maxage: 24h
`);
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.notifications, {
      includeReferences: true,
      endpoints: [
        {
          name: "alistener",
          url: "https://bob:pw@my.listener.com/event?x=1",
          headers: { Authorization: ["Bearer x"], "X-Team": ["a", "b"], "X-Single": ["one"] },
          timeoutMs: 500,
          threshold: 3,
          backoffMs: 30_000,
          ignoredMediaTypes: ["application/octet-stream", "application/vnd.oci.image.layer.v1.tar+gzip"],
          ignoredActions: ["pull", "mount"],
          repositories: ["team/**", "*/base", "library/alpine"],
          ignoreHeadPulls: true,
          format: "cloudevents",
          signingKey: "s3cret",
          maxEvents: 500,
          maxBatch: 20,
          maxAgeMs: 24 * HOUR,
        },
      ],
    });
  });

  it("reads each format: v1, v2 and cloudevents, case-insensitively", () => {
    assert.equal(onlyEndpoint(withEndpoints("name: a\nurl: http://x\nformat: v1")).format, "v1");
    assert.equal(onlyEndpoint(withEndpoints("name: a\nurl: http://x\nformat: V2")).format, "v2");
    assert.equal(onlyEndpoint(withEndpoints("name: a\nurl: http://x\nformat: CloudEvents")).format, "cloudevents");
  });

  it("accepts any non-empty name, since berth encodes it before using it as a path component", () => {
    const names = ["my hook", "../x", "a/b", "ÄÖ", "123"];
    const { config } = parse(withEndpoints(...names.map((name, i) => `name: ${JSON.stringify(name)}\nurl: http://x/${i}`)));
    assert.deepEqual(
      config.notifications?.endpoints.map((e) => e.name),
      names,
    );
  });

  it("keeps the URL as written, credentials, query and port included", () => {
    assert.equal(onlyEndpoint(withEndpoints("name: a\nurl: http://[::1]:8080/hook?token=t")).url, "http://[::1]:8080/hook?token=t");
  });

  it("warns about unknown keys inside an endpoint and inside its ignore section", () => {
    const { config, warnings } = parse(withEndpoints("name: a\nurl: http://x\ncolour: red\nignore:\n  tags: [latest]"));
    assert.equal(config.notifications?.endpoints.length, 1);
    assert.deepEqual(warnings, ["unknown key notifications.endpoints[0].colour", "unknown key notifications.endpoints[0].ignore.tags"]);
  });

  it("warns about unknown keys under notifications and notifications.events", () => {
    const { warnings } = parse(`${MINIMAL}notifications:\n  events:\n    includereferences: true\n    other: 1\n  sinks: []\n`);
    assert.deepEqual(warnings, ["unknown key notifications.events.other", "unknown key notifications.sinks"]);
  });
});

describe("notifications: ignore filters", () => {
  it("takes ignored media types from ignoredmediatypes alone", () => {
    assert.deepEqual(onlyEndpoint(withEndpoints("name: a\nurl: http://x\nignoredmediatypes: [application/octet-stream]")).ignoredMediaTypes, ["application/octet-stream"]);
  });

  it("takes ignored media types from ignore.mediatypes alone", () => {
    assert.deepEqual(onlyEndpoint(withEndpoints("name: a\nurl: http://x\nignore:\n  mediatypes: [text/plain]")).ignoredMediaTypes, ["text/plain"]);
  });

  it("unites ignoredmediatypes and ignore.mediatypes, each media type once", () => {
    const endpoint = onlyEndpoint(
      withEndpoints("name: a\nurl: http://x\nignoredmediatypes: [application/octet-stream, text/plain]\nignore:\n  mediatypes: [application/octet-stream, application/json]"),
    );
    assert.deepEqual(endpoint.ignoredMediaTypes, ["application/octet-stream", "text/plain", "application/json"]);
  });

  it("keeps an actions filter without a media type filter", () => {
    const endpoint = onlyEndpoint(withEndpoints("name: a\nurl: http://x\nignore:\n  actions: [pull, pull, delete]"));
    assert.deepEqual(endpoint.ignoredActions, ["pull", "delete"]);
    assert.deepEqual(endpoint.ignoredMediaTypes, []);
  });

  it("takes a single string where a list is expected", () => {
    const endpoint = onlyEndpoint(withEndpoints("name: a\nurl: http://x\nignore:\n  actions: pull\nrepositories: team/*"));
    assert.deepEqual(endpoint.ignoredActions, ["pull"]);
    assert.deepEqual(endpoint.repositories, ["team/*"]);
  });
});

describe("notifications: disabled endpoints", () => {
  it("leaves out endpoints with disabled: true, keeping the others in order", () => {
    const { config } = parse(withEndpoints("name: a\nurl: http://a", "name: b\nurl: http://b\ndisabled: true", "name: c\nurl: http://c\ndisabled: false"));
    assert.deepEqual(
      config.notifications?.endpoints.map((e) => e.name),
      ["a", "c"],
    );
  });

  it("is undefined when every endpoint is disabled", () => {
    assert.equal(parse(withEndpoints("name: a\nurl: http://a\ndisabled: true")).config.notifications, undefined);
  });

  it("lets a disabled endpoint share an enabled one's name", () => {
    const { config } = parse(withEndpoints("name: a\nurl: http://old\ndisabled: true", "name: a\nurl: http://new"));
    assert.deepEqual(
      config.notifications?.endpoints.map((e) => e.url),
      ["http://new"],
    );
  });

  it("still checks a disabled endpoint", () => {
    assertConfigError(() => parse(withEndpoints("name: a\nurl: ftp://x\ndisabled: true")), "notifications.endpoints[0].url", "must be an http or https URL");
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\ndisabled: maybe")), "notifications.endpoints[0].disabled", "expected a boolean");
  });
});

describe("notifications: bad input names the key", () => {
  const at = "notifications.endpoints[0]";

  it("refuses endpoints that are not a list, and entries that are not mappings", () => {
    assertConfigError(() => parse(`${MINIMAL}notifications:\n  endpoints:\n    name: a\n`), "notifications.endpoints", "expected a list");
    assertConfigError(() => parse(`${MINIMAL}notifications:\n  endpoints: hook\n`), "notifications.endpoints", "expected a list");
    assertConfigError(() => parse(`${MINIMAL}notifications:\n  endpoints:\n    - hook\n`), at, "expected a mapping");
    assertConfigError(() => parse(`${MINIMAL}notifications:\n  endpoints:\n    -\n`), at, "expected a mapping");
    assertConfigError(() => parse(`${MINIMAL}notifications:\n  endpoints:\n    - name: a\n      url: http://x\n    - [a]\n`), "notifications.endpoints[1]", "expected a mapping");
    assertConfigError(() => parse(`${MINIMAL}notifications: [a]\n`), "notifications", "expected a mapping");
    assertConfigError(() => parse(`${MINIMAL}notifications:\n  events: yes\n`), "notifications.events", "expected a mapping");
    assertConfigError(() => parse(`${MINIMAL}notifications:\n  events:\n    includereferences: maybe\n`), "notifications.events.includereferences", "expected a boolean");
  });

  it("requires a name", () => {
    assertConfigError(() => parse(withEndpoints("url: http://x")), `${at}.name`, "required");
    assertConfigError(() => parse(withEndpoints('name: ""\nurl: http://x')), `${at}.name`, "required");
    assertConfigError(() => parse(withEndpoints("name:\nurl: http://x")), `${at}.name`, "required");
    assertConfigError(() => parse(withEndpoints("name: [a]\nurl: http://x")), `${at}.name`, "expected a string");
  });

  it("refuses two enabled endpoints with the same name", () => {
    assertConfigError(
      () => parse(withEndpoints("name: a\nurl: http://x", "name: b\nurl: http://y", "name: a\nurl: http://z")),
      "notifications.endpoints[2].name",
      '"a" is already the name of notifications.endpoints[0]',
    );
  });

  it("requires an http or https URL with a host", () => {
    assertConfigError(() => parse(withEndpoints("name: a")), `${at}.url`, "required");
    assertConfigError(() => parse(withEndpoints('name: a\nurl: ""')), `${at}.url`, "required");
    for (const bad of ["ftp://x", "localhost:8080", "hooks.example.com/registry", "/events", "mailto:a@b", "http://", "http://a b/"]) {
      assertConfigError(() => parse(withEndpoints(`name: a\nurl: ${JSON.stringify(bad)}`)), `${at}.url`, "must be an http or https URL");
    }
    for (const hostless of ["http:foo", "http:///x", "https:/x"]) {
      assertConfigError(() => parse(withEndpoints(`name: a\nurl: ${JSON.stringify(hostless)}`)), `${at}.url`, "has no host");
    }
  });

  it("does not quote a URL's password back in an error", () => {
    assert.throws(
      () => parse(withEndpoints("name: a\nurl: ftp://bob:hunter2@x/")),
      (err: unknown) => err instanceof ConfigError && err.message.includes("ftp://bob:***@x/") && !err.message.includes("hunter2"),
    );
  });

  it("refuses a threshold that is not a positive integer", () => {
    for (const bad of ["-1", "1.5", "ten", "[1]"]) {
      assertConfigError(() => parse(withEndpoints(`name: a\nurl: http://x\nthreshold: ${bad}`)), `${at}.threshold`, "expected");
    }
  });

  it("refuses negative or malformed timeouts and backoffs, and a maxage that is not positive", () => {
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\ntimeout: -1s")), `${at}.timeout`, "must not be negative");
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\nbackoff: -5s")), `${at}.backoff`, "must not be negative");
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\ntimeout: 10")), `${at}.timeout`, "expected a duration");
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\nmaxage: 0")), `${at}.maxage`, "greater than zero");
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\nmaxage: 7d")), `${at}.maxage`, "expected a duration");
  });

  it("refuses an action outside push, pull, mount and delete", () => {
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\nignore:\n  actions: [pull, tag]")), `${at}.ignore.actions`, 'unknown action "tag"');
  });

  it("refuses an unknown format", () => {
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\nformat: v3")), `${at}.format`, "expected one of v1, v2, cloudevents");
  });

  it("refuses a maxbatch that is not a positive integer", () => {
    for (const bad of ["0", "-1", "2.5", "many"]) {
      assertConfigError(() => parse(withEndpoints(`name: a\nurl: http://x\nmaxbatch: ${bad}`)), "notifications.endpoints[0].maxbatch", "expected a positive integer");
    }
  });

  it("refuses a maxevents that is not a positive integer", () => {
    for (const bad of ["0", "-3", "many", "1e5"]) {
      assertConfigError(() => parse(withEndpoints(`name: a\nurl: http://x\nmaxevents: ${bad}`)), `${at}.maxevents`, "expected a positive integer");
    }
  });

  it("refuses bad header names and values, without quoting the value", () => {
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\nheaders:\n  Bad Name: [x]")), `${at}.headers.Bad Name`, "not a valid HTTP header name");
    assert.throws(
      () => parse(withEndpoints('name: a\nurl: http://x\nheaders:\n  Authorization: ["Bearer s3cr3t\\r\\nX: y"]')),
      (err: unknown) => err instanceof ConfigError && err.key === `${at}.headers.Authorization` && !err.message.includes("s3cr3t"),
    );
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\nheaders: [a]")), `${at}.headers`, "expected a mapping");
  });

  it("refuses repository patterns that cannot match a repository name", () => {
    for (const bad of ["Team/*", "team//x", "/team", "team/a**", "team/{a,b}"]) {
      assertConfigError(() => parse(withEndpoints(`name: a\nurl: http://x\nrepositories: [${JSON.stringify(bad)}]`)), `${at}.repositories`, "not a repository pattern");
    }
  });

  it("refuses wrongly typed berth keys", () => {
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\nignore:\n  headpulls: sometimes")), `${at}.ignore.headpulls`, "expected a boolean");
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\nsigningkey: {a: b}")), `${at}.signingkey`, "expected a string");
    assertConfigError(() => parse(withEndpoints("name: a\nurl: http://x\nignore: [pull]")), `${at}.ignore`, "expected a mapping");
  });
});

describe("notifications: environment overrides", () => {
  it("takes a list of endpoints from REGISTRY_NOTIFICATIONS_ENDPOINTS in flow style", () => {
    const { config, warnings } = parse(MINIMAL, {
      REGISTRY_NOTIFICATIONS_ENDPOINTS: '[{name: a, url: "https://hooks.example.com/x", timeout: 2s, ignore: {actions: [pull]}}, {name: b, url: http://b:9000/y}]',
    });
    assert.deepEqual(warnings, []);
    const [a, b] = config.notifications?.endpoints ?? [];
    assert.deepEqual(a, { ...DEFAULTS, name: "a", url: "https://hooks.example.com/x", timeoutMs: 2_000, ignoredActions: ["pull"] });
    assert.equal(b?.url, "http://b:9000/y");
  });

  it("takes a list of endpoints from REGISTRY_NOTIFICATIONS_ENDPOINTS in block style, as written in compose files", () => {
    const { config } = parse(MINIMAL, {
      REGISTRY_NOTIFICATIONS_ENDPOINTS: "- name: a\n  url: https://hooks.example.com/x\n  headers:\n    Authorization: [Bearer t]\n- name: b\n  url: http://b/\n",
    });
    assert.deepEqual(
      config.notifications?.endpoints.map((e) => [e.name, e.url, e.headers]),
      [
        ["a", "https://hooks.example.com/x", { Authorization: ["Bearer t"] }],
        ["b", "http://b/", {}],
      ],
    );
  });

  it("replaces the file's endpoints with REGISTRY_NOTIFICATIONS_ENDPOINTS", () => {
    const { config } = parse(withEndpoints("name: file\nurl: http://file"), { REGISTRY_NOTIFICATIONS_ENDPOINTS: "[{name: env, url: http://env}]" });
    assert.deepEqual(
      config.notifications?.endpoints.map((e) => e.name),
      ["env"],
    );
  });

  it("sets events.includereferences from REGISTRY_NOTIFICATIONS_EVENTS_INCLUDEREFERENCES", () => {
    const { config, warnings } = parse(withEndpoints("name: a\nurl: http://x"), { REGISTRY_NOTIFICATIONS_EVENTS_INCLUDEREFERENCES: "true" });
    assert.deepEqual(warnings, []);
    assert.equal(config.notifications?.includeReferences, true);
  });

  it("names the variable when an endpoint from the environment is wrong", () => {
    assertConfigError(
      () => parse(MINIMAL, { REGISTRY_NOTIFICATIONS_ENDPOINTS: "[{name: a, url: ftp://x}]" }),
      "notifications.endpoints[0].url",
      "(from environment variable REGISTRY_NOTIFICATIONS_ENDPOINTS)",
    );
    assertConfigError(
      () => parse(MINIMAL, { REGISTRY_NOTIFICATIONS_ENDPOINTS: "https://hooks.example.com" }),
      "notifications.endpoints",
      "expected a list of endpoints, each with name and url (from environment variable REGISTRY_NOTIFICATIONS_ENDPOINTS)",
    );
    assertConfigError(
      () => parse(withEndpoints("name: a\nurl: http://x"), { REGISTRY_NOTIFICATIONS_EVENTS_INCLUDEREFERENCES: "perhaps" }),
      "notifications.events.includereferences",
      "(from environment variable REGISTRY_NOTIFICATIONS_EVENTS_INCLUDEREFERENCES)",
    );
  });
});

describe("notifications: describeConfig", () => {
  const SECRET_CONFIG = `${MINIMAL}notifications:
  events:
    includereferences: true
  endpoints:
    - name: hook
      url: https://bob:url-pa55word@hooks.example.com/registry
      headers:
        Authorization: [Bearer header-t0ken]
        X-Api-Key: key-v4lue
      signingkey: signing-k3y
      ignoredmediatypes: [application/octet-stream]
      ignore:
        actions: [pull]
      repositories: [team/**]
      format: v2
    - name: plain
      url: http://plain.example.com/
    - name: off
      url: http://off.example.com/
      disabled: true
`;

  it("shows header names, never their values, the signing key as <set>, and no URL password", () => {
    const { config } = parse(SECRET_CONFIG);
    const described = describeConfig(config);
    const text = JSON.stringify(described);
    for (const secret of ["url-pa55word", "header-t0ken", "Bearer", "key-v4lue", "signing-k3y"]) {
      assert.ok(!text.includes(secret), `${secret} appears in ${text}`);
    }
    assert.deepEqual(described["notifications"], {
      events: { includereferences: true },
      endpoints: [
        {
          name: "hook",
          url: "https://bob:***@hooks.example.com/registry",
          headers: { Authorization: "<redacted>", "X-Api-Key": "<redacted>" },
          timeout: "1s",
          threshold: 10,
          backoff: "1s",
          ignore: { mediatypes: ["application/octet-stream"], actions: ["pull"], headpulls: false },
          repositories: ["team/**"],
          format: "v2",
          signingkey: "<set>",
          maxevents: 100000,
          maxbatch: 100,
          maxage: "168h0m0s",
        },
        {
          name: "plain",
          url: "http://plain.example.com/",
          headers: {},
          timeout: "1s",
          threshold: 10,
          backoff: "1s",
          ignore: { mediatypes: [], actions: [], headpulls: false },
          repositories: [],
          format: "v1",
          maxevents: 100000,
          maxbatch: 100,
          maxage: "168h0m0s",
        },
      ],
    });
  });

  it("leaves notifications out when no endpoint is enabled", () => {
    assert.equal(describeConfig(parse(MINIMAL).config)["notifications"], undefined);
  });
});
