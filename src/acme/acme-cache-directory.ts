/**
 * http.tls.letsencrypt.cachefile: the directory where the ACME account key and the certificates
 * are kept, in the layout of Go's autocert.DirCache, which distribution 3 uses for this key:
 *
 *   <cachefile>/acme_account+key     the account's private key (PEM, "EC PRIVATE KEY")
 *   <cachefile>/<host>               the certificate's private key (PEM) then its chain (PEM)
 *
 * so a directory written by distribution 3 is read by berth and the other way round (berth writes
 * ECDSA P-256 keys, as autocert does for clients that support them). Distribution 2.8 kept one JSON
 * file there (rsc.io/letsencrypt, ACME v1, which Let's Encrypt no longer serves): such a file is
 * refused at start with a message saying so, never overwritten.
 *
 * Writes are atomic (a temporary file in the directory, then rename): a crash leaves the old
 * entry or the new one, and a concurrent reader never sees half a key. Entries hold private keys:
 * the directory is 0700 and the files 0600.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError } from "../config/config.js";

/** autocert's name for the account key, and the one its older versions used. */
export const ACCOUNT_KEY_ENTRY = "acme_account+key";
export const LEGACY_ACCOUNT_KEY_ENTRY = "acme_account.key";

export class AcmeCacheDirectory {
  private constructor(readonly path: string) {}

  /** Creates the directory when missing; refuses a path that is a file (distribution 2.8's cache). */
  static async open(path: string): Promise<AcmeCacheDirectory> {
    const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw new ConfigError("http.tls.letsencrypt.cachefile", `cannot use ${path}: ${err.message}`);
    });
    if (info !== undefined && !info.isDirectory()) {
      throw new ConfigError(
        "http.tls.letsencrypt.cachefile",
        `${path} is a file: distribution 2.8 kept its Let's Encrypt state in one file (ACME v1, no longer served by Let's Encrypt); ` +
          "berth keeps a directory in the layout distribution 3 uses (Go's autocert.DirCache). Move the file aside or name a directory",
      );
    }
    if (info === undefined) {
      try {
        await mkdir(path, { recursive: true, mode: 0o700 });
      } catch (err) {
        throw new ConfigError("http.tls.letsencrypt.cachefile", `cannot create ${path}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return new AcmeCacheDirectory(path);
  }

  /** The entry's bytes, or undefined when there is none. */
  async get(name: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.entryPath(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  /** Replaces the entry atomically and durably. */
  async put(name: string, data: string | Buffer): Promise<void> {
    const target = this.entryPath(name);
    const temporary = join(this.path, `.${name}.${randomBytes(6).toString("hex")}.tmp`);
    const file = await open(temporary, "wx", 0o600);
    try {
      await file.writeFile(data);
      await file.sync();
    } catch (err) {
      await file.close();
      await rm(temporary, { force: true });
      throw err;
    }
    await file.close();
    await rename(temporary, target);
  }

  private entryPath(name: string): string {
    // Names are host names checked by the configuration, or the fixed account entries.
    if (name === "" || name.startsWith(".") || /[/\\\0]/.test(name)) throw new Error(`invalid cache entry name ${JSON.stringify(name)}`);
    return join(this.path, name);
  }
}
