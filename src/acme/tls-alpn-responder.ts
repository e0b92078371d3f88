/**
 * Answers TLS-ALPN-01 validations (RFC 8737) on the registry's own port. The CA connects with the
 * host's name as SNI and offers exactly one protocol, "acme-tls/1"; it must get a self-signed
 * certificate carrying the key authorization, and nothing else happens on that connection.
 *
 * Such connections are recognised from their ClientHello before TLS starts (client-hello.ts) and
 * never reach the registry's server; every other connection is handed on untouched, with the bytes
 * read so far put back. A validation for a host with no challenge in progress is cut.
 */
import type { Socket } from "node:net";
import { createSecureContext, TLSSocket, type SecureContext } from "node:tls";
import type { ChallengeAnswers } from "./certificate-order.js";
import { firstRecordLength, parseClientHello } from "./client-hello.js";

export const ACME_TLS_PROTOCOL = "acme-tls/1";
/** TLS records are at most 16 KiB plus a header and expansion: anything longer is not a record. */
const MAX_RECORD = 5 + 16384 + 2048;

export class TlsAlpnResponder implements ChallengeAnswers {
  private readonly answers = new Map<string, SecureContext>();

  publish(host: string, answer: { keyPem: Buffer; certPem: Buffer }): void {
    this.answers.set(host, createSecureContext({ key: answer.keyPem, cert: answer.certPem }));
  }

  withdraw(host: string): void {
    this.answers.delete(host);
  }

  /**
   * Reads the first TLS record of a new connection, then either answers the validation or calls
   * `handOn` with the socket (its bytes unread again). The caller bounds how long a silent
   * connection may be held.
   */
  accept(socket: Socket, handOn: (socket: Socket) => void): void {
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const needed = firstRecordLength(head);
      if (needed !== undefined && head.length < needed && head.length < MAX_RECORD) return;
      socket.off("data", onData);
      socket.off("error", onError);
      socket.pause();
      const hello = needed === undefined ? undefined : parseClientHello(head);
      if (hello !== undefined && hello.protocols.length === 1 && hello.protocols[0] === ACME_TLS_PROTOCOL) {
        socket.unshift(head);
        this.answer(socket, hello.serverName);
        return;
      }
      socket.unshift(head);
      handOn(socket);
    };
    const onError = (): void => {
      socket.destroy();
    };
    socket.on("data", onData);
    socket.on("error", onError);
  }

  private answer(socket: Socket, serverName: string | undefined): void {
    const context = serverName === undefined ? undefined : this.answers.get(serverName.replace(/\.$/, ""));
    if (context === undefined) {
      socket.destroy();
      return;
    }
    // Buffered bytes on `socket` are fed to the TLS layer when it starts reading (node:tls).
    const tls = new TLSSocket(socket, { isServer: true, secureContext: context, ALPNProtocols: [ACME_TLS_PROTOCOL] });
    tls.once("secure", () => tls.end());
    tls.on("error", () => tls.destroy());
    tls.setTimeout(10_000, () => tls.destroy());
  }
}
