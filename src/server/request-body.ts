import type { IncomingMessage } from "node:http";
import type { RegistryError } from "../errcode/registry-error.js";
import { declaredLength } from "./request-context.js";

/**
 * Reads a small body whole (a manifest). Refuses before reading when Content-Length is over the
 * limit, and stops reading as soon as a chunked body goes over it.
 */
export async function readLimitedBody(req: IncomingMessage, limit: number, tooLarge: () => RegistryError): Promise<Buffer> {
  const declared = declaredLength(req);
  if (declared !== undefined && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    total += (chunk as Buffer).length;
    if (total > limit) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}
