/** Registry operations on the lean client, shared by the cases and the 2 GiB memory check. */
import { createHash, randomFillSync } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { Conn, expectStatus, locationPath, withQuery, type Response } from "./lean-client.js";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
/** The Accept header of a manifest GET: every manifest type a registry may hold. */
export const MANIFEST_ACCEPT = [
  OCI_MANIFEST,
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export interface RandomFile {
  path: string;
  size: number;
  digest: string;
}

/** Writes `size` random bytes to `path` once, hashing on the way. */
export async function generateRandomFile(path: string, size: number): Promise<RandomFile> {
  const fh = await open(path, "w");
  const hash = createHash("sha256");
  const buf = Buffer.allocUnsafe(16 << 20);
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(buf.length, size - done);
      const chunk = buf.subarray(0, n);
      randomFillSync(chunk);
      hash.update(chunk);
      await fh.write(chunk, 0, n);
      done += n;
    }
  } finally {
    await fh.close();
  }
  return { path, size, digest: `sha256:${hash.digest("hex")}` };
}

export async function startUpload(conn: Conn, repo: string): Promise<string> {
  const res = await conn.request({ method: "POST", path: `/v2/${repo}/blobs/uploads/` });
  expectStatus(res, 202, `POST /v2/${repo}/blobs/uploads/`);
  return locationPath(res, "POST upload");
}

/** POST, then PUT ?digest= with the whole blob (from a file range or a buffer). */
export async function pushBlobMonolithic(
  conn: Conn,
  repo: string,
  digest: string,
  body: Buffer | { file: FileHandle; start: number; length: number },
): Promise<Response> {
  const location = await startUpload(conn, repo);
  const put = withQuery(location, "digest", digest);
  const res = await conn.request({
    method: "PUT",
    path: put,
    headers: { "Content-Type": "application/octet-stream" },
    body,
  });
  return expectStatus(res, 201, `PUT ${repo} upload ?digest=${digest} (monolithic)`);
}

/** POST, PATCH chunks with Content-Range, then PUT ?digest= without a body. */
export async function pushBlobChunked(
  conn: Conn,
  repo: string,
  digest: string,
  file: FileHandle,
  size: number,
  chunkSize: number,
): Promise<Response> {
  let location = await startUpload(conn, repo);
  for (let start = 0; start < size; start += chunkSize) {
    const length = Math.min(chunkSize, size - start);
    const res = await conn.request({
      method: "PATCH",
      path: location,
      headers: {
        "Content-Type": "application/octet-stream",
        "Content-Range": `${start}-${start + length - 1}`,
      },
      body: { file, start, length },
    });
    expectStatus(res, 202, `PATCH ${repo} upload Content-Range ${start}-${start + length - 1}`);
    location = locationPath(res, "PATCH upload");
  }
  const res = await conn.request({ method: "PUT", path: withQuery(location, "digest", digest) });
  return expectStatus(res, 201, `PUT ${repo} upload ?digest=${digest} (chunked, closing)`);
}

export async function pushManifest(
  conn: Conn,
  repo: string,
  reference: string,
  manifest: Buffer,
  mediaType = OCI_MANIFEST,
): Promise<Response> {
  const res = await conn.request({
    method: "PUT",
    path: `/v2/${repo}/manifests/${reference}`,
    headers: { "Content-Type": mediaType },
    body: manifest,
  });
  return expectStatus(res, 201, `PUT /v2/${repo}/manifests/${reference}`);
}

export interface SmallImage {
  config: Buffer;
  configDigest: string;
  layers: { data: Buffer; digest: string }[];
  manifest: Buffer;
  manifestDigest: string;
}

/** An image whose layers are the given buffers (their content is not checked by registries). */
export function makeImage(layers: Buffer[], label: string): SmallImage {
  const layerInfo = layers.map((data) => ({ data, digest: sha256(data) }));
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Labels: { "bench.image": label } },
      rootfs: { type: "layers", diff_ids: layerInfo.map((l) => l.digest) },
    }),
  );
  const configDigest = sha256(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers: layerInfo.map((l) => ({ mediaType: OCI_LAYER_GZIP, digest: l.digest, size: l.data.length })),
    }),
  );
  return { config, configDigest, layers: layerInfo, manifest, manifestDigest: sha256(manifest) };
}

/** Pushes an image the way a client does: HEAD each blob, upload it if missing, then the manifest. */
export async function pushImage(conn: Conn, repo: string, tag: string, image: SmallImage): Promise<void> {
  const blobs = [...image.layers, { data: image.config, digest: image.configDigest }];
  for (const blob of blobs) {
    const head = await conn.request({ method: "HEAD", path: `/v2/${repo}/blobs/${blob.digest}` });
    if (head.status === 200) continue;
    expectStatus(head, 404, `HEAD /v2/${repo}/blobs/${blob.digest}`);
    await pushBlobMonolithic(conn, repo, blob.digest, blob.data);
  }
  await pushManifest(conn, repo, tag, image.manifest);
}

/**
 * Pushes a blob the way docker and skopeo do: HEAD it (done if present), POST, one PATCH with the
 * whole blob streamed (`Transfer-Encoding: chunked`, no Content-Range), then PUT ?digest= without
 * a body.
 */
export async function pushBlobStreamed(conn: Conn, repo: string, digest: string, data: Buffer): Promise<void> {
  const head = await conn.request({ method: "HEAD", path: `/v2/${repo}/blobs/${digest}` });
  if (head.status === 200) return;
  expectStatus(head, 404, `HEAD /v2/${repo}/blobs/${digest}`);
  const location = await startUpload(conn, repo);
  const patch = await conn.request({ method: "PATCH", path: location, headers: { "Content-Type": "application/octet-stream" }, body: data, chunked: true });
  expectStatus(patch, 202, `PATCH ${repo} upload (${data.length} bytes streamed)`);
  const put = await conn.request({ method: "PUT", path: withQuery(locationPath(patch, "PATCH upload"), "digest", digest) });
  expectStatus(put, 201, `PUT ${repo} upload ?digest=${digest} (closing)`);
  const got = put.headers.get("docker-content-digest");
  if (got !== digest) throw new Error(`PUT ${repo} upload ?digest=${digest}: Docker-Content-Digest ${got}`);
}

/**
 * Pushes an image as docker does: the layers at once, one connection each (up to `conns.length`
 * at a time: docker's max-concurrent-uploads is 5), then the config, then the manifest by tag.
 */
export async function pushImageStreamed(conns: Conn[], repo: string, tag: string, image: SmallImage): Promise<void> {
  const queue = [...image.layers];
  await Promise.all(
    conns.slice(0, Math.max(1, Math.min(conns.length, queue.length))).map(async (conn) => {
      for (let layer = queue.shift(); layer; layer = queue.shift()) await pushBlobStreamed(conn, repo, layer.digest, layer.data);
    }),
  );
  await pushBlobStreamed(conns[0]!, repo, image.configDigest, image.config);
  await pushManifest(conns[0]!, repo, tag, image.manifest);
}
