/** Version retention on the cron: every file with history is thinned by its owner's hub, a bounded page at a time. */
import { sql } from "drizzle-orm";
import { shardAt, shardCount, type ShardDb } from "../../../src/shared/db/shards";
import { retentionPolicy } from "../../../src/shared/retention";
import { hubFor } from "./hub";

/** Files per page, and pages per shard per cron run: a run stays short, and the sweep resumes where it stopped. */
const FILES_PER_PAGE = 100;
const PAGES_PER_SHARD_PER_RUN = 3;

/** This sweep's row in each shard's sweep_cursors. */
const TASK = "thin_versions";

/**
 * Thins, through each owner's hub (the only writer of their tree), the
 * history of files with more than one version, by the policy in [vars] at
 * `now`. Each shard resumes after the last file of its previous run and
 * starts over once it reaches the end. Returns how many versions expired; a
 * failure on one shard or file is logged and skips nothing else.
 */
export async function thinVersionHistories(env: Env, now = Date.now()): Promise<number> {
	const policy = retentionPolicy(env);
	let expired = 0;
	for (let i = 0; i < shardCount(env); i++) {
		try {
			const db = shardAt(env, i);
			let position = await sweepPosition(db);
			for (let page = 0; page < PAGES_PER_SHARD_PER_RUN; page++) {
				const files = await db.all<{ node_id: string; user_id: string }>(
					sql`SELECT node_id, MAX(user_id) AS user_id FROM versions WHERE node_id > ${position}
						GROUP BY node_id HAVING COUNT(*) > 1 ORDER BY node_id LIMIT ${FILES_PER_PAGE}`,
				);
				for (const file of files) {
					const result = await hubFor(env, file.user_id).thinVersions({ nodeId: file.node_id, now, policy });
					if (result.ok) expired += result.value.expired;
					else console.error(JSON.stringify({ task: "thinVersionHistories", node: file.node_id, error: result.error }));
				}
				position = files.length < FILES_PER_PAGE ? "" : (files.at(-1)?.node_id ?? "");
				if (position === "") break;
			}
			await db.run(sql`INSERT INTO sweep_cursors (task, position, updated_at) VALUES (${TASK}, ${position}, ${new Date(now).toISOString()})
				ON CONFLICT (task) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`);
		} catch (err) {
			console.error(JSON.stringify({ task: "thinVersionHistories", shard: i, error: String(err) }));
		}
	}
	return expired;
}

async function sweepPosition(db: ShardDb): Promise<string> {
	const [row] = await db.all<{ position: string }>(sql`SELECT position FROM sweep_cursors WHERE task = ${TASK}`);
	return row?.position ?? "";
}
