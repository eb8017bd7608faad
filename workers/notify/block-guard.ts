/**
 * The commit side of the block collector's protocol (docs/decisions/0017).
 *
 * Blocks are stored before their commit, and the collector may delete a block
 * in between. A commit therefore checks, in the SAME D1 batch that inserts
 * its references (a read before the batch would race the collector), that
 * none of the blocks it newly references is doomed, or was deleted after its
 * bytes were written. The check is the `user_blocks_not_doomed` trigger
 * (migrations/shard/0006); it reads the guard row this module puts first in
 * the batch: the shard's gc_clock value the commit's blocks were written after.
 */
import { sql } from "drizzle-orm";
import { missingBlocks, notFound } from "../../src/shared/commit/failures";
import { runBatch, type BatchQuery } from "../../src/shared/db/batch";
import type { BlockRef } from "../../src/shared/db/mappers";
import type { ShardDb } from "../../src/shared/db/shards";
import { missingBlocks as findMissingBlocks } from "../../src/shared/db/uploads";
import { fail, type Refusal } from "../../src/shared/errors";

/**
 * Where a commit's blocks were written: by a PUT content request that read
 * the shard's gc_clock (`since`) before storing any, or for an upload (its
 * clock is in upload_since).
 */
export type BlockSource = { since: number } | { uploadId: string };

/** The source of a commit's blocks: listed (with the clock read before they were written; none refuses every tombstone), or an upload. */
export function blockSource(blocks: BlockRef[] | { uploadId: string }, since: number | undefined): BlockSource {
	return Array.isArray(blocks) ? { since: since ?? -1 } : { uploadId: blocks.uploadId };
}

/**
 * `statements` (the commit's block list and references) between the guard
 * row's insert and its delete. An upload's guard row is NULL, which fails
 * the batch, unless the upload is still open: a cancel or a cleanup that
 * came after the hub's checks wins.
 */
export function guardBlocks(
	db: ShardDb,
	source: BlockSource,
	statements: (BatchQuery | D1PreparedStatement)[],
): (BatchQuery | D1PreparedStatement)[] {
	if (statements.length === 0) return [];
	const frame = guardFrame(db, source);
	return [frame.first, ...statements, frame.last];
}

/** The guard row's insert and delete, for statements of several commits that share one source (a batch of files). */
export function guardFrame(db: ShardDb, source: BlockSource): { first: D1PreparedStatement; last: D1PreparedStatement } {
	const first =
		"uploadId" in source
			? db.$client.prepare(GUARD_UPLOAD).bind(source.uploadId)
			: db.$client.prepare("INSERT INTO commit_guard (since_seq) VALUES (?1)").bind(source.since);
	return { first, last: db.$client.prepare("DELETE FROM commit_guard") };
}

// Static SQL: on the path of every commit (src/shared/db/static.ts).
const GUARD_UPLOAD = `INSERT INTO commit_guard (since_seq)
	SELECT CASE WHEN EXISTS (SELECT 1 FROM uploads WHERE id = ?1 AND cancelled_at IS NULL AND committed_version_id IS NULL)
		THEN COALESCE((SELECT seq FROM upload_since WHERE upload_id = ?1), -1) END`;

export async function guardRefusal(db: ShardDb, userId: string, source: BlockSource, err: unknown): Promise<Refusal | null> {
	const text = errorText(err);
	if (text.includes("commit_guard.since_seq")) return notFound("upload");
	if (!text.includes("BLOCK_DOOMED")) return null;
	if (!("uploadId" in source)) {
		return fail(
			"BLOCKS_RECLAIMED",
			"blocks this request stored were deleted by the storage collector while it ran; send the request again",
		);
	}
	const id = source.uploadId;
	await runBatch(db.$client, [
		db.run(sql`DELETE FROM upload_received
			WHERE upload_id = ${id}
				AND NOT EXISTS (SELECT 1 FROM user_blocks x WHERE x.user_id = ${userId} AND x.hash = upload_received.hash)
				AND EXISTS (SELECT 1 FROM doomed_blocks d WHERE d.hash = upload_received.hash
					AND (d.deleted_seq IS NULL OR d.deleted_seq > COALESCE((SELECT seq FROM upload_since WHERE upload_id = ${id}), -1)))`),
		db.run(sql`INSERT INTO upload_since (upload_id, seq) SELECT ${id}, seq FROM gc_clock WHERE id = 0
			ON CONFLICT (upload_id) DO UPDATE SET seq = excluded.seq`),
	]);
	return missingBlocks(await findMissingBlocks(db, userId, id));
}

function errorText(err: unknown): string {
	if (!(err instanceof Error)) return String(err);
	return err.cause === undefined ? err.message : `${err.message} ${errorText(err.cause)}`;
}
