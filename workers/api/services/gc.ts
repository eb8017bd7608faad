/**
 * The block collector: deletes R2 blocks that nothing references any more,
 * without ever deleting one a commit still needs (docs/decisions/0017).
 *
 * Candidates wait in each shard's `gc_candidates` (dead uploads, purges,
 * refused requests). A sweep takes a chunk of them and, for every hash:
 *
 * 1. skips it if a user references it (drop) or an open upload lists it (later);
 * 2. claims it: a tombstone in EVERY shard, and the candidate row goes in the
 *    same batch as the home shard's tombstone, so one of the two always exists;
 * 3. checks references again in every shard, now that the tombstones make
 *    every new reference wait (the user_blocks trigger), and heads the object:
 *    one written after the tombstones, or within the grace period, is spared;
 * 4. deletes the objects still doomed, then records the deletion in every
 *    shard under the shard's next gc_clock value.
 *
 * Every step is idempotent, and a sweep that dies leaves tombstones without a
 * deletion record: the next run treats them as deleted (a commit that wrote
 * those blocks before then sends them again) and queues their hashes again.
 */
import { sql, type SQL } from "drizzle-orm";
import { blockObjectKey } from "../../../src/shared/blocks";
import { runBatch, type BatchQuery } from "../../../src/shared/db/batch";
import { slices } from "../../../src/shared/db/lists";
import { shardAt, shardCount, type ShardDb } from "../../../src/shared/db/shards";

/** Candidates one run takes from each shard: a backlog drains over runs, and a run stays far below the subrequest limits. */
export const GC_CANDIDATES_PER_SHARD = 100;

/** Hashes per sweep: one JSON value per statement, one R2 delete call (at most 1,000 keys). */
export const GC_CHUNK = 1_000;

/** Objects written more recently than this are spared: an upload in flight may need them (docs/decisions/0007). */
export const GC_GRACE_MS = 3_600_000;

/** A sweep deletes nothing once this long has passed since it wrote its tombstones... */
const DELETE_DEADLINE_MS = 5 * 60_000;

/** ...so a tombstone still pending after this long belongs to a sweep that died. */
export const STALE_TOMBSTONE_MS = 60 * 60_000;

/**
 * Deletion records are kept this long, and until no open upload's clock is
 * older: a PUT content request never lasts this long, and uploads check
 * against their own clock.
 */
export const TOMBSTONE_RETENTION_MS = 48 * 3_600_000;

/** R2 heads in flight at once during a sweep. */
const HEAD_CONCURRENCY = 8;

/** Hashes of one prefix from which a sweep lists the prefix instead of heading each object. */
export const LIST_FROM = 20;

/** Pages such a listing reads at most: past them, the rest is headed (a prefix can hold far more objects than a sweep needs). */
const LIST_PAGES = 5;

/** What one run did, for logs and tests. */
export interface CollectReport {
	/** Objects deleted. */
	deleted: number;
	/** Candidates dropped because a user references them. */
	referenced: number;
	/** Candidates kept for a later run: listed by an open upload, or written recently. */
	deferred: number;
	/** Pending tombstones of dead sweeps that were recorded as deletions. */
	recovered: number;
	/** What failed; everything else still ran. */
	failures: unknown[];
}

export interface CollectOptions {
	/** The time the policy is judged at (candidate age, object age, open uploads); tests move it forward. */
	now?: number;
	graceMs?: number;
	perShard?: number;
}

/** Every shard of `env`. */
export function allShards(env: Env): ShardDb[] {
	return Array.from({ length: shardCount(env) }, (_, i) => shardAt(env, i));
}

/**
 * Queues blocks that may have lost their last reference. An existing
 * candidate keeps its place; the object's own age decides when it is old enough.
 */
export function enqueueCandidates(db: ShardDb, hashes: readonly string[], now = Date.now()): BatchQuery[] {
	const at = new Date(now).toISOString();
	return [...slices([...new Set(hashes)])].map((slice) =>
		db.run(sql`INSERT INTO gc_candidates (hash, enqueued_at) SELECT value, ${at} FROM json_each(${JSON.stringify(slice)}) WHERE true
			ON CONFLICT (hash) DO NOTHING`),
	);
}

/**
 * The shard's gc clock: a PUT content request reads it before storing any
 * block, and its commit is refused if a block it stored was deleted later.
 */
export async function readGcClock(db: ShardDb): Promise<number> {
	return gcClockOf((await gcClockStatement(db).all<{ seq: number }>()).results);
}

/** The statement of {@link readGcClock}, for a batch; read its rows with {@link gcClockOf}. */
export function gcClockStatement(db: ShardDb): D1PreparedStatement {
	return db.$client.prepare("SELECT seq FROM gc_clock WHERE id = 0");
}

export function gcClockOf(rows: { seq: number }[]): number {
	const seq = rows[0]?.seq;
	if (seq === undefined) throw new Error("gc_clock has no row: is shard migration 0006 applied?");
	return seq;
}

/**
 * One collector run: recovers what dead sweeps left, drops old deletion
 * records, then sweeps up to `perShard` due candidates of every shard. A
 * failing shard or sweep is reported and skipped; nothing is lost by it.
 */
export async function collectBlocks(env: Env, bucket: R2Bucket, options: CollectOptions = {}): Promise<CollectReport> {
	const now = options.now ?? Date.now();
	const graceMs = options.graceMs ?? GC_GRACE_MS;
	const perShard = options.perShard ?? GC_CANDIDATES_PER_SHARD;
	const shards = allShards(env);
	const report: CollectReport = { deleted: 0, referenced: 0, deferred: 0, recovered: 0, failures: [] };
	for (const db of shards) {
		try {
			report.recovered += await settleTombstones(db);
		} catch (err) {
			report.failures.push(err);
		}
	}
	for (const home of shards) {
		try {
			const swept = await sweepShard({ shards, home, bucket, now, graceMs }, perShard);
			report.deleted += swept.deleted;
			report.referenced += swept.referenced;
			report.deferred += swept.deferred;
		} catch (err) {
			report.failures.push(err);
		}
	}
	return report;
}

/** What one shard's sweep did; `more` when it took as many candidates as it was allowed (others may be due). */
export interface ShardSweep {
	examined: number;
	deleted: number;
	referenced: number;
	deferred: number;
	more: boolean;
}

/** Sweeps up to `limit` due candidates of `ctx.home`, in chunks of {@link GC_CHUNK}. */
export async function sweepShard(ctx: SweepContext, limit: number): Promise<ShardSweep> {
	const due = await dueCandidates(ctx.home, limit, ctx.now - ctx.graceMs);
	const out: ShardSweep = { examined: due.length, deleted: 0, referenced: 0, deferred: 0, more: due.length >= limit };
	for (const chunk of slices(due, GC_CHUNK)) {
		const swept = await sweep(ctx, chunk);
		out.deleted += swept.deleted.length;
		out.referenced += swept.referenced.length;
		out.deferred += swept.deferred.length;
	}
	return out;
}

/** Up to `limit` candidates of a shard queued at or before `before`, oldest first. */
export async function dueCandidates(db: ShardDb, limit: number, before: number): Promise<string[]> {
	const rows = await db.all<{ hash: string }>(
		sql`SELECT hash FROM gc_candidates WHERE enqueued_at <= ${new Date(before).toISOString()} ORDER BY enqueued_at LIMIT ${limit}`,
	);
	return rows.map((r) => r.hash);
}

export interface SweepContext {
	shards: ShardDb[];
	/** The shard whose candidates these are. */
	home: ShardDb;
	bucket: R2Bucket;
	now: number;
	graceMs: number;
}

export interface SweepOutcome {
	deleted: string[];
	referenced: string[];
	deferred: string[];
}

/** Runs the protocol above for candidates of `ctx.home`. */
export async function sweep(ctx: SweepContext, hashes: readonly string[]): Promise<SweepOutcome> {
	const { shards, home } = ctx;
	const first = await references(shards, hashes, ctx.now);
	const referenced = hashes.filter((h) => first.get(h) === "referenced");
	const listed = hashes.filter((h) => first.get(h) === "listed");
	// Only the rows this sweep took: a purge since the check may have queued a hash again, and needs it collected.
	await batch(home, [...dropCandidates(home, referenced, ctx.now - ctx.graceMs), ...enqueueAgain(home, listed, ctx.now)]);
	const doomed = hashes.filter((h) => !first.has(h));
	if (doomed.length === 0) return { deleted: [], referenced, deferred: listed };

	const runId = crypto.randomUUID();
	const doomedAt = Date.now();
	let deleting = false;
	try {
		// The home shard's tombstones and its claim on the candidates land together.
		await runBatch(home.$client, [doom(home, runId, doomed, doomedAt), ...dropCandidates(home, doomed)]);
		await inEveryShard(
			shards.filter((db) => db !== home),
			(db) => runBatch(db.$client, [doom(db, runId, doomed, doomedAt)]),
		);

		const second = await references(shards, doomed, ctx.now);
		const unreferenced = doomed.filter((h) => !second.has(h));
		const fresh = new Set(await recentlyWritten(ctx, unreferenced, doomedAt));
		const doomedStill = unreferenced.filter((h) => !fresh.has(h));
		const referencedNow = doomed.filter((h) => second.get(h) === "referenced");
		// Listed by an open upload, or just written: still wanted, but perhaps not for long.
		const spared = doomed.filter((h) => second.get(h) === "listed" || fresh.has(h));
		await release(ctx, runId, spared, referencedNow);

		if (Date.now() - doomedAt > DELETE_DEADLINE_MS) {
			// Too slow: the next run could take these tombstones for a dead sweep's.
			await release(ctx, runId, doomedStill, []);
			return { deleted: [], referenced: [...referenced, ...referencedNow], deferred: [...listed, ...spared, ...doomedStill] };
		}
		deleting = true;
		if (doomedStill.length > 0) await ctx.bucket.delete(doomedStill.map(blockObjectKey));
		await inEveryShard(shards, (db) => batch(db, recordDeleted(db, runId, doomedStill)));
		return { deleted: doomedStill, referenced: [...referenced, ...referencedNow], deferred: [...listed, ...spared] };
	} catch (err) {
		// Before any delete, this sweep's tombstones can simply go (best effort:
		// what stays is settled by the next run).
		if (!deleting) await release(ctx, runId, doomed, []).catch(() => undefined);
		throw err;
	}
}

export type Reference = "referenced" | "listed";

/**
 * Which of `hashes` something still needs, in any shard: a user's reference
 * (user_blocks, or a version's block list), or an open upload's block list.
 */
export async function references(shards: ShardDb[], hashes: readonly string[], now: number): Promise<Map<string, Reference>> {
	const found = new Map<string, Reference>();
	const nowIso = new Date(now).toISOString();
	await inEveryShard(shards, async (db) => {
		// Only the hashes something needs come back: most candidates are garbage, and every row crosses to the worker.
		const rows = await db.all<{ hash: string; held: number; listed: number }>(sql`
			SELECT hash, held, listed FROM (SELECT j.value AS hash,
				EXISTS (SELECT 1 FROM user_blocks ub WHERE ub.hash = j.value)
					OR EXISTS (SELECT 1 FROM version_blocks vb WHERE vb.hash = j.value) AS held,
				${listedByOpenUpload(nowIso)} AS listed
			FROM json_each(${JSON.stringify(hashes)}) j)
			WHERE held OR listed`);
		for (const r of rows) {
			if (r.held) found.set(r.hash, "referenced");
			else if (r.listed && !found.has(r.hash)) found.set(r.hash, "listed");
		}
	});
	return found;
}

/** Whether an open upload lists the block `j.value` (of a `json_each(...) j`): it is about to be committed. */
export function listedByOpenUpload(nowIso: string): SQL {
	return sql`EXISTS (SELECT 1 FROM upload_blocks b JOIN uploads u ON u.id = b.upload_id
					WHERE b.hash = j.value AND u.expires_at >= ${nowIso} AND u.cancelled_at IS NULL AND u.committed_version_id IS NULL)`;
}

/** The hashes whose object was written after `doomedAt` or within the grace period: an upload is using them. */
async function recentlyWritten(ctx: SweepContext, hashes: readonly string[], doomedAt: number): Promise<string[]> {
	const uploaded = await uploadedTimes(ctx.bucket, hashes);
	return hashes.filter((h) => {
		const at = uploaded.get(h);
		return at !== undefined && (at > doomedAt || ctx.now - at < ctx.graceMs);
	});
}

/**
 * When each of `hashes`' objects was last written (absent: no object). A
 * prefix with many of them is listed, far faster than a head per object;
 * the others are headed.
 */
export async function uploadedTimes(bucket: R2Bucket, hashes: readonly string[]): Promise<Map<string, number>> {
	const found = new Map<string, number>();
	const byPrefix = new Map<string, string[]>();
	for (const h of hashes) byPrefix.set(h.slice(0, 2), [...(byPrefix.get(h.slice(0, 2)) ?? []), h]);
	const toHead: string[] = [];
	for (const group of byPrefix.values()) {
		if (group.length < LIST_FROM) toHead.push(...group);
		else toHead.push(...(await listUploaded(bucket, group, found)));
	}
	// A pool rather than groups of heads: no lane waits for the slowest head of its group.
	let next = 0;
	const lane = async () => {
		for (let h = toHead[next++]; h !== undefined; h = toHead[next++]) {
			const head = await bucket.head(blockObjectKey(h));
			if (head) found.set(h, head.uploaded.getTime());
		}
	};
	await Promise.all(Array.from({ length: HEAD_CONCURRENCY }, lane));
	return found;
}

/**
 * Lists one prefix from the first of `group` (all of one prefix) to the last,
 * recording what it sees in `found`, for at most {@link LIST_PAGES} pages.
 * @returns the hashes the listing did not reach: they are headed instead.
 */
async function listUploaded(bucket: R2Bucket, group: readonly string[], found: Map<string, number>): Promise<string[]> {
	const keys = group.map(blockObjectKey).sort();
	const wanted = new Set(keys);
	const first = keys[0] as string;
	const last = keys[keys.length - 1] as string;
	const prefix = first.slice(0, first.lastIndexOf("/") + 1);
	// A key one character shorter sorts just before `first`: the listing starts at it.
	let options: R2ListOptions = { prefix, startAfter: first.slice(0, -1), limit: 1_000 };
	let reached = "";
	for (let page = 0; page < LIST_PAGES; page++) {
		const listed = await bucket.list(options);
		for (const o of listed.objects) if (wanted.has(o.key)) found.set(o.key.slice(prefix.length), o.uploaded.getTime());
		reached = listed.objects.at(-1)?.key ?? reached;
		if (!listed.truncated) return [];
		if (reached >= last) return [];
		options = { prefix, cursor: listed.cursor, limit: 1_000 };
	}
	return keys.filter((k) => k > reached).map((k) => k.slice(prefix.length));
}

/**
 * Takes this sweep's tombstones of `keep` and `referenced` out of every
 * shard; `keep` goes back into the home shard's candidates, in the same batch
 * as its tombstones leave.
 */
async function release(ctx: SweepContext, runId: string, keep: readonly string[], referenced: readonly string[]): Promise<void> {
	const all = [...keep, ...referenced];
	if (all.length === 0) return;
	for (const db of ctx.shards) {
		const undo = db.run(
			sql`DELETE FROM doomed_blocks WHERE run_id = ${runId} AND hash IN (SELECT value FROM json_each(${JSON.stringify(all)}))`,
		);
		await runBatch(db.$client, db === ctx.home ? [...enqueueAgain(db, keep, ctx.now), undo] : [undo]);
	}
}

/**
 * Runs `work` in every shard at once; resolves once every shard has finished,
 * rejects with the first failure only then, so nothing is still in flight
 * when a caller cleans up.
 */
async function inEveryShard(shards: readonly ShardDb[], work: (db: ShardDb) => Promise<unknown>): Promise<void> {
	const outcomes = await Promise.allSettled(shards.map(work));
	const failed = outcomes.find((o) => o.status === "rejected");
	if (failed) throw failed.reason;
}

/** One D1 batch; none for no statements (D1 refuses an empty batch). */
async function batch(db: ShardDb, statements: BatchQuery[]): Promise<void> {
	if (statements.length > 0) await runBatch(db.$client, statements);
}

function doom(db: ShardDb, runId: string, hashes: readonly string[], at: number): BatchQuery {
	return db.run(sql`INSERT INTO doomed_blocks (hash, run_id, doomed_at)
		SELECT value, ${runId}, ${new Date(at).toISOString()} FROM json_each(${JSON.stringify(hashes)})`);
}

/** The deletion of this sweep's `hashes`, under the shard's next clock value. */
function recordDeleted(db: ShardDb, runId: string, hashes: readonly string[]): BatchQuery[] {
	if (hashes.length === 0) return [];
	return [
		db.run(sql`UPDATE gc_clock SET seq = seq + 1 WHERE id = 0`),
		db.run(sql`UPDATE doomed_blocks SET deleted_seq = (SELECT seq FROM gc_clock WHERE id = 0), deleted_at = ${new Date().toISOString()}
			WHERE run_id = ${runId} AND deleted_seq IS NULL AND hash IN (SELECT value FROM json_each(${JSON.stringify(hashes)}))`),
	];
}

function dropCandidates(db: ShardDb, hashes: readonly string[], queuedBy?: number): BatchQuery[] {
	if (hashes.length === 0) return [];
	const due = queuedBy === undefined ? sql`` : sql` AND enqueued_at <= ${new Date(queuedBy).toISOString()}`;
	return [db.run(sql`DELETE FROM gc_candidates WHERE hash IN (SELECT value FROM json_each(${JSON.stringify(hashes)}))${due}`)];
}

/** Candidates to look at again in a later run: queued again now, or queued now if the sweep had claimed them. */
function enqueueAgain(db: ShardDb, hashes: readonly string[], now: number): BatchQuery[] {
	if (hashes.length === 0) return [];
	const at = new Date(now).toISOString();
	return [
		db.run(sql`INSERT INTO gc_candidates (hash, enqueued_at) SELECT value, ${at} FROM json_each(${JSON.stringify(hashes)}) WHERE true
			ON CONFLICT (hash) DO UPDATE SET enqueued_at = excluded.enqueued_at`),
	];
}

/**
 * Settles what earlier runs left in one shard: a tombstone pending for longer
 * than any sweep lives is recorded as a deletion (the object may be gone) and
 * its hash queued again; deletion records no commit can still need are dropped.
 * @param wall the time it is: tests move it forward rather than wait.
 * @returns how many pending tombstones were settled.
 */
export async function settleTombstones(db: ShardDb, wall = Date.now()): Promise<number> {
	const nowIso = new Date(wall).toISOString();
	const stale = new Date(wall - STALE_TOMBSTONE_MS).toISOString();
	const [, , settled] = await runBatch(db.$client, [
		db.run(sql`INSERT INTO gc_candidates (hash, enqueued_at)
			SELECT DISTINCT hash, ${nowIso} FROM doomed_blocks WHERE deleted_seq IS NULL AND doomed_at < ${stale}
			ON CONFLICT (hash) DO NOTHING`),
		db.run(sql`UPDATE gc_clock SET seq = seq + 1
			WHERE id = 0 AND EXISTS (SELECT 1 FROM doomed_blocks WHERE deleted_seq IS NULL AND doomed_at < ${stale})`),
		db.run(sql`UPDATE doomed_blocks SET deleted_seq = (SELECT seq FROM gc_clock WHERE id = 0), deleted_at = ${nowIso}
			WHERE deleted_seq IS NULL AND doomed_at < ${stale}`),
		db.run(sql`DELETE FROM doomed_blocks
			WHERE deleted_seq IS NOT NULL AND deleted_at < ${new Date(wall - TOMBSTONE_RETENTION_MS).toISOString()}
				AND deleted_seq <= COALESCE((SELECT MIN(s.seq) FROM upload_since s JOIN uploads u ON u.id = s.upload_id), (SELECT seq FROM gc_clock WHERE id = 0))`),
	]);
	return settled?.meta.changes ?? 0;
}
