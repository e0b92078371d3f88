/**
 * Where the S3 driver sends requests for distribution's endpoint keys (`region`, `regionendpoint`,
 * `secure`, `forcepathstyle`): the addressing the AWS SDK chose before berth signed its own requests.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { endpointOf } from "../src/driver/s3/s3-options.js";

describe("S3 endpoint from the configuration", () => {
  it("AWS, no regionendpoint: the regional endpoint over https, the bucket in the host name", () => {
    assert.deepEqual(endpointOf({ bucket: "registry", region: "eu-west-1" }), {
      protocol: "https:",
      hostname: "registry.s3.eu-west-1.amazonaws.com",
      port: 443,
      host: "registry.s3.eu-west-1.amazonaws.com",
      bucketPath: "",
      region: "eu-west-1",
    });
  });

  it("AWS China regions use amazonaws.com.cn; secure: false uses http", () => {
    assert.equal(endpointOf({ bucket: "registry", region: "cn-north-1" }).host, "registry.s3.cn-north-1.amazonaws.com.cn");
    assert.equal(endpointOf({ bucket: "registry", region: "us-east-1", secure: false }).protocol, "http:");
  });

  it("forcepathstyle: the bucket in the path, the endpoint's port in the Host header", () => {
    assert.deepEqual(endpointOf({ bucket: "registry", region: "us-east-1", regionendpoint: "http://minio:9000", forcepathstyle: true }), {
      protocol: "http:",
      hostname: "minio",
      port: 9000,
      host: "minio:9000",
      bucketPath: "/registry",
      region: "us-east-1",
    });
  });

  it("a regionendpoint without a scheme takes it from secure", () => {
    assert.equal(endpointOf({ bucket: "b1", region: "r", regionendpoint: "127.0.0.1:7480", secure: false }).protocol, "http:");
    assert.equal(endpointOf({ bucket: "b1", region: "r", regionendpoint: "s3.example.com" }).protocol, "https:");
  });

  it("path style whenever the bucket cannot be a host name: an IP endpoint, uppercase or underscores, dots under TLS", () => {
    assert.equal(endpointOf({ bucket: "registry", region: "r", regionendpoint: "http://127.0.0.1:7480" }).bucketPath, "/registry");
    assert.equal(endpointOf({ bucket: "My_Bucket", region: "r", regionendpoint: "https://s3.example.com" }).bucketPath, "/My_Bucket");
    assert.equal(endpointOf({ bucket: "a.b", region: "r", regionendpoint: "https://s3.example.com" }).bucketPath, "/a.b");
    assert.equal(endpointOf({ bucket: "a.b", region: "r", regionendpoint: "http://s3.example.com" }).host, "a.b.s3.example.com");
  });

  it("a regionendpoint with a path keeps it before the bucket", () => {
    assert.equal(endpointOf({ bucket: "registry", region: "r", regionendpoint: "http://gw.example.com/s3/", forcepathstyle: true }).bucketPath, "/s3/registry");
  });

  it("usedualstack: AWS's dual-stack endpoint of the region", () => {
    assert.equal(endpointOf({ bucket: "registry", region: "eu-west-1", usedualstack: true }).host, "registry.s3.dualstack.eu-west-1.amazonaws.com");
    assert.equal(endpointOf({ bucket: "registry", region: "cn-north-1", usedualstack: true }).host, "registry.s3.dualstack.cn-north-1.amazonaws.com.cn");
  });

  it("accelerate: the global accelerate endpoint with the bucket in the host name, even with forcepathstyle (as the AWS SDK for Go)", () => {
    assert.deepEqual(endpointOf({ bucket: "registry", region: "eu-west-1", accelerate: true, forcepathstyle: true }), {
      protocol: "https:",
      hostname: "registry.s3-accelerate.amazonaws.com",
      port: 443,
      host: "registry.s3-accelerate.amazonaws.com",
      bucketPath: "",
      region: "eu-west-1",
    });
    assert.equal(endpointOf({ bucket: "registry", region: "eu-west-1", accelerate: true, usedualstack: true }).host, "registry.s3-accelerate.dualstack.amazonaws.com");
  });

  it("accelerate with a bucket name that cannot be a host name label: an error naming the bucket", () => {
    assert.throws(() => endpointOf({ bucket: "my.registry", region: "eu-west-1", accelerate: true }), /"my\.registry" cannot use accelerate/);
  });

  it("a regionendpoint takes precedence over usedualstack and accelerate", () => {
    const e = endpointOf({ bucket: "registry", region: "r", regionendpoint: "http://127.0.0.1:7480", usedualstack: true, accelerate: true });
    assert.equal(e.host, "127.0.0.1:7480");
    assert.equal(e.bucketPath, "/registry");
  });

  it("no region anywhere: an error that says so", () => {
    const saved = [process.env.AWS_REGION, process.env.AWS_DEFAULT_REGION];
    delete process.env.AWS_REGION;
    delete process.env.AWS_DEFAULT_REGION;
    try {
      assert.throws(() => endpointOf({ bucket: "registry" }), /region is required/);
    } finally {
      if (saved[0] !== undefined) process.env.AWS_REGION = saved[0];
      if (saved[1] !== undefined) process.env.AWS_DEFAULT_REGION = saved[1];
    }
  });
});
