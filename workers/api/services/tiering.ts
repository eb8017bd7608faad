/**
 * Cold tiering (docs/decisions/0027, docs/storage.md "Cold storage"): a block
 * whose every version, in every shard, has gone unread for COLD_AFTER_DAYS is
 * rewritten, byte for byte, in R2's InfrequentAccess class, and back in
 * Standard once one of its versions is read or committed again.
 *
 * Reads cost no write of their own: a download stamps its version's
 * `read_month` at most once a month. The collector's weekly scan of each
 * `blocks/<hh>/` prefix decides, per listed block, with one query per shard
 * per page, and records each cold block in `block_tiers` of the shard its
 * hash falls in. A row names the object written at `since`; any later write
 * (a re-upload is always Standard) makes it stale, and the scan drops it.
 */
import { sql } from "drizzle-orm";
import { runBatch, type BatchQuery } from "../../../src/shared/db/batch";
import { inList } from "../../../src/shared/db/lists";
import { blockShardIndex, type ShardDb } from "../../../src/shared/db/shards";
import { listedByOpenUpload } from "./gc";

/** R2's class for blocks that are rarely read: cheaper to keep, dearer to read (docs/storage.md). */
export const COLD_CLASS = "InfrequentAccess";

const DAY_MS = 86_400_000;

/** Rewrites one scan unit makes at most, each a get and a put of up to one block: the rest is left to its successor. */
export const REWRITES_PER_UNIT = 200;

/** The month of `at` as YYYYMM (UTC), the unit of `versions.read_month`. */
export function monthOf(at: number): number {
	const d = new Date(at);
	return d.getUTCFullYear() * 100 + d.getUTCMonth() + 1;
}

/** How long a block's versions must go unread before it goes cold; 0 turns tiering off. */
export function coldAfterMs(env: { COLD_AFTER_DAYS?: string }): number {
	const days = Number(env.COLD_AFTER_DAYS ?? 90);
	return Number.isFinite(days) && days > 0 ? days * DAY_MS : 0;
}

/**
 * Records that a version was read this month, unless its row already says so:
 * the caller has just loaded the row, so a second read in the month costs no
 * query at all, and the condition keeps concurrent first reads to one change.
 */
export async function touchRead(db: ShardDb, version: { id: string; readMonth: number | null }, now = Date.now()): Promise<void> {
	const month = monthOf(now);
	if (version.readMonth !== null && version.readMonth >= month) return;
	await db.run(sql`UPDATE versions SET read_month = ${month} WHERE id = ${version.id} AND (read_month IS NULL OR read_month < ${month})`);
}

/** {@link touchRead} for many versions of one shard: one statement, whatever their count. */
export async function touchReads(
	db: ShardDb,
	versions: readonly { id: string; readMonth: number | null }[],
	now = Date.now(),
): Promise<void> {
	const month = monthOf(now);
	const stale = versions.filter((v) => v.readMonth === null || v.readMonth < month).map((v) => v.id);
	if (stale.length === 0) return;
	await db.run(
		sql`UPDATE versions SET read_month = ${month} WHERE ${inList(sql`id`, stale)} AND (read_month IS NULL OR read_month < ${month})`,
	);
}

/** What a scan of one page did to tiers. */
export interface TierReport {
	/** Blocks rewritten in {@link COLD_CLASS}. */
	cooled: number;
	/** Cold blocks rewritten in Standard: read or committed again. */
	warmed: number;
	/** Key of the last listed object this page decided; the rest waits for a successor. */
	decidedThrough: string | null;
}

/**
 * Decides the tier of each listed block and rewrites those whose tier
 * changes, at most {@link REWRITES_PER_UNIT}. A block no version references
 * is the collector's, not ours, and is left alone.
 */
export async function tierBlocks(
	shards: readonly ShardDb[],
	bucket: R2Bucket,
	objects: readonly R2Object[],
	options: { now: number; coldAfterMs: number },
): Promise<TierReport> {
	const report: TierReport = { cooled: 0, warmed: 0, decidedThrough: objects.at(-1)?.key ?? null };
	if (options.coldAfterMs <= 0 || objects.length === 0) return report;
	const byHash = new Map(objects.map((o) => [hashOf(o.key), o]));
	const recorded = await recordedTiers(shards, [...byHash.keys()]);
	const stale: string[] = [];
	const cold = new Set<string>();
	for (const [hash, since] of recorded) {
		const object = byHash.get(hash);
		if (object && object.uploaded.getTime() <= since) cold.add(hash);
		else stale.push(hash);
	}
	const uses = await versionUses(shards, [...byHash.keys()], options.now - options.coldAfterMs);

	const cooled: { hash: string; object: R2Object }[] = [];
	const warmed: string[] = [];
	let rewrites = 0;
	for (const [hash, object] of byHash) {
		const use = uses.get(hash);
		const wantCold = use !== undefined && use.versioned && !use.recent && !use.listed;
		const wantStandard = cold.has(hash) && use !== undefined && use.versioned && !wantCold;
		if (!(wantCold && !cold.has(hash)) && !wantStandard) continue;
		if (rewrites === REWRITES_PER_UNIT) {
			report.decidedThrough = keyBefore(objects, object.key);
			break;
		}
		rewrites++;
		const written = await rewrite(bucket, object.key, wantStandard ? "Standard" : COLD_CLASS);
		if (written === null) stale.push(hash);
		else if (wantStandard) warmed.push(hash);
		else cooled.push({ hash, object: written });
	}
	await record(shards, cooled, [...stale, ...warmed]);
	report.cooled = cooled.length;
	report.warmed = warmed.length;
	return report;
}

function hashOf(key: string): string {
	return key.slice(key.lastIndexOf("/") + 1);
}

/** The key listed just before `key`: where a successor must start so that `key` is decided too. */
function keyBefore(objects: readonly R2Object[], key: string): string | null {
	const i = objects.findIndex((o) => o.key === key);
	return i > 0 ? (objects[i - 1]?.key ?? null) : null;
}

/** The recorded cold blocks among `hashes`, with the upload time of the object each row names. */
async function recordedTiers(shards: readonly ShardDb[], hashes: readonly string[]): Promise<Map<string, number>> {
	const found = new Map<string, number>();
	await Promise.all(
		groupByShard(shards, hashes).map(async ([db, group]) => {
			const rows = await db.all<{ hash: string; since: string }>(
				sql`SELECT hash, since FROM block_tiers WHERE hash IN (SELECT value FROM json_each(${JSON.stringify(group)}))`,
			);
			for (const r of rows) found.set(r.hash, Date.parse(r.since));
		}),
	);
	return found;
}

interface VersionUse {
	/** A committed version lists the block. */
	versioned: boolean;
	/** One of those versions was created or read after the cut-off (read months count to their last day). */
	recent: boolean;
	/** An open upload lists it: about to be committed. */
	listed: boolean;
}

/** How the versions of every shard use each of `hashes`, judged against `oldBefore`. */
async function versionUses(shards: readonly ShardDb[], hashes: readonly string[], oldBefore: number): Promise<Map<string, VersionUse>> {
	const uses = new Map<string, VersionUse>();
	if (hashes.length === 0) return uses;
	const cutoffIso = new Date(oldBefore).toISOString();
	const nowIso = new Date().toISOString();
	// A version read in month m was read at the latest on its last day: it is
	// recent unless the cut-off falls in a later month.
	const cutoffMonth = monthOf(oldBefore);
	const list = JSON.stringify(hashes);
	await Promise.all(
		shards.map(async (db) => {
			const rows = await db.all<{ hash: string; versioned: number; recent: number; listed: number }>(sql`
				SELECT j.value AS hash,
					EXISTS (SELECT 1 FROM version_blocks vb WHERE vb.hash = j.value) AS versioned,
					EXISTS (SELECT 1 FROM version_blocks vb JOIN versions v ON v.id = vb.version_id
						WHERE vb.hash = j.value AND (v.created_at > ${cutoffIso} OR v.read_month >= ${cutoffMonth})) AS recent,
					${listedByOpenUpload(nowIso)} AS listed
				FROM json_each(${list}) j`);
			for (const r of rows) {
				const use = uses.get(r.hash) ?? { versioned: false, recent: false, listed: false };
				uses.set(r.hash, {
					versioned: use.versioned || r.versioned === 1,
					recent: use.recent || r.recent === 1,
					listed: use.listed || r.listed === 1,
				});
			}
		}),
	);
	return uses;
}

/**
 * Writes the object again, unchanged, in `storageClass`, only if it is still
 * the object just read: a block the collector deleted meanwhile stays deleted.
 * @returns the new object, or null when it is gone or changed.
 */
async function rewrite(bucket: R2Bucket, key: string, storageClass: string): Promise<R2Object | null> {
	const current = await bucket.get(key);
	if (current === null) return null;
	const bytes = await current.arrayBuffer();
	return bucket.put(key, bytes, {
		httpMetadata: current.httpMetadata,
		customMetadata: current.customMetadata,
		storageClass,
		onlyIf: { etagMatches: current.etag },
	});
}

/** Records cooled blocks and forgets rows that name an object no longer cold, each in its hash's shard. */
async function record(
	shards: readonly ShardDb[],
	cooled: readonly { hash: string; object: R2Object }[],
	forget: readonly string[],
): Promise<void> {
	const statements = new Map<ShardDb, BatchQuery[]>();
	const add = (db: ShardDb, q: BatchQuery) => statements.set(db, [...(statements.get(db) ?? []), q]);
	const rows = cooled.map(({ hash, object }) => ({ hash, since: object.uploaded.toISOString(), size: object.size }));
	for (const [db, group] of groupByShard(
		shards,
		rows.map((r) => r.hash),
	)) {
		const mine = JSON.stringify(rows.filter((r) => group.includes(r.hash)));
		add(
			db,
			db.run(sql`INSERT INTO block_tiers (hash, tier, since, size)
				SELECT value ->> 'hash', ${COLD_CLASS}, value ->> 'since', value ->> 'size' FROM json_each(${mine}) WHERE true
				ON CONFLICT (hash) DO UPDATE SET tier = excluded.tier, since = excluded.since, size = excluded.size`),
		);
	}
	for (const [db, group] of groupByShard(shards, forget))
		add(db, db.run(sql`DELETE FROM block_tiers WHERE hash IN (SELECT value FROM json_each(${JSON.stringify(group)}))`));
	await Promise.all([...statements].map(([db, qs]) => runBatch(db.$client, qs)));
}

function groupByShard(shards: readonly ShardDb[], hashes: readonly string[]): [ShardDb, string[]][] {
	const groups = new Map<number, string[]>();
	for (const h of hashes) {
		const i = blockShardIndex(h, shards.length);
		groups.set(i, [...(groups.get(i) ?? []), h]);
	}
	return [...groups].map(([i, group]) => [shards[i] as ShardDb, group]);
}
