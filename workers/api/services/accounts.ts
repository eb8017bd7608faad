/**
 * Accounts in the directory: signing up, logging in and refreshing (shared
 * by the JSON routes of routes/auth.ts and the cookie routes of
 * routes/web-session.ts, so both answer alike), and the rows behind them.
 */
import { and, eq, isNull } from "drizzle-orm";
import {
	hashPassword,
	importPasswordPeppers,
	needsRehash,
	verifyPassword,
	verifyPasswordAgainstDummy,
	type PasswordPepper,
} from "../../../src/shared/crypto";
import { runBatch } from "../../../src/shared/db/batch";
import { devices, users, type UserRow } from "../../../src/shared/db/schema";
import { shardCount } from "../../../src/shared/db/shards";
import { fail, ok, type Refusal, type Result } from "../../../src/shared/errors";
import { newId } from "../../../src/shared/ids";
import type { Session, TokenPair } from "../../../src/shared/schemas/auth";
import type { Caller } from "../env";
import { actorOf, incomingShares } from "./access";
import { openDirectory, type DirectoryDb } from "./directory";
import { hubFor } from "./hub";
import { placeUser } from "./placement";
import {
	createSession,
	loadCaller,
	rotateRefreshToken,
	sessionStatements,
	signOutDevice,
	type NewSession,
	type Rotation,
} from "./sessions";
import { attemptSucceeded, clientAddress, countAttempt, loginKeys, signupKeys } from "./throttle";
import { accessTtl, signAccessToken } from "./tokens";

/** What a signup or login asks for: `address` is the client's `CF-Connecting-IP`, which the throttle counts. */
export interface Credentials {
	email: string;
	password: string;
	deviceName: string;
	address: string | undefined;
}

/** The credentials of a signup or login body; `deviceName` names the device when the body does not. */
export function credentials(
	body: { email: string; password: string; device_name?: string | undefined },
	deviceName: string,
	address: string | undefined,
): Credentials {
	return { email: body.email, password: body.password, deviceName: body.device_name ?? deviceName, address };
}

/** 429 with the seconds to wait in the details (the error handler also sends them as `Retry-After`). */
function rateLimited(message: string, retryAfterSeconds: number): Refusal {
	return fail("RATE_LIMITED", message, [{ retry_after_seconds: retryAfterSeconds }]);
}

/** The answer of a signup or login: the account, the new device and its tokens. */
async function sessionOf(env: Env, user: UserRow, session: NewSession): Promise<Session> {
	return {
		user: { id: user.id, email: user.email },
		device_id: session.deviceId,
		access_token: await signAccessToken(env, { userId: user.id, deviceId: session.deviceId, shard: user.shard }),
		refresh_token: session.refreshToken,
		expires_in: accessTtl(env),
	};
}

/** Creates an account, its root folder and its first device, within the signup throttle. */
export async function signUp(env: Env, input: Credentials): Promise<Result<Session>> {
	const db = openDirectory(env.DIRECTORY);
	const verdict = await countAttempt(db, signupKeys(clientAddress(input.address)), 0);
	if (verdict.refuse) return rateLimited("too many signups from this address; try again later", verdict.retryAfterSeconds);
	const created = await createAccount(db, {
		email: input.email,
		passwordHash: await hashPassword(input.password, { pepper: (await passwordPeppers(env)).current }),
		deviceName: input.deviceName,
		shards: shardCount(env),
		quotaBytes: Number(env.DEFAULT_QUOTA_BYTES),
		refreshTtlSeconds: Number(env.REFRESH_TOKEN_TTL_SECONDS),
	});
	if (!created.ok) return created;
	const root = await hubFor(env, created.value.user.id).ensureRoot();
	if (!root.ok) return root;
	return ok(await sessionOf(env, created.value.user, created.value));
}

/** Checks a password within the login throttle and registers a new device (docs/decisions/0015). */
export async function logIn(env: Env, input: Credentials): Promise<Result<Session>> {
	const db = openDirectory(env.DIRECTORY);
	const keys = loginKeys(input.email, clientAddress(input.address));
	const verdict = await countAttempt(db, keys, Number(env.LOGIN_SLOWDOWN_MS ?? "250"));
	if (verdict.refuse) return rateLimited("too many failed logins; try again later", verdict.retryAfterSeconds);
	if (verdict.delayMs > 0) await scheduler.wait(verdict.delayMs);
	const user = await findUserByEmail(db, input.email);
	// An unknown email costs the same PBKDF2 time as a wrong password, so
	// timing does not reveal which emails have accounts.
	const peppers = await passwordPeppers(env);
	const valid = user
		? await verifyPassword(input.password, user.passwordHash, peppers.all)
		: await verifyPasswordAgainstDummy(input.password, peppers.current);
	if (!user || !valid) return fail("UNAUTHENTICATED", "wrong email or password");
	await attemptSucceeded(db, keys);
	// Older parameters or an older pepper (or none): re-hashed now that the password is known.
	if (needsRehash(user.passwordHash, peppers.current))
		await updatePasswordHash(db, user.id, await hashPassword(input.password, { pepper: peppers.current }));
	const session = await createSession(env, db, user.id, input.deviceName, Number(env.REFRESH_TOKEN_TTL_SECONDS));
	return ok(await sessionOf(env, user, session));
}

/**
 * Deletes the caller's account once they give their password again
 * (counted like a login). The account leaves every share it is in (each
 * owner's hub removes it and tells the other members), then its hub ends
 * the shares it owns and marks the whole tree for deletion; then no password
 * works any more and every device is signed out, so sessions end at once.
 * The hub deletes the tree in the background and the directory row last
 * (docs/decisions/0027).
 */
export async function deleteAccount(env: Env, caller: Caller, password: string, address: string | undefined): Promise<Result<void>> {
	const db = openDirectory(env.DIRECTORY);
	const keys = loginKeys(caller.email, clientAddress(address));
	const verdict = await countAttempt(db, keys, Number(env.LOGIN_SLOWDOWN_MS ?? "250"));
	if (verdict.refuse) return rateLimited("too many wrong passwords; try again later", verdict.retryAfterSeconds);
	if (verdict.delayMs > 0) await scheduler.wait(verdict.delayMs);
	const [user] = await db.select().from(users).where(eq(users.id, caller.userId)).limit(1);
	if (!user || !(await verifyPassword(password, user.passwordHash, (await passwordPeppers(env)).all)))
		return fail("FORBIDDEN", "wrong password", [{ field: "password", reason: "wrong_password" }]);
	await attemptSucceeded(db, keys);
	for (const share of await incomingShares(env, caller)) {
		const left = await hubFor(env, share.owner_id).removeShareMember({
			shareId: share.share_id,
			memberId: caller.userId,
			actor: actorOf(caller),
		});
		// Not found: the owner ended the share, or removed the account, meanwhile.
		if (!left.ok && left.error.code !== "NOT_FOUND") return left;
	}
	const marked = await hubFor(env, caller.userId).deleteAccount({ actor: actorOf(caller) });
	if (!marked.ok) return marked;
	// An empty hash matches no password: nobody signs in while the tree is being deleted.
	await db.update(users).set({ passwordHash: "" }).where(eq(users.id, caller.userId));
	const live = await db
		.select({ id: devices.id })
		.from(devices)
		.where(and(eq(devices.userId, caller.userId), isNull(devices.revokedAt)));
	for (const device of live) await signOutDevice(env, db, caller.userId, device.id);
	return ok(undefined);
}

/**
 * Rotates a refresh token (services/sessions.ts, grace included) and signs a
 * fresh access token for its device, which carries the user's shard as the
 * directory says it now.
 */
export async function renewSession(
	env: Env,
	refreshToken: string,
): Promise<Result<{ caller: Caller; rotation: Rotation; tokens: TokenPair }>> {
	const rotated = await rotateRefreshToken(env, openDirectory(env.DIRECTORY), refreshToken, Number(env.REFRESH_TOKEN_TTL_SECONDS));
	if (!rotated.ok) return rotated;
	const rotation = rotated.value;
	const loaded = await loadCaller(env, rotation);
	if (!loaded.ok) return loaded;
	// Signed out between the rotation and this read.
	if (loaded.value === null) return fail("UNAUTHENTICATED", "this device has been signed out");
	const caller = loaded.value;
	return ok({
		caller,
		rotation,
		tokens: {
			access_token: await signAccessToken(env, { userId: caller.userId, deviceId: caller.deviceId, shard: caller.shard }),
			refresh_token: rotation.refreshToken,
			expires_in: accessTtl(env),
		},
	});
}

let cachedPeppers: { secret: string; peppers: Promise<PasswordPepper[]> } | null = null;

/**
 * The password peppers from PASSWORD_PEPPER (docs/decisions/0016), imported
 * once per isolate: `current` peppers new hashes, `all` verifies old ones.
 */
export async function passwordPeppers(env: { PASSWORD_PEPPER: string }): Promise<{ current: PasswordPepper; all: PasswordPepper[] }> {
	if (cachedPeppers?.secret !== env.PASSWORD_PEPPER)
		cachedPeppers = { secret: env.PASSWORD_PEPPER, peppers: importPasswordPeppers(env.PASSWORD_PEPPER) };
	const all = await cachedPeppers.peppers;
	const current = all[0];
	if (!current) throw new Error("PASSWORD_PEPPER holds no pepper");
	return { current, all };
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

/** The account with this (already normalized) email. */
export async function findUserByEmail(db: DirectoryDb, email: string): Promise<UserRow | null> {
	const rows = await db.select().from(users).where(eq(users.email, email)).limit(1);
	return rows[0] ?? null;
}

/** Replaces a user's password hash (used to upgrade old hash parameters at login). */
export async function updatePasswordHash(db: DirectoryDb, userId: string, passwordHash: string): Promise<void> {
	await db.update(users).set({ passwordHash }).where(eq(users.id, userId));
}
