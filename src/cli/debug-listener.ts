import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { DebugConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import type { DebugRoute } from "../server/debug-route.js";
import { createDebugServer } from "../server/debug-server.js";

export interface DebugListener {
  /** "http://127.0.0.1:5001" */
  url: string;
  close(): Promise<void>;
}

/** Starts the debug listener on http.debug.addr (the caller checked it is set). */
export async function startDebugListener(debug: DebugConfig, routes: readonly DebugRoute[], log: Logger, fallback?: DebugRoute["handle"]): Promise<DebugListener> {
  const server: Server = createDebugServer(routes, log, fallback);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => reject(new Error(`http.debug.addr: cannot listen on ${debug.addr}: ${err.code ?? err.message}`, { cause: err })));
    server.listen(debug.listenPort, debug.listenHost || undefined, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
