import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { Conn, HttpError } from "../lean-client.js";
import { pushBlobChunked, pushBlobMonolithic } from "../registry-ops.js";
import { MB, type BenchCase, type BenchContext } from "../types.js";

interface State {
  conn: Conn;
  file: FileHandle;
}

type Push = (conn: Conn, file: FileHandle, digest: string, size: number, ctx: BenchContext) => ReturnType<typeof pushBlobMonolithic>;

/** One big blob pushed from a file, MB/s; the two cases differ only in how the bytes are sent. */
function uploadCase(name: string, description: string, push: Push, extra: (ctx: BenchContext, size: number) => Record<string, number> = () => ({})): BenchCase<State> {
  return {
    name,
    description,
    unit: "MB/s",
    higherIsBetter: true,
    async settlePageCache(ctx) {
      return [(await ctx.blob()).path];
    },
    async prepare(ctx) {
      await ctx.blob();
    },
    async setup(srv, ctx) {
      const blob = await ctx.blob();
      return { conn: await Conn.connect(srv.host, srv.port), file: await open(blob.path, "r") };
    },
    async run(_srv, ctx, { conn, file }) {
      const blob = await ctx.blob();
      const t0 = performance.now();
      const res = await push(conn, file, blob.digest, blob.size, ctx);
      const seconds = (performance.now() - t0) / 1000;
      const got = res.headers.get("docker-content-digest");
      if (got !== blob.digest) throw new HttpError(`PUT ?digest=: Docker-Content-Digest ${got}, want ${blob.digest}`, "PUT");
      return { value: blob.size / MB / seconds, extra: { seconds, bytes: blob.size, ...extra(ctx, blob.size) } };
    },
    async teardown({ conn, file }) {
      conn.close();
      await file.close();
    },
  };
}

export const monoUpload = uploadCase(
  "mono-upload",
  "one big blob: POST, then PUT ?digest= with the whole body streamed from a file",
  (conn, file, digest, size) => pushBlobMonolithic(conn, "bench/mono", digest, { file, start: 0, length: size }),
);

export const chunkedUpload = uploadCase(
  "chunked-upload",
  "one big blob in PATCH chunks with Content-Range, then PUT ?digest= without a body",
  (conn, file, digest, size, ctx) => pushBlobChunked(conn, "bench/chunked", digest, file, size, ctx.sizes.chunkBytes),
  (ctx, size) => ({ chunkBytes: ctx.sizes.chunkBytes, chunks: Math.ceil(size / ctx.sizes.chunkBytes) }),
);
