/**
 * Builds OCI image layouts on disk for end-to-end tests with real clients (skopeo, podman),
 * so no image ever comes from a network.
 *
 * A layout is the directory the OCI image spec calls an "image layout":
 *
 *   <dir>/oci-layout                 {"imageLayoutVersion":"1.0.0"}
 *   <dir>/index.json                 an image index; each entry names one reference
 *                                    (annotation org.opencontainers.image.ref.name), which
 *                                    clients address as `oci:<dir>:<ref>`
 *   <dir>/blobs/sha256/<hex>         every blob, manifest and index, by digest
 *
 * Layers are real gzip-compressed ustar archives built here, and each image config carries
 * the diff_ids (sha256 of the uncompressed tar), so podman can unpack and re-push them.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

export const MEDIA_TYPE = {
  imageIndex: "application/vnd.oci.image.index.v1+json",
  imageManifest: "application/vnd.oci.image.manifest.v1+json",
  imageConfig: "application/vnd.oci.image.config.v1+json",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  empty: "application/vnd.oci.empty.v1+json",
} as const;

export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
  data?: string;
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

// ---------------------------------------------------------------------------------------------
// A minimal ustar writer: regular files and directories, fixed owner and time, so the same
// entries always give the same bytes.

export interface TarEntry {
  /** Relative path, no leading slash; directories end with "/". At most 100 bytes. */
  path: string;
  /** File content; absent for directories. */
  content?: Uint8Array;
  mode?: number;
}

/** Fixed modification time of every entry (2024-01-01T00:00:00Z). */
const TAR_MTIME = 1_704_067_200;

function octal(value: number, width: number): string {
  // width - 1 octal digits followed by NUL, zero padded.
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function tarHeader(entry: TarEntry): Buffer {
  const header = Buffer.alloc(512);
  const isDir = entry.content === undefined;
  const name = Buffer.from(entry.path, "utf8");
  if (name.length > 100) throw new Error(`tar path longer than 100 bytes: ${entry.path}`);
  name.copy(header, 0);
  header.write(octal(entry.mode ?? (isDir ? 0o755 : 0o644), 8), 100, "ascii");
  header.write(octal(0, 8), 108, "ascii"); // uid
  header.write(octal(0, 8), 116, "ascii"); // gid
  header.write(octal(isDir ? 0 : entry.content!.length, 12), 124, "ascii");
  header.write(octal(TAR_MTIME, 12), 136, "ascii");
  header.write("        ", 148, "ascii"); // checksum field counts as spaces while summing
  header.write(isDir ? "5" : "0", 156, "ascii");
  header.write("ustar\0", 257, "ascii");
  header.write("00", 263, "ascii");
  header.write("root", 265, "ascii"); // uname
  header.write("root", 297, "ascii"); // gname
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "ascii");
  return header;
}

/** A complete tar archive: each entry's header, its content padded to 512 bytes, two zero blocks. */
export function tarArchive(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(tarHeader(entry));
    if (entry.content !== undefined) {
      parts.push(Buffer.from(entry.content));
      const pad = (512 - (entry.content.length % 512)) % 512;
      if (pad > 0) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// Layout writer

/** Collects blobs and index entries, then writes the layout. Blobs are written as they are added. */
export class OciLayoutWriter {
  private readonly manifests: Descriptor[] = [];

  constructor(readonly dir: string) {}

  async init(): Promise<this> {
    await mkdir(join(this.dir, "blobs", "sha256"), { recursive: true });
    await writeFile(join(this.dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    return this;
  }

  /** Stores bytes under their digest and returns the descriptor. */
  async addBlob(mediaType: string, bytes: Uint8Array, extra: Partial<Descriptor> = {}): Promise<Descriptor> {
    const digest = sha256Digest(bytes);
    await writeFile(join(this.dir, "blobs", "sha256", digest.slice("sha256:".length)), bytes);
    return { mediaType, digest, size: bytes.length, ...extra };
  }

  /** Serialises a JSON document (manifest, index, config) and stores it; returns it with its bytes. */
  async addJson(mediaType: string, document: unknown, extra: Partial<Descriptor> = {}): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
    const bytes = Buffer.from(JSON.stringify(document), "utf8");
    return { descriptor: await this.addBlob(mediaType, bytes, extra), bytes };
  }

  /** Names a manifest or index in index.json, so `oci:<dir>:<ref>` finds it. */
  tag(ref: string, descriptor: Descriptor): void {
    const { mediaType, digest, size, artifactType, platform } = descriptor;
    this.manifests.push({
      mediaType,
      digest,
      size,
      ...(artifactType ? { artifactType } : {}),
      ...(platform ? { platform } : {}),
      annotations: { [REF_NAME_ANNOTATION]: ref },
    });
  }

  async finish(): Promise<void> {
    await writeFile(
      join(this.dir, "index.json"),
      JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE.imageIndex, manifests: this.manifests }),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Images

export interface BuiltLayer {
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar, as listed in the config's rootfs.diff_ids. */
  diffId: string;
}

export interface BuiltImage {
  manifest: Descriptor;
  manifestBytes: Buffer;
  config: Descriptor;
  layers: BuiltLayer[];
  /** Every blob the manifest references: config first, then layers in order. */
  blobDigests: string[];
}

export interface ImageSpec {
  architecture: string;
  os?: string;
  variant?: string;
  /** Each layer's files; a layer is one gzip-compressed tar. */
  layers: TarEntry[][];
  annotations?: Record<string, string>;
}

export async function addImage(layout: OciLayoutWriter, spec: ImageSpec): Promise<BuiltImage> {
  const layers: BuiltLayer[] = [];
  for (const entries of spec.layers) {
    const tar = tarArchive(entries);
    const descriptor = await layout.addBlob(MEDIA_TYPE.layerGzip, gzipSync(tar));
    layers.push({ descriptor, diffId: sha256Digest(tar) });
  }
  const os = spec.os ?? "linux";
  const created = new Date(TAR_MTIME * 1000).toISOString();
  const config = await layout.addJson(MEDIA_TYPE.imageConfig, {
    created,
    architecture: spec.architecture,
    ...(spec.variant ? { variant: spec.variant } : {}),
    os,
    config: {
      Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      Cmd: ["/bin/sh"],
      Labels: { "org.example.built-by": "berth e2e tests" },
    },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created, created_by: `berth test layer ${i + 1}`, comment: "built in Node" })),
  });
  const manifest = await layout.addJson(MEDIA_TYPE.imageManifest, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.imageManifest,
    config: config.descriptor,
    layers: layers.map((l) => l.descriptor),
    ...(spec.annotations ? { annotations: spec.annotations } : {}),
  });
  return {
    manifest: manifest.descriptor,
    manifestBytes: manifest.bytes,
    config: config.descriptor,
    layers,
    blobDigests: [config.descriptor.digest, ...layers.map((l) => l.descriptor.digest)],
  };
}

export interface BuiltIndex {
  index: Descriptor;
  indexBytes: Buffer;
  children: BuiltImage[];
}

export interface BuiltArtifact {
  manifest: Descriptor;
  manifestBytes: Buffer;
  artifactType: string;
  subject: Descriptor;
  config: Descriptor;
  layer: Descriptor;
  blobDigests: string[];
}

export interface TestLayouts {
  /** The layout directory: address images as `oci:<dir>:<ref>`. */
  dir: string;
  refs: { single: string; multi: string; artifact: string };
  /** (a) one linux/amd64 image with four layers, one of them several MiB of random bytes. */
  single: BuiltImage;
  /** (b) an OCI index of a linux/amd64 and a linux/arm64 image. */
  multi: BuiltIndex;
  /** (c) an artifact manifest (artifactType, empty config, one SBOM layer) whose subject is `single`. */
  artifact: BuiltArtifact;
}

/** The OCI empty descriptor's content, "{}". */
export const EMPTY_JSON = Buffer.from("{}");

export const SBOM_ARTIFACT_TYPE = "application/vnd.example.sbom.v1";
export const SBOM_LAYER_TYPE = "application/vnd.example.sbom+json";

/** Random bytes make every build's digests unique, so tests never share content by accident. */
function randomText(label: string): Buffer {
  return Buffer.from(`${label} ${randomBytes(16).toString("hex")}\n`);
}

/**
 * Writes one layout holding the three test subjects, under refs "single", "multi", "artifact".
 * `bigLayerBytes` sizes the random layer of the single image (default 3 MiB).
 */
export async function buildTestLayouts(dir: string, options: { bigLayerBytes?: number } = {}): Promise<TestLayouts> {
  const layout = await new OciLayoutWriter(dir).init();
  const refs = { single: "single", multi: "multi", artifact: "artifact" };

  const single = await addImage(layout, {
    architecture: "amd64",
    layers: [
      [
        { path: "bin/" },
        { path: "etc/" },
        { path: "etc/os-release", content: Buffer.from('NAME="berth test image"\nID=berth-test\n') },
        { path: "etc/hostname", content: randomText("host") },
      ],
      [
        { path: "opt/" },
        { path: "opt/data/" },
        { path: "opt/data/random.bin", content: randomBytes(options.bigLayerBytes ?? 3 * 1024 * 1024) },
      ],
      [
        { path: "usr/" },
        { path: "usr/local/" },
        { path: "usr/local/bin/" },
        { path: "usr/local/bin/hello", content: Buffer.from("#!/bin/sh\necho hello from berth\n"), mode: 0o755 },
      ],
      [{ path: "etc/" }, { path: "etc/motd", content: randomText("motd") }],
    ],
  });
  layout.tag(refs.single, single.manifest);

  const children: BuiltImage[] = [];
  for (const [architecture, variant] of [["amd64", undefined], ["arm64", "v8"]] as const) {
    const image = await addImage(layout, {
      architecture,
      ...(variant ? { variant } : {}),
      layers: [
        [{ path: "etc/" }, { path: "etc/arch", content: randomText(architecture) }],
        [{ path: "srv/" }, { path: "srv/payload.bin", content: randomBytes(64 * 1024) }],
      ],
    });
    image.manifest.platform = { architecture, os: "linux", ...(variant ? { variant } : {}) };
    children.push(image);
  }
  const index = await layout.addJson(MEDIA_TYPE.imageIndex, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE.imageIndex,
    manifests: children.map((c) => c.manifest),
  });
  layout.tag(refs.multi, index.descriptor);

  const emptyConfig = await layout.addBlob(MEDIA_TYPE.empty, EMPTY_JSON);
  const sbom = await layout.addBlob(
    SBOM_LAYER_TYPE,
    Buffer.from(JSON.stringify({ spdxVersion: "SPDX-2.3", name: "berth-test", nonce: randomBytes(8).toString("hex") })),
  );
  const subject: Descriptor = { mediaType: single.manifest.mediaType, digest: single.manifest.digest, size: single.manifest.size };
  const artifactManifest = await layout.addJson(
    MEDIA_TYPE.imageManifest,
    {
      schemaVersion: 2,
      mediaType: MEDIA_TYPE.imageManifest,
      artifactType: SBOM_ARTIFACT_TYPE,
      config: emptyConfig,
      layers: [sbom],
      subject,
      annotations: { "org.opencontainers.image.created": new Date(TAR_MTIME * 1000).toISOString() },
    },
    { artifactType: SBOM_ARTIFACT_TYPE },
  );
  layout.tag(refs.artifact, artifactManifest.descriptor);

  await layout.finish();
  return {
    dir,
    refs,
    single,
    multi: { index: index.descriptor, indexBytes: index.bytes, children },
    artifact: {
      manifest: artifactManifest.descriptor,
      manifestBytes: artifactManifest.bytes,
      artifactType: SBOM_ARTIFACT_TYPE,
      subject,
      config: emptyConfig,
      layer: sbom,
      blobDigests: [emptyConfig.digest, sbom.digest],
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Reading a layout back (what a client wrote)

export interface LayoutContents {
  index: { manifests: Descriptor[] };
  /** Digests of every file under blobs/, verified: each file's sha256 equals its name. */
  blobDigests: Set<string>;
  readBlob(digest: string): Promise<Buffer>;
}

export async function readLayout(dir: string): Promise<LayoutContents> {
  const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as { manifests: Descriptor[] };
  const blobDigests = new Set<string>();
  const blobDir = join(dir, "blobs", "sha256");
  for (const name of await readdir(blobDir)) {
    const digest = sha256Digest(await readFile(join(blobDir, name)));
    if (digest !== `sha256:${name}`) throw new Error(`layout blob ${name} has content digest ${digest}`);
    blobDigests.add(digest);
  }
  return {
    index,
    blobDigests,
    readBlob: (digest) => readFile(join(blobDir, digest.slice("sha256:".length))),
  };
}
