/**
 * The UI's read-only JSON view, under /ui/api/: what the registry API cannot answer cheaply
 * (search in the catalog, tag summaries with push times, an image config without following a
 * blob redirect to object storage). Every route asks the access controller for exactly the access
 * its /v2/ counterpart needs, with the request's own credentials, so the UI shows nobody more
 * than the API would.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Access, AccessController } from "../auth/access-controller.js";
import type { PullableRepositories, RepositoryFilter } from "../auth/pullable-repositories.js";
import type { StorageDriver } from "../driver/storage-driver.js";
import { RegistryError } from "../errcode/registry-error.js";
import { Digest } from "../reference/digest.js";
import type { Registry } from "../registry/registry.js";
import { pageSize } from "../server/pagination.js";
import { mapConcurrent, STORAGE_CONCURRENCY } from "../storage/map-concurrent.js";
import { readBlobJSON } from "./blob-json.js";
import type { CatalogSearch } from "./catalog-search.js";
import { summarizeTag, type TagSummary } from "./tag-summary.js";
import { tagPushTime } from "./tag-push-times.js";

/** What the page needs to know before it asks for anything: how to log in, whether deletes can work. */
export interface UiSettings {
  auth: "none" | "htpasswd" | "token" | "silly";
  deleteEnabled: boolean;
  readOnly: boolean;
}

export interface UiApiParts {
  registry: Registry;
  driver: StorageDriver;
  access: AccessController;
  /** What a request may pull: the catalog and search list nothing else. */
  pullable: PullableRepositories;
  search: CatalogSearch;
  settings: UiSettings;
}

const DEFAULT_PAGE = 50;
/** A page of tags costs a manifest read (and a config read) per tag: kept small. */
const MAX_TAG_PAGE = 100;

const pullAccess = (name: string): Access[] => [{ type: "repository", name, action: "pull" }];

/** An answer, and what to start once it is sent (work the answer must not wait for). */
type ApiResult = { status: number; body: unknown; afterwards?: () => void };

/** Answers one /ui/api/ request; NOT_FOUND for a path that is none of its routes. */
export async function answerUiApi(parts: UiApiParts, req: IncomingMessage, path: string, query: URLSearchParams): Promise<ApiResult> {
  if (path === "/ui/api/settings") return { status: 200, body: parts.settings };
  if (path === "/ui/api/catalog") {
    const visible = await parts.pullable.pullable(req);
    // Whoever sees the catalog page may search next: the list of every name is read once the page
    // is sent, so that reading 10,000 names does not delay the first 50.
    return { status: 200, body: await catalog(parts, query, visible), afterwards: () => parts.search.warm() };
  }
  const tags = /^\/ui\/api\/repositories\/(.+)\/tags$/.exec(path);
  if (tags) {
    const name = decode(tags[1]!);
    await parts.access.authorize(req, pullAccess(name));
    return { status: 200, body: await tagPage(parts, name, query) };
  }
  const config = /^\/ui\/api\/repositories\/(.+)\/configs\/([^/]+)$/.exec(path);
  if (config) {
    const name = decode(config[1]!);
    await parts.access.authorize(req, pullAccess(name));
    const repository = parts.registry.repository(name);
    return { status: 200, body: { config: (await readBlobJSON(repository, Digest.parse(decode(config[2]!)))) ?? null } };
  }
  throw new RegistryError("NOT_FOUND");
}

/**
 * Catalog order, `n` names after `last`; with `q`, only names containing it; only names `visible`
 * accepts. Filtered, the page comes from the search's list of names (at most its age old): reading
 * storage until a page of visible names is found could read every name for one page.
 */
async function catalog(parts: UiApiParts, query: URLSearchParams, visible: RepositoryFilter): Promise<{ repositories: string[]; next: string | null }> {
  const size = Math.max(1, pageSize(query) ?? DEFAULT_PAGE);
  const last = query.get("last") || undefined;
  const text = (query.get("q") ?? "").trim();
  if (visible !== "every") {
    const page = await parts.search.search(text, last, size, visible);
    return { repositories: page.names, next: page.more ? (page.names.at(-1) ?? null) : null };
  }
  if (text === "") {
    const page = await parts.registry.catalog(last, size);
    return { repositories: page.names, next: page.more ? (page.names.at(-1) ?? null) : null };
  }
  const page = await parts.search.search(text, last, size);
  return { repositories: page.names, next: page.more ? (page.names.at(-1) ?? null) : null };
}

/** A page of tag summaries by name (lexical) or newest first, from `offset`. */
async function tagPage(parts: UiApiParts, name: string, query: URLSearchParams): Promise<{ name: string; total: number; offset: number; tags: TagSummary[] }> {
  const size = Math.min(Math.max(1, pageSize(query) ?? DEFAULT_PAGE), MAX_TAG_PAGE);
  const offset = nonNegative(query, "offset");
  const order = query.get("order") ?? "name";
  if (order !== "name" && order !== "newest") throw new RegistryError("PAGINATION_NUMBER_INVALID", "order must be name or newest", { order: order.slice(0, 50) });
  const repository = parts.registry.repository(name);
  const names = await repository.listTags();
  let page: { tag: string; pushed: Date | undefined }[];
  if (order === "newest") {
    // Newest first needs every tag's time; a tag without one sorts last, ties by name.
    const timed = await mapConcurrent(names, STORAGE_CONCURRENCY, async (tag) => ({ tag, pushed: await tagPushTime(parts.driver, repository.name, tag) }));
    timed.sort((a, b) => (b.pushed?.getTime() ?? -1) - (a.pushed?.getTime() ?? -1) || (a.tag < b.tag ? -1 : 1));
    page = timed.slice(offset, offset + size);
  } else {
    page = await mapConcurrent(names.slice(offset, offset + size), STORAGE_CONCURRENCY, async (tag) => ({ tag, pushed: await tagPushTime(parts.driver, repository.name, tag) }));
  }
  const summaries = await mapConcurrent(page, STORAGE_CONCURRENCY, async ({ tag, pushed }) => {
    try {
      return await summarizeTag(repository, tag, pushed);
    } catch (err) {
      // Deleted between the listing and the read: the page shows the others.
      if (err instanceof RegistryError && err.code === "MANIFEST_UNKNOWN") return undefined;
      throw err;
    }
  });
  return { name: repository.name, total: names.length, offset, tags: summaries.filter((s): s is TagSummary => s !== undefined) };
}

function nonNegative(query: URLSearchParams, key: string): number {
  const raw = query.get(key);
  if (raw === null || raw === "") return 0;
  if (!/^\d{1,9}$/.test(raw)) throw new RegistryError("PAGINATION_NUMBER_INVALID", `${key} must be a non-negative integer`, { [key]: raw.slice(0, 50) });
  return Number(raw);
}

function decode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new RegistryError("NAME_INVALID", "malformed percent-encoding in the path");
  }
}

/** Sends an API answer as JSON; never cached, since it depends on the credentials that asked. */
export function sendApiResult(req: IncomingMessage, res: ServerResponse, result: ApiResult, headers: Record<string, string>): void {
  const body = JSON.stringify(result.body);
  res.writeHead(result.status, {
    ...headers,
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": "no-store",
  });
  if (result.afterwards !== undefined) res.once("finish", result.afterwards);
  res.end(req.method === "HEAD" ? undefined : body);
}
