/**
 * What a public view (readiness, /debug/health) may say of an error: its code (EACCES, ELOOP) or,
 * failing that, its name (PathNotFoundError), never its message, which may hold paths or bucket
 * names. undefined when it has neither.
 */
export function publicErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code ?? (err as { name?: unknown } | undefined)?.name;
  return typeof code === "string" ? code : undefined;
}
