/**
 * Login and signup throttling in the directory (docs/decisions/0015).
 *
 * Every attempt is counted before it is worked on, with one atomic upsert
 * per key whose RETURNING value decides: however many attempts arrive at
 * once, only the first `refuseAfter` of a window get through. A login that
 * succeeds takes its attempt back.
 */
import { lt, sql } from "drizzle-orm";
import { runBatch } from "../../../src/shared/db/batch";
import { throttleCounters } from "../../../src/shared/db/schema";
import type { DirectoryDb } from "./directory";

const MINUTE_MS = 60_000;

/**
 * The rules of each kind of key. An email alone is only ever slowed down, so
 * that nobody can lock its owner out by guessing wrong on purpose; the hard
 * limits are per client address and per (email, address). Addresses get
 * higher limits: many users share NATs.
 */
const LIMITS = {
	email: { windowMs: 15 * MINUTE_MS, slowAfter: 5, refuseAfter: null },
	pair: { windowMs: 15 * MINUTE_MS, slowAfter: null, refuseAfter: 10 },
	ip: { windowMs: 15 * MINUTE_MS, slowAfter: 20, refuseAfter: 50 },
	signup: { windowMs: 60 * MINUTE_MS, slowAfter: null, refuseAfter: 10 },
} as const satisfies Record<string, { windowMs: number; slowAfter: number | null; refuseAfter: number | null }>;

/** The longest delay a slowed-down attempt waits. */
const MAX_DELAY_MS = 5_000;

export type ThrottleKey = { kind: keyof typeof LIMITS; value: string };

export type ThrottleVerdict = { refuse: false; delayMs: number } | { refuse: true; retryAfterSeconds: number };

/**
 * The throttling key of a client address (`CF-Connecting-IP`), or null when
 * there is none to count on: the header is absent outside Cloudflare, and a
 * loopback address is a local stack, whose clients would all share it. An
 * IPv6 client usually holds a whole /64, so that is the unit counted.
 */
export function clientAddress(header: string | undefined): string | null {
	const address = (header?.trim().toLowerCase() ?? "").replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "");
	if (address === "" || address === "::1" || address.startsWith("127.")) return null;
	if (!address.includes(":")) return address;
	const [head = "", tail = ""] = address.split("::");
	const left = head === "" ? [] : head.split(":");
	const right = tail === "" ? [] : tail.split(":");
	const groups = [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
	if (groups.length !== 8 || !groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return address;
	return `${groups
		.slice(0, 4)
		.map((g) => parseInt(g, 16).toString(16))
		.join(":")}::/64`;
}

/** The keys a login attempt counts against: the email, and with an address, the address and the pair. */
export function loginKeys(email: string, address: string | null): ThrottleKey[] {
	const keys: ThrottleKey[] = [{ kind: "email", value: email }];
	if (address !== null) keys.push({ kind: "pair", value: `${address} ${email}` }, { kind: "ip", value: address });
	return keys;
}

/** The keys a signup counts against: the client address, if there is one. */
export function signupKeys(address: string | null): ThrottleKey[] {
	return address === null ? [] : [{ kind: "signup", value: address }];
}

function keyOf(key: ThrottleKey): string {
	return `${key.kind}:${key.value}`;
}

/**
 * Counts an attempt against every key, atomically per key, and decides from
 * the counts: refused while any hard limit is passed, else delayed (doubling
 * from `baseDelayMs`, at most MAX_DELAY_MS) past any slowdown threshold.
 */
export async function countAttempt(db: DirectoryDb, keys: ThrottleKey[], baseDelayMs: number, now = Date.now()): Promise<ThrottleVerdict> {
	if (keys.length === 0) return { refuse: false, delayMs: 0 };
	const results = await runBatch(
		db.$client,
		keys.map((key) => {
			const windowMs = LIMITS[key.kind].windowMs;
			return db.run(sql`INSERT INTO throttle_counters (key, hits, window_started_at, last_hit_at)
				VALUES (${keyOf(key)}, 1, ${now}, ${now})
				ON CONFLICT (key) DO UPDATE SET
					hits = CASE WHEN ${now} - window_started_at > ${windowMs} THEN 1 ELSE hits + 1 END,
					window_started_at = CASE WHEN ${now} - window_started_at > ${windowMs} THEN ${now} ELSE window_started_at END,
					last_hit_at = ${now}
				RETURNING hits, window_started_at`);
		}),
	);
	let delayMs = 0;
	let retryAfterSeconds = 0;
	keys.forEach((key, i) => {
		const row = results[i]?.results[0] as { hits: number; window_started_at: number } | undefined;
		if (!row) throw new Error("throttle: the upsert returned no row");
		const limit: { windowMs: number; slowAfter: number | null; refuseAfter: number | null } = LIMITS[key.kind];
		// `hits` includes this attempt; the thresholds count the ones before it.
		const before = row.hits - 1;
		if (limit.refuseAfter !== null && before >= limit.refuseAfter) {
			retryAfterSeconds = Math.max(retryAfterSeconds, Math.ceil((row.window_started_at + limit.windowMs - now) / 1000), 1);
		}
		if (limit.slowAfter !== null && before >= limit.slowAfter) {
			delayMs = Math.max(delayMs, Math.min(baseDelayMs * 2 ** (before - limit.slowAfter), MAX_DELAY_MS));
		}
	});
	return retryAfterSeconds > 0 ? { refuse: true, retryAfterSeconds } : { refuse: false, delayMs };
}

/**
 * A login succeeded: the email's and the pair's counts are forgotten (the
 * caller knows the password), and the address gets this attempt back but
 * keeps the failures, so logging into one's own account does not reset an
 * address's budget for guessing others'.
 */
export async function loginSucceeded(db: DirectoryDb, keys: ThrottleKey[]): Promise<void> {
	await runBatch(
		db.$client,
		keys.map((key) =>
			key.kind === "ip"
				? db.run(sql`UPDATE throttle_counters SET hits = MAX(hits - 1, 0) WHERE key = ${keyOf(key)}`)
				: db.run(sql`DELETE FROM throttle_counters WHERE key = ${keyOf(key)}`),
		),
	);
}

/** Deletes the counters whose window has ended (the cron). */
export async function pruneThrottle(db: DirectoryDb, now = Date.now()): Promise<void> {
	const longest = Math.max(...Object.values(LIMITS).map((l) => l.windowMs));
	await db.delete(throttleCounters).where(lt(throttleCounters.windowStartedAt, now - longest));
}
