import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { UpstreamConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import { parseAuthChallenges } from "./auth-challenge.js";
import { UpstreamError } from "./upstream-error.js";

/** A response whose body the caller reads or destroys. */
export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
}

const MAX_REDIRECTS = 5;
const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
/** The token spec's minimum lifetime, assumed when a token service names none. */
const DEFAULT_TOKEN_SECONDS = 60;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/**
 * Told of each HTTP exchange with an upstream (redirect hops and token fetches included), for
 * tracing without the client knowing of a tracer. `start` may add headers (trace context) to
 * `headers` before they are sent; what it returns is called once, when the exchange ends: after
 * the response body closed (read, or destroyed), or with the error that ended it earlier.
 */
export interface UpstreamExchangeObserver {
  start(method: string, url: URL, headers: Record<string, string>): (outcome: { status?: number; error?: unknown }) => void;
}

interface CachedToken {
  token: string;
  /** Epoch milliseconds after which it is fetched again. */
  renewAt: number;
}

/**
 * HTTP to one upstream registry: keep-alive connections, the configured connect and read
 * timeouts, and its authentication. Anonymous, Basic, or Bearer tokens from the token service its
 * challenge names, fetched once per repository scope and reused until shortly before they expire.
 * Redirects (Docker Hub sends blob GETs to a CDN) are followed a few times, never carrying
 * credentials to another origin.
 *
 * Connection failures, timeouts, 5xx and 429 reject with an UpstreamError; every other status is
 * the caller's to interpret.
 */
export class UpstreamClient {
  private readonly http = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  private readonly https = new HttpsAgent({ keepAlive: true, maxSockets: 64 });
  private readonly tokens = new Map<string, CachedToken>();
  private readonly tokenFetches = new Map<string, Promise<CachedToken>>();
  /** Set once the upstream asked for Basic: later requests send it up front. */
  private basic = false;
  private readonly basicCredentials: string | undefined;

  constructor(
    readonly config: UpstreamConfig,
    private readonly log: Logger,
    private readonly observer?: UpstreamExchangeObserver,
  ) {
    this.basicCredentials =
      config.username === undefined ? undefined : `Basic ${Buffer.from(`${config.username}:${config.password ?? ""}`).toString("base64")}`;
  }

  /**
   * `path` is the API path ("/v2/library/alpine/manifests/latest"); `repository` the upstream's
   * name for the repository, whose pull scope a token is asked for.
   */
  async request(method: "GET" | "HEAD", path: string, repository: string, headers: Record<string, string> = {}): Promise<UpstreamResponse> {
    const scope = `repository:${repository}:pull`;
    const url = this.config.remoteURL + path;
    let response = await this.send(method, url, { ...headers, ...this.authorizationFor(scope) });
    if (response.status !== 401) return response;

    const challenges = parseAuthChallenges(response.headers["www-authenticate"]);
    response.body.resume();
    const bearer = challenges.find((c) => c.scheme === "bearer");
    let authorization: string;
    if (bearer?.params.realm) {
      authorization = `Bearer ${(await this.token(bearer.params.realm, bearer.params.service, scope)).token}`;
    } else if (challenges.some((c) => c.scheme === "basic") && this.basicCredentials) {
      this.basic = true;
      authorization = this.basicCredentials;
    } else {
      throw new UpstreamError("denied", this.config.remoteURL, "it requires credentials berth does not have (set username and password)");
    }
    response = await this.send(method, url, { ...headers, Authorization: authorization });
    if (response.status === 401) {
      response.body.resume();
      throw new UpstreamError("denied", this.config.remoteURL, "it refused berth's credentials");
    }
    return response;
  }

  close(): void {
    this.http.destroy();
    this.https.destroy();
  }

  private authorizationFor(scope: string): Record<string, string> {
    const cached = this.tokens.get(scope);
    if (cached && cached.renewAt > Date.now()) return { Authorization: `Bearer ${cached.token}` };
    if (this.basic && this.basicCredentials) return { Authorization: this.basicCredentials };
    return {};
  }

  /**
   * A fresh token for `scope` (the upstream refused the one cached, or there was none). One fetch
   * per scope at a time: twenty clients missing at once share it.
   */
  private token(realm: string, service: string | undefined, scope: string): Promise<CachedToken> {
    let fetching = this.tokenFetches.get(scope);
    if (!fetching) {
      fetching = this.fetchToken(realm, service, scope).finally(() => this.tokenFetches.delete(scope));
      this.tokenFetches.set(scope, fetching);
    }
    return fetching;
  }

  private async fetchToken(realm: string, service: string | undefined, scope: string): Promise<CachedToken> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new UpstreamError("invalid", this.config.remoteURL, "its token realm is not a URL");
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new UpstreamError("invalid", this.config.remoteURL, "its token realm is not an http(s) URL");
    if (service !== undefined) url.searchParams.set("service", service);
    url.searchParams.set("scope", scope);
    if (this.config.username !== undefined) url.searchParams.set("account", this.config.username);
    const headers: Record<string, string> = this.basicCredentials ? { Authorization: this.basicCredentials } : {};
    // The realm is where the upstream sends clients to authenticate: the credentials go there.
    const response = await this.send("GET", url.toString(), headers, url.origin);
    if (response.status === 401 || response.status === 403) {
      response.body.resume();
      throw new UpstreamError("denied", this.config.remoteURL, `its token service refused berth's credentials (${response.status})`);
    }
    if (response.status !== 200) {
      response.body.resume();
      throw new UpstreamError("invalid", this.config.remoteURL, `its token service answered ${response.status}`);
    }
    const text = await readSmallBody(response.body, MAX_TOKEN_RESPONSE_BYTES, this.config.remoteURL, "token response");
    const token = parseTokenResponse(text, this.config.remoteURL);
    this.tokens.set(scope, token);
    return token;
  }

  /**
   * One request, following redirects. Authorization goes only to `origin` (the upstream's, or its
   * token service's): a redirect elsewhere (a CDN) is fetched without it.
   */
  private async send(method: "GET" | "HEAD", url: string, headers: Record<string, string>, origin = new URL(this.config.remoteURL).origin): Promise<UpstreamResponse> {
    let current = new URL(url);
    for (let hops = 0; ; hops++) {
      const sameOrigin = current.origin === origin;
      const sent = sameOrigin ? headers : withoutAuthorization(headers);
      const response = await this.once(method, current, sent);
      if (!REDIRECT_STATUSES.has(response.status)) {
        if (response.status >= 500 || response.status === 429) {
          response.body.resume();
          throw new UpstreamError("status", this.config.remoteURL, `it answered ${response.status}${response.status === 429 ? " (too many requests)" : ""}`);
        }
        return response;
      }
      response.body.resume();
      const location = response.headers.location;
      if (location === undefined) throw new UpstreamError("invalid", this.config.remoteURL, `it answered ${response.status} without a Location`);
      if (hops >= MAX_REDIRECTS) throw new UpstreamError("invalid", this.config.remoteURL, `more than ${MAX_REDIRECTS} redirects`);
      let next: URL;
      try {
        next = new URL(location, current);
      } catch {
        throw new UpstreamError("invalid", this.config.remoteURL, "it redirected to something that is not a URL");
      }
      if (next.protocol !== "http:" && next.protocol !== "https:") {
        throw new UpstreamError("invalid", this.config.remoteURL, `it redirected to a ${next.protocol} URL`);
      }
      // An https upstream never sends berth to plain http: the content would travel unprotected.
      if (current.protocol === "https:" && next.protocol === "http:") {
        throw new UpstreamError("invalid", this.config.remoteURL, "it redirected from https to plain http");
      }
      if (next.origin !== origin) this.log.debug({ upstream: this.config.remoteURL, to: next.origin }, "upstream redirected to another host; following without credentials");
      current = next;
    }
  }

  /**
   * A single exchange, bounded by the connect timeout and then by the read timeout. A kept-alive
   * connection the upstream closed just as it was reused (its idle timeout racing ours) fails before
   * any answer: the request, a GET or HEAD, is sent once more on a new connection, as Go's transport
   * (distribution's) does.
   */
  private once(method: "GET" | "HEAD", url: URL, headers: Record<string, string>, mayRetry = true): Promise<UpstreamResponse> {
    const { connectTimeoutMs, readTimeoutMs, remoteURL } = this.config;
    return new Promise<UpstreamResponse>((resolve, reject) => {
      const secure = url.protocol === "https:";
      const sent = { "User-Agent": "berth-proxy", ...headers };
      const ended = this.observer?.start(method, url, sent);
      const request = (secure ? httpsRequest : httpRequest)(url, {
        method,
        headers: sent,
        agent: secure ? this.https : this.http,
      });
      let settled = false;
      const fail = (err: UpstreamError): void => {
        if (settled) return;
        settled = true;
        request.destroy();
        ended?.({ error: err });
        reject(err);
      };
      // Until connected: the connect timeout. From then until the headers: the read timeout.
      let timer = setTimeout(() => fail(new UpstreamError("timeout", remoteURL, `no connection within ${connectTimeoutMs} ms`)), connectTimeoutMs);
      const waitForHeaders = (): void => {
        clearTimeout(timer);
        timer = setTimeout(() => fail(new UpstreamError("timeout", remoteURL, `no response within ${readTimeoutMs} ms`)), readTimeoutMs);
      };
      request.once("socket", (socket) => {
        // A kept-alive socket is connected already.
        if (!socket.connecting) waitForHeaders();
        else socket.once(secure ? "secureConnect" : "connect", waitForHeaders);
      });
      request.once("error", (err: NodeJS.ErrnoException) => {
        if (!settled && mayRetry && request.reusedSocket && STALE_CONNECTION_ERRORS.has(err.code ?? "")) {
          settled = true;
          clearTimeout(timer);
          ended?.({ error: err });
          resolve(this.once(method, url, headers, false));
          return;
        }
        fail(new UpstreamError("unreachable", remoteURL, err.code ?? err.message));
      });
      request.once("response", (body) => {
        clearTimeout(timer);
        if (settled) {
          body.destroy();
          return;
        }
        settled = true;
        // A body that stops arriving is cut after the read timeout; its reader sees the error.
        body.setTimeout(readTimeoutMs, () => body.destroy(new UpstreamError("timeout", remoteURL, `no body bytes for ${readTimeoutMs} ms`)));
        body.once("aborted", () => body.destroy(new UpstreamError("unreachable", remoteURL, "the connection closed mid-body")));
        if (ended !== undefined) body.once("close", () => ended({ status: body.statusCode, error: body.errored ?? undefined }));
        resolve({ status: body.statusCode ?? 0, headers: body.headers, body });
      });
      request.end();
    });
  }
}

/** How a reused keep-alive connection that the other side had closed fails. */
const STALE_CONNECTION_ERRORS = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED"]);

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== "authorization"));
}

/** A small body (a token response, a manifest, a tag list) read whole, refused beyond `limit` bytes. */
export async function readSmallBody(body: IncomingMessage, limit: number, upstream: string, what: string): Promise<Buffer> {
  const declared = Number(body.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    body.destroy();
    throw new UpstreamError("invalid", upstream, `its ${what} is larger than ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) {
        body.destroy();
        throw new UpstreamError("invalid", upstream, `its ${what} is larger than ${limit} bytes`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamError("unreachable", upstream, `the ${what} was cut short`);
  }
  return Buffer.concat(chunks);
}

/** `{token | access_token, expires_in?}`, as the Docker token spec and OAuth2 answer. */
function parseTokenResponse(text: Buffer, upstream: string): CachedToken {
  let value: unknown;
  try {
    value = JSON.parse(text.toString("utf8"));
  } catch {
    throw new UpstreamError("invalid", upstream, "its token service answered something that is not JSON");
  }
  if (typeof value !== "object" || value === null) throw new UpstreamError("invalid", upstream, "its token service answered no token");
  const fields = value as Record<string, unknown>;
  const token = typeof fields.token === "string" && fields.token !== "" ? fields.token : fields.access_token;
  if (typeof token !== "string" || token === "" || /[\s\r\n]/.test(token)) {
    throw new UpstreamError("invalid", upstream, "its token service answered no usable token");
  }
  const expiresIn = typeof fields.expires_in === "number" && Number.isFinite(fields.expires_in) && fields.expires_in > 0 ? fields.expires_in : DEFAULT_TOKEN_SECONDS;
  // Renewed a little early (a tenth of its life, at most 30 s) so no request carries a token about to lapse.
  const margin = Math.min(30, expiresIn / 10);
  return { token, renewAt: Date.now() + (expiresIn - margin) * 1000 };
}
