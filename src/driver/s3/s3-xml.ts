/**
 * S3's XML: the answers the driver reads, parsed with the AWS SDK's own XML parser
 * (@aws-sdk/xml-builder, which keeps every value a string) and checked field by field, and the
 * request bodies it sends (DeleteObjects, CompleteMultipartUpload).
 */
import { parseXML } from "@aws-sdk/xml-builder";
import { S3ProtocolError } from "./s3-errors.js";

type XmlElement = Record<string, unknown>;

/** An object of a listing, with S3's element names. */
export interface ListedObject {
  Key: string;
  LastModified: Date;
  Size: number;
}

/** A page of ListObjectsV2, with S3's element names. */
export interface ListPage {
  Contents: ListedObject[];
  CommonPrefixes: Array<{ Prefix: string }>;
  IsTruncated: boolean;
  NextContinuationToken: string | undefined;
}

export interface UploadsPage {
  Uploads: Array<{ Key: string; UploadId: string; Initiated: Date }>;
  IsTruncated: boolean;
  NextKeyMarker: string | undefined;
  NextUploadIdMarker: string | undefined;
}

export interface PartsPage {
  Parts: Array<{ PartNumber: number; ETag: string; Size: number }>;
  IsTruncated: boolean;
  NextPartNumberMarker: string | undefined;
}

/** The root element of a document, when it is `root`; undefined when it is another element. */
function rootOf(xml: string, root: string): XmlElement | undefined {
  let document: unknown;
  try {
    document = parseXML(xml);
  } catch (err) {
    throw new S3ProtocolError(`s3: an answer is not XML: ${(err as Error).message}`);
  }
  const element = (document as Record<string, unknown> | null | undefined)?.[root];
  if (element === undefined) return undefined;
  // An empty element (<DeleteResult/>) parses as "".
  return typeof element === "object" && element !== null ? (element as XmlElement) : {};
}

function requireRoot(xml: string, root: string): XmlElement {
  const element = rootOf(xml, root);
  if (element === undefined) throw new S3ProtocolError(`s3: expected <${root}>, got ${JSON.stringify(xml.slice(0, 200))}`);
  return element;
}

/** The elements `name` directly under `parent`: none, one or many. */
function elements(parent: XmlElement, name: string): XmlElement[] {
  const value = parent[name];
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((item) => (typeof item === "object" && item !== null ? (item as XmlElement) : {}));
}

function optionalText(parent: XmlElement, name: string): string | undefined {
  const value = parent[name];
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw new S3ProtocolError(`s3: <${name}> is not text`);
  return value;
}

function text(parent: XmlElement, name: string): string {
  const value = optionalText(parent, name);
  if (value === undefined) throw new S3ProtocolError(`s3: <${name}> missing`);
  return value;
}

function integer(parent: XmlElement, name: string): number {
  const value = Number(text(parent, name));
  if (!Number.isSafeInteger(value) || value < 0) throw new S3ProtocolError(`s3: <${name}> is not a count`);
  return value;
}

function date(parent: XmlElement, name: string): Date {
  const value = optionalText(parent, name);
  return value === undefined ? new Date(0) : new Date(value);
}

const truncated = (parent: XmlElement): boolean => optionalText(parent, "IsTruncated") === "true";

export function parseListPage(xml: string): ListPage {
  const result = requireRoot(xml, "ListBucketResult");
  return {
    Contents: elements(result, "Contents").map((o) => ({ Key: text(o, "Key"), LastModified: date(o, "LastModified"), Size: integer(o, "Size") })),
    CommonPrefixes: elements(result, "CommonPrefixes").map((p) => ({ Prefix: text(p, "Prefix") })),
    IsTruncated: truncated(result),
    NextContinuationToken: optionalText(result, "NextContinuationToken"),
  };
}

export function parseUploadsPage(xml: string): UploadsPage {
  const result = requireRoot(xml, "ListMultipartUploadsResult");
  return {
    Uploads: elements(result, "Upload").map((u) => ({ Key: text(u, "Key"), UploadId: text(u, "UploadId"), Initiated: date(u, "Initiated") })),
    IsTruncated: truncated(result),
    NextKeyMarker: optionalText(result, "NextKeyMarker"),
    NextUploadIdMarker: optionalText(result, "NextUploadIdMarker"),
  };
}

export function parsePartsPage(xml: string): PartsPage {
  const result = requireRoot(xml, "ListPartsResult");
  return {
    Parts: elements(result, "Part").map((p) => ({ PartNumber: integer(p, "PartNumber"), ETag: text(p, "ETag"), Size: integer(p, "Size") })),
    IsTruncated: truncated(result),
    NextPartNumberMarker: optionalText(result, "NextPartNumberMarker") || undefined,
  };
}

export function parseUploadId(xml: string): string {
  return text(requireRoot(xml, "InitiateMultipartUploadResult"), "UploadId");
}

/** The ETag of an UploadPartCopy's answer. */
export function parseCopyPartETag(xml: string): string {
  return text(requireRoot(xml, "CopyPartResult"), "ETag");
}

/** A CompleteMultipartUpload answer's ETag, when it has one (Ceph 16 answers an empty one). */
export function parseCompleteETag(xml: string): string | undefined {
  const root = rootOf(xml, "CompleteMultipartUploadResult");
  return root === undefined ? undefined : optionalText(root, "ETag") || undefined;
}

/** The keys DeleteObjects could not delete (quiet mode lists only those). */
export function parseDeleteErrors(xml: string): Array<{ Key: string; Code: string; Message: string }> {
  return elements(requireRoot(xml, "DeleteResult"), "Error").map((e) => ({ Key: optionalText(e, "Key") ?? "", Code: optionalText(e, "Code") ?? "", Message: optionalText(e, "Message") ?? "" }));
}

/** The code and message of an `<Error>` document, or undefined when the document is something else. */
export function parseError(xml: string): { code: string; message: string } | undefined {
  if (!xml.includes("<Error")) return undefined;
  let error: XmlElement | undefined;
  try {
    error = rootOf(xml, "Error");
  } catch {
    return undefined;
  }
  if (error === undefined) return undefined;
  return { code: optionalText(error, "Code") ?? "", message: optionalText(error, "Message") ?? "" };
}

function escapeXml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function deleteObjectsXml(keys: readonly string[]): string {
  return `<Delete><Quiet>true</Quiet>${keys.map((key) => `<Object><Key>${escapeXml(key)}</Key></Object>`).join("")}</Delete>`;
}

export function completeUploadXml(parts: ReadonlyArray<{ PartNumber: number; ETag: string }>): string {
  const body = parts.map((p) => `<Part><PartNumber>${p.PartNumber}</PartNumber><ETag>${escapeXml(p.ETag)}</ETag></Part>`).join("");
  return `<CompleteMultipartUpload>${body}</CompleteMultipartUpload>`;
}
