/** One challenge of a WWW-Authenticate header: its scheme and parameters (names lower-cased). */
export interface AuthChallenge {
  scheme: "bearer" | "basic" | string;
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header (RFC 7235): `Bearer realm="…",service="…",scope="…"`, possibly
 * several challenges in one header or in several. Malformed parts are skipped rather than trusted.
 */
export function parseAuthChallenges(header: string | string[] | undefined): AuthChallenge[] {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  const challenges: AuthChallenge[] = [];
  for (const value of values) {
    let current: AuthChallenge | undefined;
    // A scheme token, or a name=value pair whose value is a token or a quoted string.
    const part = /\s*(?:([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))|([A-Za-z0-9!#$%&'*+.^_`|~-]+))\s*,?/y;
    let match: RegExpExecArray | null;
    while (part.lastIndex < value.length && (match = part.exec(value)) !== null) {
      if (match[4] !== undefined) {
        current = { scheme: match[4].toLowerCase(), params: {} };
        challenges.push(current);
      } else if (current && match[1] !== undefined) {
        current.params[match[1].toLowerCase()] = match[2] !== undefined ? match[2].replace(/\\(.)/g, "$1") : (match[3] ?? "");
      }
    }
  }
  return challenges;
}
