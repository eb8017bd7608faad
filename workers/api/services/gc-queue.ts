/**
 * The block collector's work as bounded units on the `drive-gc` queue
 * (docs/decisions/0027-storage-lifecycle.md). The cron only schedules: it
 * settles dead sweeps' tombstones, then sends one `sweep` unit per shard and,
 * when a scan is due, one `scan` unit per `blocks/<hh>/` prefix: it lists the
 * prefix page by page, queues orphans as candidates and moves blocks between
 * storage tiers (services/tiering.ts). A unit that finds more work sends its
 * successor before it is acknowledged.
 *
 * Nothing rests on the queue: a sweep's claim is ADR 0017's (a candidate row
 * or a tombstone always exists), a scan's position is in `lifecycle_runs`,
 * and a lost unit is sent again by the next cron. `lifecycle_runs` is also
 * the progress report.
 */
import { isSha256Hex } from "../../../src/shared/crypto";
import { runBatch } from "../../../src/shared/db/batch";
import { blockShardIndex, shardCount } from "../../../src/shared/db/shards";
import { coldAfterMs, tierBlocks } from "./tiering";
import { allShards, enqueueCandidates, GC_CHUNK, GC_GRACE_MS, references, settleTombstones, sweepShard } from "./gc";

/** Candidates one sweep unit takes from its shard. */
export const SWEEP_UNIT_CANDIDATES = GC_CHUNK;

/** Objects one scan unit lists (R2's largest page). */
export const SCAN_PAGE = 1_000;

/** An object nothing references is queued as a candidate only once it is this old: an upload may still commit it. */
export const ORPHAN_MIN_AGE_MS = 24 * 3_600_000;

/** How often the cron lists every prefix for orphans and tiers. */
export const SCAN_EVERY_MS = 7 * 86_400_000;

/** Every prefix blocks live under (docs/storage.md): the two first hex digits of the hash. */
export const BLOCK_PREFIXES: readonly string[] = Array.from({ length: 256 }, (_, i) => `blocks/${i.toString(16).padStart(2, "0")}/`);

interface UnitBase {
	/** When the cron scheduled the run this unit belongs to (its `lifecycle_runs` row). */
	started: string;
	/** The time the policy is judged at; absent, the time the unit runs. Tests set it. */
	now?: number;
}

export type GcUnit =
	| (UnitBase & { kind: "sweep"; shard: number })
	/** `after`: the last key an earlier unit of this scan decided. */
	| (UnitBase & { kind: "scan"; prefix: string; after?: string });

/** Where units go: the queue in production, straight to {@link runUnit} in tests and tools. */
export type UnitSink = (units: GcUnit[]) => Promise<void>;

/** Sends units to the `drive-gc` queue (at most 100 messages per call). */
export function queueSink(env: Env): UnitSink {
	return async (units) => {
		for (let i = 0; i < units.length; i += 100) await env.GC_QUEUE.sendBatch(units.slice(i, i + 100).map((body) => ({ body })));
	};
}

/** Sends units nowhere: for a housekeeping run that is not about the collector (the next run schedules them again). */
export const dropUnits: UnitSink = async () => undefined;

/**
 * Runs units at once, their successors too, each on its own: a failing unit
 * is skipped and the sink rejects at the end with every failure.
 */
export function inlineSink(env: Env, bucket: R2Bucket = env.BLOBS): UnitSink {
	const sink: UnitSink = async (units) => {
		const failures: unknown[] = [];
		for (const unit of units) {
			try {
				await runUnit(env, bucket, unit, sink);
			} catch (err) {
				failures.push(...(err instanceof AggregateError ? err.errors : [err]));
			}
		}
		if (failures.length > 0) throw new AggregateError(failures, `${failures.length} collector unit(s) failed`);
	};
	return sink;
}

/**
 * The cron's part: settles every shard's dead sweeps, then schedules a sweep
 * of every shard and, once every {@link ORPHAN_SCAN_MS}, a listing of every
 * prefix (orphans and tiers). Each step runs on its own; the run rejects with every failure.
 */
export async function scheduleCollection(env: Env, sink: UnitSink, now = Date.now()): Promise<void> {
	const failures: unknown[] = [];
	for (const db of allShards(env)) await settleTombstones(db).catch((err: unknown) => failures.push(err));
	const started = new Date(now).toISOString();
	try {
		const units: GcUnit[] = Array.from({ length: shardCount(env) }, (_, shard) => ({ kind: "sweep", shard, started, now }));
		if (await scanDue(env, now)) units.push(...BLOCK_PREFIXES.map((prefix): GcUnit => ({ kind: "scan", prefix, started, now })));
		// The rows first: the next cron sees the scan as started even before its units ran.
		await startRuns(env, units);
		await sink(units);
	} catch (err) {
		failures.push(...(err instanceof AggregateError ? err.errors : [err]));
	}
	if (failures.length > 0) throw new AggregateError(failures, "block collection failed in part");
}

async function scanDue(env: Env, now: number): Promise<boolean> {
	const row = await env.DIRECTORY.prepare("SELECT MAX(started_at) AS last FROM lifecycle_runs WHERE task = 'scan'").first<{
		last: string | null;
	}>();
	return row?.last == null || Date.parse(row.last) <= now - SCAN_EVERY_MS;
}

/** Runs one unit; a successor, if there is more to do, goes to `sink` before this returns. */
export async function runUnit(env: Env, bucket: R2Bucket, unit: GcUnit, sink: UnitSink): Promise<void> {
	const now = unit.now ?? Date.now();
	if (unit.kind === "sweep") {
		const shards = allShards(env);
		const home = shards[unit.shard];
		if (!home) throw new Error(`sweep unit for shard ${unit.shard}, but there are ${shards.length} shards`);
		const done = await sweepShard({ shards, home, bucket, now, graceMs: GC_GRACE_MS }, SWEEP_UNIT_CANDIDATES);
		await recordProgress(env, unit, { examined: done.examined, deleted: done.deleted, cursor: null, finished: !done.more });
		if (done.more) await sink([unit]);
		return;
	}
	const page = await bucket.list({ prefix: unit.prefix, startAfter: unit.after, limit: SCAN_PAGE });
	const queued = await queueOrphans(env, page.objects, now);
	const tiers = await tierBlocks(allShards(env), bucket, page.objects, { now, coldAfterMs: coldAfterMs(env) });
	// A page whose rewrites ran out goes on from the last block it decided.
	const after = tiers.decidedThrough !== page.objects.at(-1)?.key || page.truncated ? tiers.decidedThrough : null;
	const examined = after === null ? page.objects.length : page.objects.findIndex((o) => o.key === after) + 1;
	await recordProgress(env, unit, { examined, queued, tiered: tiers.cooled + tiers.warmed, cursor: after, finished: after === null });
	if (after !== null) await sink([{ ...unit, after }]);
}

/**
 * Queues as candidates the listed blocks old enough that no shard references
 * or lists: each in the shard its hash falls in. The sweep decides.
 * @returns how many were queued.
 */
async function queueOrphans(env: Env, objects: readonly R2Object[], now: number): Promise<number> {
	const old = objects
		.filter((o) => o.uploaded.getTime() <= now - ORPHAN_MIN_AGE_MS)
		.map((o) => o.key.slice(o.key.lastIndexOf("/") + 1))
		.filter(isSha256Hex);
	if (old.length === 0) return 0;
	const shards = allShards(env);
	const needed = await references(shards, old, now);
	const orphans = old.filter((hash) => !needed.has(hash));
	const byShard = new Map<number, string[]>();
	for (const hash of orphans) {
		const i = blockShardIndex(hash, shards.length);
		byShard.set(i, [...(byShard.get(i) ?? []), hash]);
	}
	for (const [i, hashes] of byShard) {
		const db = shards[i];
		if (db) await runBatch(db.$client, enqueueCandidates(db, hashes, now));
	}
	return orphans.length;
}

function scopeOf(unit: GcUnit): string {
	return unit.kind === "sweep" ? `shard/${unit.shard}` : unit.prefix;
}

/** Writes (or starts again) the progress row of each unit's run, in one batch. */
export async function startRuns(env: Env, units: readonly GcUnit[]): Promise<void> {
	if (units.length > 0)
		await runBatch(
			env.DIRECTORY,
			units.map((unit) => startRow(env, unit)),
		);
}

function startRow(env: Env, unit: GcUnit): D1PreparedStatement {
	return env.DIRECTORY.prepare(
		`INSERT INTO lifecycle_runs (task, prefix, cursor, started_at, updated_at) VALUES (?1, ?2, NULL, ?3, ?3)
		ON CONFLICT (task, prefix) DO UPDATE SET cursor = NULL, started_at = ?3, examined = 0, deleted = 0, queued = 0, tiered = 0,
			finished_at = NULL, updated_at = ?3`,
	).bind(unit.kind, scopeOf(unit), unit.started);
}

interface Progress {
	examined: number;
	deleted?: number;
	queued?: number;
	tiered?: number;
	cursor: string | null;
	finished: boolean;
}

/** Adds a unit's work to its run's row; a unit of an older run (a late retry) changes nothing. */
async function recordProgress(env: Env, unit: GcUnit, p: Progress): Promise<void> {
	const at = new Date().toISOString();
	await env.DIRECTORY.prepare(
		`UPDATE lifecycle_runs SET examined = examined + ?1, deleted = deleted + ?2, queued = queued + ?3, tiered = tiered + ?10, cursor = ?4,
			finished_at = CASE WHEN ?5 THEN ?6 END, updated_at = ?6
		WHERE task = ?7 AND prefix = ?8 AND started_at = ?9`,
	)
		.bind(
			p.examined,
			p.deleted ?? 0,
			p.queued ?? 0,
			p.cursor,
			p.finished ? 1 : 0,
			at,
			unit.kind,
			scopeOf(unit),
			unit.started,
			p.tiered ?? 0,
		)
		.run();
}

/**
 * The queue consumer. `drive-gc`: each unit runs, then is acknowledged; a
 * failing one is retried by the queue (every step is idempotent). The dead
 * letter queue: logged; the work itself is still in D1 and the next cron
 * sends it again.
 */
export async function consumeGcBatch(batch: MessageBatch<GcUnit>, env: Env): Promise<void> {
	for (const message of batch.messages) {
		if (batch.queue.endsWith("-dlq")) {
			console.error(JSON.stringify({ gc: "unit gave up", unit: message.body, attempts: message.attempts }));
			message.ack();
			continue;
		}
		try {
			await runUnit(env, env.BLOBS, message.body, queueSink(env));
			message.ack();
		} catch (err) {
			console.error(JSON.stringify({ gc: "unit failed", unit: message.body, error: String(err) }));
			message.retry({ delaySeconds: 30 });
		}
	}
}
