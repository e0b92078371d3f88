/**
 * The SigV4 signer against the worked examples of AWS's S3 documentation ("Signature Calculations
 * for the Authorization Header" and "Query String Authentication"): same credentials, same
 * request, same signature.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canonicalQuery, EMPTY_SHA256, encodeKeyPath, SigV4Signer, uriEncode, type Credentials } from "../src/driver/s3/sigv4.js";

const credentials: Credentials = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" };
const now = new Date("2013-05-24T00:00:00Z");
const host = "examplebucket.s3.amazonaws.com";

function signatureOf(authorization: string | undefined): { signedHeaders: string; signature: string; credential: string } {
  const match = /^AWS4-HMAC-SHA256 Credential=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(authorization ?? "");
  assert.ok(match, authorization);
  return { credential: match[1]!, signedHeaders: match[2]!, signature: match[3]! };
}

describe("SigV4 header signing (AWS S3 documentation examples)", () => {
  it("GET Object with a Range header", () => {
    const headers: Record<string, string> = { host, range: "bytes=0-9" };
    new SigV4Signer("us-east-1").sign({ method: "GET", path: "/test.txt", query: [], headers }, credentials, EMPTY_SHA256, now);
    assert.equal(headers["x-amz-date"], "20130524T000000Z");
    assert.deepEqual(signatureOf(headers.authorization), {
      credential: "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
      signedHeaders: "host;range;x-amz-content-sha256;x-amz-date",
      signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    });
  });

  it("PUT Object with a storage class and a key that needs encoding", () => {
    const headers: Record<string, string> = { host, date: "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY" };
    const payloadHash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    new SigV4Signer("us-east-1").sign({ method: "PUT", path: `/${encodeKeyPath("test$file.text")}`, query: [], headers }, credentials, payloadHash, now);
    assert.deepEqual(signatureOf(headers.authorization), {
      credential: "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
      signedHeaders: "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
      signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    });
  });

  it("GET Bucket Lifecycle: a subresource without a value", () => {
    const headers: Record<string, string> = { host };
    new SigV4Signer("us-east-1").sign({ method: "GET", path: "/", query: [["lifecycle", ""]], headers }, credentials, EMPTY_SHA256, now);
    assert.equal(signatureOf(headers.authorization).signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  });

  it("GET Bucket (list objects): query parameters signed in sorted order whatever order they are given in", () => {
    const headers: Record<string, string> = { host };
    new SigV4Signer("us-east-1").sign({ method: "GET", path: "/", query: [["prefix", "J"], ["max-keys", "2"]], headers }, credentials, EMPTY_SHA256, now);
    assert.equal(signatureOf(headers.authorization).signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
  });

  it("the same signer signs twice with its cached key, and again after a change of secret", () => {
    const signer = new SigV4Signer("us-east-1");
    const sign = (secretAccessKey: string): string => {
      const headers: Record<string, string> = { host, range: "bytes=0-9" };
      signer.sign({ method: "GET", path: "/test.txt", query: [], headers }, { ...credentials, secretAccessKey }, EMPTY_SHA256, now);
      return signatureOf(headers.authorization).signature;
    };
    assert.equal(sign(credentials.secretAccessKey), sign(credentials.secretAccessKey));
    assert.notEqual(sign("another secret"), sign(credentials.secretAccessKey));
    assert.equal(sign(credentials.secretAccessKey), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  });

  it("temporary credentials: the session token is sent and signed", () => {
    const headers: Record<string, string> = { host };
    new SigV4Signer("us-east-1").sign({ method: "GET", path: "/", query: [], headers }, { ...credentials, sessionToken: "token" }, EMPTY_SHA256, now);
    assert.equal(headers["x-amz-security-token"], "token");
    assert.match(headers.authorization!, /SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,/);
  });
});

describe("SigV4 presigned URLs (AWS S3 documentation example)", () => {
  it("GET Object, valid 86400 s", () => {
    const query = new SigV4Signer("us-east-1").presignQuery({ method: "GET", path: "/test.txt", query: [], host }, credentials, 86400, now);
    assert.equal(
      query,
      "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host" +
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
    );
  });
});

describe("SigV4 encoding", () => {
  it("encodes everything but unreserved characters, keeps slashes between key segments", () => {
    assert.equal(uriEncode("a b!'()*~._-"), "a%20b%21%27%28%29%2A~._-");
    assert.equal(encodeKeyPath("docker/registry/v2/a b/c:d"), "docker/registry/v2/a%20b/c%3Ad");
  });

  it("sorts query parameters by encoded name, then value", () => {
    assert.equal(canonicalQuery([["uploadId", "x/y"], ["partNumber", "2"], ["a", ""]]), "a=&partNumber=2&uploadId=x%2Fy");
  });
});
