/**
 * A registry client that authenticates as docker does: it sends a request without credentials,
 * and on a 401 answers the challenge — Basic with the identity's user and password, or Bearer by
 * fetching a token for the challenge's scope from its realm (with Basic credentials when it has
 * them) — and sends the request again. Bodies are byte buffers, so a request can be repeated.
 */
import { parseChallenge } from "./token-issuer.js";

/** Who the client is: a user with a password, or nobody. */
export interface Identity {
  label: string;
  user?: string;
  password?: string;
}

export interface AuthFetchOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Bearer challenges whose realm cannot issue tokens (auth.silly): send this token instead. */
  sillyToken?: string;
  /** Passed to fetch (an undici Agent for TLS tests). */
  dispatcher?: unknown;
}

export async function authFetch(baseURL: string, identity: Identity, path: string, options: AuthFetchOptions = {}): Promise<Response> {
  const url = /^https?:\/\//.test(path) ? path : baseURL + path;
  const send = (authorization?: string): Promise<Response> =>
    fetch(url, {
      method: options.method ?? "GET",
      headers: { ...options.headers, ...(authorization === undefined ? {} : { authorization }) },
      body: options.body,
      redirect: "manual",
      ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
    } as RequestInit);
  const first = await send();
  if (first.status !== 401) return first;
  const { scheme, params } = parseChallenge(first.headers.get("www-authenticate"));
  const hasCredentials = identity.user !== undefined && identity.password !== undefined;
  const basic = hasCredentials ? `Basic ${Buffer.from(`${identity.user}:${identity.password}`).toString("base64")}` : undefined;
  if (scheme.toLowerCase() === "basic") {
    if (basic === undefined) return first;
    await first.arrayBuffer();
    return send(basic);
  }
  if (scheme.toLowerCase() !== "bearer") return first;
  if (options.sillyToken !== undefined) {
    if (!hasCredentials) return first;
    await first.arrayBuffer();
    return send(`Bearer ${options.sillyToken}`);
  }
  const tokenURL = new URL(params["realm"] ?? "");
  tokenURL.searchParams.set("service", params["service"] ?? "");
  for (const scope of (params["scope"] ?? "").split(" ").filter((s) => s !== "")) tokenURL.searchParams.append("scope", scope);
  const tokenResponse = await fetch(tokenURL, { headers: basic === undefined ? {} : { authorization: basic } });
  if (tokenResponse.status !== 200) {
    await tokenResponse.arrayBuffer();
    return first;
  }
  const { token } = (await tokenResponse.json()) as { token: string };
  await first.arrayBuffer();
  return send(`Bearer ${token}`);
}
