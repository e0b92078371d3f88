/**
 * distribution's "htpasswd" access controller: HTTP Basic authentication against an Apache
 * htpasswd file of bcrypt entries (`htpasswd -B` writes `$2y$`; `$2a$` and `$2b$` work too). Any
 * authenticated user may do anything: htpasswd authenticates, it does not authorize per
 * repository. Use it only over TLS: the password travels with every request.
 *
 * The file is re-read when it changes (its size, modification time or inode), checked at most once
 * a second, so users are added and removed without a restart.
 */
import { createHmac, randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { ConfigError } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import { credentialsFor, quoted, unauthorized, type Access, type AccessController, type AuthRequest, type Grant } from "./access-controller.js";

export interface HtpasswdOptions {
  realm: string;
  /** Absolute path of the htpasswd file. */
  path: string;
}

/** One user's line. `hash` is undefined when the line is no bcrypt hash: that user never logs in. */
interface Entry {
  hash: string | undefined;
}

/** What parsing a file found, and what an operator should hear about it. */
export interface ParsedHtpasswd {
  entries: Map<string, Entry>;
  warnings: string[];
}

const BCRYPT_HASH = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const RECHECK_MS = 1000;
/** A verified user:password stays verified this long without another bcrypt comparison. */
const VERIFIED_TTL_MS = 5 * 60_000;
const VERIFIED_MAX = 1024;
/** htpasswd's own default cost for -B when the file gives no better guess. */
const DEFAULT_COST = 5;

/**
 * Parses htpasswd text as distribution does: blank lines and lines starting with "#" are skipped,
 * every other line is `user:hash` split at the first colon (a later line for the same user wins).
 * Throws an Error naming the line number (never its content: it holds a hash) for a line without
 * a colon. Non-bcrypt hashes (MD5 `$apr1$`, SHA-1, crypt) are kept as users that cannot log in,
 * with a warning, as distribution cannot verify them either.
 */
export function parseHtpasswd(text: string): ParsedHtpasswd {
  const entries = new Map<string, Entry>();
  const warnings: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon < 0) throw new Error(`invalid entry at line ${i + 1}: expected user:hash`);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (entries.has(user)) warnings.push(`user ${JSON.stringify(user)} appears more than once; line ${i + 1} wins`);
    if (BCRYPT_HASH.test(hash)) {
      entries.set(user, { hash });
    } else {
      warnings.push(`user ${JSON.stringify(user)} (line ${i + 1}) has no bcrypt hash and cannot log in; recreate it with htpasswd -B`);
      entries.set(user, { hash: undefined });
    }
  }
  return { entries, warnings };
}

/** `Basic base64(user:password)` → its parts, or undefined when it is not well formed. */
export function parseBasicCredentials(credentials: string): { user: string; password: string } | undefined {
  if (credentials.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(credentials)) return undefined;
  const decoded = Buffer.from(credentials, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export class HtpasswdAccessController implements AccessController {
  private entries: Map<string, Entry>;
  private stamp: string;
  private checkedAt: number;
  private refreshing: Promise<void> | undefined;
  private missingReported = false;
  /** A bcrypt hash of a random password, compared against for unknown users (same work, same time). */
  private dummyHash: Promise<string>;
  /** HMAC(user, password, hash) of recently verified credentials → expiry. Never the password itself. */
  private readonly verified = new Map<string, number>();
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private readonly cacheKey = randomBytes(32);

  private constructor(
    private readonly options: HtpasswdOptions,
    private readonly log: Logger,
    loaded: { entries: Map<string, Entry>; stamp: string },
  ) {
    this.entries = loaded.entries;
    this.stamp = loaded.stamp;
    this.checkedAt = Date.now();
    this.dummyHash = makeDummyHash(this.entries);
  }

  /**
   * Reads the file once before the server starts. A missing or unreadable file, or a malformed
   * line, is a ConfigError naming auth.htpasswd.path. distribution creates a missing file with a
   * generated user "docker" and logs its password; berth refuses to start instead, so that no
   * password ever lands in a log.
   */
  static async open(options: HtpasswdOptions, log: Logger): Promise<HtpasswdAccessController> {
    const key = "auth.htpasswd.path";
    let text: string;
    let stamp: string;
    try {
      const info = await stat(options.path);
      // Debian's stock config.yml names the directory /etc/docker/registry here.
      if (info.isDirectory()) throw new ConfigError(key, `${options.path} is a directory: name the htpasswd file itself (create it with: htpasswd -cB ${join(options.path, "htpasswd")} <user>)`);
      stamp = stampOf(info);
      text = await readFile(options.path, "utf8");
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") {
        throw new ConfigError(key, `${options.path} does not exist; create it with: htpasswd -cB ${options.path} <user>`);
      }
      throw new ConfigError(key, `cannot read ${options.path}: ${err instanceof Error ? err.message : String(err)}`);
    }
    let parsed: ParsedHtpasswd;
    try {
      parsed = parseHtpasswd(text);
    } catch (err) {
      throw new ConfigError(key, `${options.path}: ${err instanceof Error ? err.message : String(err)}`);
    }
    for (const warning of parsed.warnings) log.warn({ path: options.path }, `htpasswd: ${warning}`);
    if (parsed.entries.size === 0) log.warn({ path: options.path }, "htpasswd: the file has no users: every request will be refused");
    return new HtpasswdAccessController(options, log, { entries: parsed.entries, stamp });
  }

  async authorize(req: AuthRequest, needed: readonly Access[]): Promise<Grant> {
    const credentials = credentialsFor(req, "basic");
    const parsed = credentials === undefined ? undefined : parseBasicCredentials(credentials);
    if (parsed === undefined) throw this.challenge(needed);
    await this.refresh();
    if (!(await this.verify(parsed.user, parsed.password))) {
      this.log.info({ user: parsed.user }, "htpasswd: authentication failed");
      throw this.challenge(needed);
    }
    return { user: parsed.user };
  }

  private challenge(needed: readonly Access[]): Error {
    return unauthorized(needed, `Basic realm=${quoted(this.options.realm)}`);
  }

  /**
   * Constant work whether or not the user exists: an unknown user (or one without a bcrypt hash)
   * is compared against a dummy hash, so response times do not tell which user names exist.
   */
  private async verify(user: string, password: string): Promise<boolean> {
    const entry = this.entries.get(user);
    const hash = entry?.hash;
    if (hash === undefined) {
      await bcrypt.compare(password, await this.dummyHash);
      return false;
    }
    const key = createHmac("sha256", this.cacheKey).update(user).update("\0").update(password).update("\0").update(hash).digest("base64");
    const now = Date.now();
    const expires = this.verified.get(key);
    if (expires !== undefined && expires > now) return true;
    let pending = this.inFlight.get(key);
    if (pending === undefined) {
      // Concurrent requests with the same credentials (a client pushing layers in parallel)
      // share one comparison.
      pending = bcrypt.compare(password, hash).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    const ok = await pending;
    if (ok) this.remember(key, now + VERIFIED_TTL_MS);
    return ok;
  }

  private remember(key: string, expires: number): void {
    this.verified.delete(key);
    this.verified.set(key, expires);
    if (this.verified.size > VERIFIED_MAX) {
      const oldest = this.verified.keys().next().value;
      if (oldest !== undefined) this.verified.delete(oldest);
    }
  }

  /** Re-reads the file when it changed, at most once per RECHECK_MS; concurrent callers share it. */
  private async refresh(): Promise<void> {
    if (this.refreshing === undefined && Date.now() - this.checkedAt >= RECHECK_MS) {
      this.checkedAt = Date.now();
      this.refreshing = this.reload().finally(() => {
        this.refreshing = undefined;
      });
    }
    if (this.refreshing !== undefined) await this.refreshing;
  }

  /**
   * A file that is gone refuses everyone until it is back (failing closed); a file that cannot be
   * read or parsed keeps the users last read (an editor may be halfway through writing it).
   */
  private async reload(): Promise<void> {
    const path = this.options.path;
    let stamp: string;
    try {
      stamp = stampOf(await stat(path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        if (!this.missingReported) this.log.error({ path }, "htpasswd: the file is gone: every request is refused until it is back");
        this.missingReported = true;
        this.entries = new Map();
        this.stamp = "";
        this.verified.clear();
        return;
      }
      this.log.error({ err, path }, "htpasswd: cannot stat the file; keeping the users last read");
      return;
    }
    if (stamp === this.stamp) return;
    try {
      const parsed = parseHtpasswd(await readFile(path, "utf8"));
      for (const warning of parsed.warnings) this.log.warn({ path }, `htpasswd: ${warning}`);
      this.entries = parsed.entries;
      this.stamp = stamp;
      this.missingReported = false;
      this.verified.clear();
      this.dummyHash = makeDummyHash(this.entries);
      this.log.info({ path, users: parsed.entries.size }, "htpasswd: file changed, users reloaded");
    } catch (err) {
      this.log.error({ err, path }, "htpasswd: cannot read the changed file; keeping the users last read");
    }
  }
}

function stampOf(info: { size: number; mtimeMs: number; ino: number }): string {
  return `${info.size}:${info.mtimeMs}:${info.ino}`;
}

/** A hash with the cost most entries use, so an unknown user costs what a known one does. */
function makeDummyHash(entries: Map<string, Entry>): Promise<string> {
  const counts = new Map<number, number>();
  for (const { hash } of entries.values()) {
    const cost = hash === undefined ? undefined : Number(BCRYPT_HASH.exec(hash)?.[1]);
    if (cost !== undefined && Number.isFinite(cost)) counts.set(cost, (counts.get(cost) ?? 0) + 1);
  }
  let cost = DEFAULT_COST;
  let best = 0;
  for (const [c, n] of counts) if (n > best) [cost, best] = [c, n];
  return bcrypt.hash(randomBytes(16).toString("hex"), Math.min(Math.max(cost, 4), 31));
}
