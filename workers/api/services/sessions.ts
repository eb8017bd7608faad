/**
 * Sessions in the directory: devices and their refresh tokens, rotation and
 * sign-out, and the caller cache every authenticated request reads through.
 */
import { and, eq, isNull, sql } from "drizzle-orm";
import { runBatch } from "../../../src/shared/db/batch";
import { inList } from "../../../src/shared/db/lists";
import { devices, refreshTokens, users } from "../../../src/shared/db/schema";
import { fail, ok, type Result } from "../../../src/shared/errors";
import { newId } from "../../../src/shared/ids";
import type { Caller } from "../env";
import type { DirectoryDb } from "./directory";
import { hubFor } from "./hub";
import { hashRefreshToken, newRefreshToken, openSuccessor, sealSuccessor } from "./tokens";

export interface NewSession {
	deviceId: string;
	refreshToken: string;
}

/** The statements that register a device with its first refresh token (run in the caller's batch). */
export async function sessionStatements(db: DirectoryDb, userId: string, deviceName: string, now: Date, ttlSeconds: number) {
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

/**
 * A user keeps at most this many devices. A login past it makes room by
 * deleting signed-out devices first, oldest first, then by signing out the
 * devices used least recently.
 */
export const MAX_DEVICES_PER_USER = 100;

/** Signed-out devices first, by when they signed out; then live ones, by when they were last used. */
function evictionOrder(device: { revokedAt: string | null; lastSeenAt: string }): string {
	return device.revokedAt === null ? `1 ${device.lastSeenAt}` : `0 ${device.revokedAt}`;
}

function compare(a: string, b: string): number {
	return a < b ? -1 : a > b ? 1 : 0;
}

/** Registers a new device for a logged-in user, within MAX_DEVICES_PER_USER. */
export async function createSession(
	env: Env,
	db: DirectoryDb,
	userId: string,
	deviceName: string,
	refreshTtlSeconds: number,
): Promise<NewSession> {
	const existing = await db
		.select({ id: devices.id, revokedAt: devices.revokedAt, lastSeenAt: devices.lastSeenAt })
		.from(devices)
		.where(eq(devices.userId, userId));
	const evicted = existing
		.sort((a, b) => compare(evictionOrder(a), evictionOrder(b)))
		.slice(0, Math.max(0, existing.length + 1 - MAX_DEVICES_PER_USER));
	const ids = evicted.map((d) => d.id);
	const session = await sessionStatements(db, userId, deviceName, new Date(), refreshTtlSeconds);
	await runBatch(db.$client, [
		...(ids.length > 0
			? [db.delete(refreshTokens).where(inList(refreshTokens.deviceId, ids)), db.delete(devices).where(inList(devices.id, ids))]
			: []),
		...session.statements,
	]);
	for (const device of evicted) {
		forgetDevice(device.id);
		if (device.revokedAt === null) await hubFor(env, userId).disconnectDevice(device.id);
	}
	return { deviceId: session.deviceId, refreshToken: session.refreshToken };
}

/** A retry with a just-rotated refresh token this soon after its rotation gets the same successor. */
export const REFRESH_GRACE_MS = 30_000;

export interface Rotation {
	userId: string;
	deviceId: string;
	refreshToken: string;
}

type RefreshTokenRow = typeof refreshTokens.$inferSelect;

/**
 * Rotates a refresh token: the old one stops working and a new one is
 * issued, in one batch whose INSERT runs only if the UPDATE revoked a live
 * token, so two concurrent refreshes with one token cannot both succeed.
 * A retry with the old token within REFRESH_GRACE_MS answers the same
 * successor, so a client that lost the answer is not signed out. Any other
 * use of a rotated token is treated as theft: the device is signed out
 * (OAuth 2.0 Security BCP, refresh token rotation).
 */
export async function rotateRefreshToken(
	env: Env,
	db: DirectoryDb,
	token: string,
	ttlSeconds: number,
	now = Date.now(),
): Promise<Result<Rotation>> {
	const hash = await hashRefreshToken(token);
	const invalid = fail("UNAUTHENTICATED", "the refresh token is invalid, expired or revoked");
	let row = await findRefreshToken(db, hash);
	if (!row) return invalid;
	if (row.revokedAt === null) {
		if (Date.parse(row.expiresAt) <= now) return invalid;
		const rotated = await rotate(db, row, token, ttlSeconds, now);
		if (rotated) return ok(rotated);
		// A concurrent refresh with the same token won; this one is its retry.
		row = await findRefreshToken(db, hash);
		if (!row) return invalid;
	}
	const successor = await successorInGrace(db, row, token, now);
	if (successor !== null) return ok({ userId: row.userId, deviceId: row.deviceId, refreshToken: successor });
	await signOutDevice(env, db, row.userId, row.deviceId);
	return invalid;
}

async function findRefreshToken(db: DirectoryDb, hash: string): Promise<RefreshTokenRow | null> {
	const rows = await db.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, hash)).limit(1);
	return rows[0] ?? null;
}

async function rotate(db: DirectoryDb, row: RefreshTokenRow, token: string, ttlSeconds: number, now: number): Promise<Rotation | null> {
	const next = await newRefreshToken();
	const at = new Date(now).toISOString();
	const [, inserted] = await runBatch(db.$client, [
		db
			.update(refreshTokens)
			.set({ revokedAt: at, successor: await sealSuccessor(token, next.token) })
			.where(and(eq(refreshTokens.tokenHash, row.tokenHash), isNull(refreshTokens.revokedAt))),
		db.run(sql`INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_at, expires_at, revoked_at)
			SELECT ${next.hash}, ${row.userId}, ${row.deviceId}, ${at}, ${new Date(now + ttlSeconds * 1000).toISOString()}, NULL
			WHERE changes() = 1 AND EXISTS (SELECT 1 FROM devices WHERE id = ${row.deviceId} AND revoked_at IS NULL)`),
		db.update(devices).set({ lastSeenAt: at }).where(eq(devices.id, row.deviceId)),
	]);
	if (inserted?.meta.changes !== 1) return null;
	return { userId: row.userId, deviceId: row.deviceId, refreshToken: next.token };
}

/** The token that replaced `row` if it was rotated within the grace period and its successor is still live, else null. */
async function successorInGrace(db: DirectoryDb, row: RefreshTokenRow, token: string, now: number): Promise<string | null> {
	if (row.successor === null || row.revokedAt === null || now - Date.parse(row.revokedAt) > REFRESH_GRACE_MS) return null;
	const successor = await openSuccessor(token, row.successor);
	if (successor === null) return null;
	const live = await db
		.select({ expiresAt: refreshTokens.expiresAt })
		.from(refreshTokens)
		.innerJoin(devices, eq(devices.id, refreshTokens.deviceId))
		.where(and(eq(refreshTokens.tokenHash, await hashRefreshToken(successor)), isNull(refreshTokens.revokedAt), isNull(devices.revokedAt)))
		.limit(1);
	const expiresAt = live[0]?.expiresAt;
	return expiresAt !== undefined && Date.parse(expiresAt) > now ? successor : null;
}

/**
 * Signs a device out everywhere: its refresh and access tokens stop working
 * (revokeDevice) and its open sync sockets are closed.
 */
export async function signOutDevice(env: Env, db: DirectoryDb, userId: string, deviceId: string): Promise<void> {
	await revokeDevice(db, deviceId);
	await hubFor(env, userId).disconnectDevice(deviceId);
}

/**
 * Signs out the device a refresh token was issued to, whether the token is
 * live, rotated or expired: whoever holds one held that device's session.
 * A token never issued signs nothing out.
 */
export async function signOutRefreshToken(env: Env, db: DirectoryDb, token: string): Promise<void> {
	const row = await findRefreshToken(db, await hashRefreshToken(token));
	if (row) await signOutDevice(env, db, row.userId, row.deviceId);
}

/** Signs a device out in the directory: its refresh tokens and its access tokens stop working. */
async function revokeDevice(db: DirectoryDb, deviceId: string): Promise<void> {
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

/**
 * Drops every caller of `userId` this isolate remembers, so that the next
 * request reads the directory again: after the user moved shard
 * (docs/decisions/0034), a remembered caller still names the old one.
 */
export function forgetUser(userId: string): void {
	for (const [key, entry] of callerCache) if (entry.caller.userId === userId) callerCache.delete(key);
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

/** Whether the device exists, is the user's and is not signed out, read now (no cache): for upgrades that outlive a request. */
export async function isDeviceLive(db: DirectoryDb, userId: string, deviceId: string): Promise<boolean> {
	return (await readCaller(db, userId, deviceId)) !== null;
}

async function readCaller(db: DirectoryDb, userId: string, deviceId: string): Promise<Caller | null> {
	const rows = await db
		.select({
			email: users.email,
			shard: users.shard,
			quotaBytes: users.quotaBytes,
			deviceName: devices.name,
			revokedAt: devices.revokedAt,
		})
		.from(devices)
		.innerJoin(users, eq(users.id, devices.userId))
		.where(and(eq(devices.id, deviceId), eq(devices.userId, userId)))
		.limit(1);
	const row = rows[0];
	if (!row || row.revokedAt !== null) return null;
	return { userId, email: row.email, deviceId, deviceName: row.deviceName, shard: row.shard, quotaBytes: row.quotaBytes };
}

/** Rows each pruning statement deletes at most per round, and rounds per run: a backlog drains over several runs. */
const PRUNE_ROWS = 1000;
const PRUNE_ROUNDS = 20;

/**
 * Prunes the sessions the directory no longer needs (the cron): a device
 * idle past its refresh token's expiry is signed out (that token can never
 * be used again), expired refresh tokens are deleted (a rotated one past its
 * expiry is refused as unknown instead of signing its device out), and
 * signed-out devices are deleted with their tokens.
 */
export async function pruneSessions(db: DirectoryDb, now = Date.now()): Promise<void> {
	const at = new Date(now).toISOString();
	for (let round = 0; round < PRUNE_ROUNDS; round++) {
		const results = await runBatch(db.$client, [
			db.run(sql`UPDATE devices SET revoked_at = ${at} WHERE revoked_at IS NULL AND id IN (
				SELECT device_id FROM refresh_tokens WHERE expires_at <= ${at} AND revoked_at IS NULL LIMIT ${PRUNE_ROWS})`),
			db.run(sql`DELETE FROM refresh_tokens WHERE rowid IN (
				SELECT rowid FROM refresh_tokens WHERE expires_at <= ${at} LIMIT ${PRUNE_ROWS})`),
			db.run(sql`DELETE FROM refresh_tokens WHERE rowid IN (
				SELECT r.rowid FROM devices d JOIN refresh_tokens r ON r.device_id = d.id WHERE d.revoked_at IS NOT NULL LIMIT ${PRUNE_ROWS})`),
			db.run(sql`DELETE FROM devices WHERE rowid IN (
				SELECT rowid FROM devices d WHERE revoked_at IS NOT NULL
					AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.device_id = d.id) LIMIT ${PRUNE_ROWS})`),
		]);
		if (results.every((r) => r.meta.changes < PRUNE_ROWS)) return;
	}
}
