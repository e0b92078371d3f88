/**
 * The head of an HTTP/1.1 answer (status line and header fields), parsed from the bytes read off
 * a socket: what the GetObject body reader (object-body-client.ts) needs to know where the body
 * is. Not a general HTTP parser: it accepts what S3 servers send and refuses the rest, and the
 * caller falls back to Node's client for a body it does not frame itself.
 */
import type { IncomingHttpHeaders } from "node:http";
import { S3ProtocolError } from "./s3-errors.js";

export interface ResponseHead {
  status: number;
  headers: IncomingHttpHeaders;
  /** Bytes of the body: undefined when the answer does not say (chunked, or delimited by close). */
  contentLength: number | undefined;
  /** The server keeps the connection open after the body (HTTP/1.1 without `Connection: close`). */
  keepAlive: boolean;
}

/** A head larger than this is refused: S3's are under 2 KiB. */
export const MAX_HEAD_BYTES = 64 * 1024;

const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/;
const FIELD = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;

/**
 * Parses `text` (latin1, the bytes before the blank line, without it). Throws S3ProtocolError on
 * anything that is not a well-formed HTTP/1.x response head.
 */
export function parseResponseHead(text: string): ResponseHead {
  const lines = text.split("\r\n");
  const status = STATUS_LINE.exec(lines[0]!);
  if (status === null) throw new S3ProtocolError(`s3: not an HTTP/1.x answer: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const field = FIELD.exec(lines[i]!);
    if (field === null) throw new S3ProtocolError(`s3: a malformed header line in an answer: ${JSON.stringify(lines[i]!.slice(0, 80))}`);
    const name = field[1]!.toLowerCase();
    const previous = headers[name];
    headers[name] = previous === undefined ? field[2]! : `${previous}, ${field[2]!}`;
  }
  const connection = headers.connection?.toLowerCase() ?? "";
  const keepAlive = status[1] === "1" ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
  let contentLength: number | undefined;
  if (headers["transfer-encoding"] === undefined && headers["content-length"] !== undefined) {
    if (!/^\d{1,15}$/.test(headers["content-length"])) throw new S3ProtocolError(`s3: an answer's Content-Length is not a length: ${JSON.stringify(headers["content-length"])}`);
    contentLength = Number(headers["content-length"]);
  }
  return { status: Number(status[2]), headers, contentLength, keepAlive };
}
