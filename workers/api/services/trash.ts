/** Trash retention: items in the trash longer than TRASH_RETENTION_DAYS are deleted for good by the cron. */
import { sql } from "drizzle-orm";
import { shardAt, shardCount } from "../../../src/shared/db/shards";
import { hubFor } from "./hub";

/** Trashed items purged per shard per cron run: a backlog drains over runs, each run stays short. */
const PURGES_PER_SHARD_PER_RUN = 100;

/**
 * Purges, through each owner's hub (the only writer of their tree), the
 * items trashed before the retention cutoff. Returns how many; a failure on
 * one shard or item is logged and skips nothing else.
 */
export async function purgeExpiredTrash(env: Env, now = Date.now()): Promise<number> {
	const days = Number(env.TRASH_RETENTION_DAYS) || 30;
	const cutoff = new Date(now - days * 86_400_000).toISOString();
	let purged = 0;
	for (let i = 0; i < shardCount(env); i++) {
		try {
			const expired = await shardAt(env, i).all<{ user_id: string; id: string }>(
				sql`SELECT user_id, id FROM nodes WHERE trash_root_id = id AND purge_started_at IS NULL AND trashed_at < ${cutoff} LIMIT ${PURGES_PER_SHARD_PER_RUN}`,
			);
			for (const item of expired) {
				const result = await hubFor(env, item.user_id).purgeNode({ nodeId: item.id });
				if (result.ok) purged++;
				else console.error(JSON.stringify({ task: "purgeExpiredTrash", node: item.id, error: result.error }));
			}
		} catch (err) {
			console.error(JSON.stringify({ task: "purgeExpiredTrash", shard: i, error: String(err) }));
		}
	}
	return purged;
}
