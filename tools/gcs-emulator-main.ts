/**
 * The Cloud Storage emulator of firebase-tools, started without the firebase CLI: run as a child
 * process by test/support/gcs-emulator.ts (`node gcs-emulator-main.js <firebase-tools dir> <port>`), with TMPDIR
 * set to the directory it may write in.
 *
 * Why not `firebase emulators:start --only storage`: the CLI refuses to start any emulator without
 * Java 21 (Debian 12 has 17), and the storage emulator's security-rules runtime is a jar the CLI
 * downloads at first use, which this machine cannot fetch. Neither is used by the JSON API the
 * Node SDK speaks (its requests are the administrator's, never checked against rules), so this
 * starts the emulator's own HTTP app and storage layer and leaves the rules runtime out.
 *
 * One addition, in front of the emulator's routes: the emulator finalises a resumable upload
 * session at its first PUT, whatever its Content-Range, while GCS takes a session in several PUTs
 * (https://cloud.google.com/storage/docs/performing-resumable-uploads): a Content-Range of
 * "bytes a-b/" followed by an asterisk stores a chunk and answers 308 with "Range: bytes=0-b";
 * "bytes a-b/N" (or an asterisk then "/N") stores the last chunk and creates the object; two
 * asterisks ask how much is stored; DELETE cancels the session (499). The handler below implements exactly those four requests on the
 * emulator's own upload service and storage layer; a chunk that does not start at the stored
 * offset, or (other than the last) is not a multiple of 256 KiB, is refused with 400 as GCS does.
 */
import { createRequire } from "node:module";
import { join } from "node:path";

const [firebaseToolsDir, portText] = process.argv.slice(2);
if (firebaseToolsDir === undefined || portText === undefined) throw new Error("usage: gcs-emulator-main <firebase-tools dir> <port>");
const port = Number(portText);
const require = createRequire(join(firebaseToolsDir, "package.json"));

/* eslint-disable @typescript-eslint/no-explicit-any -- the emulator's internals have no types */
const { StorageEmulator } = require("./lib/emulator/storage/index.js") as { StorageEmulator: new (args: object) => any };
const { createApp } = require("./lib/emulator/storage/server.js") as { createApp: (projectId: string, emulator: unknown) => Promise<any> };
const { EmulatorRegistry } = require("./lib/emulator/registry.js") as { EmulatorRegistry: any };
const express = require("express") as any;

const QUANTUM = 256 * 1024;
const projectId = "demo-berth";
const emulator = new StorageEmulator({ projectId, host: "127.0.0.1", port, rules: [], auto_download: false });
// What EmulatorRegistry.url falls back to when a request has no Host header.
EmulatorRegistry.getInfo = () => ({ host: "127.0.0.1", port });
const inner = await createApp(projectId, emulator);
const app = express();

function readBody(req: any): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

app.put("/upload/storage/v1/b/:bucketId/o", async (req: any, res: any, next: any) => {
  const uploadId = req.query.upload_id;
  const range = req.header("content-range");
  if (typeof uploadId !== "string" || typeof range !== "string") return next();
  let upload: any;
  try {
    upload = emulator.uploadService.getResumableUpload(uploadId);
  } catch {
    return res.sendStatus(404);
  }
  if (upload.status === "CANCELLED") return res.sendStatus(410);
  const body = await readBody(req);
  const stored = (): void => {
    if (upload.size > 0) res.setHeader("Range", `bytes=0-${upload.size - 1}`);
  };
  const status = /^bytes \*\/\*$/.exec(range);
  if (status !== null) {
    if (upload.status === "FINISHED") return res.status(200).json({ name: upload.objectId, bucket: upload.bucketId, size: String(upload.size) });
    stored();
    return res.sendStatus(308);
  }
  const match = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(range);
  if (match === null) return res.status(400).send(`bad Content-Range ${range}`);
  if (upload.status === "FINISHED") return res.status(200).json({ name: upload.objectId, bucket: upload.bucketId, size: String(upload.size) });
  const total = match[3] === "*" ? undefined : Number(match[3]);
  if (match[1] !== undefined) {
    const first = Number(match[1]);
    const last = Number(match[2]);
    if (first !== upload.size || last - first + 1 !== body.length) return res.status(400).send(`chunk ${range} does not follow the ${upload.size} bytes stored`);
    if (total === undefined && body.length % QUANTUM !== 0) return res.status(400).send("a chunk other than the last must be a multiple of 256 KiB");
  } else if (body.length !== 0) {
    return res.status(400).send("bytes */N carries no body");
  }
  if (body.length > 0) emulator.uploadService.continueResumableUpload(uploadId, body);
  if (total === undefined) {
    stored();
    return res.sendStatus(308);
  }
  if (total !== upload.size) return res.status(400).send(`total ${total} but ${upload.size} bytes stored`);
  const finished = emulator.uploadService.finalizeResumableUpload(uploadId);
  const metadata = await emulator.adminStorageLayer.uploadObject(finished);
  return res.status(200).json({ name: metadata.name, bucket: metadata.bucket, size: String(metadata.size), generation: String(metadata.generation) });
});

app.delete("/upload/storage/v1/b/:bucketId/o", (req: any, res: any, next: any) => {
  const uploadId = req.query.upload_id;
  if (typeof uploadId !== "string") return next();
  try {
    emulator.uploadService.cancelResumableUpload(uploadId);
  } catch {
    return res.sendStatus(404);
  }
  return res.sendStatus(499);
});

// The emulator serves rewrite and copy only under "/b/…", where the SDK (like GCS) sends them under
// "/storage/v1/b/…", as it does every other object request the emulator also serves there.
app.use((req: any, _res: any, next: any) => {
  if (/^\/storage\/v1\/b\/[^/]+\/o\/[^/]+\/(rewriteTo|copyTo)\//.test(req.url)) req.url = req.url.slice("/storage/v1".length);
  next();
});
app.use(inner);
const server = app.listen(port, "127.0.0.1", () => {
  process.stdout.write(`gcs emulator listening on 127.0.0.1:${port}\n`);
});
const stop = (): void => {
  server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
// The test process holds our standard input open: when it dies without stopping us (killed, or a
// crash), the pipe closes and we go too, instead of serving on as an orphan.
process.stdin.on("end", stop).on("close", stop).resume();
