/**
 * Why a TLS connection to one Redis server fails, asked directly. Through Sentinel and on a
 * Cluster, ioredis reports a failed handshake as "Connection is closed." (its sentinel and
 * slot-refresh connections swallow the cause), so health would say "connection lost" where the
 * operator needs "TLS certificate not trusted". This opens one connection with the same TLS
 * options, sends PING, and resolves to the error, or undefined when the server answered.
 *
 * Never rejects; the connection is always closed.
 */
import { connect, type ConnectionOptions } from "node:tls";

export function probeRedisTls(host: string, port: number, tls: ConnectionOptions, timeoutMs: number): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ ...tls, host, port });
    const done = (err: Error | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(err);
    };
    const timer = setTimeout(() => done(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" })), timeoutMs);
    // With TLS 1.3 the server refuses a client certificate after the handshake: only a reply proves
    // the connection was accepted.
    socket.once("secureConnect", () => socket.write("PING\r\n"));
    socket.once("data", () => done(undefined));
    socket.once("error", (err) => done(err));
    socket.once("close", () => done(new Error("connection lost")));
  });
}
