/**
 * middleware.storage: distribution's redirect and cloudfront storage middleware, over a real
 * socket. CloudFront's signed URLs are checked offline (the canned policy rebuilt from the URL and
 * verified with the key pair's public key); its AWS IP filter reads ip-ranges.json from a local
 * HTTP server this file starts. The cloudfront tests need a real S3 (Ceph radosgw, started here).
 */
import assert from "node:assert/strict";
import { generateKeyPairSync, verify, type KeyObject } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { cannedPolicy } from "../src/middleware/cloudfront-signer.js";
import { startBerth, testConfig, type BerthProcess } from "./support/berth-process.js";
import { cephSkipReason, s3DriverConfig, startCephS3, type CephS3 } from "./support/ceph-s3.js";
import { RegistryClient, randomBlob } from "./support/registry-client.js";

/** Where distribution (and berth) keep a blob's bytes, under the storage root. */
function blobPath(digest: string): string {
  const hex = digest.slice("sha256:".length);
  return `/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
}

describe("middleware.storage redirect", () => {
  let berth: BerthProcess;
  let client: RegistryClient;
  before(async () => {
    berth = await startBerth({
      configYaml: testConfig({ sections: "middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: https://cdn.example.com/mirror/" }),
    });
    client = new RegistryClient(berth.url);
  });
  after(async () => {
    await berth.stop();
  });

  it("GET /v2/<name>/blobs/<digest> answers 307 to baseurl + the storage path", async () => {
    const digest = await client.pushBlob("redirect/app", randomBlob());
    const response = await client.send(`/v2/redirect/app/blobs/${digest}`);
    assert.equal(response.status, 307);
    assert.equal(response.headers.get("location"), `https://cdn.example.com/mirror${blobPath(digest)}`);
    assert.equal(response.headers.get("docker-content-digest"), digest);
  });

  it("HEAD /v2/<name>/blobs/<digest> answers 307 to the same URL", async () => {
    const digest = await client.pushBlob("redirect/app", randomBlob());
    const response = await client.send(`/v2/redirect/app/blobs/${digest}`, { method: "HEAD" });
    assert.equal(response.status, 307);
    assert.equal(response.headers.get("location"), `https://cdn.example.com/mirror${blobPath(digest)}`);
  });

  it("GET of a blob the repository does not link answers 404 BLOB_UNKNOWN, not a redirect", async () => {
    const digest = await client.pushBlob("redirect/app", randomBlob());
    const response = await client.send(`/v2/redirect/other/blobs/${digest}`);
    assert.equal(response.status, 404);
    assert.equal(response.headers.get("location"), null);
  });

  it("with storage.redirect.disable the bytes are served, as distribution does", async () => {
    const disabled = await startBerth({
      configYaml: testConfig({
        storage: "  redirect:\n    disable: true",
        sections: "middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: https://cdn.example.com",
      }),
    });
    try {
      const plain = new RegistryClient(disabled.url);
      const bytes = randomBlob();
      const digest = await plain.pushBlob("redirect/app", bytes);
      const response = await plain.send(`/v2/redirect/app/blobs/${digest}`);
      assert.equal(response.status, 200);
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);
    } finally {
      await disabled.stop();
    }
  });

  it("a disabled entry is not applied", async () => {
    const off = await startBerth({
      configYaml: testConfig({ sections: "middleware:\n  storage:\n    - name: redirect\n      disabled: true\n      options:\n        baseurl: https://cdn.example.com" }),
    });
    try {
      const plain = new RegistryClient(off.url);
      const digest = await plain.pushBlob("redirect/app", randomBlob());
      assert.equal((await plain.send(`/v2/redirect/app/blobs/${digest}`)).status, 200);
    } finally {
      await off.stop();
    }
  });
});

/** A CloudFront signed URL's parts, checked against the public key as CloudFront would. */
function verifyCloudFrontURL(location: string, publicKey: KeyObject): { resource: string; expires: number; keyPairId: string } {
  const url = new URL(location);
  const expires = Number(url.searchParams.get("Expires"));
  const signature = url.searchParams.get("Signature")!;
  const keyPairId = url.searchParams.get("Key-Pair-Id")!;
  assert.ok(Number.isInteger(expires) && signature !== null && keyPairId !== null, location);
  // CloudFront rebuilds the policy from the URL without its three signing parameters.
  const resource = location.slice(0, location.indexOf("?Expires="));
  const policy = cannedPolicy(resource, expires);
  assert.equal(policy, `{"Statement":[{"Resource":"${resource}","Condition":{"DateLessThan":{"AWS:EpochTime":${expires}}}}]}`);
  assert.doesNotMatch(signature, /[+=/]/, "URL-safe base64");
  const bytes = Buffer.from(signature.replaceAll("-", "+").replaceAll("_", "=").replaceAll("~", "/"), "base64");
  assert.ok(verify("RSA-SHA1", Buffer.from(policy), publicKey, bytes), "the signature verifies with the key pair's public key");
  return { resource, expires, keyPairId };
}

const cephSkip = cephSkipReason();

describe("middleware.storage cloudfront", { skip: cephSkip }, () => {
  let ceph: CephS3;
  let work: string;
  let keyFile: string;
  let publicKey: KeyObject;
  let ipRanges: Server;
  let ipRangesURL: string;
  let ipRangesRequests = 0;
  const started: BerthProcess[] = [];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-cloudfront-"));
    const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
    publicKey = pair.publicKey;
    keyFile = join(work, "cloudfront.pem");
    // The form CloudFront hands out, which distribution requires: PKCS#1 "RSA PRIVATE KEY".
    await writeFile(keyFile, pair.privateKey.export({ type: "pkcs1", format: "pem" }));
    ipRanges = createServer((req, res) => {
      ipRangesRequests += 1;
      const body = JSON.stringify({
        syncToken: "1",
        prefixes: [
          { ip_prefix: "127.0.0.0/8", region: "us-east-1", service: "AMAZON" },
          { ip_prefix: "not-a-cidr", region: "us-east-1", service: "AMAZON" },
          { ip_prefix: "198.51.100.0/24", region: "eu-west-1", service: "AMAZON" },
        ],
        ipv6_prefixes: [{ ipv6_prefix: "2001:db8::/32", region: "eu-west-1", service: "AMAZON" }],
      });
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    });
    await new Promise<void>((resolve) => ipRanges.listen(0, "127.0.0.1", resolve));
    ipRangesURL = `http://127.0.0.1:${(ipRanges.address() as AddressInfo).port}/ip-ranges.json`;
    ceph = await startCephS3();
  });

  after(async () => {
    for (const berth of started) await berth.stop();
    await ceph?.stop();
    await new Promise<void>((resolve) => ipRanges?.close(() => resolve()));
    await rm(work, { recursive: true, force: true });
  });

  async function startWith(options: string, root: string): Promise<RegistryClient> {
    const berth = await startBerth({
      configYaml: testConfig({
        driver: s3DriverConfig(ceph, root),
        sections: `middleware:\n  storage:\n    - name: cloudfront\n      options:\n        baseurl: https://d111111abcdef8.cloudfront.net\n        privatekey: ${keyFile}\n        keypairid: K2JCJMDEHXQW5F\n${options}`,
      }),
    });
    started.push(berth);
    return new RegistryClient(berth.url);
  }

  it("GET /v2/<name>/blobs/<digest> answers 307 to a CloudFront URL for the S3 key, signed with a canned policy", async () => {
    const client = await startWith("        duration: 30m\n", "/cf-plain");
    const digest = await client.pushBlob("cf/app", randomBlob());
    const before = Math.floor(Date.now() / 1000);
    const response = await client.send(`/v2/cf/app/blobs/${digest}`);
    assert.equal(response.status, 307);
    const { resource, expires, keyPairId } = verifyCloudFrontURL(response.headers.get("location")!, publicKey);
    // The bucket key: the root directory without its leading slash, then the storage path.
    assert.equal(resource, `https://d111111abcdef8.cloudfront.net/cf-plain${blobPath(digest)}`);
    assert.equal(keyPairId, "K2JCJMDEHXQW5F");
    assert.ok(expires >= before + 30 * 60 && expires <= Math.ceil(Date.now() / 1000) + 30 * 60, `expires ${expires}`);
  });

  it("ipfilteredby aws: a client inside the AWS ranges gets the S3 presigned URL, one outside a CloudFront URL", async () => {
    const client = await startWith(`        ipfilteredby: aws\n        iprangesurl: ${ipRangesURL}\n`, "/cf-aws");
    assert.ok(ipRangesRequests >= 1, "ip-ranges.json fetched at start");
    const digest = await client.pushBlob("cf/app", randomBlob());
    // 127.0.0.1 (the test's own address) is in the served 127.0.0.0/8.
    const inside = await client.send(`/v2/cf/app/blobs/${digest}`);
    assert.equal(inside.status, 307);
    const s3URL = new URL(inside.headers.get("location")!);
    assert.equal(s3URL.origin, new URL(ceph.endpoint).origin);
    assert.ok(s3URL.searchParams.has("X-Amz-Signature"), "presigned");
    // The S3 URL works: the bytes are the blob's.
    assert.equal((await fetch(s3URL)).status, 200);
    // X-Forwarded-For names the client, as distribution reads it.
    const outside = await client.send(`/v2/cf/app/blobs/${digest}`, { headers: { "X-Forwarded-For": "203.0.113.9, 127.0.0.1" } });
    assert.equal(new URL(outside.headers.get("location")!).origin, "https://d111111abcdef8.cloudfront.net");
    verifyCloudFrontURL(outside.headers.get("location")!, publicKey);
    const v6 = await client.send(`/v2/cf/app/blobs/${digest}`, { headers: { "X-Real-Ip": "2001:db8::1" } });
    assert.equal(new URL(v6.headers.get("location")!).origin, new URL(ceph.endpoint).origin);
  });

  it("ipfilteredby awsregion: only the listed regions' addresses skip CloudFront", async () => {
    const client = await startWith(`        ipfilteredby: awsregion\n        awsregion: EU-West-1, ap-south-1\n        iprangesurl: ${ipRangesURL}\n`, "/cf-region");
    const digest = await client.pushBlob("cf/app", randomBlob());
    // 127.0.0.0/8 is us-east-1: not listed.
    const local = await client.send(`/v2/cf/app/blobs/${digest}`);
    assert.equal(new URL(local.headers.get("location")!).origin, "https://d111111abcdef8.cloudfront.net");
    const eu = await client.send(`/v2/cf/app/blobs/${digest}`, { headers: { "X-Forwarded-For": "198.51.100.7" } });
    assert.equal(new URL(eu.headers.get("location")!).origin, new URL(ceph.endpoint).origin);
  });

  it("an unreachable iprangesurl sends every client through CloudFront", async () => {
    const client = await startWith("        ipfilteredby: aws\n        iprangesurl: http://127.0.0.1:9/ip-ranges.json\n", "/cf-unreachable");
    const digest = await client.pushBlob("cf/app", randomBlob());
    const response = await client.send(`/v2/cf/app/blobs/${digest}`);
    assert.equal(new URL(response.headers.get("location")!).origin, "https://d111111abcdef8.cloudfront.net");
  });
});

describe("middleware.storage cloudfront on a driver without bucket keys", () => {
  it("serves the bytes itself, as distribution falls back to the driver's own redirect", async () => {
    const work = await mkdtemp(join(tmpdir(), "berth-cloudfront-"));
    const keyFile = join(work, "cloudfront.pem");
    await writeFile(keyFile, generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }));
    const berth = await startBerth({
      configYaml: testConfig({
        sections: `middleware:\n  storage:\n    - name: cloudfront\n      options:\n        baseurl: d111111abcdef8.cloudfront.net\n        privatekey: ${keyFile}\n        keypairid: K1`,
      }),
    });
    try {
      const client = new RegistryClient(berth.url);
      const digest = await client.pushBlob("cf/app", randomBlob());
      assert.equal((await client.send(`/v2/cf/app/blobs/${digest}`)).status, 200);
      assert.match(berth.log(), /the filesystem driver has no bucket keys/);
    } finally {
      await berth.stop();
      await rm(work, { recursive: true, force: true });
    }
  });

  it("refuses to start on a private key that is not RSA, naming the key", async () => {
    const work = await mkdtemp(join(tmpdir(), "berth-cloudfront-"));
    const keyFile = join(work, "ec.pem");
    await writeFile(keyFile, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }));
    try {
      await assert.rejects(
        startBerth({
          configYaml: testConfig({
            sections: `middleware:\n  storage:\n    - name: cloudfront\n      options:\n        baseurl: https://cdn.example.com\n        privatekey: ${keyFile}\n        keypairid: K1`,
          }),
        }),
        /middleware\.storage\[0\]\.options\.privatekey: .*ec key; CloudFront key pairs are RSA/,
      );
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
