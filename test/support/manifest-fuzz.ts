/**
 * Structure-aware manifests for fuzzing manifest PUTs: well-formed image manifests, indexes and
 * artifacts (OCI and Docker) that name blobs the registry holds, then broken in one to three places
 * with hostile values: wrong types, extreme numbers, malformed and foreign digests, huge strings and
 * arrays, deep nesting, duplicate keys, bytes that are not UTF-8, a reference or Content-Type that
 * disagrees with the body. Seeded (test/support/fuzz-requests.ts's Random), so a run replays.
 */
import type { Random } from "./fuzz-requests.js";
import { digestOf, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_LAYER, OCI_MANIFEST } from "./registry-client.js";

export interface Stored {
  digest: string;
  size: number;
}

/** What the registry holds in the fuzzed repository before the run. */
export interface ManifestFuzzTarget {
  name: string;
  config: Stored;
  layer: Stored;
  /** An image manifest stored in the repository: an index's child, an artifact's subject. */
  manifest: Stored & { mediaType: string };
}

export interface ManifestCase {
  description: string;
  /** A tag, or a digest (of the body or not). */
  reference: string;
  contentType: string | undefined;
  body: Buffer;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const HOSTILE_VALUES: Array<[string, () => Json]> = [
  ["null", () => null],
  ["-1", () => -1],
  ["a fraction", () => 1.5],
  ["2^53+2", () => 2 ** 53 + 2],
  ["1e308", () => 1e308],
  ["true", () => true],
  ["an empty string", () => ""],
  ["a 64 KiB string", () => "x".repeat(64 * 1024)],
  ["a NUL", () => "a\u0000b"],
  ["a lone surrogate", () => "\ud800"],
  ["an empty array", () => []],
  ["an empty object", () => ({})],
  ["a traversal", () => "../../../../etc/passwd"],
  ["an unknown sha256", () => `sha256:${"0".repeat(64)}`],
  ["an uppercase digest", () => `sha256:${"A".repeat(64)}`],
  ["a short digest", () => "sha256:abc"],
  ["an unknown algorithm", () => `md5:${"0".repeat(32)}`],
  ["a sha512 digest", () => `sha512:${"1".repeat(128)}`],
  ["a digest with a path", () => `sha256:${"0".repeat(62)}/x`],
  ["a file URL", () => "file:///etc/passwd"],
  ["a media type with parameters", () => `${OCI_MANIFEST}; charset=utf-8`],
  ["a foreign media type", () => "text/html"],
];

/** The most bytes of entries one array may hold after a repeat. */
const MAX_REPEATED_BYTES = 24 * 1024 * 1024;

const HOSTILE_KEYS = ["__proto__", "constructor", "prototype", "", "\u0000", "ключ", "x".repeat(4096), "mediaType", "digest", "size"];

export function generateManifestCase(random: Random, target: ManifestFuzzTarget, index: number): ManifestCase {
  const base = baseDocument(random, target);
  const notes: string[] = [base.kind];
  const document = base.document;
  const mutations = 1 + random.int(3);
  let rawEdits: Array<(text: string) => string> = [];
  for (let i = 0; i < mutations; i++) {
    const { note, raw } = mutate(random, document);
    notes.push(note);
    if (raw) rawEdits.push(raw);
  }
  if (random.chance(0.15)) rawEdits = [];
  let text = JSON.stringify(document, null, random.chance(0.3) ? 2 : undefined);
  for (const edit of rawEdits) text = edit(text);
  let body = Buffer.from(text, "utf8");
  if (random.chance(0.03)) {
    body = Buffer.concat([body.subarray(0, Math.max(0, body.length - 2)), Buffer.from([0xff, 0xfe]), body.subarray(Math.max(0, body.length - 2))]);
    notes.push("bytes that are not UTF-8");
  }
  const digest = digestOf(body);
  const references: Array<[string, () => string]> = [
    ["by tag", () => `t${index}`],
    ["by its digest", () => digest],
    ["by its sha512 digest", () => digestOf(body, "sha512")],
    ["by another digest", () => target.manifest.digest],
    ["by an invalid tag", () => `-${index}`],
  ];
  const [referenceNote, reference] = random.chance(0.7) ? references[random.int(2)]! : random.pick(references);
  notes.push(referenceNote);
  const contentTypes: Array<string | undefined> = [base.mediaType, base.mediaType, base.mediaType, OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, undefined, "application/json", `${base.mediaType}; charset=utf-8`, "x/y"];
  const contentType = random.pick(contentTypes);
  notes.push(`Content-Type ${contentType ?? "none"}`);
  return { description: notes.join(", "), reference: reference(), contentType, body };
}

function baseDocument(random: Random, t: ManifestFuzzTarget): { kind: string; mediaType: string; document: { [key: string]: Json } } {
  const kinds = ["oci image", "docker image", "oci index", "docker list", "oci artifact"] as const;
  const kind = random.pick(kinds);
  const layers = (mediaType: string): Json[] => Array.from({ length: 1 + random.int(3) }, () => ({ mediaType, digest: t.layer.digest, size: t.layer.size }));
  switch (kind) {
    case "oci image":
      return {
        kind,
        mediaType: OCI_MANIFEST,
        document: { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: t.config.digest, size: t.config.size }, layers: layers(OCI_LAYER) },
      };
    case "docker image":
      return {
        kind,
        mediaType: DOCKER_MANIFEST,
        document: { schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: { mediaType: DOCKER_CONFIG, digest: t.config.digest, size: t.config.size }, layers: layers(DOCKER_LAYER) },
      };
    case "oci index":
    case "docker list": {
      const mediaType = kind === "oci index" ? OCI_INDEX : DOCKER_MANIFEST_LIST;
      const child = { mediaType: t.manifest.mediaType, digest: t.manifest.digest, size: t.manifest.size, platform: { architecture: "amd64", os: "linux" } };
      return { kind, mediaType, document: { schemaVersion: 2, mediaType, manifests: [child, { ...child, platform: { architecture: "arm64", os: "linux", variant: "v8" } }] } };
    }
    case "oci artifact":
      return {
        kind,
        mediaType: OCI_MANIFEST,
        document: {
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          artifactType: "application/vnd.example.sbom",
          config: { mediaType: OCI_EMPTY, digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", size: 2 },
          layers: layers("application/vnd.example.sbom.layer"),
          subject: { mediaType: t.manifest.mediaType, digest: t.manifest.digest, size: t.manifest.size },
          annotations: { "org.opencontainers.image.created": "2026-12-03T00:00:00Z" },
        },
      };
  }
}

/** Every place in the document: its parent and the key or index there. */
function places(document: Json): Array<{ parent: { [key: string]: Json } | Json[]; key: string | number }> {
  const out: Array<{ parent: { [key: string]: Json } | Json[]; key: string | number }> = [];
  const walk = (node: Json): void => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => {
        out.push({ parent: node, key: i });
        walk(child);
      });
    } else if (node !== null && typeof node === "object") {
      for (const [key, child] of Object.entries(node)) {
        out.push({ parent: node, key });
        walk(child);
      }
    }
  };
  walk(document);
  return out;
}

function set(parent: { [key: string]: Json } | Json[], key: string | number, value: Json): void {
  if (Array.isArray(parent)) parent[key as number] = value;
  else Object.defineProperty(parent, key as string, { value, enumerable: true, writable: true, configurable: true });
}

/** One hostile change; `raw` edits the JSON text where the change cannot be made in the value. */
function mutate(random: Random, document: { [key: string]: Json }): { note: string; raw?: (text: string) => string } {
  const spots = places(document);
  const spot = random.pick(spots);
  const where = typeof spot.key === "number" ? `[${spot.key}]` : JSON.stringify(spot.key).slice(0, 40);
  switch (random.int(9)) {
    case 0:
    case 1:
    case 2: {
      const [name, value] = random.pick(HOSTILE_VALUES);
      set(spot.parent, spot.key, value());
      return { note: `${where} set to ${name}` };
    }
    case 3:
      if (Array.isArray(spot.parent)) spot.parent.splice(spot.key as number, 1);
      else delete spot.parent[spot.key as string];
      return { note: `${where} removed` };
    case 4: {
      const key = random.pick(HOSTILE_KEYS);
      const [name, value] = random.pick(HOSTILE_VALUES);
      const objects = spots.map((s) => s.parent).filter((p): p is { [key: string]: Json } => !Array.isArray(p));
      set(random.pick([document, ...objects]), key, value());
      return { note: `field ${JSON.stringify(key).slice(0, 20)} added as ${name}` };
    }
    case 5: {
      const arrays = [document.layers, document.manifests].filter((a): a is Json[] => Array.isArray(a) && a.length > 0);
      if (arrays.length === 0) return { note: "nothing to repeat" };
      const array = random.pick(arrays);
      // Bounded so that the document stays far below the longest string V8 makes (repeats compound).
      const entryBytes = JSON.stringify(array[0]).length;
      const copies = Math.max(0, Math.min(random.pick([2, 100, 5000]), Math.floor(MAX_REPEATED_BYTES / entryBytes) - array.length));
      // Copies, not the same object: a later change to one entry must not land in all of them.
      for (let i = 0; i < copies; i++) array.push(structuredClone(array[0]!));
      return { note: `an entry repeated ${copies} times` };
    }
    case 6: {
      const depth = random.pick([64, 1000, 100_000]);
      return { note: `a value nested ${depth} deep`, raw: (text) => text.replace(/^\{/, `{"deep":${"[".repeat(depth)}${"]".repeat(depth)},`) };
    }
    case 7:
      return { note: "a duplicate mediaType key", raw: (text) => text.replace(/^\{/, '{"mediaType":"text/plain",') };
    default: {
      const annotations: { [key: string]: Json } = {};
      const count = random.pick([1, 500, 20_000]);
      for (let i = 0; i < count; i++) annotations[`k${i}`] = random.chance(0.9) ? `v${i}` : i;
      set(document, "annotations", annotations);
      return { note: `${count} annotations` };
    }
  }
}
