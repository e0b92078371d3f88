import { randomFillSync } from "node:crypto";
import { Conn } from "../lean-client.js";
import { makeImage, pushImage, type SmallImage } from "../registry-ops.js";
import type { BenchCase, BenchContext } from "../types.js";

const KEY = "push-images";

function images(ctx: BenchContext): SmallImage[] {
  return ctx.shared.get(KEY) as SmallImage[];
}

/** A set of push-50's size and shape: `images` distinct images of `layersPerImage` random layers. */
function imageSet(ctx: BenchContext, name: string): SmallImage[] {
  const { images: n, layersPerImage, layerBytes } = ctx.sizes;
  const all: SmallImage[] = [];
  for (let i = 0; i < n; i++) {
    const layers: Buffer[] = [];
    for (let l = 0; l < layersPerImage; l++) layers.push(randomFillSync(Buffer.allocUnsafe(layerBytes)));
    all.push(makeImage(layers, `${name}-${i}`));
  }
  return all;
}

/**
 * `count` sets of push-50 images, the first push-50's own, made once per run and shared by the
 * cases that push several blocks: a block pushing a set its server stored already would find the
 * blobs there and look faster.
 */
export function imageSets(ctx: BenchContext, count: number): SmallImage[][] {
  const sets: SmallImage[][] = [];
  for (let i = 0; i < count; i++) {
    const key = i === 0 ? KEY : `push-images-${i + 1}`;
    if (!ctx.shared.has(key)) ctx.shared.set(key, imageSet(ctx, i === 0 ? "push" : key));
    sets.push(ctx.shared.get(key) as SmallImage[]);
  }
  return sets;
}

/** Concurrent pushes of distinct small images, each on its own connection: HEAD, POST+PUT per blob, then the manifest. */
export const pushImages: BenchCase<Conn[]> = {
  name: "push-50-images",
  description: "50 concurrent pushes of distinct images (3 layers + config + manifest), wall seconds",
  unit: "s",
  higherIsBetter: false,
  syncBefore: true,
  async prepare(ctx) {
    imageSets(ctx, 1);
  },
  async setup(srv, ctx) {
    const conns: Conn[] = [];
    for (let i = 0; i < images(ctx).length; i++) conns.push(await Conn.connect(srv.host, srv.port));
    return conns;
  },
  async run(_srv, ctx, conns) {
    const all = images(ctx);
    const t0 = performance.now();
    await Promise.all(all.map((img, i) => pushImage(conns[i]!, `bench/img-${i}`, "latest", img)));
    const seconds = (performance.now() - t0) / 1000;
    const bytes = all.reduce((sum, img) => sum + img.config.length + img.layers.reduce((s, l) => s + l.data.length, 0), 0);
    return { value: seconds, extra: { images: all.length, bytes } };
  },
  async teardown(conns) {
    for (const c of conns) c.close();
  },
};
