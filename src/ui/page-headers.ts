/**
 * Headers on every UI response. The Content-Security-Policy is the second line against script
 * injection (the first: the page only ever sets text, never HTML): only the page's own script
 * runs, nothing inline, and it may talk to this origin and to the token service's origin, nothing
 * else. No page may frame the UI, so a delete button cannot be clickjacked.
 */
export function pageHeaders(tokenRealm: string | undefined): Record<string, string> {
  const connect = ["'self'"];
  const realmOrigin = originOf(tokenRealm);
  if (realmOrigin !== undefined) connect.push(realmOrigin);
  return {
    "Content-Security-Policy": [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self'",
      `connect-src ${connect.join(" ")}`,
      "form-action 'none'",
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join("; "),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
  };
}

function originOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}
