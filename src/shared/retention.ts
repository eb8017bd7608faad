/**
 * Version retention (docs/decisions/0022-version-retention.md): which of a
 * file's versions a thinning run drops. Pure, so the hub (after a commit),
 * the cron and the tests all apply exactly the same rule.
 */

/** How much history a file keeps; from the [vars] VERSION_MAX_AGE_DAYS and VERSION_MAX_VERSIONS. */
export interface RetentionPolicy {
	/** Versions older than this many days are dropped; 0 keeps them forever (thinned to one per week). */
	maxAgeDays: number;
	/** At most this many versions per file, head and kept ones included; 0 means no cap. */
	maxVersions: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = { maxAgeDays: 30, maxVersions: 100 };

/** A version as retention sees it. */
export interface RetainedVersion {
	id: string;
	/** Commit time, in milliseconds since the epoch. */
	createdAt: number;
	/** Pinned (keep_forever) or labelled: never dropped. */
	kept: boolean;
	/** The file's current version: never dropped. */
	isHead: boolean;
	/** Who committed it (null: the file's owner). */
	authorId?: string | null;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

/** Below each age, the newest version per interval of this length survives; the last tier has no upper bound. */
const TIERS: { below: number; interval: number }[] = [
	{ below: 10 * MINUTE, interval: 0 },
	{ below: HOUR, interval: MINUTE },
	{ below: DAY, interval: HOUR },
	{ below: 30 * DAY, interval: DAY },
	{ below: Infinity, interval: WEEK },
];

/**
 * The ids of the versions to drop at `now`, in commit order. `versions` must
 * be in commit order (oldest first): "newest" and "oldest" follow it, so two
 * versions in one millisecond still have an order.
 *
 * Every version younger than 10 minutes stays; older ones are thinned to the
 * newest per minute (under an hour), per hour (under a day), per day (under
 * 30 days) and per week beyond, on fixed clock intervals. Versions at least
 * `maxAgeDays` old go. Then, while the file has more than `maxVersions`, the
 * oldest droppable one goes; the last version before someone else's edits
 * is not droppable by count, so a burst of commits by one share member
 * cannot push out what the file was before they started. The head and kept
 * versions are never dropped.
 * Running it again on what it keeps, at the same `now`, drops nothing.
 */
export function versionsToExpire(versions: readonly RetainedVersion[], now: number, policy: RetentionPolicy): string[] {
	const drop = new Set<number>();
	// Walking newest first, the first version seen in a bucket is its newest.
	const filled = new Set<string>();
	for (let i = versions.length - 1; i >= 0; i--) {
		const v = versions[i];
		if (v === undefined) continue;
		const age = now - v.createdAt;
		const tier = TIERS.findIndex((t) => age < t.below);
		const bucket = tier === 0 ? null : `${tier}:${Math.floor(v.createdAt / (TIERS[tier]?.interval ?? WEEK))}`;
		const newestInBucket = bucket === null || !filled.has(bucket);
		if (bucket !== null) filled.add(bucket);
		if (v.isHead || v.kept) continue;
		const tooOld = policy.maxAgeDays > 0 && age >= policy.maxAgeDays * DAY;
		if (tooOld || !newestInBucket) drop.add(i);
	}
	if (policy.maxVersions > 0) {
		let left = versions.length - drop.size;
		for (let i = 0; i < versions.length && left > policy.maxVersions; i++) {
			const v = versions[i];
			if (v === undefined || v.isHead || v.kept || drop.has(i) || handedOver(versions, i)) continue;
			drop.add(i);
			left--;
		}
	}
	return versions.filter((_, i) => drop.has(i)).map((v) => v.id);
}

/** True when the next version is by someone else: this one is what the file was when they took over. */
function handedOver(versions: readonly RetainedVersion[], i: number): boolean {
	const next = versions[i + 1];
	return next !== undefined && (next.authorId ?? null) !== (versions[i]?.authorId ?? null);
}

/** The policy from [vars]: a whole number of at least 0 each, the default when unset or malformed. */
export function retentionPolicy(vars: { VERSION_MAX_AGE_DAYS?: string; VERSION_MAX_VERSIONS?: string }): RetentionPolicy {
	return {
		maxAgeDays: wholeNumber(vars.VERSION_MAX_AGE_DAYS, DEFAULT_RETENTION.maxAgeDays),
		maxVersions: wholeNumber(vars.VERSION_MAX_VERSIONS, DEFAULT_RETENTION.maxVersions),
	};
}

function wholeNumber(value: string | undefined, fallback: number): number {
	if (value === undefined || value.trim() === "") return fallback;
	const n = Number(value);
	return Number.isSafeInteger(n) && n >= 0 ? n : fallback;
}
