import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { Conn, HttpError } from "../lean-client.js";
import { pushBlobMonolithic } from "../registry-ops.js";
import { MB, type BenchCase } from "../types.js";

interface State {
  conn: Conn;
  file: FileHandle;
}

export const monoUpload: BenchCase<State> = {
  name: "mono-upload",
  description: "one big blob: POST, then PUT ?digest= with the whole body streamed from a file",
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
    const t0 = performance.now();
    const res = await pushBlobMonolithic(conn, "bench/mono", blob.digest, { file, start: 0, length: blob.size });
    const seconds = (performance.now() - t0) / 1000;
    const got = res.headers.get("docker-content-digest");
    if (got !== blob.digest) throw new HttpError(`PUT ?digest=: Docker-Content-Digest ${got}, want ${blob.digest}`, "PUT");
    return { value: blob.size / MB / seconds, extra: { seconds, bytes: blob.size } };
  },
  async teardown({ conn, file }) {
    conn.close();
    await file.close();
  },
};
