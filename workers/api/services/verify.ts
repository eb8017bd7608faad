/**
 * Checks content hashes that clients declared (an upload session's
 * `content_hash`) against the stored blocks (audit M7, docs/decisions/0020).
 * Small uploads are checked before their commit; larger ones commit at once
 * and are checked right after, with the housekeeping cron as the backstop.
 * Until then the version is unverified and downloads assert no digest.
 */
import { createHash } from "node:crypto";
import { and, asc, eq, lt, sql } from "drizzle-orm";
import type { KeyRing } from "../../../src/shared/crypto";
import { versionBlocks, versions } from "../../../src/shared/db/schema";
import { shardAt, shardCount, type ShardDb } from "../../../src/shared/db/shards";
import type { Result } from "../../../src/shared/errors";
import { BlockUnavailableError, feedBlocks } from "./block-store";
import { hubFor } from "./hub";

/** Up to this size a declared hash is checked before the commit: reading back 64 MiB costs a fraction of a second. */
export const VERIFY_BEFORE_COMMIT_BYTES = 64 * 1024 * 1024;

/** Unverified versions one housekeeping run checks per shard; each is a full read of its content. */
export const VERIFY_PER_SHARD = 20;

/** The cron leaves a fresh version to the check its commit started. */
const VERIFY_GRACE_MS = 10 * 60_000;

/** Hashes a version's stored blocks in file order and hands the result to its owner's hub. */
export async function verifyVersionHash(
	env: Env,
	db: ShardDb,
	ring: KeyRing,
	version: { id: string; userId: string },
): Promise<Result<{ corrected: boolean }>> {
	const blocks = await db
		.select({ hash: versionBlocks.hash })
		.from(versionBlocks)
		.where(eq(versionBlocks.versionId, version.id))
		.orderBy(asc(versionBlocks.offset));
	const hash = createHash("sha256");
	await feedBlocks(
		env.BLOBS,
		ring,
		blocks.map((b) => b.hash),
		hash,
	);
	return hubFor(env, version.userId).settleContentHash({ versionId: version.id, contentHash: hash.digest("hex") });
}

/**
 * The cron's sweep: checks versions still unverified after the grace period
 * (the check after their commit was cut off), oldest first. A version whose
 * block is unreadable stays unverified and is logged; the rest go on.
 */
export async function verifyPendingHashes(env: Env, ring: KeyRing, now = Date.now()): Promise<{ verified: number }> {
	const before = new Date(now - VERIFY_GRACE_MS).toISOString();
	let verified = 0;
	const failures: unknown[] = [];
	for (let i = 0; i < shardCount(env); i++) {
		const db = shardAt(env, i);
		const pending = await db
			.select({ id: versions.id, userId: versions.userId })
			.from(versions)
			// A literal, not a parameter, so SQLite can use the partial index versions_unverified.
			.where(and(sql`hash_verified = 0`, lt(versions.createdAt, before)))
			.orderBy(asc(versions.createdAt))
			.limit(VERIFY_PER_SHARD);
		for (const version of pending) {
			try {
				const settled = await verifyVersionHash(env, db, ring, version);
				if (!settled.ok) throw new Error(`${version.id}: ${settled.error.code} ${settled.error.message}`);
				verified++;
			} catch (err) {
				if (!(err instanceof BlockUnavailableError)) failures.push(err);
				else console.error(JSON.stringify({ verify: version.id, error: err.message }));
			}
		}
	}
	if (failures.length > 0) throw new AggregateError(failures, `hash verification failed for ${failures.length} version(s)`);
	return { verified };
}
