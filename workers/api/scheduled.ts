/** Housekeeping on the cron in wrangler.toml. Each task is idempotent, so a missed or repeated run is harmless. */
import { shardAt, shardCount } from "../../src/shared/db/shards";
import { pruneJournal } from "./services/journal";
import { purgeExpiredTrash } from "./services/trash";
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
}
