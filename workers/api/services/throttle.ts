/** Login throttling in the directory. */
import { eq, sql } from "drizzle-orm";
import { runBatch } from "../../../src/shared/db/batch";
import { loginFailures } from "../../../src/shared/db/schema";
import type { DirectoryDb } from "./directory";

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
