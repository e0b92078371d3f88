/**
 * The two ClientHello fields the TLS-ALPN-01 responder needs before TLS starts: the server name
 * (SNI) and the offered application protocols (ALPN). Node's SNICallback sees the name but not
 * the protocols, and by the time ALPN is negotiated the certificate is already chosen, so the
 * challenge (RFC 8737: a validator offers exactly "acme-tls/1") is recognised from the raw bytes.
 *
 * Input is untrusted network data: every length is checked against what is there, and anything
 * that does not parse as one complete ClientHello in the first record reads as "not a challenge"
 * (the connection then goes to the registry's TLS server, which judges it as it always did).
 */

/** What the first TLS record says about the connection. */
export interface ClientHelloSummary {
  /** host_name from server_name (lower case), or undefined when absent. */
  serverName: string | undefined;
  /** The ALPN protocol names offered, in order; empty when the extension is absent. */
  protocols: string[];
}

const RECORD_HEADER = 5;
const HANDSHAKE = 22;
const CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;

/** Bytes needed before the first record is complete; undefined when `head` is not a TLS handshake record. */
export function firstRecordLength(head: Buffer): number | undefined {
  if (head.length < RECORD_HEADER) return RECORD_HEADER;
  if (head[0] !== HANDSHAKE || head[1] !== 3) return undefined;
  return RECORD_HEADER + head.readUInt16BE(3);
}

/** Parses the ClientHello in the first record of `record` (as long as firstRecordLength said); undefined when it is not one. */
export function parseClientHello(record: Buffer): ClientHelloSummary | undefined {
  const total = firstRecordLength(record);
  if (total === undefined || record.length < total) return undefined;
  const body = record.subarray(RECORD_HEADER, total);
  if (body.length < 4 || body[0] !== CLIENT_HELLO) return undefined;
  const helloLength = body.readUIntBE(1, 3);
  // A ClientHello split over several records is legal but not what validators send: not parsed.
  if (4 + helloLength > body.length) return undefined;
  const hello = body.subarray(4, 4 + helloLength);
  let at = 2 + 32; // client_version, random
  const skip = (lengthBytes: 1 | 2): boolean => {
    if (at + lengthBytes > hello.length) return false;
    const n = lengthBytes === 1 ? hello[at]! : hello.readUInt16BE(at);
    at += lengthBytes + n;
    return at <= hello.length;
  };
  if (!skip(1) || !skip(2) || !skip(1)) return undefined; // session_id, cipher_suites, compression_methods
  const summary: ClientHelloSummary = { serverName: undefined, protocols: [] };
  if (at === hello.length) return summary; // no extensions
  if (at + 2 > hello.length) return undefined;
  const end = at + 2 + hello.readUInt16BE(at);
  if (end > hello.length) return undefined;
  at += 2;
  while (at + 4 <= end) {
    const type = hello.readUInt16BE(at);
    const length = hello.readUInt16BE(at + 2);
    const data = hello.subarray(at + 4, at + 4 + length);
    at += 4 + length;
    if (at > end) return undefined;
    if (type === EXT_SERVER_NAME) {
      const name = readServerName(data);
      if (name === null) return undefined;
      summary.serverName = name;
    } else if (type === EXT_ALPN) {
      const protocols = readProtocols(data);
      if (protocols === undefined) return undefined;
      summary.protocols = protocols;
    }
  }
  return at === end ? summary : undefined;
}

/** The host_name entry of a server_name extension; undefined when there is none, null when malformed. */
function readServerName(data: Buffer): string | undefined | null {
  if (data.length < 2 || 2 + data.readUInt16BE(0) !== data.length) return null;
  let at = 2;
  while (at + 3 <= data.length) {
    const type = data[at]!;
    const length = data.readUInt16BE(at + 1);
    if (at + 3 + length > data.length) return null;
    if (type === 0) return data.subarray(at + 3, at + 3 + length).toString("latin1").toLowerCase();
    at += 3 + length;
  }
  return at === data.length ? undefined : null;
}

function readProtocols(data: Buffer): string[] | undefined {
  if (data.length < 2 || 2 + data.readUInt16BE(0) !== data.length) return undefined;
  const protocols: string[] = [];
  let at = 2;
  while (at < data.length) {
    const length = data[at]!;
    if (length === 0 || at + 1 + length > data.length) return undefined;
    protocols.push(data.subarray(at + 1, at + 1 + length).toString("latin1"));
    at += 1 + length;
  }
  return protocols;
}
