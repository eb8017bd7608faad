/**
 * Signatures of outgoing webhooks, as Standard Webhooks 1.0 defines them
 * (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
 * `webhook-signature` lists `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`
 * entries, one per secret, so that receivers can use the `standardwebhooks`
 * or `svix` libraries unchanged. WebCrypto only: it runs in workerd and Node.
 */
import { randomBytes, timingSafeEqual } from "../crypto";

/** Every secret starts with this; the rest is the base64 of the HMAC key. */
export const WEBHOOK_SECRET_PREFIX = "whsec_";

const SECRET_BYTES = 32;
// The spec's bounds for a key (24 to 64 bytes), so a pasted key from another sender still verifies.
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;
/** Padded standard base64 only: one key must not have two spellings. */
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// A "." in an id would make "{id}.{timestamp}.{body}" ambiguous: two messages could share one signature.
const MESSAGE_ID_RE = /^[A-Za-z0-9_-]{1,256}$/;
/** Canonical decimal seconds, the form the libraries sign (they format the number again). */
const TIMESTAMP_RE = /^(?:0|[1-9][0-9]{0,14})$/;
const DEFAULT_TOLERANCE_SECONDS = 300;

const encoder = new TextEncoder();

/** The three headers a delivery carries. */
type WebhookHeaders = Record<"webhook-id" | "webhook-timestamp" | "webhook-signature", string>;

function toBase64(bytes: Uint8Array): string {
	let binary = "";
	for (const b of bytes) binary += String.fromCharCode(b);
	return btoa(binary);
}

function fromBase64(s: string): Uint8Array<ArrayBuffer> | null {
	if (!BASE64_RE.test(s)) return null;
	return Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0));
}

/** The HMAC key inside a secret, or null when it is not a well-formed secret. */
function secretKey(secret: string): Uint8Array<ArrayBuffer> | null {
	if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) return null;
	const key = fromBase64(secret.slice(WEBHOOK_SECRET_PREFIX.length));
	return key !== null && key.length >= MIN_KEY_BYTES && key.length <= MAX_KEY_BYTES ? key : null;
}

function requireKey(secret: string): Uint8Array<ArrayBuffer> {
	const key = secretKey(secret);
	if (key === null)
		throw new Error(`webhooks: not a webhook secret (${WEBHOOK_SECRET_PREFIX} + base64 of ${MIN_KEY_BYTES}..${MAX_KEY_BYTES} bytes)`);
	return key;
}

async function hmac(key: Uint8Array<ArrayBuffer>, id: string, timestampSeconds: number, body: string): Promise<Uint8Array> {
	const hmacKey = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
	return new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, encoder.encode(`${id}.${timestampSeconds}.${body}`)));
}

/** A fresh secret: {@link WEBHOOK_SECRET_PREFIX} + base64 of 32 random bytes. */
export function newWebhookSecret(): string {
	return WEBHOOK_SECRET_PREFIX + toBase64(randomBytes(SECRET_BYTES));
}

/** True when `s` is the prefix followed by padded base64 of 24..64 bytes. */
export function isWebhookSecret(s: string): boolean {
	return secretKey(s) !== null;
}

/**
 * The `webhook-signature` value: one `v1,` entry per secret, in the given
 * order. Several secrets are a rotation: the new and the previous one both
 * sign until receivers have switched.
 *
 * @throws Error on an empty list, a malformed secret, an id outside
 *   `[A-Za-z0-9_-]{1,256}` or a timestamp that is not a non-negative integer
 *   (all bugs of the caller: it makes these values itself).
 */
export async function signWebhook(secrets: readonly string[], id: string, timestampSeconds: number, body: string): Promise<string> {
	if (secrets.length === 0) throw new Error("signWebhook: no secret");
	if (!MESSAGE_ID_RE.test(id)) throw new Error("signWebhook: the message id must be 1..256 of [A-Za-z0-9_-]");
	if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) throw new Error("signWebhook: the timestamp must be whole seconds");
	const entries: string[] = [];
	for (const secret of secrets) entries.push(`v1,${toBase64(await hmac(requireKey(secret), id, timestampSeconds, body))}`);
	return entries.join(" ");
}

/** The headers of one delivery attempt; see {@link signWebhook} for the arguments and errors. */
export async function webhookHeaders(
	secrets: readonly string[],
	id: string,
	timestampSeconds: number,
	body: string,
): Promise<WebhookHeaders> {
	const signature = await signWebhook(secrets, id, timestampSeconds, body);
	return { "webhook-id": id, "webhook-timestamp": String(timestampSeconds), "webhook-signature": signature };
}

/** Header lookup for a `Headers` object or a plain record, case-insensitive as HTTP header names are. */
function headerOf(headers: { get(name: string): string | null } | Record<string, string>, name: string): string | null {
	if (typeof headers.get === "function") return (headers as { get(name: string): string | null }).get(name);
	const record = headers as Record<string, string>;
	const key = Object.keys(record).find((k) => k.toLowerCase() === name);
	return key === undefined ? null : (record[key] ?? null);
}

/**
 * Checks a delivery as a receiver would: the timestamp lies within
 * `toleranceSeconds` of `nowSeconds` (either way), and one of the `v1`
 * entries of `webhook-signature` is the HMAC of this id, timestamp and body
 * under `secret` (compared in constant time). Entries of other versions are
 * ignored, as the spec asks. Any missing or malformed header yields `false`.
 *
 * @throws Error if `secret` is not a well-formed secret (a caller's bug, not a bad delivery).
 */
export async function verifyWebhook(
	secret: string,
	headers: { get(name: string): string | null } | Record<string, string>,
	body: string,
	nowSeconds: number = Math.floor(Date.now() / 1000),
	toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): Promise<boolean> {
	const key = requireKey(secret);
	const id = headerOf(headers, "webhook-id");
	const timestamp = headerOf(headers, "webhook-timestamp");
	const signature = headerOf(headers, "webhook-signature");
	if (id === null || timestamp === null || signature === null) return false;
	if (!MESSAGE_ID_RE.test(id) || !TIMESTAMP_RE.test(timestamp)) return false;
	const seconds = Number(timestamp);
	if (Math.abs(nowSeconds - seconds) > toleranceSeconds) return false;
	const expected = await hmac(key, id, seconds, body);
	let matched = false;
	for (const entry of signature.split(" ")) {
		const comma = entry.indexOf(",");
		if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
		const given = fromBase64(entry.slice(comma + 1));
		// No early exit: every entry costs the same whether or not an earlier one matched.
		if (given !== null && timingSafeEqual(given, expected)) matched = true;
	}
	return matched;
}
