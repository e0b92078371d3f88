import { open } from "node:fs/promises";
import { Conn, expectStatus, HttpError } from "../lean-client.js";
import { pushBlobMonolithic } from "../registry-ops.js";
import { MB, MiB, type BenchCase } from "../types.js";

const REPO = "bench/blob";

/** GET the big blob on `clients` connections at once; bytes are counted and dropped. */
export function blobGet(clients: number): BenchCase<Conn[]> {
  return {
    name: `blob-get-c${clients}`,
    description: `GET the big blob, ${clients} concurrent client${clients > 1 ? "s" : ""} (bytes discarded, aggregate MB/s)`,
    unit: "MB/s",
    higherIsBetter: true,
    async prepare(ctx) {
      await ctx.blob();
    },
    async setup(srv, ctx) {
      const blob = await ctx.blob();
      const conn = await Conn.connect(srv.host, srv.port);
      const file = await open(blob.path, "r");
      try {
        await pushBlobMonolithic(conn, REPO, blob.digest, { file, start: 0, length: blob.size });
      } finally {
        conn.close();
        await file.close();
      }
      const conns: Conn[] = [];
      for (let i = 0; i < clients; i++) conns.push(await Conn.connect(srv.host, srv.port, { readBuffer: MiB }));
      return conns;
    },
    async run(_srv, ctx, conns) {
      const blob = await ctx.blob();
      const path = `/v2/${REPO}/blobs/${blob.digest}`;
      const t0 = performance.now();
      await Promise.all(
        conns.map(async (conn) => {
          const res = expectStatus(await conn.request({ method: "GET", path, discard: true }), 200, `GET ${path}`);
          if (res.bodyLength !== blob.size) throw new HttpError(`GET ${path}: got ${res.bodyLength} bytes, want ${blob.size}`, path, res);
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      const bytes = blob.size * clients;
      return { value: bytes / MB / seconds, extra: { seconds, bytes, clients } };
    },
    async teardown(conns) {
      for (const c of conns) c.close();
    },
  };
}
