/**
 * The Azure requests the driver, its writers and its walker make, on one container and name
 * prefix, and the mapping between driver paths and blob names (distribution's: `rootdirectory` +
 * path, without the leading slash).
 */
import { type BlockBlobClient, type ContainerClient, type ContainerListBlobFlatSegmentResponse } from "@azure/storage-blob";
import type { ListedObject, ListPage, ListParams } from "../s3/bucket.js";
import type { FlatListing } from "../s3/s3-walk.js";
import { isBlobNotFound, unlessBlobNotFound } from "./azure-errors.js";
import type { AzureResolvedOptions } from "./azure-options.js";
import type { ReadUrlSigner } from "./read-url-signer.js";

/** Blobs deleted at once when a tree is removed (the service has no multi-object delete without Blob Batch). */
const DELETE_CONCURRENCY = 16;

export interface FlatPage {
  items: ListedObject[];
  /** The service's marker for the next page; undefined on the last page. */
  token: string | undefined;
}

export class BlobContainer {
  constructor(
    readonly client: ContainerClient,
    readonly o: AzureResolvedOptions,
    private readonly signer: ReadUrlSigner | undefined,
  ) {}

  name(path: string): string {
    if (path === "/") return this.o.root;
    return this.o.root === "" ? path.slice(1) : this.o.root + path;
  }

  /** The name prefix of everything under a directory path. */
  dirPrefix(path: string): string {
    if (path === "/") return this.o.root === "" ? "" : `${this.o.root}/`;
    return `${this.name(path)}/`;
  }

  /** The driver path of a blob name under the root. */
  pathOf(name: string): string {
    return this.o.root === "" ? `/${name}` : name.slice(this.o.root.length);
  }

  blob(name: string): BlockBlobClient {
    return this.client.getBlockBlobClient(name);
  }

  /** Size and modification time, or undefined when no blob is committed at the name. */
  async head(name: string): Promise<{ size: number; modTime: Date } | undefined> {
    const props = await unlessBlobNotFound(this.blob(name).getProperties());
    if (props === undefined) return undefined;
    return { size: props.contentLength ?? 0, modTime: props.lastModified ?? new Date(0) };
  }

  /**
   * One page of a flat listing (names in lexical order). With `uncommitted`, names that hold only
   * staged blocks are listed too (with size 0): what a tree's removal must also discard.
   */
  async flatPage(prefix: string, token: string | undefined, maxPageSize: number, uncommitted = false): Promise<FlatPage> {
    const pages = this.client
      .listBlobsFlat({ prefix, includeUncommitedBlobs: uncommitted })
      .byPage({ continuationToken: token, maxPageSize });
    const next = await pages.next();
    if (next.done === true) return { items: [], token: undefined };
    const value: ContainerListBlobFlatSegmentResponse = next.value;
    const items = value.segment.blobItems.map((item) => ({
      Key: item.name,
      Size: item.properties.contentLength ?? 0,
      LastModified: item.properties.lastModified ?? new Date(0),
    }));
    const marker = value.continuationToken;
    return { items, token: marker === undefined || marker === "" ? undefined : marker };
  }

  /** Every page of a delimited listing: the blobs and the "directories" (prefixes ending in "/") just under `prefix`. */
  async *hierarchyPages(prefix: string): AsyncGenerator<{ blobs: ListedObject[]; prefixes: string[] }> {
    for await (const page of this.client.listBlobsByHierarchy("/", { prefix }).byPage({ maxPageSize: this.o.listPageSize })) {
      yield {
        blobs: page.segment.blobItems.map((item) => ({
          Key: item.name,
          Size: item.properties.contentLength ?? 0,
          LastModified: item.properties.lastModified ?? new Date(0),
        })),
        prefixes: (page.segment.blobPrefixes ?? []).map((p) => p.name),
      };
    }
  }

  /** A walker's view of the container: S3's flat listing, start-after included. */
  flatListing(): FlatListing {
    return new StartAfterListing(this);
  }

  /**
   * Removes the blob at the name and any blocks staged for it. True when anything was there.
   * Staged blocks outlive a Delete Blob only where no blob is committed (the service answers 404
   * for them; Azurite deletes them), and the only way to drop them is to commit an empty block
   * list, which puts an empty blob at the name, and to delete that: the empty blob is never visible
   * unless the process dies between the two requests.
   */
  async removeBlob(name: string): Promise<boolean> {
    const blob = this.blob(name);
    try {
      await blob.delete();
      return true;
    } catch (err) {
      if (!isBlobNotFound(err)) throw err;
    }
    const blocks = await unlessBlobNotFound(blob.getBlockList("uncommitted"));
    if (blocks === undefined || (blocks.uncommittedBlocks ?? []).length === 0) return false;
    await blob.commitBlockList([]);
    await unlessBlobNotFound(blob.delete());
    return true;
  }

  /** removeBlob on each name, a few at a time. The number of names that held anything. */
  async removeBlobs(names: string[]): Promise<number> {
    let removed = 0;
    for (let i = 0; i < names.length; i += DELETE_CONCURRENCY) {
      const done = await Promise.all(names.slice(i, i + DELETE_CONCURRENCY).map((name) => this.removeBlob(name)));
      removed += done.filter(Boolean).length;
    }
    return removed;
  }

  /** A read-only SAS URL of the blob, valid for `seconds`; undefined when the credentials sign none (read-url-signer.ts). */
  async readOnlyUrl(name: string, seconds: number): Promise<string | undefined> {
    return this.signer?.sign(this.client, name, new Date(Date.now() + seconds * 1000));
  }
}

/**
 * S3's ListObjectsV2 over Azure's List Blobs, for the S3 driver's walker. Azure has no start-after,
 * only opaque markers: a listing asked to start after a name follows on from the last page this
 * listing returned when that page ended at or before the name (the walker's jumps past a directory
 * it has done with are always forward), and otherwise lists the prefix from its start, dropping
 * what comes before. So a walk resumed with `startAfter` reads again, once, what precedes it in the
 * directories on its way: a cost S3 does not have.
 */
class StartAfterListing implements FlatListing {
  readonly #c: BlobContainer;
  /** Per prefix: where the last page returned ended, and the marker that continues after it. */
  readonly #cursors = new Map<string, { last: string; token: string }>();

  constructor(container: BlobContainer) {
    this.#c = container;
  }

  pathOf(name: string): string {
    return this.#c.pathOf(name);
  }

  async listPage(params: ListParams): Promise<ListPage> {
    const max = Math.min(params.MaxKeys ?? this.#c.o.listPageSize, this.#c.o.listPageSize);
    let token = params.ContinuationToken;
    const after = token === undefined ? params.StartAfter : undefined;
    if (after !== undefined) {
      const cursor = this.#cursors.get(params.Prefix);
      if (cursor !== undefined && cursor.last <= after) token = cursor.token;
    }
    for (;;) {
      const page = await this.#c.flatPage(params.Prefix, token, max);
      token = page.token;
      const last = page.items.at(-1)?.Key;
      if (token !== undefined && last !== undefined) this.#cursors.set(params.Prefix, { last, token });
      const contents = after === undefined ? page.items : page.items.filter((item) => item.Key > after);
      if (contents.length > 0 || token === undefined) {
        return { Contents: contents, CommonPrefixes: [], IsTruncated: token !== undefined, NextContinuationToken: token };
      }
    }
  }
}
