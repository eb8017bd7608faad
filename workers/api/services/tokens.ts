/**
 * Access and refresh tokens. Access tokens are short-lived HS256 JWTs (jose)
 * with the algorithm pinned and exp, iat, iss, aud and sub required. Refresh
 * tokens are 256 random bits; only their SHA-256 is stored, and the token
 * that replaced one is stored sealed under a key only the old token yields.
 */
import { jwtVerify, SignJWT, errors as joseErrors } from "jose";
import { fromBase64Url, randomBytes, sha256Hex, toBase64Url } from "../../../src/shared/crypto";
import { isId } from "../../../src/shared/ids";
import { parseHubTicket } from "../../notify/sync-channel";

const ALGORITHM = "HS256";

export interface AccessClaims {
	userId: string;
	deviceId: string;
	/** The user's shard when the token was signed (claim `shd`); absent in tokens signed before it existed. The directory wins (docs/decisions/0030). */
	shard?: number;
}

interface TokenConfig {
	JWT_SECRET: string;
	JWT_ISSUER: string;
	JWT_AUDIENCE: string;
	ACCESS_TOKEN_TTL_SECONDS: string;
}

// Imported once per isolate and secret: importing the HMAC key per request
// costs a small request a measurable share of its CPU (docs/decisions/0010).
const keyCache = new Map<string, Promise<CryptoKey>>();
function signingKey(secret: string): Promise<CryptoKey> {
	let key = keyCache.get(secret);
	if (!key) {
		checkSecret(secret);
		key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
		keyCache.set(secret, key);
	}
	return key;
}

function checkSecret(secret: string): void {
	if (secret.length < 32) throw new Error("JWT_SECRET must be at least 32 characters");
}

/** Seconds an access token lives. */
export function accessTtl(env: TokenConfig): number {
	return Number(env.ACCESS_TOKEN_TTL_SECONDS) || 900;
}

/** Signs an access token for a device of a user. */
export async function signAccessToken(env: TokenConfig, claims: AccessClaims): Promise<string> {
	return new SignJWT(claims.shard === undefined ? { did: claims.deviceId } : { did: claims.deviceId, shd: claims.shard })
		.setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
		.setSubject(claims.userId)
		.setIssuer(env.JWT_ISSUER)
		.setAudience(env.JWT_AUDIENCE)
		.setIssuedAt()
		.setExpirationTime(`${accessTtl(env)}s`)
		.sign(await signingKey(env.JWT_SECRET));
}

/** Verifies an access token; null for anything invalid, expired or forged. */
export async function verifyAccessToken(env: TokenConfig, token: string, now = Date.now()): Promise<AccessClaims | null> {
	const known = verified.get(token);
	if (known !== undefined && known.secret === env.JWT_SECRET && known.expiresAt > now) return known.claims;
	const claims = await verifyUncached(env, token);
	if (claims !== null) {
		// Insertion order is age order: drop the oldest when full.
		if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value ?? "");
		verified.set(token, claims);
	}
	return claims?.claims ?? null;
}

/**
 * Tokens this isolate verified, until they expire: a client sends the same
 * token with every request for minutes, and verifying it again (decode,
 * HMAC, claim checks) was a visible part of a small request's CPU. The
 * token is the key, so only that exact string is trusted; whether its
 * device is still signed in is checked per request (sessions.ts).
 */
const VERIFIED_MAX = 10_000;
const verified = new Map<string, { claims: AccessClaims; expiresAt: number; secret: string }>();

async function verifyUncached(
	env: TokenConfig,
	token: string,
): Promise<{ claims: AccessClaims; expiresAt: number; secret: string } | null> {
	try {
		const { payload } = await jwtVerify(token, await signingKey(env.JWT_SECRET), {
			algorithms: [ALGORITHM],
			issuer: env.JWT_ISSUER,
			audience: env.JWT_AUDIENCE,
			requiredClaims: ["exp", "iat", "iss", "aud", "sub"],
		});
		if (typeof payload.sub !== "string" || typeof payload.did !== "string" || typeof payload.exp !== "number") return null;
		const shard = Number.isSafeInteger(payload.shd) && (payload.shd as number) >= 0 ? (payload.shd as number) : undefined;
		const claims: AccessClaims = { userId: payload.sub, deviceId: payload.did, ...(shard === undefined ? {} : { shard }) };
		return { claims, expiresAt: payload.exp * 1000, secret: env.JWT_SECRET };
	} catch (err) {
		if (err instanceof joseErrors.JOSEError) return null;
		throw err;
	}
}

/** A new refresh token and the hash to store for it. */
export async function newRefreshToken(): Promise<{ token: string; hash: string }> {
	const token = `drt_${toBase64Url(randomBytes(32))}`;
	return { token, hash: await hashRefreshToken(token) };
}

/** The stored form of a refresh token. */
export function hashRefreshToken(token: string): Promise<string> {
	return sha256Hex(token);
}

const encoder = new TextEncoder();

/** An HKDF-SHA256 key from `secret`, separated from every other use of it by `salt`. */
async function deriveKey(secret: string, salt: string, algorithm: SubtleCryptoImportKeyAlgorithm, usages: string[]) {
	const base = await crypto.subtle.importKey("raw", encoder.encode(secret), "HKDF", false, ["deriveKey"]);
	return crypto.subtle.deriveKey(
		{ name: "HKDF", hash: "SHA-256", salt: encoder.encode(salt), info: new Uint8Array() },
		base,
		algorithm,
		false,
		usages,
	);
}

const SUCCESSOR_SALT = "drive/refresh-successor/v1";
const IV_BYTES = 12;

/**
 * Seals the refresh token that replaced `token` so that only a holder of
 * `token` can open it: a retry of a refresh whose answer was lost gets the
 * same successor, while the stored row alone reveals nothing usable.
 */
export async function sealSuccessor(token: string, successor: string): Promise<string> {
	const key = await deriveKey(token, SUCCESSOR_SALT, { name: "AES-GCM", length: 256 }, ["encrypt"]);
	const iv = randomBytes(IV_BYTES);
	const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, encoder.encode(successor)));
	const out = new Uint8Array(IV_BYTES + sealed.length);
	out.set(iv);
	out.set(sealed, IV_BYTES);
	return toBase64Url(out);
}

/** The successor {@link sealSuccessor} sealed for `token`, or null if it does not open with it. */
export async function openSuccessor(token: string, sealed: string): Promise<string | null> {
	try {
		const bytes = fromBase64Url(sealed);
		const key = await deriveKey(token, SUCCESSOR_SALT, { name: "AES-GCM", length: 256 }, ["decrypt"]);
		const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: bytes.subarray(0, IV_BYTES) }, key, bytes.subarray(IV_BYTES));
		return new TextDecoder().decode(plain);
	} catch {
		return null;
	}
}

// Derived once per isolate, secret and purpose, like the JWT key.
const derivedHmacKeys = new Map<string, Promise<CryptoKey>>();
function derivedHmacKey(secret: string, salt: string): Promise<CryptoKey> {
	const id = `${salt}\n${secret}`;
	let key = derivedHmacKeys.get(id);
	if (!key) {
		checkSecret(secret);
		key = deriveKey(secret, salt, { name: "HMAC", hash: "SHA-256" }, ["sign", "verify"]);
		derivedHmacKeys.set(id, key);
	}
	return key;
}

function ticketKey(secret: string): Promise<CryptoKey> {
	return derivedHmacKey(secret, "drive/sync-ticket/v1");
}

/** A sync ticket whose signature verified: whose it is, and the hub's part to use up. */
export interface SyncTicketClaims {
	userId: string;
	deviceId: string;
	hubTicket: string;
	expiresAt: number;
}

/**
 * Signs the hub's part of a sync ticket (`<expiresAt>.<nonce>`) for a
 * device: `<userId>.<deviceId>.<expiresAt>.<nonce>.<HMAC-SHA256>`, keyed by
 * HKDF from JWT_SECRET, so that the api worker can refuse a forged ticket
 * before it wakes anyone's Durable Object.
 */
export async function signSyncTicket(env: TokenConfig, claims: Omit<SyncTicketClaims, "expiresAt">): Promise<string> {
	const payload = `${claims.userId}.${claims.deviceId}.${claims.hubTicket}`;
	const mac = await crypto.subtle.sign("HMAC", await ticketKey(env.JWT_SECRET), encoder.encode(payload));
	return `${payload}.${toBase64Url(new Uint8Array(mac))}`;
}

/** The claims of a sync ticket signed by {@link signSyncTicket} that has not expired, or null. */
export async function verifySyncTicket(env: TokenConfig, ticket: string, now = Date.now()): Promise<SyncTicketClaims | null> {
	const parts = ticket.split(".");
	if (parts.length !== 5) return null;
	const [userId = "", deviceId = "", expiresAt = "", nonce = "", mac = ""] = parts;
	const hubTicket = `${expiresAt}.${nonce}`;
	const parsed = parseHubTicket(hubTicket);
	if (!isId("usr", userId) || !isId("dev", deviceId) || !parsed || !/^[A-Za-z0-9_-]{43}$/.test(mac)) return null;
	const payload = `${userId}.${deviceId}.${hubTicket}`;
	const valid = await crypto.subtle.verify("HMAC", await ticketKey(env.JWT_SECRET), fromBase64Url(mac), encoder.encode(payload));
	if (!valid || parsed.expiresAt <= now) return null;
	return { userId, deviceId, hubTicket, expiresAt: parsed.expiresAt };
}

/** Seconds a link session lives (POST /v1/l/:token/unlock). */
export const LINK_SESSION_TTL_SECONDS = 3600;

const LINK_SESSION_AUDIENCE = "link";

// HKDF-separated from the access-token key: a link session can never pass as an access token, nor the reverse.
function linkSessionKey(secret: string): Promise<CryptoKey> {
	return derivedHmacKey(secret, "drive/link-session/v1");
}

/** What a link session proves: its holder gave the password of `linkId` while it was at `passwordVersion`. */
export interface LinkSessionClaims {
	linkId: string;
	passwordVersion: number;
}

/** Signs a link session: an HS256 JWT with aud "link", sub the link id and pv the password version. */
export async function signLinkSession(env: TokenConfig, claims: LinkSessionClaims): Promise<string> {
	return new SignJWT({ pv: claims.passwordVersion })
		.setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
		.setSubject(claims.linkId)
		.setIssuer(env.JWT_ISSUER)
		.setAudience(LINK_SESSION_AUDIENCE)
		.setIssuedAt()
		.setExpirationTime(`${LINK_SESSION_TTL_SECONDS}s`)
		.sign(await linkSessionKey(env.JWT_SECRET));
}

/** Verifies a link session; null for anything invalid, expired or forged. */
export async function verifyLinkSession(env: TokenConfig, token: string): Promise<LinkSessionClaims | null> {
	try {
		const { payload } = await jwtVerify(token, await linkSessionKey(env.JWT_SECRET), {
			algorithms: [ALGORITHM],
			issuer: env.JWT_ISSUER,
			audience: LINK_SESSION_AUDIENCE,
			requiredClaims: ["exp", "iat", "iss", "aud", "sub"],
		});
		if (typeof payload.sub !== "string" || typeof payload.pv !== "number") return null;
		return { linkId: payload.sub, passwordVersion: payload.pv };
	} catch (err) {
		if (err instanceof joseErrors.JOSEError) return null;
		throw err;
	}
}

/** Seconds a download URL lives (POST /v1/files/:id/download-url): long enough to start a download, too short to pass around. */
export const DOWNLOAD_URL_TTL_SECONDS = 60;

const DOWNLOAD_URL_AUDIENCE = "dl";

/** Longer than any token we sign: a path this long is not ours, and is not worth an HMAC. */
const DOWNLOAD_URL_MAX_CHARS = 1024;

// HKDF-separated from the access-token key: an access token can never pass as a download URL, nor the reverse.
function downloadUrlKey(secret: string): Promise<CryptoKey> {
	return derivedHmacKey(secret, "drive/download-url/v1");
}

/** What a download URL grants: `deviceId` of `userId` may read `versionId` of `nodeId` (in `ownerId`'s tree), shown as `disposition`. */
export interface DownloadUrlClaims {
	userId: string;
	deviceId: string;
	ownerId: string;
	/** The id the caller named: their own node, their mount, or the owner's node. */
	nodeId: string;
	versionId: string;
	disposition: "attachment" | "inline";
}

/** Signs a download URL's token (HS256, aud "dl"), valid DOWNLOAD_URL_TTL_SECONDS from `now`; and when it expires, in ms. */
export async function signDownloadUrl(
	env: TokenConfig,
	claims: DownloadUrlClaims,
	now: number,
): Promise<{ token: string; expiresAt: number }> {
	const exp = Math.floor(now / 1000) + DOWNLOAD_URL_TTL_SECONDS;
	const token = await new SignJWT({
		dev: claims.deviceId,
		own: claims.ownerId,
		nid: claims.nodeId,
		vid: claims.versionId,
		dis: claims.disposition,
	})
		.setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
		.setSubject(claims.userId)
		.setAudience(DOWNLOAD_URL_AUDIENCE)
		.setExpirationTime(exp)
		.sign(await downloadUrlKey(env.JWT_SECRET));
	return { token, expiresAt: exp * 1000 };
}

/**
 * The claims of a download URL's token; "expired" for one we signed whose
 * time is up (jose checks the signature before the claims, so a forged token
 * is never reported as expired); null for anything else.
 */
export async function verifyDownloadUrl(env: TokenConfig, token: string, now: number): Promise<DownloadUrlClaims | "expired" | null> {
	if (token.length > DOWNLOAD_URL_MAX_CHARS) return null;
	try {
		const { payload } = await jwtVerify(token, await downloadUrlKey(env.JWT_SECRET), {
			algorithms: [ALGORITHM],
			audience: DOWNLOAD_URL_AUDIENCE,
			requiredClaims: ["exp", "aud", "sub"],
			currentDate: new Date(now),
		});
		const { sub, dev, own, nid, vid, dis } = payload;
		if (typeof sub !== "string" || typeof dev !== "string" || typeof own !== "string" || typeof nid !== "string" || typeof vid !== "string")
			return null;
		if (dis !== "attachment" && dis !== "inline") return null;
		return { userId: sub, deviceId: dev, ownerId: own, nodeId: nid, versionId: vid, disposition: dis };
	} catch (err) {
		if (err instanceof joseErrors.JWTExpired) return "expired";
		if (err instanceof joseErrors.JOSEError) return null;
		throw err;
	}
}
