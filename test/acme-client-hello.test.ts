/**
 * The ClientHello reader that tells TLS-ALPN-01 validations from registry clients (src/acme/):
 * real ClientHellos captured from node:tls, and hostile or truncated bytes, which must read as
 * "not a challenge" (undefined) and never throw.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, connect as netConnect, type Socket } from "node:net";
import { connect } from "node:tls";
import { describe, it } from "node:test";
import { firstRecordLength, parseClientHello } from "../src/acme/client-hello.js";
import { TlsAlpnResponder } from "../src/acme/tls-alpn-responder.js";

/** The first bytes node:tls sends as a client with these options. */
async function captureClientHello(servername: string | undefined, ALPNProtocols: string[] | undefined): Promise<Buffer> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, "connection") as Promise<[Socket]>;
  const client = connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...(servername === undefined ? {} : { servername }), ...(ALPNProtocols === undefined ? {} : { ALPNProtocols }) });
  client.on("error", () => undefined);
  const [socket] = await accepted;
  let head = Buffer.alloc(0);
  for await (const chunk of socket) {
    head = Buffer.concat([head, chunk as Buffer]);
    const needed = firstRecordLength(head);
    if (needed === undefined || head.length >= needed) break;
  }
  client.destroy();
  socket.destroy();
  server.close();
  return head;
}

describe("ClientHello reading (TLS-ALPN-01 detection)", () => {
  it("reads the server name and the offered protocols of a real ClientHello", async () => {
    const hello = await captureClientHello("Registry.Test", ["acme-tls/1"]);
    assert.deepEqual(parseClientHello(hello), { serverName: "registry.test", protocols: ["acme-tls/1"] });
    const browser = await captureClientHello("registry.test", ["h2", "http/1.1"]);
    assert.deepEqual(parseClientHello(browser), { serverName: "registry.test", protocols: ["h2", "http/1.1"] });
  });

  it("a ClientHello without SNI or ALPN reads as such", async () => {
    const bare = await captureClientHello(undefined, undefined);
    assert.deepEqual(parseClientHello(bare), { serverName: undefined, protocols: [] });
  });

  it("truncated, corrupted or non-TLS bytes read as undefined, never throw", async () => {
    const hello = await captureClientHello("registry.test", ["acme-tls/1"]);
    assert.equal(firstRecordLength(Buffer.from("GET / HTTP/1.1\r\n")), undefined);
    assert.equal(parseClientHello(Buffer.from("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")), undefined);
    for (let cut = 0; cut < hello.length; cut++) assert.equal(parseClientHello(hello.subarray(0, cut)), undefined, `cut at ${cut}`);
    // Every single byte flipped: any answer is allowed except an exception.
    for (let at = 0; at < hello.length; at++) {
      const broken = Buffer.from(hello);
      broken[at] = broken[at]! ^ 0xff;
      parseClientHello(broken);
    }
    // A length that points past the record.
    const lying = Buffer.from(hello);
    lying.writeUInt16BE(0xffff, 3);
    assert.equal(parseClientHello(lying), undefined);
  });
});

describe("TLS-ALPN-01 responder", () => {
  async function serve(responder: TlsAlpnResponder): Promise<{ port: number; handedOn: Buffer[]; close(): void }> {
    const handedOn: Buffer[] = [];
    const server = createServer((socket) =>
      responder.accept(socket, (handed) => {
        // What the registry's server would read: the bytes the responder looked at, unconsumed.
        handed.resume();
        handed.on("data", (chunk: Buffer) => handedOn.push(chunk));
      }),
    );
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return { port: (server.address() as { port: number }).port, handedOn, close: () => server.close() };
  }

  it("a validation for a host with no challenge in progress is cut, not handed to the registry", async () => {
    const server = await serve(new TlsAlpnResponder());
    const socket = connect({ host: "127.0.0.1", port: server.port, servername: "registry.test", ALPNProtocols: ["acme-tls/1"], rejectUnauthorized: false });
    const [error] = (await once(socket, "error")) as [Error];
    assert.match(error.message, /socket disconnected|ECONNRESET/);
    assert.equal(server.handedOn.length, 0);
    server.close();
  });

  it("any other connection is handed on with every byte it sent, including bytes that are not TLS", async () => {
    const server = await serve(new TlsAlpnResponder());
    const client = netConnect(server.port, "127.0.0.1");
    await once(client, "connect");
    const request = Buffer.from("GET /v2/ HTTP/1.1\r\nHost: registry.test\r\n\r\n");
    client.write(request);
    while (Buffer.concat(server.handedOn).length < request.length) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(Buffer.concat(server.handedOn), request);
    client.destroy();
    server.close();
  });
});
