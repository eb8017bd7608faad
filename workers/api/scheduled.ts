/** Housekeeping on the cron in wrangler.toml. Each task is idempotent, so a missed or repeated run is harmless. */
import { shardAt, shardCount } from "../../src/shared/db/shards";
import { openDirectory } from "./services/directory";
import { pruneJournal } from "./services/journal";
import { purgeExpiredTrash } from "./services/trash";
import { pruneSessions } from "./services/sessions";
import { pruneThrottle } from "./services/throttle";
import { cleanupUploads } from "./services/uploads";

/** Runs every housekeeping task over every shard. */
export async function runHousekeeping(env: Env, now = Date.now()): Promise<void> {
	const retentionDays = Number(env.JOURNAL_RETENTION_DAYS) || 30;
	const cutoff = new Date(now - retentionDays * 86_400_000).toISOString();
	for (let i = 0; i < shardCount(env); i++) {
		await pruneJournal(shardAt(env, i), cutoff);
	}
	await purgeExpiredTrash(env, now);
	await cleanupUploads(env, env.BLOBS, now);
	await pruneDirectory(env, now);
}

/** Prunes the directory: expired and signed-out sessions, ended throttle windows. */
export async function pruneDirectory(env: Env, now = Date.now()): Promise<void> {
	const db = openDirectory(env.DIRECTORY);
	await pruneSessions(db, now);
	await pruneThrottle(db, now);
}
