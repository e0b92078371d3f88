/**
 * The one test suite every access controller runs (like test/driver-suite.ts for drivers). An
 * implementation joins with a harness: the controller, and how to make credentials it must accept
 * and credentials it must refuse. Cases a controller cannot meet by design are skipped by name with
 * the reason (silly accepts any header; htpasswd does not authorize per repository).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Access, AccessController } from "../src/auth/access-controller.js";
import { RegistryError } from "../src/errcode/registry-error.js";
import { parseChallenge } from "./support/token-issuer.js";

export interface AccessControllerHarness {
  controller: AccessController;
  scheme: "Basic" | "Bearer";
  realm: string;
  /** For Bearer challenges: the service they must name. */
  service?: string;
  /** An Authorization header of an identity allowed `needed`. */
  validAuthorization(needed: readonly Access[]): Promise<string>;
  /** Authorization headers that must be refused, labelled. */
  invalidAuthorizations(needed: readonly Access[]): Promise<Array<[label: string, header: string]>>;
  /** Controllers that authorize per resource: a header valid for `granted` and nothing more. */
  scopedAuthorization?(granted: readonly Access[]): Promise<string>;
  close?(): Promise<void>;
}

export type SuiteCase =
  | "refuses-invalid-credentials"
  | "refuses-other-scheme"
  | "refuses-insufficient-scope";

export interface SuiteOptions {
  /** Cases this controller skips, with the reason. */
  skip?: Partial<Record<SuiteCase, string>>;
}

const repo = (name: string, action: string): Access => ({ type: "repository", name, action });

/** Every shape of access a route can need (src/auth/required-access.ts). */
export const NEEDED: Array<[label: string, needed: Access[]]> = [
  ["GET /v2/ (nothing)", []],
  ["catalog", [{ type: "registry", name: "catalog", action: "*" }]],
  ["pull", [repo("team/app", "pull")]],
  ["push", [repo("team/app", "pull"), repo("team/app", "push")]],
  ["delete", [repo("team/app", "delete")]],
  ["mount", [repo("team/app", "pull"), repo("team/app", "push"), repo("team/base", "pull")]],
];

function request(authorization?: string): { headers: Record<string, string> } {
  return { headers: authorization === undefined ? {} : { authorization } };
}

/** Asserts a 401 UNAUTHORIZED RegistryError with this harness's challenge. */
async function expectChallenge(h: AccessControllerHarness, promise: Promise<unknown>, needed: readonly Access[]): Promise<Record<string, string>> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof RegistryError, `expected a RegistryError, got ${String(caught)}`);
  assert.equal(caught.code, "UNAUTHORIZED");
  assert.equal(caught.status, 401);
  const { scheme, params } = parseChallenge(caught.headers["WWW-Authenticate"] ?? null);
  assert.equal(scheme, h.scheme, `challenge scheme in ${caught.headers["WWW-Authenticate"]}`);
  assert.equal(params["realm"], h.realm);
  if (h.scheme === "Bearer") {
    assert.equal(params["service"], h.service);
    if (needed.length > 0) assert.ok(params["scope"], "a Bearer challenge names the scope");
  }
  if (needed.length === 0) assert.equal(caught.detail, undefined, "no detail when nothing specific was needed");
  else {
    assert.deepEqual(
      caught.detail,
      needed.map((a) => ({ Type: a.type, Class: "", Name: a.name, Action: a.action })),
      "detail lists the needed access as distribution does",
    );
  }
  return params;
}

export function runAccessControllerSuite(name: string, setup: () => Promise<AccessControllerHarness>, options: SuiteOptions = {}): void {
  describe(`access controller suite: ${name}`, () => {
    let h: AccessControllerHarness;
    before(async () => {
      h = await setup();
    });
    after(async () => {
      await h?.close?.();
    });
    const skip = (c: SuiteCase): string | false => options.skip?.[c] ?? false;

    for (const [label, needed] of NEEDED) {
      it(`without an Authorization header, ${label} is answered 401 UNAUTHORIZED with a challenge`, async () => {
        await expectChallenge(h, h.controller.authorize(request(), needed), needed);
      });

      it(`valid credentials are granted ${label}`, async () => {
        const grant = await h.controller.authorize(request(await h.validAuthorization(needed)), needed);
        assert.equal(typeof grant, "object");
      });
    }

    it("an empty Authorization header counts as none", async () => {
      await expectChallenge(h, h.controller.authorize(request(""), NEEDED[2]![1]), NEEDED[2]![1]);
    });

    it("each invalid credential is refused with 401 and a challenge", { skip: skip("refuses-invalid-credentials") }, async () => {
      const needed = NEEDED[3]![1];
      const invalid = await h.invalidAuthorizations(needed);
      assert.ok(invalid.length > 0, "the harness names invalid credentials");
      for (const [label, header] of invalid) {
        await assert.doesNotReject(expectChallenge(h, h.controller.authorize(request(header), needed), needed), label);
      }
    });

    it("credentials of the other scheme are refused", { skip: skip("refuses-other-scheme") }, async () => {
      const needed = NEEDED[2]![1];
      const other = h.scheme === "Basic" ? "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln" : `Basic ${Buffer.from("alice:secret").toString("base64")}`;
      await expectChallenge(h, h.controller.authorize(request(other), needed), needed);
    });

    it("malformed Authorization headers give a 401 or a grant, never an internal error", async () => {
      const needed = NEEDED[3]![1];
      const headers = ["Basic", "Basic ", "Basic !!!!", "Basic Og==", "Basic YWxpY2U=", "Bearer", "Bearer a.b", "Bearer a.b.c.d", "Bearer ....", "Bearer eyJ9.eyJ9.", "Digest x", "x".repeat(8192), "Bearer \u00e9\u00e9"];
      for (const header of headers) {
        try {
          await h.controller.authorize(request(header), needed);
        } catch (err) {
          assert.ok(err instanceof RegistryError && err.code === "UNAUTHORIZED", `${JSON.stringify(header.slice(0, 40))}: ${String(err)}`);
        }
      }
    });

    it("credentials granted pull only are refused push, with a challenge naming the full scope", { skip: skip("refuses-insufficient-scope") }, async () => {
      assert.ok(h.scopedAuthorization, "the harness can make scoped credentials");
      const pullOnly = [repo("team/app", "pull")];
      const header = await h.scopedAuthorization(pullOnly);
      await h.controller.authorize(request(header), pullOnly);
      const push = NEEDED[3]![1];
      const params = await expectChallenge(h, h.controller.authorize(request(header), push), push);
      assert.equal(params["scope"], "repository:team/app:pull,push");
      assert.equal(params["error"], "insufficient_scope");
      const mount = NEEDED[5]![1];
      const mountParams = await expectChallenge(h, h.controller.authorize(request(header), mount), mount);
      assert.equal(mountParams["scope"], "repository:team/app:pull,push repository:team/base:pull");
      const catalog = NEEDED[1]![1];
      assert.equal((await expectChallenge(h, h.controller.authorize(request(header), catalog), catalog))["scope"], "registry:catalog:*");
    });

    it("concurrent requests with the same credentials are all granted", async () => {
      const needed = NEEDED[3]![1];
      const header = await h.validAuthorization(needed);
      const grants = await Promise.all(Array.from({ length: 20 }, () => h.controller.authorize(request(header), needed)));
      assert.equal(grants.length, 20);
    });
  });
}
