/** Module customization hooks for module-log.ts: they run on the loader's own thread. */
import { appendFileSync } from "node:fs";

let file: string | undefined;

export function initialize(data: { file?: string } | undefined): void {
  file = data?.file;
}

interface LoadContext {
  format?: string | null;
  conditions?: string[];
  importAttributes?: Record<string, string>;
}

export async function load(url: string, context: LoadContext, nextLoad: (url: string, context: LoadContext) => Promise<unknown>): Promise<unknown> {
  if (file !== undefined) appendFileSync(file, `${url}\n`);
  return nextLoad(url, context);
}
