import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { Conn, HttpError } from "../lean-client.js";
import { pushBlobChunked } from "../registry-ops.js";
import { MB, type BenchCase } from "../types.js";

interface State {
  conn: Conn;
  file: FileHandle;
}

export const chunkedUpload: BenchCase<State> = {
  name: "chunked-upload",
  description: "one big blob in PATCH chunks with Content-Range, then PUT ?digest= without a body",
  unit: "MB/s",
  higherIsBetter: true,
  syncBefore: true,
  async prepare(ctx) {
    await ctx.blob();
  },
  async setup(srv, ctx) {
    const blob = await ctx.blob();
    return { conn: await Conn.connect(srv.host, srv.port), file: await open(blob.path, "r") };
  },
  async run(_srv, ctx, { conn, file }) {
    const blob = await ctx.blob();
    const chunk = ctx.sizes.chunkBytes;
    const t0 = performance.now();
    const res = await pushBlobChunked(conn, "bench/chunked", blob.digest, file, blob.size, chunk);
    const seconds = (performance.now() - t0) / 1000;
    const got = res.headers.get("docker-content-digest");
    if (got !== blob.digest) throw new HttpError(`PUT ?digest=: Docker-Content-Digest ${got}, want ${blob.digest}`, "PUT");
    return { value: blob.size / MB / seconds, extra: { seconds, bytes: blob.size, chunkBytes: chunk, chunks: Math.ceil(blob.size / chunk) } };
  },
  async teardown({ conn, file }) {
    conn.close();
    await file.close();
  },
};
