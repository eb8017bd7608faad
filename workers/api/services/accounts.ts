/** Accounts in the directory: creating one, finding one, replacing its password hash. */
import { eq } from "drizzle-orm";
import { importPasswordPeppers, type PasswordPepper } from "../../../src/shared/crypto";
import { runBatch } from "../../../src/shared/db/batch";
import { users, type UserRow } from "../../../src/shared/db/schema";
import { fail, ok, type Result } from "../../../src/shared/errors";
import { newId } from "../../../src/shared/ids";
import type { DirectoryDb } from "./directory";
import { placeUser } from "./placement";
import { sessionStatements, type NewSession } from "./sessions";

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
