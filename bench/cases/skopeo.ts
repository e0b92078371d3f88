/**
 * skopeo round trip: copy an OCI layout (five gzip'd tar layers of random data) to the registry,
 * then back into a fresh OCI layout.
 */
import { spawn } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, sha256 } from "../registry-ops.js";
import type { BenchCase, BenchContext } from "../types.js";

const KEY = "skopeo-layout";
const REPO = "bench/skopeo";

interface Layout {
  dir: string;
  manifestDigest: string;
  bytes: number;
}

/** A minimal ustar archive holding one regular file. */
export function ustar(name: string, data: Buffer): Buffer {
  const header = Buffer.alloc(512);
  const put = (offset: number, length: number, value: string): void => {
    header.write(value.slice(0, length), offset, length, "latin1");
  };
  const octal = (value: number, length: number): string => value.toString(8).padStart(length - 1, "0") + "\0";
  put(0, 100, name);
  put(100, 8, octal(0o644, 8));
  put(108, 8, octal(0, 8));
  put(116, 8, octal(0, 8));
  put(124, 12, octal(data.length, 12));
  put(136, 12, octal(1_700_000_000, 12));
  put(148, 8, "        "); // checksum field counts as spaces
  put(156, 1, "0");
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  put(265, 32, "root");
  put(297, 32, "root");
  let sum = 0;
  for (const b of header) sum += b;
  put(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([header, data, Buffer.alloc(pad), Buffer.alloc(1024)]);
}

async function buildLayout(ctx: BenchContext): Promise<Layout> {
  const dir = join(ctx.tmpRoot, "skopeo-src");
  const blobs = join(dir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const writeBlob = async (data: Buffer): Promise<string> => {
    const digest = sha256(data);
    await writeFile(join(blobs, digest.slice(7)), data);
    return digest;
  };
  const layers: { digest: string; size: number }[] = [];
  const diffIds: string[] = [];
  let bytes = 0;
  for (let i = 0; i < ctx.sizes.skopeoLayers; i++) {
    const tar = ustar(`layer-${i}.bin`, randomFillSync(Buffer.allocUnsafe(ctx.sizes.skopeoLayerBytes)));
    diffIds.push(sha256(tar));
    // Level 0: a valid gzip stream of stored blocks (random data would not shrink anyway).
    const gz = gzipSync(tar, { level: 0 });
    layers.push({ digest: await writeBlob(gz), size: gz.length });
    bytes += gz.length;
  }
  const config = Buffer.from(
    JSON.stringify({
      created: "2024-01-01T00:00:00Z",
      architecture: "amd64",
      os: "linux",
      config: { Env: ["PATH=/usr/bin:/bin"], Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: diffIds },
      history: diffIds.map((_, i) => ({ created: "2024-01-01T00:00:00Z", created_by: `bench layer ${i}` })),
    }),
  );
  const configDigest = await writeBlob(config);
  bytes += config.length;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER_GZIP, digest: l.digest, size: l.size })),
    }),
  );
  const manifestDigest = await writeBlob(manifest);
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: OCI_MANIFEST,
          digest: manifestDigest,
          size: manifest.length,
          annotations: { "org.opencontainers.image.ref.name": "latest" },
        },
      ],
    }),
  );
  return { dir, manifestDigest, bytes };
}

function skopeo(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("skopeo", ["--insecure-policy", ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`skopeo ${args.join(" ")} exited ${code}: ${stderr.trim().slice(-2000)}`)),
    );
  });
}

export const skopeoRoundTrip: BenchCase<string> = {
  name: "skopeo-round-trip",
  description: "skopeo copy of a five-layer OCI image oci: → docker:// (push), then docker:// → fresh oci: (pull), seconds",
  unit: "s",
  higherIsBetter: false,
  syncBefore: true,
  async prepare(ctx) {
    if (!ctx.shared.has(KEY)) ctx.shared.set(KEY, await buildLayout(ctx));
  },
  async setup(_srv, ctx) {
    return mkdtemp(join(ctx.tmpRoot, "skopeo-dst-"));
  },
  async run(srv, ctx, dst) {
    const layout = ctx.shared.get(KEY) as Layout;
    const ref = `docker://${srv.host}:${srv.port}/${REPO}:latest`;
    const t0 = performance.now();
    await skopeo(["copy", "--quiet", "--dest-tls-verify=false", `oci:${layout.dir}:latest`, ref]);
    const t1 = performance.now();
    await skopeo(["copy", "--quiet", "--src-tls-verify=false", ref, `oci:${dst}:latest`]);
    const t2 = performance.now();
    const index = JSON.parse(await readFile(join(dst, "index.json"), "utf8")) as { manifests?: { digest?: string }[] };
    const pulled = index.manifests?.[0]?.digest;
    if (pulled !== layout.manifestDigest) throw new Error(`skopeo pull: manifest ${pulled}, pushed ${layout.manifestDigest}`);
    return {
      value: (t2 - t0) / 1000,
      extra: { pushSeconds: (t1 - t0) / 1000, pullSeconds: (t2 - t1) / 1000, bytes: layout.bytes },
    };
  },
  async teardown(dst) {
    await rm(dst, { recursive: true, force: true });
  },
};
