/**
 * Go (RE2) regular expressions, as distribution's validation.manifests.urls lists are written, run
 * as JavaScript RegExps. The common syntax means the same in both; this translates what Go writes
 * differently and refuses what JavaScript would read differently:
 *
 * - `\A` and `\z` (start and end of text) become `^` and `$` (without the m flag they mean that);
 * - `(?P<name>…)` becomes `(?<name>…)`; leading flag groups `(?i)`, `(?s)`, `(?m)` become flags;
 * - `\Q…\E` (literal text) is expanded;
 * - POSIX classes `[[:alpha:]]` and the like are expanded inside brackets;
 * - a flag group anywhere else (`a(?i)b`, `(?i:…)`), `\C`, and Unicode classes Go names without
 *   braces (`\pL`) are refused: JavaScript has no equivalent with the same meaning.
 *
 * RE2 has no backreferences or lookaround; JavaScript accepts them, and so does berth (a pattern
 * distribution refuses at start is one nobody has in a working configuration). Matching is a search,
 * not anchored, as Go's MatchString.
 */
export function compileGoRegexp(pattern: string): RegExp {
  let source = pattern;
  let flags = "";
  for (let lead = /^\(\?([imsU]+)\)/.exec(source); lead !== null; lead = /^\(\?([imsU]+)\)/.exec(source)) {
    const letters = lead[1]!;
    if (letters.includes("U")) throw new Error("the U (ungreedy) flag has no JavaScript equivalent");
    for (const letter of letters) if (!flags.includes(letter)) flags += letter;
    source = source.slice(lead[0].length);
  }
  source = source.replace(/\\Q([\s\S]*?)(?:\\E|$)/g, (_, literal: string) => literal.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&"));
  if (/(^|[^\\])(\\\\)*\(\?[imsU-]+[:)]/.test(source)) throw new Error("flag groups other than a leading (?i), (?s) or (?m) are not supported");
  if (/(^|[^\\])(\\\\)*\\C/.test(source)) throw new Error("\\C (any byte) is not supported");
  if (/(^|[^\\])(\\\\)*\\[pP][A-Za-z]/.test(source)) throw new Error("write Unicode classes with braces: \\p{L}");
  source = source
    .replace(/(^|[^\\])((?:\\\\)*)\\A/g, "$1$2^")
    .replace(/(^|[^\\])((?:\\\\)*)\\z/g, "$1$2$$")
    .replace(/\(\?P</g, "(?<")
    .replace(/\[:(\^?)([a-z]+):\]/g, (whole, negated: string, name: string) => {
      const expansion = POSIX_CLASSES[name];
      if (expansion === undefined) throw new Error(`unknown POSIX class ${whole}`);
      if (negated !== "") throw new Error(`negated POSIX classes (${whole}) are not supported`);
      return expansion;
    });
  // Unicode mode only where it is needed (\p{…}): it turns escapes Go allows, such as \-, into errors.
  return new RegExp(source, /\\[pP]\{/.test(source) ? `${flags}u` : flags);
}

/** RE2's ASCII POSIX classes, as they read inside a bracket expression. */
const POSIX_CLASSES: Record<string, string> = {
  alnum: "0-9A-Za-z",
  alpha: "A-Za-z",
  ascii: "\\x00-\\x7F",
  blank: "\\t ",
  cntrl: "\\x00-\\x1F\\x7F",
  digit: "0-9",
  graph: "!-~",
  lower: "a-z",
  print: " -~",
  punct: "!-\\/:-@\\[-`{-~",
  space: "\\t\\n\\v\\f\\r ",
  upper: "A-Z",
  word: "0-9A-Za-z_",
  xdigit: "0-9A-Fa-f",
};

/** Whether a text matches (somewhere in it, as Go's MatchString). */
export interface TextMatcher {
  test(text: string): boolean;
}

/**
 * One matcher for a list, as distribution joins it: every entry wrapped as `(?:…)`, then `|`. Each
 * entry keeps its own leading flags, so a list mixing `(?i)` and plain entries is tested entry by
 * entry. Compiled once, at start.
 */
export function compileGoRegexpList(patterns: readonly string[]): TextMatcher | undefined {
  if (patterns.length === 0) return undefined;
  const compiled = patterns.map(compileGoRegexp);
  const flags = new Set(compiled.map((re) => re.flags));
  if (flags.size === 1) return new RegExp(compiled.map((re) => `(?:${re.source})`).join("|"), compiled[0]!.flags);
  return { test: (text) => compiled.some((re) => re.test(text)) };
}
