// The probes distribution's health/checks package offers, plus its storage driver check.
import { stat } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import { maskURLPassword } from "../config/build-notifications.js";
import type { HttpCheckConfig, TcpCheckConfig } from "../config/config.js";
import { isPathNotFound, type StorageDriver } from "../driver/storage-driver.js";
import { publicErrorCode } from "../errcode/public-error-code.js";
import type { Logger } from "../log/logger.js";
import type { Probe } from "./periodic-check.js";

/** Fails while the file exists ("file exists", distribution's words); an operator drains a node by creating it. */
export function fileProbe(path: string): Probe {
  return async () => {
    try {
      await stat(path);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    throw new Error("file exists");
  };
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/**
 * A HEAD request with the configured headers that must answer the configured status. The answer's
 * body is not read; redirects are not followed (Go's client would follow them: a check that wants
 * 200 from a redirecting URI should name the final URI).
 */
export function httpProbe(check: HttpCheckConfig): Probe {
  const shown = maskURLPassword(check.uri);
  const send = check.uri.toLowerCase().startsWith("https:") ? httpsRequest : httpRequest;
  return (signal) =>
    new Promise<void>((resolve, reject) => {
      const req = send(check.uri, { method: "HEAD", headers: check.headers, signal, agent: false }, (res) => {
        res.resume();
        if (res.statusCode === check.statusCode) resolve();
        else reject(new Error(`${shown}: downstream service returned unexpected status: ${res.statusCode}`));
      });
      req.on("error", (err) => reject(new Error(`${shown}: error while checking: ${err.message}`)));
      req.end();
    });
}

/** A TCP connection that opens (and is closed at once). */
export function tcpProbe(check: TcpCheckConfig): Probe {
  return (signal) =>
    new Promise<void>((resolve, reject) => {
      const socket = connect({ host: check.host, port: check.port, signal });
      socket.once("connect", () => {
        socket.destroy();
        resolve();
      });
      socket.once("error", (err) => reject(new Error(`${check.addr}: connection failed: ${err.message}`)));
    });
}

/**
 * distribution's storage driver check: stat "/" (PathNotFound is healthy: the backend answered,
 * the registry is just empty). Any other error is the driver failing (a filesystem root in a
 * symlink loop or on a dead mount, S3 refusing credentials or unreachable).
 */
export function storageDriverProbe(driver: StorageDriver, log: Logger): Probe {
  return async () => {
    try {
      await driver.stat("/");
    } catch (err) {
      if (isPathNotFound(err)) return;
      log.error({ err }, "storage driver health check");
      // /debug/health answers anyone: the code, not a message that may hold paths or bucket names.
      const code = publicErrorCode(err);
      throw new Error(`stat of the storage root failed${code === undefined ? "" : `: ${code}`}`);
    }
  };
}
