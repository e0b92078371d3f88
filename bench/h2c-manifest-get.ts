/**
 * Manifest GETs per second over h2c (one HTTP/2 session, many streams) and over HTTP/1.1
 * (keep-alive connections, one request at a time each), against running berth servers:
 *
 *   node dist/bench/h2c-manifest-get.js <url of berth with http.h2c on> [<url of berth with it off>] [seconds] [concurrency]
 *
 * It pushes one small image to each server, then for `seconds` keeps `concurrency` GETs of its
 * manifest in flight: HTTP/2 and HTTP/1.1 on the h2c server, HTTP/1.1 on the other (what the
 * connection sniffer costs HTTP/1.1 when h2c is on). A measurement tool, not part of `npm run bench`.
 */
import { createHash, randomBytes } from "node:crypto";
import { Agent, request as httpRequest } from "node:http";
import { connect as connectHttp2 } from "node:http2";

const MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";

function digest(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

async function pushImage(base: string): Promise<string> {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
  const layer = randomBytes(1024);
  for (const blob of [config, layer]) {
    const response = await fetch(`${base}/v2/bench/h2c/blobs/uploads/?digest=${digest(blob)}`, { method: "POST", body: blob, headers: { "content-type": "application/octet-stream" } });
    if (response.status !== 201) throw new Error(`blob push: ${response.status}`);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: digest(config), size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: digest(layer), size: layer.length }],
    }),
  );
  const response = await fetch(`${base}/v2/bench/h2c/manifests/v1`, { method: "PUT", body: manifest, headers: { "content-type": MANIFEST_TYPE } });
  if (response.status !== 201) throw new Error(`manifest push: ${response.status}`);
  return "/v2/bench/h2c/manifests/v1";
}

/** Keeps `concurrency` calls of `once` running for `ms`; returns completed calls per second. */
async function rate(ms: number, concurrency: number, once: () => Promise<void>): Promise<number> {
  const end = Date.now() + ms;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < end) {
      await once();
      done++;
    }
  };
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return done / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function overHttp1(base: string, path: string, ms: number, concurrency: number): Promise<number> {
  const url = new URL(base);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const result = await rate(ms, concurrency, () =>
    new Promise<void>((resolve, reject) => {
      const req = httpRequest({ host: url.hostname, port: url.port, path, agent, headers: { accept: MANIFEST_TYPE } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`GET: ${res.statusCode}`));
        res.resume();
        res.on("end", resolve);
      });
      req.on("error", reject);
      req.end();
    }),
  );
  agent.destroy();
  return result;
}

async function overH2c(base: string, path: string, ms: number, concurrency: number): Promise<number> {
  const session = connectHttp2(base);
  const result = await rate(ms, concurrency, () =>
    new Promise<void>((resolve, reject) => {
      const stream = session.request({ ":path": path, accept: MANIFEST_TYPE });
      stream.on("response", (headers) => {
        if (headers[":status"] !== 200) reject(new Error(`GET: ${headers[":status"]}`));
      });
      stream.on("error", reject);
      stream.resume();
      stream.on("end", resolve);
    }),
  );
  session.close();
  return result;
}

const [h2cURL, plainURL, secondsText, concurrencyText] = process.argv.slice(2);
if (h2cURL === undefined) throw new Error("usage: h2c-manifest-get.js <h2c url> [<plain url>] [seconds] [concurrency]");
const ms = Number(secondsText ?? "5") * 1000;
const concurrency = Number(concurrencyText ?? "16");
const path = await pushImage(h2cURL);
const figures: Record<string, number> = {};
figures["h2c server, HTTP/2 (one session)"] = await overH2c(h2cURL, path, ms, concurrency);
figures["h2c server, HTTP/1.1"] = await overHttp1(h2cURL, path, ms, concurrency);
if (plainURL !== undefined) {
  const plainPath = await pushImage(plainURL);
  figures["plain server (h2c off), HTTP/1.1"] = await overHttp1(plainURL, plainPath, ms, concurrency);
}
for (const [label, value] of Object.entries(figures)) console.log(`${label}: ${Math.round(value)} GET/s`);
