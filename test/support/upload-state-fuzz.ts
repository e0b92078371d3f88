/**
 * Hostile upload state tokens (`_state` in an upload's Location), for test/fuzz-upload-state.test.ts.
 *
 * berth's token is base64url(JSON [name, id, startedAt]) "." base64url(HMAC-SHA256(http.secret,
 * payload)) (src/server/upload-state-token.ts). The fuzzer holds the secret, so besides breaking
 * genuine tokens (flipped, cut, extended, spliced, re-encoded) it also signs payloads no berth
 * would issue: wrong shapes and types, another upload's or repository's fields, start times that
 * are expired, in the future or not numbers. Only a token equal to the target upload's own (or a
 * signed payload naming exactly that upload, within the age limit) may be accepted.
 */
import { createHmac } from "node:crypto";
import type { Random } from "./fuzz-requests.js";
import { signUploadPayload } from "./fuzz-requests.js";

/** An upload the fuzzer knows: where it lives and the token berth gave for it. */
export interface KnownUpload {
  name: string;
  id: string;
  /** The `_state` berth issued for it (its last Location's). */
  token: string;
  startedAt: number;
  /** Finished or cancelled: its id names nothing any more. */
  gone: boolean;
}

export interface TokenCase {
  description: string;
  /** The upload the request goes to. */
  target: KnownUpload;
  /** The raw `_state` values in the query, already percent-encoded as they go on the wire; none when empty. */
  stateParams: string[];
  /**
   * The token vouches for the target: a genuine one (verbatim, or re-encoded to the same value) or
   * one signed over exactly its fields within the age limit. Only then may berth accept the request.
   */
  vouches: boolean;
}

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const DAY_MS = 24 * 3_600_000;
/** src/server/upload-state-token.ts: tokens of uploads older than the purging age are refused, and starts past a day ahead. */
const MAX_AGE_MS = 168 * 3_600_000;
const MAX_CLOCK_LEAD_MS = DAY_MS;

function payloadOf(token: string): string {
  return token.slice(0, token.indexOf("."));
}

function macOf(token: string): string {
  return token.slice(token.indexOf(".") + 1);
}

/** One character of `text` replaced by another base64url character (never itself). */
function flipChar(random: Random, text: string, from: number, to: number): string {
  const at = from + random.int(Math.max(1, to - from));
  const current = text[at];
  let replacement = random.pick([...BASE64URL]);
  while (replacement === current) replacement = random.pick([...BASE64URL]);
  return text.slice(0, at) + replacement + text.slice(at + 1);
}

/** A JSON value no token holds where a field goes. */
function hostileValue(random: Random): unknown {
  return random.pick<() => unknown>([
    () => null,
    () => true,
    () => "",
    () => "../../../../etc/passwd",
    () => "x".repeat(random.pick([256, 4096, 70_000])),
    () => -1,
    () => 0,
    () => 1e308,
    () => -0,
    () => Number.MAX_SAFE_INTEGER + 2,
    () => [],
    () => ({}),
    () => ["nested", ["deeper"]],
    () => "\u0000\uffff\ud800",
    () => "%2e%2e%2f",
  ])();
}

/**
 * A case against `target`, with `others` (other uploads, some in other repositories, some gone) to
 * borrow from.
 */
export function generateTokenCase(random: Random, secret: string, target: KnownUpload, others: KnownUpload[], now: number): TokenCase {
  const genuine = target.token;
  const other = random.pick(others);
  const fields: [string, string, number] = [target.name, target.id, target.startedAt];
  const strategies: Array<() => Omit<TokenCase, "target">> = [
    () => ({ description: "its own token", stateParams: [genuine], vouches: true }),
    () => ({ description: "its own token, percent-encoded", stateParams: [[...genuine].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join("")], vouches: true }),
    // Without a token berth reads the upload's `startedat`, as distribution does: the id alone (a
    // random UUID) names the upload.
    () => ({ description: "no _state at all", stateParams: [], vouches: true }),
    () => ({ description: "an empty _state", stateParams: [""], vouches: false }),
    () => ({ description: "a character of the payload flipped", stateParams: [`${flipChar(random, payloadOf(genuine), 0, payloadOf(genuine).length)}.${macOf(genuine)}`], vouches: false }),
    () => ({ description: "a character of the MAC flipped", stateParams: [`${payloadOf(genuine)}.${flipChar(random, macOf(genuine), 0, macOf(genuine).length)}`], vouches: false }),
    () => ({ description: "the last MAC character's unused bits changed", stateParams: [`${genuine.slice(0, -1)}${BASE64URL[(BASE64URL.indexOf(genuine.at(-1)!) ^ 1) % 64]}`], vouches: false }),
    () => ({ description: "cut short", stateParams: [genuine.slice(0, 1 + random.int(genuine.length - 1))], vouches: false }),
    () => ({ description: "extended", stateParams: [genuine + random.pick(["A", "=", ".", "..", "%00", "%0d%0a", "x".repeat(1000)])], vouches: false }),
    () => ({ description: "the MAC only", stateParams: [macOf(genuine)], vouches: false }),
    () => ({ description: "the payload only", stateParams: [payloadOf(genuine)], vouches: false }),
    () => ({ description: "the payload with another upload's MAC", stateParams: [`${payloadOf(genuine)}.${macOf(other.token)}`], vouches: false }),
    () => ({ description: `another upload's token (${other.name === target.name ? "same repository" : "another repository"}${other.gone ? ", gone" : ""})`, stateParams: [other.token], vouches: other.token === genuine }),
    () => ({ description: "its own token twice", stateParams: [genuine, genuine], vouches: true }),
    () => ({ description: "another token, then its own", stateParams: [other.token, genuine], vouches: other.token === genuine }),
    () => ({ description: "random base64url", stateParams: [`${random.bytes(1 + random.int(80)).toString("base64url")}.${random.bytes(32).toString("base64url")}`], vouches: false }),
    () => ({ description: "a huge token", stateParams: [`${"A".repeat(random.pick([8_000, 60_000]))}.${macOf(genuine)}`], vouches: false }),
    () => ({ description: "bytes that are not UTF-8, percent-encoded", stateParams: [`%ff%fe${payloadOf(genuine)}.${macOf(genuine)}`], vouches: false }),
    // Signed: what only a holder of the secret could make. Accepted only when it names this very upload in time.
    () => ({ description: "signed: its own fields", stateParams: [signUploadPayload(secret, fields)], vouches: true }),
    () => ({ description: "signed: expired start", stateParams: [signUploadPayload(secret, [target.name, target.id, now - MAX_AGE_MS - DAY_MS])], vouches: false }),
    () => ({ description: "signed: a start a year ahead", stateParams: [signUploadPayload(secret, [target.name, target.id, now + 365 * DAY_MS])], vouches: false }),
    () => ({ description: "signed: a start an hour ahead (a node whose clock runs ahead)", stateParams: [signUploadPayload(secret, [target.name, target.id, now + 3_600_000])], vouches: true }),
    () => ({ description: "signed: another repository's name", stateParams: [signUploadPayload(secret, [other.name === target.name ? `${target.name}x` : other.name, target.id, target.startedAt])], vouches: false }),
    () => ({ description: "signed: another upload's id", stateParams: [signUploadPayload(secret, [target.name, other.id === target.id ? `${target.id}x` : other.id, target.startedAt])], vouches: false }),
    () => ({ description: "signed: fields in another order", stateParams: [signUploadPayload(secret, [target.id, target.name, target.startedAt])], vouches: false }),
    () => ({ description: "signed: a field missing", stateParams: [signUploadPayload(secret, [target.name, target.id])], vouches: false }),
    () => ({ description: "signed: a field more", stateParams: [signUploadPayload(secret, [...fields, 0])], vouches: false }),
    () => ({ description: "signed: an object, not an array", stateParams: [signUploadPayload(secret, { name: target.name, id: target.id, startedAt: target.startedAt })], vouches: false }),
    () => {
      const at = random.int(3);
      const value = hostileValue(random);
      const hostile: unknown[] = [...fields];
      hostile[at] = value;
      return { description: `signed: field ${at} is ${JSON.stringify(value)?.slice(0, 40)}`, stateParams: [signUploadPayload(secret, hostile)], vouches: signedFieldsVouch(hostile, target, now) };
    },
    () => ({ description: "signed: a start with a fraction", stateParams: [signUploadPayload(secret, [target.name, target.id, target.startedAt + 0.5])], vouches: false }),
    () => ({ description: "signed: a start that is a string", stateParams: [signUploadPayload(secret, [target.name, target.id, String(target.startedAt)])], vouches: false }),
    () => {
      const payload = Buffer.from(random.pick(["[", "nul", '{"a":', "\u0000", "[1,2,3"])).toString("base64url");
      return { description: "signed: not JSON", stateParams: [`${payload}.${macFor(secret, payload)}`], vouches: false };
    },
  ];
  const made = random.pick(strategies)();
  return { ...made, target };
}

function macFor(secret: string, payload: string): string {
  return createHmac("sha256", secret).update(payload).digest("base64url");
}

/**
 * Whether a payload signed with the secret names exactly `target` within the age limit: such a
 * token is as good as one berth issued (only the secret's holder can make it), whatever its start.
 */
function signedFieldsVouch(fields: unknown[], target: KnownUpload, now: number): boolean {
  const [name, id, startedAt] = fields;
  return (
    name === target.name &&
    id === target.id &&
    typeof startedAt === "number" &&
    Number.isSafeInteger(startedAt) &&
    startedAt >= 0 &&
    startedAt <= now + MAX_CLOCK_LEAD_MS &&
    now - startedAt <= MAX_AGE_MS
  );
}
