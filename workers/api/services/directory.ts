/**
 * The directory database: accounts, devices, refresh tokens, login
 * throttling, and the user-to-shard map (docs/decisions/0002).
 */
import { and, eq, isNull, sql } from "drizzle-orm";
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import { devices, loginFailures, refreshTokens, users, type UserRow } from "../../../src/shared/db/schema";
import { runBatch } from "../../../src/shared/db/batch";
import { fail, ok, type Result } from "../../../src/shared/errors";
import { newId } from "../../../src/shared/ids";
import type { Caller } from "../env";
import { hashRefreshToken, newRefreshToken } from "./tokens";

export type DirectoryDb = DrizzleD1Database & { $client: D1Database };

/** Wraps the DIRECTORY binding. */
export function openDirectory(d1: D1Database): DirectoryDb {
	return drizzle(d1);
}

/**
 * Where a new user lives: FNV-1a of the id modulo the shard count. The result
 * is written to the directory, so later changes to the shard count (or moving
 * a user) never depend on recomputing it.
 */
export function placeUser(userId: string, shards: number): number {
	let h = 0x811c9dc5;
	for (let i = 0; i < userId.length; i++) {
		h ^= userId.charCodeAt(i);
		h = Math.imul(h, 0x01000193) >>> 0;
	}
	return h % shards;
}

export interface NewSession {
	deviceId: string;
	refreshToken: string;
}

/** Creates the account with its first device and refresh token, atomically. */
export async function createAccount(
	db: DirectoryDb,
	input: { email: string; passwordHash: string; deviceName: string; shards: number; quotaBytes: number; refreshTtlSeconds: number },
): Promise<Result<{ user: UserRow } & NewSession>> {
	const existing = await db.select({ id: users.id }).from(users).where(eq(users.email, input.email)).limit(1);
	if (existing.length > 0) return fail("EMAIL_TAKEN", "an account with this email already exists", [{ field: "email" }]);
	const now = new Date();
	const id = newId("usr");
	const user: UserRow = {
		id,
		email: input.email,
		passwordHash: input.passwordHash,
		shard: placeUser(id, input.shards),
		quotaBytes: input.quotaBytes,
		createdAt: now.toISOString(),
	};
	const session = await sessionStatements(db, id, input.deviceName, now, input.refreshTtlSeconds);
	try {
		await runBatch(db.$client, [db.insert(users).values(user), ...session.statements]);
	} catch (err) {
		// Two signups for one email raced; the unique index kept one.
		if (String(err).includes("UNIQUE")) return fail("EMAIL_TAKEN", "an account with this email already exists", [{ field: "email" }]);
		throw err;
	}
	return ok({ user, deviceId: session.deviceId, refreshToken: session.refreshToken });
}

async function sessionStatements(db: DirectoryDb, userId: string, deviceName: string, now: Date, ttlSeconds: number) {
	const deviceId = newId("dev");
	const refresh = await newRefreshToken();
	const at = now.toISOString();
	return {
		deviceId,
		refreshToken: refresh.token,
		statements: [
			db.insert(devices).values({ id: deviceId, userId, name: deviceName, createdAt: at, lastSeenAt: at, revokedAt: null }),
			db.insert(refreshTokens).values({
				tokenHash: refresh.hash,
				userId,
				deviceId,
				createdAt: at,
				expiresAt: new Date(now.getTime() + ttlSeconds * 1000).toISOString(),
				revokedAt: null,
			}),
		] as const,
	};
}

/** Registers a new device for a logged-in user. */
export async function createSession(db: DirectoryDb, userId: string, deviceName: string, refreshTtlSeconds: number): Promise<NewSession> {
	const session = await sessionStatements(db, userId, deviceName, new Date(), refreshTtlSeconds);
	await runBatch(db.$client, [...session.statements]);
	return { deviceId: session.deviceId, refreshToken: session.refreshToken };
}

/** The account with this (already normalized) email. */
export async function findUserByEmail(db: DirectoryDb, email: string): Promise<UserRow | null> {
	const rows = await db.select().from(users).where(eq(users.email, email)).limit(1);
	return rows[0] ?? null;
}

/** Replaces a user's password hash (used to upgrade old hash parameters at login). */
export async function updatePasswordHash(db: DirectoryDb, userId: string, passwordHash: string): Promise<void> {
	await db.update(users).set({ passwordHash }).where(eq(users.id, userId));
}

/**
 * Rotates a refresh token: the old one stops working and a new one is
 * issued, in one batch whose INSERT runs only if the UPDATE revoked a live
 * token, so two concurrent refreshes with one token cannot both succeed.
 * Presenting an already-rotated token is treated as theft: the device is
 * signed out (OAuth 2.0 Security BCP, refresh token rotation).
 */
export async function rotateRefreshToken(
	db: DirectoryDb,
	token: string,
	ttlSeconds: number,
): Promise<Result<{ userId: string; deviceId: string; refreshToken: string }>> {
	const hash = await hashRefreshToken(token);
	const rows = await db.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, hash)).limit(1);
	const row = rows[0];
	const invalid = fail("UNAUTHENTICATED", "the refresh token is invalid, expired or revoked");
	if (!row) return invalid;
	if (row.revokedAt !== null) {
		await revokeDevice(db, row.deviceId);
		return invalid;
	}
	const now = new Date();
	if (Date.parse(row.expiresAt) <= now.getTime()) return invalid;
	const next = await newRefreshToken();
	const at = now.toISOString();
	const [, inserted] = await runBatch(db.$client, [
		db
			.update(refreshTokens)
			.set({ revokedAt: at })
			.where(and(eq(refreshTokens.tokenHash, hash), isNull(refreshTokens.revokedAt))),
		db.run(sql`INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_at, expires_at, revoked_at)
			SELECT ${next.hash}, ${row.userId}, ${row.deviceId}, ${at}, ${new Date(now.getTime() + ttlSeconds * 1000).toISOString()}, NULL
			WHERE changes() = 1 AND EXISTS (SELECT 1 FROM devices WHERE id = ${row.deviceId} AND revoked_at IS NULL)`),
		db.update(devices).set({ lastSeenAt: at }).where(eq(devices.id, row.deviceId)),
	]);
	if (inserted?.meta.changes !== 1) return invalid;
	return ok({ userId: row.userId, deviceId: row.deviceId, refreshToken: next.token });
}

/** Signs a device out: its refresh tokens and its access tokens stop working. */
export async function revokeDevice(db: DirectoryDb, deviceId: string): Promise<void> {
	forgetDevice(deviceId);
	const at = new Date().toISOString();
	await runBatch(db.$client, [
		db
			.update(refreshTokens)
			.set({ revokedAt: at })
			.where(and(eq(refreshTokens.deviceId, deviceId), isNull(refreshTokens.revokedAt))),
		db
			.update(devices)
			.set({ revokedAt: at })
			.where(and(eq(devices.id, deviceId), isNull(devices.revokedAt))),
	]);
	// Again: a request of this device may have re-read the row while the
	// batch was in flight, and cached it as not signed out.
	forgetDevice(deviceId);
}

function forgetDevice(deviceId: string): void {
	for (const [key, entry] of callerCache) if (entry.caller.deviceId === deviceId) callerCache.delete(key);
}

/**
 * Callers this isolate loaded recently. Every authenticated request needs
 * its caller, and the directory is one database for all users, so each
 * isolate remembers a device that was not signed out for a few seconds
 * (docs/decisions/0010). Signing out clears the entry in the isolate that
 * handles it; other isolates notice within CALLER_TTL_MS.
 */
const CALLER_TTL_MS = 5_000;
const CALLER_CACHE_MAX = 10_000;
const callerCache = new Map<string, { caller: Caller; until: number }>();

/** The caller behind a verified access token, or null if the device was signed out. */
export async function loadCaller(db: DirectoryDb, userId: string, deviceId: string, now = Date.now()): Promise<Caller | null> {
	const key = `${userId}/${deviceId}`;
	const cached = callerCache.get(key);
	if (cached && cached.until > now) return cached.caller;
	const caller = await readCaller(db, userId, deviceId);
	callerCache.delete(key);
	if (caller) {
		// Insertion order is age order: drop the oldest when full.
		if (callerCache.size >= CALLER_CACHE_MAX) callerCache.delete(callerCache.keys().next().value ?? "");
		callerCache.set(key, { caller, until: now + CALLER_TTL_MS });
	}
	return caller;
}

async function readCaller(db: DirectoryDb, userId: string, deviceId: string): Promise<Caller | null> {
	const rows = await db
		.select({ shard: users.shard, quotaBytes: users.quotaBytes, deviceName: devices.name, revokedAt: devices.revokedAt })
		.from(devices)
		.innerJoin(users, eq(users.id, devices.userId))
		.where(and(eq(devices.id, deviceId), eq(devices.userId, userId)))
		.limit(1);
	const row = rows[0];
	if (!row || row.revokedAt !== null) return null;
	return { userId, deviceId, deviceName: row.deviceName, shard: row.shard, quotaBytes: row.quotaBytes };
}

/** The user's email, for /me. */
export async function findUserById(db: DirectoryDb, userId: string): Promise<UserRow | null> {
	const rows = await db.select().from(users).where(eq(users.id, userId)).limit(1);
	return rows[0] ?? null;
}

// ---- login throttling ------------------------------------------------------

/**
 * Failed logins are counted per email and per client address in a sliding
 * 15-minute window. From SLOW_AFTER failures on a key each further attempt is
 * delayed (doubling); from REFUSE_AFTER the key is refused with RATE_LIMITED
 * until the window ends. Addresses get higher limits: many users share NATs.
 */
const WINDOW_MS = 15 * 60 * 1000;
const LIMITS = { email: { slowAfter: 5, refuseAfter: 10 }, ip: { slowAfter: 20, refuseAfter: 50 } } as const;

export type ThrottleKey = { kind: keyof typeof LIMITS; value: string };

export type ThrottleVerdict = { refuse: false; delayMs: number } | { refuse: true; retryAfterSeconds: number };

/** Decides whether a login attempt may proceed, and how long to stall it first. */
export async function checkLoginThrottle(
	db: DirectoryDb,
	keys: ThrottleKey[],
	baseDelayMs: number,
	now = Date.now(),
): Promise<ThrottleVerdict> {
	let delayMs = 0;
	for (const key of keys) {
		const rows = await db
			.select()
			.from(loginFailures)
			.where(eq(loginFailures.key, `${key.kind}:${key.value}`))
			.limit(1);
		const row = rows[0];
		if (!row || now - row.windowStartedAt > WINDOW_MS) continue;
		const limit = LIMITS[key.kind];
		if (row.failures >= limit.refuseAfter) {
			return { refuse: true, retryAfterSeconds: Math.max(1, Math.ceil((row.windowStartedAt + WINDOW_MS - now) / 1000)) };
		}
		if (row.failures >= limit.slowAfter) {
			delayMs = Math.max(delayMs, Math.min(baseDelayMs * 2 ** (row.failures - limit.slowAfter), 5000));
		}
	}
	return { refuse: false, delayMs };
}

/** Counts a failed login against every key. */
export async function recordLoginFailure(db: DirectoryDb, keys: ThrottleKey[], now = Date.now()): Promise<void> {
	await runBatch(
		db.$client,
		keys.map((key) =>
			db.run(sql`INSERT INTO login_failures (key, failures, window_started_at, last_failed_at)
				VALUES (${`${key.kind}:${key.value}`}, 1, ${now}, ${now})
				ON CONFLICT (key) DO UPDATE SET
					failures = CASE WHEN ${now} - window_started_at > ${WINDOW_MS} THEN 1 ELSE failures + 1 END,
					window_started_at = CASE WHEN ${now} - window_started_at > ${WINDOW_MS} THEN ${now} ELSE window_started_at END,
					last_failed_at = ${now}`),
		),
	);
}

/** Forgets an email's failures after a successful login. */
export async function clearLoginFailures(db: DirectoryDb, key: ThrottleKey): Promise<void> {
	await db.delete(loginFailures).where(eq(loginFailures.key, `${key.kind}:${key.value}`));
}
