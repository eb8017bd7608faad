/**
 * Login, signup and link-password throttling in the directory
 * (docs/decisions/0015, 0023).
 *
 * Every attempt is counted before it is worked on, with one atomic upsert
 * per key whose RETURNING value decides: however many attempts arrive at
 * once, only the first `refuseAfter` of a window get through. An attempt
 * that succeeds takes itself back.
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
	email: { windowMs: 15 * MINUTE_MS, slowAfter: 5, refuseAfter: null, onSuccess: "forget" },
	pair: { windowMs: 15 * MINUTE_MS, slowAfter: null, refuseAfter: 10, onSuccess: "forget" },
	ip: { windowMs: 15 * MINUTE_MS, slowAfter: 20, refuseAfter: 50, onSuccess: "give_back" },
	signup: { windowMs: 60 * MINUTE_MS, slowAfter: null, refuseAfter: 10, onSuccess: "forget" },
	// Public link passwords (docs/decisions/0023): per (link, address), and per link from anywhere.
	link_pair: { windowMs: 10 * MINUTE_MS, slowAfter: null, refuseAfter: 5, onSuccess: "forget" },
	link: { windowMs: 60 * MINUTE_MS, slowAfter: null, refuseAfter: 100, onSuccess: "give_back" },
} as const satisfies Record<
	string,
	{ windowMs: number; slowAfter: number | null; refuseAfter: number | null; onSuccess: "forget" | "give_back" }
>;

/** The longest delay a slowed-down attempt waits. */
const MAX_DELAY_MS = 5_000;

export type ThrottleKey = { kind: keyof typeof LIMITS; value: string };

/** `first`: this is the first refused attempt of a window (a lockout starts now). */
export type ThrottleVerdict = { refuse: false; delayMs: number } | { refuse: true; retryAfterSeconds: number; first: boolean };

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

/** The keys a public link's password attempt counts against: the link, and with an address, the (link, address) pair. */
export function linkUnlockKeys(linkId: string, address: string | null): ThrottleKey[] {
	const keys: ThrottleKey[] = [{ kind: "link", value: linkId }];
	if (address !== null) keys.push({ kind: "link_pair", value: `${linkId} ${address}` });
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
	let first = false;
	keys.forEach((key, i) => {
		const row = results[i]?.results[0] as { hits: number; window_started_at: number } | undefined;
		if (!row) throw new Error("throttle: the upsert returned no row");
		const limit: { windowMs: number; slowAfter: number | null; refuseAfter: number | null } = LIMITS[key.kind];
		// `hits` includes this attempt; the thresholds count the ones before it.
		const before = row.hits - 1;
		if (limit.refuseAfter !== null && before >= limit.refuseAfter) {
			if (before === limit.refuseAfter) first = true;
			retryAfterSeconds = Math.max(retryAfterSeconds, Math.ceil((row.window_started_at + limit.windowMs - now) / 1000), 1);
		}
		if (limit.slowAfter !== null && before >= limit.slowAfter) {
			delayMs = Math.max(delayMs, Math.min(baseDelayMs * 2 ** (before - limit.slowAfter), MAX_DELAY_MS));
		}
	});
	return retryAfterSeconds > 0 ? { refuse: true, retryAfterSeconds, first } : { refuse: false, delayMs };
}

/**
 * An attempt succeeded (a login, a link unlock): the counts of keys that name
 * what was proven (an email, a link from an address) are forgotten, and the
 * broader ones (an address, a link) get this attempt back but keep the
 * failures, so succeeding once does not reset a budget for guessing.
 */
export async function attemptSucceeded(db: DirectoryDb, keys: ThrottleKey[]): Promise<void> {
	await runBatch(
		db.$client,
		keys.map((key) =>
			LIMITS[key.kind].onSuccess === "give_back"
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
