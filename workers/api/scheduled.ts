/** Housekeeping on the cron in wrangler.toml. Each task is idempotent, so a missed or repeated run is harmless. */
import { ACTIVITY_RETENTION_DAYS } from "../../src/shared/activity";
import { shardAt, shardCount } from "../../src/shared/db/shards";
import { pruneActivity } from "./services/activity";
import { openDirectory } from "./services/directory";
import { queueSink, scheduleCollection, type UnitSink } from "./services/gc-queue";
import { pruneJournal } from "./services/journal";
import { purgeExpiredTrash } from "./services/trash";
import { pruneSessions } from "./services/sessions";
import { pruneThrottle } from "./services/throttle";
import { cleanupUploads } from "./services/uploads";
import { keyRing } from "./services/block-store";
import { verifyPendingHashes } from "./services/verify";
import { thinVersionHistories } from "./services/version-retention";
import { redriveWebhooks } from "./services/webhook-fanout";
import { pruneDeliveries } from "./services/webhook-log";

/**
 * Runs every housekeeping task over every shard. Each task, and each shard
 * of the journal's, runs on its own: a failure is logged and the rest still
 * runs; the run then rejects with every failure, so the cron shows it. The
 * block collector's work only gets scheduled: its units go to `units` (the
 * queue; tests run them at once).
 */
export async function runHousekeeping(env: Env, now = Date.now(), units: UnitSink = queueSink(env)): Promise<void> {
	const failures: unknown[] = [];
	const attempt = async (task: string, work: () => Promise<unknown>): Promise<void> => {
		try {
			await work();
		} catch (err) {
			const causes = err instanceof AggregateError ? err.errors : [err];
			for (const cause of causes) console.error(JSON.stringify({ housekeeping: task, error: String(cause) }));
			failures.push(err);
		}
	};
	const retentionDays = Number(env.JOURNAL_RETENTION_DAYS) || 30;
	const cutoff = new Date(now - retentionDays * 86_400_000).toISOString();
	for (let i = 0; i < shardCount(env); i++) await attempt(`pruneJournal SHARD_${i}`, () => pruneJournal(shardAt(env, i), cutoff));
	// A delivery lives as long as the journal change it carries.
	for (let i = 0; i < shardCount(env); i++) await attempt(`pruneDeliveries SHARD_${i}`, () => pruneDeliveries(shardAt(env, i), cutoff));
	for (let i = 0; i < shardCount(env); i++) await attempt(`redriveWebhooks SHARD_${i}`, () => redriveWebhooks(env, i, now));
	const activityCutoff = new Date(now - ACTIVITY_RETENTION_DAYS * 86_400_000).toISOString();
	for (let i = 0; i < shardCount(env); i++) await attempt(`pruneActivity SHARD_${i}`, () => pruneActivity(shardAt(env, i), activityCutoff));
	await attempt("purgeExpiredTrash", () => purgeExpiredTrash(env, now));
	await attempt("thinVersionHistories", () => thinVersionHistories(env, now));
	await attempt("cleanupUploads", () => cleanupUploads(env, env.BLOBS, now));
	await attempt("verifyPendingHashes", () => verifyPendingHashes(env, keyRing(env), now));
	await attempt("scheduleCollection", () => scheduleCollection(env, units, now));
	await attempt("pruneDirectory", () => pruneDirectory(env, now));
	if (failures.length > 0) throw new AggregateError(failures, `housekeeping: ${failures.length} task(s) failed`);
}

/** Prunes the directory: expired and signed-out sessions, ended throttle windows. */
export async function pruneDirectory(env: Env, now = Date.now()): Promise<void> {
	const db = openDirectory(env.DIRECTORY);
	await pruneSessions(db, now);
	await pruneThrottle(db, now);
}
