import type { Socket } from "node:net";
import { getSystemErrorName } from "node:util";
import { loadAddon } from "./load-addon.js";

/**
 * sendfile(2) and splice(2) from a background thread (native/sendfile_pump.c): the kernel moves
 * file pages, or a socket's bytes, to a socket without copying them through JavaScript buffers.
 * Unavailable (undefined) when the addon was not built or on a platform without Linux's sendfile;
 * callers then stream.
 */
export interface SendfilePump {
  /**
   * Sends bytes [offset, offset + length) of `fileFd` to `socketFd`. Both descriptors are
   * duplicated at once: the caller may close its file right after this returns. The socket must
   * be left alone (no writes) until `done` settles. `stallMs` > 0 fails the transfer with
   * ETIMEDOUT when the peer accepts nothing for that long.
   */
  send(socketFd: number, fileFd: number, offset: number, length: number, stallMs: number): SendfileTransfer;
  /**
   * Moves the next `length` bytes of the socket `sourceFd` to `socketFd` with splice(2), reading
   * no further. The same rules as `send`, for both sockets; ECONNRESET when the source ends first.
   */
  splice(socketFd: number, sourceFd: number, length: number, stallMs: number): SendfileTransfer;
}

export interface SendfileTransfer {
  /** Resolves when every byte was handed to the kernel; rejects with a system error (code EPIPE, ETIMEDOUT, ECANCELED…). */
  readonly done: Promise<void>;
  /** Stops the transfer; `done` rejects with ECANCELED unless it already settled. */
  cancel(): void;
}

interface PumpAddon {
  init(onComplete: (id: number, errno: number, sent: number) => void): void;
  start(socketFd: number, fileFd: number, offset: number, length: number, stallMs: number): number;
  startSplice(socketFd: number, sourceFd: number, length: number, stallMs: number): number;
  cancel(id: number): void;
}

class NativeSendfilePump implements SendfilePump {
  readonly #addon: PumpAddon;
  readonly #waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();

  constructor(addon: PumpAddon) {
    this.#addon = addon;
    addon.init((id, errno, sent) => this.#complete(id, errno, sent));
  }

  send(socketFd: number, fileFd: number, offset: number, length: number, stallMs: number): SendfileTransfer {
    return this.#transfer(this.#addon.start(socketFd, fileFd, offset, length, Math.max(0, Math.floor(stallMs))));
  }

  splice(socketFd: number, sourceFd: number, length: number, stallMs: number): SendfileTransfer {
    return this.#transfer(this.#addon.startSplice(socketFd, sourceFd, length, Math.max(0, Math.floor(stallMs))));
  }

  #transfer(id: number): SendfileTransfer {
    const done = new Promise<void>((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
    return { done, cancel: () => this.#addon.cancel(id) };
  }

  #complete(id: number, errno: number, sent: number): void {
    const waiter = this.#waiting.get(id);
    if (!waiter) return;
    this.#waiting.delete(id);
    if (errno === 0) {
      waiter.resolve();
      return;
    }
    const code = getSystemErrorName(-errno);
    const err = Object.assign(new Error(`transfer failed after ${sent} bytes: ${code}`), { code, errno, bytesSent: sent });
    waiter.reject(err);
  }
}

function load(): SendfilePump | undefined {
  if (process.platform !== "linux") return undefined;
  const addon = loadAddon<PumpAddon>("sendfile_pump", (candidate) => typeof candidate.start === "function" && typeof candidate.startSplice === "function");
  return addon ? new NativeSendfilePump(addon) : undefined;
}

let pump: SendfilePump | undefined | null = null;

/** The process's pump, started on first use (one thread for every transfer). */
export function sendfilePump(): SendfilePump | undefined {
  if (pump === null) pump = load();
  return pump;
}

/**
 * The descriptor of a plain TCP socket, which the pump can write to or read from; undefined for
 * TLS sockets and anything without one.
 */
export function plainSocketFd(socket: Socket): number | undefined {
  if ("encrypted" in socket && socket.encrypted) return undefined;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === "number" && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}
