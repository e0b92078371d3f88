/**
 * The access matrix, over real `berth serve` processes: every identity × repository × action under
 * every auth mode, each cell allowed or denied as the mode says. Clients authenticate as docker
 * does (test/support/auth-client.ts): challenge, credentials or a token from the realm, retry.
 * A denied write must also leave storage as it was (checked as the admin).
 *
 * Token mode's rules live in the test token service's ACL:
 *   admin   everything, and the catalog
 *   alice   pull, push, delete on team/*; pull on base/*
 *   bob     pull on team/* and base/*
 *   anyone  pull on base/* (a public repository), even without credentials
 * htpasswd authenticates only: any known user may do anything. silly accepts any credentials.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { startBerth, type BerthProcess } from "./support/berth-process.js";
import { authFetch, type Identity } from "./support/auth-client.js";
import { requireProgram } from "./support/external-program.js";
import { digestOf, json, randomBlob, OCI_MANIFEST, OCI_CONFIG } from "./support/registry-client.js";
import { createTestPki, type TestPki } from "./support/test-pki.js";
import { startTokenIssuer, type Acl, type TokenIssuer } from "./support/token-issuer.js";

const openssl = requireProgram("openssl");

type Mode = "none" | "htpasswd" | "token" | "silly";
type Action = "pull" | "push" | "delete" | "mount" | "catalog" | "status";
const MODES: Mode[] = ["none", "htpasswd", "token", "silly"];
const REPOSITORIES = ["team/app", "base/img"] as const;
type Repository = (typeof REPOSITORIES)[number];
/** A mount into a repository takes the blob from the other one. */
const OTHER: Record<Repository, Repository> = { "team/app": "base/img", "base/img": "team/app" };

const PASSWORDS: Record<string, string> = { admin: "admin-pw", alice: "alice-pw", bob: "bob-pw" };
const IDENTITIES: Identity[] = [
  { label: "admin", user: "admin", password: PASSWORDS["admin"] },
  { label: "alice", user: "alice", password: PASSWORDS["alice"] },
  { label: "bob", user: "bob", password: PASSWORDS["bob"] },
  { label: "anonymous" },
  { label: "mallory (wrong password)", user: "alice", password: "guess" },
];
const ADMIN = IDENTITIES[0]!;

const ACL: Acl = (user, type, name, requested) => {
  if (user === "admin") return requested;
  if (type !== "repository") return [];
  const allowed = new Set<string>();
  if (name.startsWith("base/")) allowed.add("pull");
  if (user === "alice" && name.startsWith("team/")) ["pull", "push", "delete"].forEach((a) => allowed.add(a));
  if (user === "bob" && name.startsWith("team/")) allowed.add("pull");
  return requested.filter((a) => allowed.has(a));
};

/** What the token ACL lets `user` do with `repository`. */
function tokenAllows(identity: Identity, repository: Repository, action: Action): boolean {
  const user = identity.password === PASSWORDS[identity.user ?? ""] ? identity.user : identity.user === undefined ? undefined : "invalid";
  if (user === "invalid") return false; // the token service refuses the wrong password outright
  const can = (name: string, a: string) => ACL(user, "repository", name, [a]).length > 0;
  switch (action) {
    case "catalog":
    case "status":
      return user === "admin";
    case "pull":
      return can(repository, "pull");
    case "push":
      return can(repository, "pull") && can(repository, "push");
    case "delete":
      return can(repository, "delete");
    case "mount":
      return can(repository, "pull") && can(repository, "push") && can(OTHER[repository], "pull");
  }
}

function expected(mode: Mode, identity: Identity, repository: Repository, action: Action): boolean {
  const knownUser = identity.user !== undefined && identity.password === PASSWORDS[identity.user];
  switch (mode) {
    case "none":
      return true;
    case "silly":
      return identity.user !== undefined;
    case "htpasswd":
      return knownUser;
    case "token":
      return tokenAllows(identity, repository, action);
  }
}

interface Server {
  berth: BerthProcess;
  sillyToken?: string;
}

describe("access matrix over real servers", { skip: openssl.skip }, () => {
  let work: string;
  let pki: TestPki;
  let issuer: TokenIssuer;
  const servers = new Map<Mode, Server>();
  const images = new Map<string, string>();

  const call = (mode: Mode, identity: Identity, path: string, options: { method?: string; body?: Uint8Array; headers?: Record<string, string> } = {}) => {
    const server = servers.get(mode)!;
    return authFetch(server.berth.url, identity, path, { ...options, ...(mode === "silly" ? { sillyToken: "anything" } : {}) });
  };

  async function adminPushBlob(mode: Mode, repository: string): Promise<string> {
    const blob = randomBlob(32);
    const digest = digestOf(blob);
    const response = await call(mode, ADMIN, `/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: "POST", body: blob });
    assert.equal(response.status, 201, `admin push to ${repository} under ${mode}: ${await response.text()}`);
    return digest;
  }

  async function blobExists(mode: Mode, repository: string, digest: string): Promise<boolean> {
    const response = await call(mode, ADMIN, `/v2/${repository}/blobs/${digest}`, { method: "HEAD" });
    return response.status === 200;
  }

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-auth-matrix-"));
    pki = await createTestPki(openssl.path);
    const signing = await pki.issue("token-signer");
    issuer = await startTokenIssuer({ signing, service: "berth-matrix", issuer: "matrix-issuer", users: PASSWORDS, acl: ACL });
    const htpasswd = join(work, "htpasswd");
    const lines = await Promise.all(Object.entries(PASSWORDS).map(async ([user, password]) => `${user}:${await bcrypt.hash(password, 5)}`));
    await writeFile(htpasswd, `${lines.join("\n")}\n`);
    const sections: Record<Mode, string> = {
      none: "",
      htpasswd: `auth:\n  htpasswd:\n    realm: berth-matrix\n    path: ${htpasswd}\n`,
      token: `auth:\n  token:\n    realm: ${issuer.realm}\n    service: berth-matrix\n    issuer: matrix-issuer\n    rootcertbundle: ${pki.ca.cert}\n`,
      silly: "auth:\n  silly:\n    realm: http://127.0.0.1:9/token\n    service: berth-matrix\n",
    };
    await Promise.all(
      MODES.map(async (mode) => {
        const configYaml = `version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  inmemory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: matrix\n${sections[mode]}`;
        servers.set(mode, { berth: await startBerth({ configYaml }) });
      }),
    );
    // Every repository holds an image (tag v1) pushed by the admin.
    for (const mode of MODES) {
      for (const repository of REPOSITORIES) {
        const config = json({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } });
        const configBytesDigest = digestOf(config);
        const pushed = await call(mode, ADMIN, `/v2/${repository}/blobs/uploads/?digest=${configBytesDigest}`, { method: "POST", body: config });
        assert.equal(pushed.status, 201);
        const manifest = json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: configBytesDigest, size: config.length }, layers: [] });
        const put = await call(mode, ADMIN, `/v2/${repository}/manifests/v1`, { method: "PUT", body: manifest, headers: { "content-type": OCI_MANIFEST } });
        assert.equal(put.status, 201, `admin manifest push under ${mode}: ${await put.text()}`);
        images.set(`${mode} ${repository}`, digestOf(manifest));
      }
    }
  });

  after(async () => {
    await Promise.all([...servers.values()].map((s) => s.berth.stop()));
    await issuer?.close();
    await pki?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Runs one action; returns whether it was allowed, after checking the denial's shape and that storage did not change. */
  async function attempt(mode: Mode, identity: Identity, repository: Repository, action: Action): Promise<boolean> {
    let response: Response;
    let unchanged: (() => Promise<void>) | undefined;
    switch (action) {
      case "catalog":
        response = await call(mode, identity, "/v2/_catalog");
        break;
      case "status":
        // The status page tells about the whole registry: it needs the catalog's access.
        response = await call(mode, identity, "/debug/status");
        break;
      case "pull":
        response = await call(mode, identity, `/v2/${repository}/manifests/v1`, { headers: { accept: OCI_MANIFEST } });
        if (response.status === 200) assert.equal(digestOf(Buffer.from(await response.clone().arrayBuffer())), images.get(`${mode} ${repository}`));
        break;
      case "push": {
        const blob = randomBlob(40);
        const digest = digestOf(blob);
        response = await call(mode, identity, `/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: "POST", body: blob });
        unchanged = async () => assert.equal(await blobExists(mode, repository, digest), false, "the refused push stored nothing");
        break;
      }
      case "delete": {
        const digest = await adminPushBlob(mode, repository);
        response = await call(mode, identity, `/v2/${repository}/blobs/${digest}`, { method: "DELETE" });
        unchanged = async () => assert.equal(await blobExists(mode, repository, digest), true, "the refused delete removed nothing");
        break;
      }
      case "mount": {
        const digest = await adminPushBlob(mode, OTHER[repository]);
        response = await call(mode, identity, `/v2/${repository}/blobs/uploads/?mount=${digest}&from=${OTHER[repository]}`, { method: "POST" });
        unchanged = async () => assert.equal(await blobExists(mode, repository, digest), false, "the refused mount linked nothing");
        break;
      }
    }
    const body = await response.text();
    if (response.status === 401) {
      assert.match(response.headers.get("www-authenticate") ?? "", /^(Basic|Bearer) realm="/, "a denial carries a challenge");
      assert.equal((JSON.parse(body) as { errors: { code: string }[] }).errors[0]?.code, "UNAUTHORIZED");
      await unchanged?.();
      return false;
    }
    const success = { catalog: 200, status: 200, pull: 200, push: 201, delete: 202, mount: 201 }[action];
    assert.equal(response.status, success, `${action} answered ${response.status}: ${body}`);
    return true;
  }

  for (const mode of MODES) {
    describe(`auth mode ${mode}`, () => {
      for (const identity of IDENTITIES) {
        for (const action of ["catalog", "status"] as const) {
          it(`${identity.label}: ${action} is ${expected(mode, identity, "team/app", action) ? "allowed" : "denied"}`, async () => {
            assert.equal(await attempt(mode, identity, "team/app", action), expected(mode, identity, "team/app", action));
          });
        }
        for (const repository of REPOSITORIES) {
          for (const action of ["pull", "push", "delete", "mount"] as const) {
            const allowed = expected(mode, identity, repository, action);
            const what = action === "mount" ? `mount into ${repository} from ${OTHER[repository]}` : `${action} ${repository}`;
            it(`${identity.label}: ${what} is ${allowed ? "allowed" : "denied"}`, async () => {
              assert.equal(await attempt(mode, identity, repository, action), allowed);
            });
          }
        }
      }
    });
  }

  it("GET /v2/ asks for credentials under every auth mode and answers 200 once given", async () => {
    for (const mode of MODES) {
      const anonymous = await fetch(`${servers.get(mode)!.berth.url}/v2/`);
      assert.equal(anonymous.status, mode === "none" ? 200 : 401, mode);
      assert.equal(anonymous.headers.get("docker-distribution-api-version"), "registry/2.0");
      assert.equal((await call(mode, ADMIN, "/v2/")).status, 200, mode);
    }
  });

  it("the token service was asked for the scopes the challenges named (docker's flow, end to end)", () => {
    const scopes = new Set(issuer.issued.flatMap((i) => i.scopes));
    assert.ok(scopes.has("repository:team/app:pull,push"), [...scopes].join(" "));
    assert.ok(scopes.has("repository:base/img:pull"));
    assert.ok(scopes.has("registry:catalog:*"));
  });
});
